package proxy

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/portico-gw/portico/internal/dataplane/router"
	"github.com/portico-gw/portico/internal/dataplane/upstream"
	"github.com/portico-gw/portico/internal/telemetry"
)

// Table is the routing of one port.
type Table = router.Table[*Action]

// Handler serves one port. Its table is swapped atomically by Store; a request uses
// the table it started with until it finishes.
type Handler struct {
	table    atomic.Pointer[Table]
	port     uint32
	tls      bool
	proxy    *httputil.ReverseProxy
	log      *slog.Logger
	conns    *ConnTracker
	mirrorsN chan struct{} // bounds concurrent mirror requests
	tel      *telemetry.Set
	gateway  string
	stdProxy bool // every request goes through proxy (see UseReverseProxy)
	limits   rateLimits

	// Mirror requests belong to the handler: they run under mirrorCtx, which Close
	// cancels before taking every mirrorsN slot (so it waits for them and no new one
	// starts).
	mirrorCtx   context.Context
	stopMirrors context.CancelFunc
	closeOnce   sync.Once
}

// NewHandler returns a handler for a port of a Gateway; tls says whether the port
// terminates TLS. Hijacked connections (WebSockets) are registered with conns so drain
// can wait for them. Requests are reported to tel (nil: telemetry off).
func NewHandler(gateway string, port uint32, isTLS bool, conns *ConnTracker, tel *telemetry.Set, log *slog.Logger) *Handler {
	h := &Handler{gateway: gateway, port: port, tls: isTLS, log: log, conns: conns, tel: tel, mirrorsN: make(chan struct{}, 256)}
	h.mirrorCtx, h.stopMirrors = context.WithCancel(context.Background())
	h.proxy = &httputil.ReverseProxy{
		Rewrite:      h.rewrite,
		Transport:    &dispatcher{},
		BufferPool:   bufferPool{},
		ErrorHandler: h.proxyError,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return h
}

// Close cancels the mirror requests in flight and waits for them to end; mirrors of
// requests still being served are dropped from then on. Call it once the server has
// stopped handing requests to h.
func (h *Handler) Close() {
	h.closeOnce.Do(func() {
		h.stopMirrors()
		for range cap(h.mirrorsN) {
			h.mirrorsN <- struct{}{}
		}
	})
}

// UseReverseProxy makes h forward every request with httputil.ReverseProxy, as it does
// upgrades, instead of with forward: for comparison. Call it before h serves.
func (h *Handler) UseReverseProxy() { h.stdProxy = true }

// Store makes t the table for new requests. Rate limit state of listeners that stay,
// with the same limit, is kept.
func (h *Handler) Store(t *Table) {
	h.table.Store(t)
	h.limits.keep(t)
}

// Table returns the current table.
func (h *Handler) Table() *Table { return h.table.Load() }

type stateKey struct{}

// reqState is what the proxy's hooks need to know about the request being forwarded.
type reqState struct {
	action    *Action
	backend   *backend
	requestID string
	obs       *observation // nil with telemetry off
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.tel.Enabled() {
		h.observed(w, r)
		return
	}
	h.serve(w, r, nil)
}

func maxRequestBody(l *router.Listener[*Action]) int64 {
	if l.IR == nil {
		return 0
	}
	return l.IR.MaxRequestBodyBytes
}

// serve routes and answers a request; o (nil with telemetry off) is told what happens.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, o *observation) {
	t := h.table.Load()
	if t == nil {
		o.note(0, "gateway_not_configured")
		http.Error(w, "gateway not configured", http.StatusServiceUnavailable)
		return
	}
	if p, changed := cleanPath(r.URL.Path); changed {
		// Route (and forward) the path the backend will resolve: "/public/../admin" must
		// not match a rule for /public.
		r.URL.Path, r.URL.RawPath = p, ""
	}
	host := router.NormalizeHost(r.Host)
	l := t.Listener(host)
	if l == nil {
		if o != nil && h.tel.Metrics != nil {
			o.metrics = h.tel.Metrics.Listener(h.gateway + "/").NoRoute()
		}
		o.note(telemetry.FlagNoRoute, "listener_not_found")
		notFound(w, r)
		return
	}
	if o != nil {
		o.entry.Gateway, o.entry.Listener = telemetry.SplitListener(l.Name)
	}
	if l.IR != nil && l.IR.HSTS != "" {
		w = &hstsWriter{ResponseWriter: w, value: l.IR.HSTS}
	}
	if l.IR != nil && l.IR.RateLimit != nil && !h.limits.allow(l.Name, *l.IR.RateLimit, clientAddress(r)) {
		o.note(telemetry.FlagRateLimited, "rate_limited")
		w.Header().Set("Retry-After", "1")
		refuse(w, r, http.StatusTooManyRequests, "too many requests")
		return
	}
	if r.TLS != nil {
		// The TLS handshake chose a listener (its certificate, TLS version and cipher
		// suites) by SNI, or the hostname-less one without SNI; a Host that maps to
		// another listener must not be served on this connection.
		if sni := t.Listener(router.NormalizeHost(r.TLS.ServerName)); sni != l {
			o.note(0, "misdirected_request")
			http.Error(w, "misdirected request", http.StatusMisdirectedRequest)
			return
		}
	}
	rt := l.Route(host, r)
	if rt == nil {
		if o != nil && h.tel.Metrics != nil {
			o.metrics = h.tel.Metrics.Listener(l.Name).NoRoute()
		}
		o.note(telemetry.FlagNoRoute, "route_not_found")
		notFound(w, r)
		return
	}
	a := rt.Action
	requestID := r.Header.Get("X-Request-Id")
	if requestID == "" {
		requestID = newRequestID()
		r.Header["X-Request-Id"] = []string{requestID}
	}
	if o != nil {
		o.entry.Route, o.entry.RequestID = a.Name, requestID
		if a.metrics != nil {
			o.metrics, o.active = a.metrics, true
			a.metrics.Listener().Active.Inc()
		}
	}

	if a.cors != nil && isPreflight(r) {
		o.note(0, "cors_preflight")
		a.cors.Preflight(w, r)
		return
	}
	if a.redirect != nil {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		o.note(0, "redirect")
		loc := a.redirect.Location(r, scheme, h.port)
		w.Header().Set("Location", loc)
		a.respHeaders.Apply(w.Header())
		w.WriteHeader(a.redirect.StatusCode())
		return
	}
	if a.direct != nil {
		o.note(0, "direct_response")
		writeDirect(w, a)
		return
	}
	if limit := maxRequestBody(l); limit > 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > limit {
			o.note(0, "request_body_too_large")
			refuse(w, r, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	b := a.pickBackend()
	switch {
	case b == nil:
		o.note(telemetry.FlagNoHealthyUpstream, "no_backend")
		fail(w, a, http.StatusInternalServerError, "no backend")
		return
	case b.cluster == nil:
		o.note(0, "invalid_backend")
		fail(w, a, http.StatusInternalServerError, "invalid backend: "+b.invalid)
		return
	case b.cluster.Invalid != "":
		o.note(telemetry.FlagNoHealthyUpstream, "backend_unavailable")
		fail(w, a, http.StatusInternalServerError, "backend unavailable: "+b.cluster.Invalid)
		return
	}
	if o != nil {
		o.entry.Cluster = b.cluster.Name
	}

	ctx := r.Context()
	if a.requestTimeout > 0 && !isUpgrade(r) { // an upgrade's handshake is bounded in the dispatcher; the tunnel is not
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.requestTimeout)
		defer cancel()
		if o != nil {
			// A timeout that ends the response part way (the forwarder then aborts)
			// is still a timeout.
			defer func() {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					o.note(telemetry.FlagUpstreamTimeout, "upstream_timeout")
				}
			}()
		}
	}
	st := &reqState{action: a, backend: b, requestID: requestID, obs: o}
	upgrade := isUpgrade(r)
	viaProxy := upgrade || h.stdProxy
	if o != nil && b.cluster.Fast != nil && !upgrade {
		ctx = upstream.WithTiming(ctx, &o.timing)
		o.timed = true
	}
	if viaProxy {
		// The reverse proxy's hooks find the request's state in its context.
		ctx = context.WithValue(ctx, stateKey{}, st)
	}
	if ctx != r.Context() {
		r = r.WithContext(ctx)
	}
	if len(a.mirrors) > 0 {
		r = h.mirror(r, a)
	}
	rw := &responseWriter{ResponseWriter: w, req: r, action: a, backend: b, conns: h.conns, state: st}
	if viaProxy {
		h.proxy.ServeHTTP(rw, r)
		return
	}
	h.forward(rw, r, st)
}

