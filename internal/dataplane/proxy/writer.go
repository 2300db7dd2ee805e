package proxy

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
)

// responseWriter applies the route's response filters when the status is written, and
// registers hijacked connections (WebSockets) so a drain can wait for them.
type responseWriter struct {
	http.ResponseWriter
	req         *http.Request
	action      *Action
	backend     *backend
	conns       *ConnTracker
	state       *reqState
	wroteHeader bool
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 || code == http.StatusSwitchingProtocols {
		w.wroteHeader = true
		h := w.ResponseWriter.Header()
		w.action.respHeaders.Apply(h)
		w.backend.respHeaders.Apply(h)
		if w.action.cors != nil {
			w.action.cors.Decorate(h, w.req)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// hstsWriter sets a listener's Strict-Transport-Security header on every response
// (final status only) just before it is written: after the route's and the backend's
// header filters and the upstream's headers, so none of them changes it.
type hstsWriter struct {
	http.ResponseWriter
	value string
	done  bool
}

func (w *hstsWriter) WriteHeader(code int) {
	if !w.done && code >= 200 {
		w.done = true
		w.ResponseWriter.Header().Set("Strict-Transport-Security", w.value)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *hstsWriter) Write(p []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (w *hstsWriter) Flush() {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer (hijacking, deadlines).
func (w *hstsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer (deadlines, full duplex).
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands the connection to the caller (the reverse proxy, for an upgrade) and
// tracks it until it is closed.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if w.state != nil && w.state.obs != nil {
		w.state.obs.upgraded = true
	}
	if w.conns == nil {
		return conn, rw, nil
	}
	return w.conns.track(conn), rw, nil
}

// ConnTracker counts hijacked connections so a drain can wait for them and, at its
// deadline, close them.
type ConnTracker struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	done  chan struct{} // closed and replaced when the set becomes empty
}

// NewConnTracker returns an empty tracker.
func NewConnTracker() *ConnTracker {
	return &ConnTracker{conns: map[*trackedConn]struct{}{}}
}

func (t *ConnTracker) track(c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, t: t}
	t.mu.Lock()
	t.conns[tc] = struct{}{}
	t.mu.Unlock()
	return tc
}

func (t *ConnTracker) remove(c *trackedConn) {
	t.mu.Lock()
	delete(t.conns, c)
	if len(t.conns) == 0 && t.done != nil {
		close(t.done)
		t.done = nil
	}
	t.mu.Unlock()
}

// Len is the number of open hijacked connections.
func (t *ConnTracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// Wait blocks until no hijacked connection is open or stop is closed; then it closes
// whatever is still open and reports whether everything had finished by itself.
func (t *ConnTracker) Wait(stop <-chan struct{}) bool {
	t.mu.Lock()
	if len(t.conns) == 0 {
		t.mu.Unlock()
		return true
	}
	if t.done == nil {
		t.done = make(chan struct{})
	}
	done := t.done
	t.mu.Unlock()
	select {
	case <-done:
		return true
	case <-stop:
	}
	t.mu.Lock()
	open := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		open = append(open, c)
	}
	t.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
	return false
}

type trackedConn struct {
	net.Conn
	t    *ConnTracker
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.t.remove(c) })
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
