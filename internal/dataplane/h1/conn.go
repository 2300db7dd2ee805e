package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Connection states, for Shutdown: only an idle connection may be closed under a client.
const (
	stateIdle   int32 = iota // waiting for the first byte of a request
	stateActive              // reading or serving a request
	stateClosed
)

// bufSize is the read buffer: a head must fit in it to be served by the lean loop.
const bufSize = 4096

// maxDiscard bounds how much of an unread request body is skipped to keep a connection.
const maxDiscard = 256 << 10

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufSize) }}
)

var errHandOff = errors.New("hand off")

type conn struct {
	s      *Server
	rwc    net.Conn
	in     connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	ctx    context.Context // the connection's values; never cancelled, so request contexts need no registration in it
	remote string
	state  atomic.Int32
	resp   response
	next   http.Request // the request being parsed; copied when served

	// Disconnect watch (see watch).
	timer     *time.Timer
	watchMu   sync.Mutex
	watchSt   uint8
	serving   bool               // a handler runs: only then may the watch be armed
	reqCancel context.CancelFunc // cancels the request being served
	watchDone chan struct{}
	gone      atomic.Bool // the client closed its side while a request waited

	fresh     atomic.Bool // no request has started yet (Shutdown gives it a grace period)
	accepted  time.Time
	lingering bool // close gracefully: the client may still be sending a body
}

// Watch states.
const (
	watchOff     uint8 = iota // no request waiting
	watchArmed                // the timer runs
	watchReading              // the watch read is in progress
)

// connReader is the bufio.Reader's source: the connection, after a byte the disconnect
// watch may have read ahead.
type connReader struct {
	c       net.Conn
	pending int // a byte read by the watch, or -1
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.pending >= 0 && len(p) > 0 {
		p[0] = byte(r.pending)
		r.pending = -1
		return 1, nil
	}
	return r.c.Read(p)
}

func newConn(s *Server, rwc net.Conn) *conn {
	c := &conn{s: s, rwc: rwc, accepted: time.Now()}
	c.state.Store(stateIdle)
	c.fresh.Store(true)
	c.in = connReader{c: rwc, pending: -1}
	return c
}

func (c *conn) serve() {
	s := c.s
	c.remote = c.rwc.RemoteAddr().String()
	c.takeBuffers()
	idle := newIdleWaiter(c.rwc)
	// The context values net/http's server sets; ReverseProxy looks for ServerContextKey
	// to know that a panic(http.ErrAbortHandler) will be recovered.
	ctx := context.WithValue(context.Background(), http.ServerContextKey, s.Fallback)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.rwc.LocalAddr())
	c.ctx = ctx
	c.timer = time.AfterFunc(time.Hour, c.watch)
	c.timer.Stop()
	handedOff := false
	defer func() {
		c.stopWatch()
		if !handedOff {
			c.close()
			if c.br != nil {
				c.br.Reset(nil)
				readerPool.Put(c.br)
			}
		}
		if c.bw != nil {
			c.bw.Reset(nil)
			writerPool.Put(c.bw)
			s.buffers.Add(-1)
		}
		s.forget(c)
	}()

	first, lastPOST := true, false
	for {
		if c.br.Buffered() == 0 && c.in.pending < 0 {
			wait := s.IdleTimeout
			if first {
				wait = s.ReadHeaderTimeout
			}
			setReadTimeout(c.rwc, wait)
			if idle != nil {
				c.releaseBuffers()
				if err := idle.wait(); err != nil {
					return // timed out or closed while idle
				}
				c.takeBuffers()
			}
			if _, err := c.br.Peek(1); err != nil {
				return
			}
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // closed by Shutdown
		}
		first = false
		c.fresh.Store(false)
		setReadTimeout(c.rwc, s.ReadHeaderTimeout)
		if lastPOST {
			// As net/http: old clients send a stray CRLF after a POST body.
			peek, _ := c.br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			c.br.Discard(n)
		}
		end, err := c.readHead()
		if errors.Is(err, errHandOff) {
			c.rwc.SetReadDeadline(time.Time{})
			handedOff = true // the reader and its buffered bytes go with the connection
			s.handOff(&handedConn{Conn: c.rwc, br: c.br, in: &c.in})
			return
		}
		if err != nil {
			return // timed out or closed before the head was complete
		}
		head, _ := c.br.Peek(end)
		req := &c.next
		err = parseHead(req, head)
		c.br.Discard(end)
		if err != nil {
			c.badRequest("400 Bad Request")
			return
		}
		if !httpguts.ValidHostHeader(req.Host) {
			c.badRequest("400 Bad Request: malformed Host header")
			return
		}
		lastPOST = req.Method == http.MethodPost
		if !c.serveRequest(req) || s.shutting.Load() {
			return
		}
		c.state.Store(stateIdle)
	}
}

