package h1

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the lean loop's http.ResponseWriter, reused for every request of a
// connection. It follows net/http's server rules: the head is written when the first
// body bytes exceed what is held back, on Flush, or when the handler returns; a body
// without Content-Length is held back (up to holdBack) so a short one still gets a
// Content-Length; a longer one, a flushed one or one with trailers is chunked (HTTP/1.1)
// or ends with the connection (HTTP/1.0). Content-Type is sniffed when not set, Date is
// added, and a body shorter than its declared Content-Length closes the connection.
type response struct {
	c          *conn
	req        *http.Request
	body       *requestBody // nil without a request body
	header     http.Header
	status     int
	wroteHead  bool // a final status was set
	committed  bool // the status line and headers are in the write buffer
	chunked    bool
	closeAfter bool
	length     int64 // declared or computed Content-Length, -1 if none
	written    int64
	held       []byte // body held back before the head is written
}

const holdBack = 2048

// reset prepares w for the next request. The header map is reused: a handler must not
// keep it after returning (none of Portico's does).
func (w *response) reset(c *conn, req *http.Request, body *requestBody) {
	h := w.header
	if h == nil {
		h = make(http.Header, 8)
	} else {
		clear(h)
	}
	*w = response{c: c, req: req, body: body, header: h, held: w.held[:0], length: -1}
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHead {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// Informational (103 Early Hints and the like): sent at once with the headers
		// set so far; the handler clears them afterwards.
		if w.req.ProtoAtLeast(1, 1) {
			w.writeStatusLine(code)
			w.writeHeaders("Content-Length", "Transfer-Encoding")
			w.c.bw.WriteString("\r\n")
			w.c.bw.Flush()
		}
		return
	}
	w.wroteHead = true
	w.status = code
	if cl, ok := w.header["Content-Length"]; ok {
		// One valid value declares the length; anything else (two values, say from a
		// header filter adding one) is dropped rather than sent contradicting the framing.
		n, err := int64(-1), error(nil)
		if len(cl) == 1 {
			n, err = strconv.ParseInt(strings.TrimSpace(cl[0]), 10, 64)
		}
		if err == nil && n >= 0 {
			w.length = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHead {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.req.Method == http.MethodHead {
		w.written += int64(len(p))
		return len(p), nil
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if w.length < 0 && len(w.held)+len(p) <= holdBack {
			w.held = append(w.held, p...)
			return len(p), nil
		}
		w.commit(false, p)
	}
	return w.writeBody(p)
}

func (w *response) writeBody(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	bw := w.c.bw
	if w.chunked {
		var hex [16]byte
		bw.Write(strconv.AppendInt(hex[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
		n, err := bw.Write(p)
		bw.WriteString("\r\n")
		return n, err
	}
	return bw.Write(p)
}

func (w *response) Flush() { _ = w.FlushError() }

// FlushError writes the head if needed and sends what is buffered.
func (w *response) FlushError() error {
	if !w.wroteHead {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false, nil)
	}
	return w.c.bw.Flush()
}

// SetReadDeadline, SetWriteDeadline and EnableFullDuplex serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.rwc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// EnableFullDuplex lets the handler read the request body after the response has
// begun (the lean loop never reads behind the handler's back; without this, what is
// left of the body is skipped when the head is written, as net/http does).
func (w *response) EnableFullDuplex() error {
	if b := w.body; b != nil {
		b.mu.Lock()
		b.fullDuplex = true
		b.mu.Unlock()
	}
	return nil
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// commit decides the framing and writes the status line and headers; final says the
// handler has returned (so a held-back body's length is known), next is the write that
// forces the commit (for sniffing), if any.
func (w *response) commit(final bool, next []byte) {
	w.committed = true
	h := w.header
	http11 := w.req.ProtoAtLeast(1, 1)
	w.closeAfter = w.req.Close || w.c.s.shutting.Load()
	if v := h["Connection"]; len(v) > 0 && httpguts.HeaderValuesContainsToken(v, "close") {
		w.closeAfter = true
	}
	if w.body != nil && !w.closeAfter && !w.body.beforeHead() {
		w.closeAfter = true
	}
	delete(h, "Transfer-Encoding")
	_, trailers := h["Trailer"]
	if !trailers {
		for k := range h {
			if strings.HasPrefix(k, http.TrailerPrefix) {
				trailers = true
				break
			}
		}
	}
	isHead := w.req.Method == http.MethodHead
	switch {
	case !bodyAllowed(w.status):
		delete(h, "Content-Length")
		if w.status == http.StatusNotModified {
			delete(h, "Content-Type")
		}
		w.length = 0
	case isHead:
		if final && w.length < 0 && w.written > 0 {
			h["Content-Length"] = []string{strconv.FormatInt(w.written, 10)}
		}
	case trailers && http11:
		delete(h, "Content-Length")
		w.length, w.chunked = -1, true
	case w.length >= 0:
		// declared by the handler
	case final:
		w.length = int64(len(w.held))
		h["Content-Length"] = []string{strconv.Itoa(len(w.held))}
	case http11:
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0 without a length: the close ends the body
	}
	if w.chunked || w.length < 0 && !isHead {
		delete(h, "Content-Length") // the framing is chunks or the close, never a length
	}
	if _, ok := h["Content-Type"]; !ok && bodyAllowed(w.status) && !isHead && h.Get("Content-Encoding") == "" {
		sniff := w.held
		if len(sniff) == 0 {
			sniff = next
		}
		if len(sniff) > 0 {
			h["Content-Type"] = []string{http.DetectContentType(sniff)}
		}
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{httpDate()}
	}
	if w.chunked {
		h["Transfer-Encoding"] = []string{"chunked"}
	}
	switch {
	case w.closeAfter && httpguts.HeaderValuesContainsToken(h["Connection"], "close"):
		// the handler said so already; kept as it wrote it (as net/http)
	case w.closeAfter && http11:
		h["Connection"] = []string{"close"}
	case w.closeAfter:
		delete(h, "Connection") // closing is HTTP/1.0's default: nothing to say
	case !http11:
		h["Connection"] = []string{"keep-alive"}
	}
	w.writeStatusLine(w.status)
	w.writeHeaders()
	w.c.bw.WriteString("\r\n")
	if len(w.held) > 0 {
		held := w.held
		w.held = w.held[:0]
		w.writeBody(held)
		w.held = held[:0]
	}
}

// statusLines holds "HTTP/1.1 <code> <text>\r\n" for the codes with a known text.
var statusLines = func() (t [1000]string) {
	for code := 100; code < 1000; code++ {
		if text := http.StatusText(code); text != "" {
			t[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return t
}()

func (w *response) writeStatusLine(code int) {
	bw := w.c.bw
	if l := statusLines[code]; l != "" {
		if !w.req.ProtoAtLeast(1, 1) {
			bw.WriteString("HTTP/1.0")
			bw.WriteString(l[len("HTTP/1.1"):])
			return
		}
		bw.WriteString(l)
		return
	}
	if w.req.ProtoAtLeast(1, 1) {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	var b [8]byte
	bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	bw.WriteString(" status code\r\n")
}

// writeHeaders writes the header fields, but those named in skip.
func (w *response) writeHeaders(skip ...string) {
	bw := w.c.bw
	for k, vs := range w.header {
		if !validHeaderName(k) || slices.Contains(skip, k) {
			continue // as net/http: there is no way to report a bad name, so drop it
		}
		for _, v := range vs {
			writeField(bw, k, v)
		}
	}
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenChar(k[i]) {
			return false
		}
	}
	return true
}

// writeField writes "name: value\r\n" with the value trimmed and any CR or LF in it
// turned into a space (no response splitting), as net/http does.
func writeField(bw *bufio.Writer, name, v string) {
	bw.WriteString(name)
	bw.WriteString(": ")
	v = strings.TrimSpace(v)
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// finish completes the response after the handler returned and reports whether the
// connection may be kept.
func (w *response) finish() bool {
	if !w.wroteHead {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true, nil)
	}
	if w.chunked {
		w.c.bw.WriteString("0\r\n")
		w.writeTrailers()
		w.c.bw.WriteString("\r\n")
	}
	if w.length >= 0 && w.written < w.length && bodyAllowed(w.status) && w.req.Method != http.MethodHead {
		return false // a short body: only the close tells the client
	}
	return !w.closeAfter
}

func (w *response) writeTrailers() {
	bw := w.c.bw
	for _, decl := range w.header["Trailer"] {
		for decl != "" {
			var k string
			k, decl, _ = strings.Cut(decl, ",")
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			if !validHeaderName(k) || !httpguts.ValidTrailerHeader(k) {
				continue
			}
			for _, v := range w.header[k] {
				writeField(bw, k, v)
			}
		}
	}
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && validHeaderName(name) && httpguts.ValidTrailerHeader(name) {
			for _, v := range vs {
				writeField(bw, name, v)
			}
		}
	}
}

// httpDate is the current time in the Date header's format, formatted once a second.
func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.s
	}
	d := &dateEntry{sec: now.Unix(), s: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}

var dateCache atomic.Pointer[dateEntry]

type dateEntry struct {
	sec int64
	s   string
}