// writeDirect sends a direct response: its status and exactly its body (http.Error would
// append a newline), with the route's response headers; a Content-Type they set wins over
// the text/plain default. gRPC routes answer in gRPC's terms, as fail does.
func writeDirect(w http.ResponseWriter, a *Action) {
	h := w.Header()
	a.respHeaders.Apply(h)
	if a.grpc {
		fail(w, a, a.direct.StatusCode, a.direct.Body)
		return
	}
	if a.direct.Body != "" {
		if _, ok := h["Content-Type"]; !ok {
			h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		}
		h["Content-Length"] = []string{strconv.Itoa(len(a.direct.Body))}
	}
	w.WriteHeader(a.direct.StatusCode)
	_, _ = io.WriteString(w, a.direct.Body)
}

// cleanPath resolves "." and ".." segments and repeated slashes, keeping a trailing
// slash; it allocates only when the path needs cleaning.
func cleanPath(p string) (string, bool) {
	if p == "" {
		return "/", true
	}
	if !strings.Contains(p, "//") && !strings.Contains(p, "/./") && !strings.Contains(p, "/../") &&
		!strings.HasSuffix(p, "/.") && !strings.HasSuffix(p, "/..") && p[0] == '/' {
		return p, false
	}
	cleaned := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && cleaned != "/" {
		cleaned += "/"
	}
	return cleaned, cleaned != p
}