// setReadTimeout sets a read deadline d from now; none when d <= 0 (as net/http).
func setReadTimeout(c net.Conn, d time.Duration) {
	if d <= 0 {
		c.SetReadDeadline(time.Time{})
		return
	}
	c.SetReadDeadline(time.Now().Add(d))
}

// close closes the connection; when the client may still be sending a body nobody
// read, it first half-closes and reads for a moment, so that the kernel does not answer
// the unread bytes with a reset that could destroy the response in flight (net/http's
// closeWriteAndWait does the same).
func (c *conn) close() {
	if c.lingering {
		if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			c.rwc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			io.Copy(io.Discard, io.LimitReader(c.rwc, 1<<20))
		}
	}
	c.rwc.Close()
}

// readHead waits until a complete request head is buffered and decides whether the lean
// loop serves it (nil) or hands the connection over (errHandOff).
// On success it returns the head's length.
func (c *conn) readHead() (int, error) {
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		if end := headEnd(buf); end > 0 {
			if !leanHead(buf[:end]) {
				return 0, errHandOff
			}
			return end, nil
		}
		if len(buf) >= bufSize {
			return 0, errHandOff // a long head: net/http applies MaxHeaderBytes
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			if len(buf) > 0 && errors.Is(err, io.EOF) {
				return 0, errHandOff // a cut-short head: net/http answers it
			}
			return 0, err
		}
	}
}

// headEnd returns the length of the head at the start of b (through the empty line that
// ends it), or 0 while it is incomplete.
func headEnd(b []byte) int {
	i := bytes.Index(b, []byte("\n\r\n"))
	j := bytes.Index(b, []byte("\n\n"))
	switch {
	case i < 0 && j < 0:
		return 0
	case i < 0 || (j >= 0 && j < i):
		return j + 2
	default:
		return i + 3
	}
}

// handedConn is a connection given to the fallback server: it reads first what the lean
// loop has buffered.
type handedConn struct {
	net.Conn
	br *bufio.Reader
	in *connReader
}

func (h *handedConn) Read(p []byte) (int, error) {
	if h.br.Buffered() > 0 {
		return h.br.Read(p)
	}
	return h.in.Read(p)
}

// CloseWrite keeps net/http's graceful close (FIN before close) working.
func (h *handedConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// badRequest answers a request the loop refuses, in net/http's words; the connection
// then closes.
func (c *conn) badRequest(status string) {
	c.rwc.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(c.rwc, "HTTP/1.1 "+status+"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"+status)
}

// serveRequest serves one request and reports whether the connection may serve another.
func (c *conn) serveRequest(req *http.Request) bool {
	req.RemoteAddr = c.remote
	// The request's context ends when the handler returns, or when the client goes.
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	req = req.WithContext(ctx) // a copy: the template is free for the next request
	c.next = http.Request{}
	c.reqCancel = cancel // for the disconnect watch; set before it can be armed
	var body *requestBody
	if req.ContentLength > 0 {
		// A body is not bounded by the head's deadline (as net/http without ReadTimeout).
		c.rwc.SetReadDeadline(time.Time{})
		body = &requestBody{c: c, src: bodyReader{br: c.br, left: req.ContentLength}}
		req.Body = body
	}
	c.startServing(body == nil && c.br.Buffered() == 0)

	w := &c.resp
	w.reset(c, req, body)
	ok := c.runHandler(w, req)
	c.stopWatch()
	if !ok {
		// The handler panicked: the response is abandoned with the connection. Close
		// first, so a read of the body still blocked in another goroutine returns, then
		// refuse further reads: the reader goes back to the pool.
		c.rwc.Close()
		if body != nil {
			body.abandon()
		}
		return false
	}
	if c.gone.Load() && !w.committed {
		// The client went away before an answer: there is nobody to send one to.
		if body != nil {
			body.abandon()
		}
		return false
	}
	keep := w.finish() && !c.gone.Load()
	if body != nil && !body.finish(keep) {
		keep = false
		c.lingering = true
	}
	if err := c.bw.Flush(); err != nil {
		return false
	}
	return keep
}

// runHandler calls the handler and reports false if it panicked (the connection is then
// closed without completing the response, as net/http does).
func (c *conn) runHandler(w *response, req *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				c.s.Log.Error("panic serving request", "remote", c.remote, "panic", p, "stack", string(debug.Stack()))
			}
			ok = false
		}
	}()
	c.s.Handler.ServeHTTP(w, req)
	return true
}

