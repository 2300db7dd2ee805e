package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http/httpguts"
)

// forward sends a request that does not ask to switch protocols to the chosen backend
// and copies the answer to w. It keeps httputil.ReverseProxy's contract for such
// requests (hop-by-hop headers dropped both ways, forwarding headers replaced, bad
// query strings re-encoded, 1xx answers passed on, trailers, immediate flushing of
// streams, a response cut short aborted) at a fraction of its per-request cost: the
// outbound header map is built in one pass from the inbound one, sharing its values,
// instead of being deep-copied and then pruned; the response's header values move to
// the client's header map instead of being copied one by one; and the request's state
// is passed along directly instead of through context values and hooks.
//
// Upgrades (WebSocket) still go through the reverse proxy, whose tunnel code they need.
func (h *Handler) forward(w http.ResponseWriter, in *http.Request, st *reqState) {
	// The copy shares the inbound Trailer map: trailers a client declares and sends
	// after a chunked body are passed on with their values (httputil.ReverseProxy sent
	// only their names).
	ob := &outbound{req: *in, url: *in.URL}
	out := &ob.req
	out.URL = &ob.url
	out.Header = outboundHeader(in.Header)
	out.Close = false
	if in.ContentLength == 0 {
		out.Body = nil // nothing to send; lets a transport retry on a fresh connection
	}
	if out.Body != nil {
		// A transport closes the body it was given when it fails; the inbound body must
		// stay the server's to close. And once the handler returns nothing may read it.
		guard := &bodyGuard{body: out.Body}
		out.Body = guard
		defer guard.Close()
	}
	if httpguts.HeaderValuesContainsToken(in.Header["Te"], "trailers") {
		out.Header["Te"] = teTrailers
	}
	out.URL.RawQuery = cleanQuery(out.URL.RawQuery)
	h.prepare(in, out, st, &ob.values)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = emptyValue // no made-up client name
	}

	var relay *infoRelay
	if st.backend.cluster.Fast == nil {
		// Transports other than Portico's HTTP/1.1 pool report informational answers
		// (103 Early Hints) through a trace; pass them on to the client.
		relay = &infoRelay{w: w}
		out = out.WithContext(httptrace.WithClientTrace(out.Context(), &httptrace.ClientTrace{Got1xxResponse: relay.got1xx}))
	}
	res, err := dispatch(out, st)
	if relay != nil {
		relay.finish()
	}
	if err != nil {
		h.answerError(w, out, st, err)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		res.Body.Close()
		h.answerError(w, out, st, errors.New("the backend switched protocols on a request that did not ask to"))
		return
	}

	dst := w.Header()
	moveHeader(dst, res.Header)
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		dst.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(res.StatusCode)

	// Streams (no length, or server-sent events) are flushed as they come, the head at
	// once (so an empty stream is sent as an empty chunked body, where ReverseProxy's
	// timer usually lost the race to the end and sent Content-Length: 0); a response of
	// known length is left to the server's buffering.
	flush := res.ContentLength == -1 || isEventStream(dst["Content-Type"])
	if flush {
		flushResponse(w)
	}
	if err := copyBody(w, res.Body, flush); err != nil {
		res.Body.Close()
		h.log.Debug("response copy failed", "error", err, "path", in.URL.Path)
		// The status line is gone; all that is left is to end the response abnormally
		// (the server resets the stream or closes the connection).
		panic(http.ErrAbortHandler)
	}
	res.Body.Close() // now, so that res.Trailer is filled

	if len(res.Trailer) > 0 {
		// Force chunked framing: a short body would otherwise get a Content-Length and
		// no trailers.
		flushResponse(w)
	}
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			dst[k] = append(dst[k], vv...)
		}
		return
	}
	for k, vv := range res.Trailer {
		dst[http.TrailerPrefix+k] = append(dst[http.TrailerPrefix+k], vv...)
	}
}

// outbound holds an outbound request with its URL and the values of the headers the
// proxy sets, in one allocation.
type outbound struct {
	req    http.Request
	url    url.URL
	values forwardValues
}

// forwardValues is storage for the values of the forwarding headers and the request
// id, so that each does not need a slice of its own.
type forwardValues [3]string

// Shared header values; header maps may point at them but never modify them (filters
// replace or re-allocate a value slice, see filter.Headers).
var (
	emptyValue  = []string{""}
	teTrailers  = []string{"trailers"}
	protoHTTP   = []string{"http"}
	protoHTTPS  = []string{"https"}
	errAfterEnd = errors.New("request body read after the handler ended")
)

// outboundHeader returns the header to send upstream: the inbound one without
// hop-by-hop headers, those the Connection header names, and the client's forwarding
// headers (the proxy sets its own). The value slices are shared with in.
func outboundHeader(in http.Header) http.Header {
	out := make(http.Header, len(in)+4)
	for k, vv := range in {
		if isHopHeader(k) || isForwardingHeader(k) {
			continue
		}
		out[k] = vv
	}
	removeConnectionListed(out, in["Connection"])
	return out
}