// notFound answers a request no route matches; a gRPC client gets UNIMPLEMENTED.
func notFound(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		h := w.Header()
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", "12")
		h.Set("Grpc-Message", "no route for "+r.URL.Path)
		w.WriteHeader(http.StatusOK)
		return
	}
	http.Error(w, "no route", http.StatusNotFound)
}

// refuse answers a request the listener's limits turn away (429, 413): in gRPC form
// (RESOURCE_EXHAUSTED, which clients do not retry at once) for gRPC requests.
func refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		h := w.Header()
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", "8") // RESOURCE_EXHAUSTED
		h.Set("Grpc-Message", msg)
		w.WriteHeader(http.StatusOK)
		return
	}
	http.Error(w, msg, code)
}

func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// rewrite is the reverse proxy's hook (upgrades, or everything after UseReverseProxy): it
// prepares the outbound request.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(stateKey{}).(*reqState)
	h.prepare(pr.In, pr.Out, st, new(forwardValues))
}

// prepare fills in the outbound request from the inbound one: the cluster's scheme (the
// endpoint is chosen per attempt by dispatch), the forwarding headers, the route's
// rewrite and header filters, the request id and the trace context. vals is storage for
// header values.
func (h *Handler) prepare(in, out *http.Request, st *reqState, vals *forwardValues) {
	c := st.backend.cluster
	out.URL.Scheme = c.Scheme
	out.URL.Host = "upstream" // replaced by dispatch with an endpoint
	setForwarded(in, out.Header, vals)
	st.action.rewrite.Apply(in, out)
	st.action.reqHeaders.Apply(out.Header)
	st.backend.reqHeaders.Apply(out.Header)
	vals[2] = st.requestID
	out.Header["X-Request-Id"] = vals[2:3:3]
	if st.obs != nil {
		if h.tel.Log != nil { // only the access log shows it; building it allocates
			st.obs.entry.ForwardedPath = out.URL.RequestURI()
		}
		if t := h.tel.Tracing; t != nil {
			t.Inject(in.Context(), out.Header)
		}
	}
}

// proxyError is the reverse proxy's error hook (upgrades, or everything after
// UseReverseProxy).
func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(stateKey{}).(*reqState)
	h.answerError(w, r, st, err)
}

// answerError answers a failed forward: 504 for timeouts, 503 when no endpoint could be
// reached, 502 for anything else the upstream got wrong.
func (h *Handler) answerError(w http.ResponseWriter, r *http.Request, st *reqState, err error) {
	var o *observation
	if st != nil {
		o = st.obs
	}
	if errors.Is(r.Context().Err(), context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		// The client went away; there is nobody to answer. Abort, so that the server
		// drops the connection instead of completing an empty 200.
		o.note(telemetry.FlagDownstreamTerminated, "downstream_disconnected")
		panic(http.ErrAbortHandler)
	}
	code := http.StatusBadGateway
	var bodyErr *clientBodyError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		code = http.StatusRequestEntityTooLarge
		o.note(0, "request_body_too_large")
	case errors.As(err, &bodyErr):
		code = http.StatusBadRequest
		o.note(telemetry.FlagDownstreamProtocol, "downstream_body_error")
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errBackendTimeout):
		code = http.StatusGatewayTimeout
		o.note(telemetry.FlagUpstreamTimeout, "upstream_timeout")
	case errors.Is(err, upstream.ErrNoEndpoints):
		code = http.StatusServiceUnavailable
		o.note(telemetry.FlagNoHealthyUpstream, "no_healthy_upstream")
	case isConnectError(err):
		code = http.StatusServiceUnavailable
		o.note(telemetry.FlagUpstreamConnFailure, "upstream_connect_failure")
	default:
		o.note(telemetry.FlagUpstreamProtocol, "upstream_error")
	}
	h.log.Debug("upstream error", "status", code, "error", err, "path", r.URL.Path)
	var a *Action
	if st != nil {
		a = st.action
	}
	fail(w, a, code, http.StatusText(code))
}

// fail answers a request the gateway itself cannot serve. gRPC routes get a
// trailers-only gRPC answer (HTTP 200 with grpc-status), which gRPC clients understand
// where an HTTP error status would only say "protocol error".
func fail(w http.ResponseWriter, a *Action, code int, msg string) {
	if a == nil || !a.grpc {
		http.Error(w, msg, code)
		return
	}
	status := "14" // UNAVAILABLE
	switch code {
	case http.StatusGatewayTimeout:
		status = "4" // DEADLINE_EXCEEDED
	case http.StatusRequestEntityTooLarge:
		status = "8" // RESOURCE_EXHAUSTED: resending the same message would not help
	}
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", status)
	h.Set("Grpc-Message", msg)
	w.WriteHeader(http.StatusOK)
}

func isConnectError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// newRequestID returns 32 random hex digits.
func newRequestID() string {
	var b [16]byte
	x, y := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i] = byte(x >> (8 * i))
		b[8+i] = byte(y >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}

// bufferPool lends 32 KiB copy buffers to the forwarder and the reverse proxy.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