// requestBody wraps the request body: it arms the disconnect watch at the body's end,
// and after the handler it skips what is left (bounded) and refuses further reads.
type requestBody struct {
	mu            sync.Mutex
	src           bodyReader
	c             *conn
	eof           bool
	closed        bool // by the server: the handler is done
	handlerClosed bool // by the handler: the server may still skip the rest
	fullDuplex    bool // the handler may read after the response began
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.handlerClosed {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.src.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
		if b.c.br.Buffered() == 0 {
			b.c.armWatch()
		}
	}
	return n, err
}

// Close ends the handler's reads; the server decides what happens to the rest.
func (b *requestBody) Close() error {
	b.mu.Lock()
	b.handlerClosed = true
	b.mu.Unlock()
	return nil
}

// abandon refuses every further read (the connection is being dropped).
func (b *requestBody) abandon() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

// beforeHead runs as the response head is written, as in net/http: the unread rest of
// the body is skipped now if it is small, and the connection is marked to close if it
// is not. It reports whether the connection can be kept.
func (b *requestBody) beforeHead() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.eof || b.fullDuplex {
		return true // full duplex: what is left is skipped after the handler
	}
	if b.closed || b.src.left >= maxDiscard {
		return false
	}
	return b.skipLocked()
}

func (b *requestBody) skipLocked() bool {
	_, err := io.Copy(io.Discard, io.LimitReader(&b.src, maxDiscard+1))
	if err == nil && b.src.left == 0 {
		b.eof = true
	}
	return b.eof
}

// finish runs after the handler: reads are refused from now on. It reports whether the
// next request's head is where the reader now is.
func (b *requestBody) finish(keep bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.eof {
		return true
	}
	return keep && b.src.left < maxDiscard && b.skipLocked()
}

// startServing marks a handler as running; arm starts the disconnect watch at once
// (for a request without a body, when no further request is already buffered).
func (c *conn) startServing(arm bool) {
	c.watchMu.Lock()
	c.serving = true
	c.watchMu.Unlock()
	if arm {
		c.armWatch()
	}
}

// armWatch starts the disconnect watch's timer for the request being served; it does
// nothing once the handler has returned (a body read by another goroutine can reach its
// end after that).
func (c *conn) armWatch() {
	c.watchMu.Lock()
	if c.serving && c.watchSt == watchOff {
		c.watchSt = watchArmed
		c.timer.Reset(c.s.WatchDelay)
	}
	c.watchMu.Unlock()
}

// watch runs when a request has waited WatchDelay: it reads from the connection, which
// the client should leave silent until it has the response. EOF or an error means the
// client went away: the request's context is cancelled. A byte (the next pipelined
// request) is kept for the reader.
func (c *conn) watch() {
	c.watchMu.Lock()
	if c.watchSt != watchArmed {
		c.watchMu.Unlock()
		return
	}
	c.rwc.SetReadDeadline(time.Time{}) // under the lock, so stopWatch's deadline comes after
	c.watchSt = watchReading
	done := make(chan struct{})
	c.watchDone = done
	c.watchMu.Unlock()

	var b [1]byte
	n, err := c.rwc.Read(b[:])
	if n == 1 {
		c.in.pending = int(b[0])
	} else if !isTimeout(err) {
		c.gone.Store(true)
		c.reqCancel() // stopWatch waits for this goroutine before the request ends
	}
	close(done)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stopWatch ends the watch when the handler is done, waiting for a watch read to stop.
func (c *conn) stopWatch() {
	c.watchMu.Lock()
	st := c.watchSt
	c.watchSt = watchOff
	c.serving = false
	switch st {
	case watchArmed:
		c.timer.Stop()
	case watchReading:
		c.rwc.SetReadDeadline(aLongTimeAgo)
	}
	done := c.watchDone
	c.watchDone = nil
	c.watchMu.Unlock()
	if st == watchReading {
		<-done
	}
}

var aLongTimeAgo = time.Unix(1, 0)