// moveHeader adds src's end-to-end headers to dst, sharing src's value slices where dst
// has none of its own.
func moveHeader(dst, src http.Header) {
	for k, vv := range src {
		if isHopHeader(k) {
			continue
		}
		if have, ok := dst[k]; ok {
			dst[k] = append(have[:len(have):len(have)], vv...)
		} else {
			dst[k] = vv
		}
	}
	removeConnectionListed(dst, src["Connection"])
}

// removeConnectionListed deletes from h the headers a Connection header lists (RFC 9110
// section 7.6.1): they are meant for this hop only.
func removeConnectionListed(h http.Header, connection []string) {
	for _, v := range connection {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				delete(h, http.CanonicalHeaderKey(name))
			}
		}
	}
}

// isHopHeader reports whether a canonical header name is hop-by-hop by definition.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// isForwardingHeader reports whether a canonical header name is one of the forwarding
// headers a client may not choose.
func isForwardingHeader(k string) bool {
	switch k {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	return false
}

// setForwarded sets X-Forwarded-For (the client's address: a client's own claim is not
// passed on), X-Forwarded-Host and X-Forwarded-Proto, using vals for their storage.
func setForwarded(in *http.Request, out http.Header, vals *forwardValues) {
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		vals[0] = ip
		out["X-Forwarded-For"] = vals[0:1:1]
	} else {
		delete(out, "X-Forwarded-For")
	}
	vals[1] = in.Host
	out["X-Forwarded-Host"] = vals[1:2:2]
	if in.TLS == nil {
		out["X-Forwarded-Proto"] = protoHTTP
	} else {
		out["X-Forwarded-Proto"] = protoHTTPS
	}
}

// isEventStream reports whether a Content-Type is text/event-stream (server-sent
// events), parameters and ASCII case aside.
func isEventStream(vv []string) bool {
	if len(vv) == 0 {
		return false
	}
	base, _, _ := strings.Cut(vv[0], ";")
	base = strings.TrimSpace(base)
	const want = "text/event-stream"
	if len(base) != len(want) {
		return false
	}
	for i := 0; i < len(want); i++ {
		c := base[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

// cleanQuery re-encodes a query string that parsers would read differently: with a
// semicolon (once a separator, now invalid), a broken percent escape, or more
// parameters than net/url accepts. Re-encoding drops what cannot be parsed, so the
// backend sees exactly what the routing saw. Well-formed queries pass through as they
// are.
func cleanQuery(q string) string {
	if q == "" {
		return q
	}
	reencode := alwaysReencode || strings.Count(q, "&") >= maxQueryParams
	for i := 0; i < len(q) && !reencode; i++ {
		switch q[i] {
		case ';':
			reencode = true
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				reencode = true
			}
			i += 2
		}
	}
	if !reencode {
		return q
	}
	v, _ := url.ParseQuery(q)
	return v.Encode()
}

// maxQueryParams is net/url's default limit on the number of query parameters.
const maxQueryParams = 10000

// alwaysReencode: with GODEBUG=urlmaxqueryparams set, net/url's limit is not the
// default, so every query is re-encoded (as ReverseProxy does).
var alwaysReencode = strings.Contains(os.Getenv("GODEBUG"), "urlmaxqueryparams=")

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// infoRelay passes a backend's 1xx answers on to the client until the final answer has
// arrived; after that the header map is the final answer's.
type infoRelay struct {
	mu   sync.Mutex
	w    http.ResponseWriter
	done bool
}

func (r *infoRelay) got1xx(code int, header textproto.MIMEHeader) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	h := r.w.Header()
	for k, vv := range header {
		h[k] = append(h[k][:len(h[k]):len(h[k])], vv...)
	}
	r.w.WriteHeader(code)
	clear(h) // a 1xx's headers are its own
	return nil
}

func (r *infoRelay) finish() {
	r.mu.Lock()
	r.done = true
	r.mu.Unlock()
}

// copyBody copies a response body to the client, flushing after every read when flush
// is set. It returns read errors other than the end of the body, and write errors.
func copyBody(w http.ResponseWriter, body io.Reader, flush bool) error {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if m, werr := w.Write(buf[:n]); werr != nil || m != n {
				if werr == nil {
					werr = io.ErrShortWrite
				}
				return werr
			}
			if flush {
				flushResponse(w)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

func flushResponse(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w).Flush()
}

// bodyGuard hands a request body to a transport without letting it close the inbound
// body, and refuses reads once the handler has ended (a transport's writer may outlive
// it).
type bodyGuard struct {
	body   io.ReadCloser
	closed atomic.Bool
}

func (g *bodyGuard) Read(p []byte) (int, error) {
	if g.closed.Load() {
		return 0, errAfterEnd
	}
	return g.body.Read(p)
}

func (g *bodyGuard) Close() error {
	g.closed.Store(true)
	return nil
}
