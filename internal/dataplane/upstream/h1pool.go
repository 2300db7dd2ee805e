package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-gw/portico/internal/dataplane/wire"
)

// H1Pool is a lean HTTP/1.1 client for plain-text upstreams. Each request runs on the
// calling goroutine over a pooled keep-alive connection. net/http's Transport hands
// every request to two goroutines per connection (a reader and a writer), and for small
// proxied requests those hand-offs cost more than the proxying itself.
//
// It does not do upgrades (WebSocket), HTTP/2 or TLS: callers use an http.Transport for
// those.
type H1Pool struct {
	dialer      net.Dialer
	maxIdle     int
	idleTimeout time.Duration

	mu     sync.Mutex
	idle   map[string][]*h1Conn // per endpoint, most recently used last
	closed bool
	inUse  atomic.Int64 // connections carrying an exchange
}

type h1Conn struct {
	addr   string // the endpoint it was dialled for: the pool's key
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

// NewH1Pool returns a pool keeping up to maxIdle idle connections per endpoint.
func NewH1Pool(dialTimeout time.Duration, maxIdle int, idleTimeout time.Duration) *H1Pool {
	return &H1Pool{
		dialer:      net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		maxIdle:     maxIdle,
		idleTimeout: idleTimeout,
		idle:        map[string][]*h1Conn{},
	}
}

var errPoolClosed = errors.New("upstream connection pool is closed")

// RoundTrip sends req to req.URL.Host. A reused connection that turns out to have been
// closed by the server before answering is replaced once, when the request body can be
// sent again (none, or GetBody set).
func (p *H1Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	addr := req.URL.Host
	for try := 0; ; try++ {
		c, reused, err := p.get(req.Context(), addr)
		if err != nil {
			return nil, err
		}
		resp, stale, err := p.roundTrip(c, req)
		if err == nil {
			return resp, nil
		}
		if !(reused && stale && try == 0) {
			return nil, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, err
			}
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			req.Body = body
		}
	}
}

// roundTrip runs one exchange. stale reports a failure before any response byte
// arrived (the server had closed the idle connection).
func (p *H1Pool) roundTrip(c *h1Conn, req *http.Request) (resp *http.Response, stale bool, err error) {
	ctx := req.Context()
	// Cancelling the request unblocks reads and writes on the connection.
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error, stale bool) (*http.Response, bool, error) {
		stop()
		p.inUse.Add(-1)
		c.conn.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, false, context.Cause(ctx)
		}
		return nil, stale, err
	}
	if err := writeRequest(c.bw, req); err != nil {
		return fail(err, true)
	}
	if err := c.bw.Flush(); err != nil {
		return fail(err, true)
	}
	if _, err := c.br.Peek(1); err != nil {
		return fail(err, true)
	}
	if resp, length, ok := readLeanResponse(c.br, req); ok {
		keep := !resp.Close && !req.Close
		if length == 0 {
			p.release(c, stop, keep)
			return resp, false, nil
		}
		resp.Body = &h1Body{pool: p, c: c, left: length, stop: stop, keep: keep}
		return resp, false, nil
	}
	for {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err, false)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 100 Continue, 103 Early Hints: informational, the real answer follows.
		resp.Body.Close()
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fail(errors.New("upstream switched protocols on a request that did not ask to upgrade"), false)
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		p.release(c, stop, keep)
		return resp, false, nil
	}
	resp.Body = &h1Body{pool: p, c: c, body: resp.Body, stop: stop, keep: keep}
	return resp, false, nil
}

// h1Body returns its connection to the pool once the response body has been read to
// the end, and closes it if the body is abandoned part way.
type h1Body struct {
	pool *H1Pool
	c    *h1Conn
	body io.ReadCloser // net/http's reader; nil when the body is read here
	left int64         // with body nil: the bytes still to read from the connection
	stop func() bool
	keep bool
	done bool
}

func (b *h1Body) Read(p []byte) (n int, err error) {
	if b.done {
		return 0, io.EOF
	}
	if b.body != nil {
		n, err = b.body.Read(p)
	} else {
		n, err = b.readLength(p)
	}
	if err == io.EOF {
		b.done = true
		b.pool.release(b.c, b.stop, b.keep)
	}
	return n, err
}

// readLength reads a body of known length from the connection: io.EOF comes with its
// last bytes, io.ErrUnexpectedEOF if the connection ends first.
func (b *h1Body) readLength(p []byte) (int, error) {
	return wire.ReadLength(b.c.br, p, &b.left)
}

func (b *h1Body) Close() error {
	if !b.done {
		b.done = true
		b.stop()
		b.pool.inUse.Add(-1)
		b.c.conn.Close()
	}
	return nil
}

// release returns a connection whose exchange is complete to the pool, unless the
// exchange asked to close it or the request's cancellation already touched it.
func (p *H1Pool) release(c *h1Conn, stop func() bool, keep bool) {
	p.inUse.Add(-1)
	if !stop() || !keep {
		c.conn.Close()
		return
	}
	c.idleAt = time.Now()
	addr := c.addr
	p.mu.Lock()
	if p.closed || len(p.idle[addr]) >= p.maxIdle {
		p.mu.Unlock()
		c.conn.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], c)
	p.mu.Unlock()
}

// get returns an idle connection to addr (most recently used first, skipping expired
// ones), or dials a new one.
func (p *H1Pool) get(ctx context.Context, addr string) (*h1Conn, bool, error) {
	now := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, errPoolClosed
	}
	for conns := p.idle[addr]; len(conns) > 0; conns = p.idle[addr] {
		c := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		p.idle[addr] = conns[:len(conns)-1]
		if now.Sub(c.idleAt) < p.idleTimeout {
			p.mu.Unlock()
			p.inUse.Add(1)
			return c, true, nil
		}
		c.conn.Close()
	}
	p.mu.Unlock()
	conn, err := p.dialer.DialContext(ctx, "tcp", addr)
	if t := timingFrom(ctx); t != nil {
		t.Connect += time.Since(now)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, context.Cause(ctx)
		}
		return nil, false, err
	}
	p.inUse.Add(1)
	return &h1Conn{addr: addr, conn: conn, br: bufio.NewReaderSize(conn, 16<<10), bw: bufio.NewWriterSize(conn, 16<<10)}, false, nil
}

// CloseIdleConnections closes every idle connection; connections in use are closed
// when their exchange ends.
func (p *H1Pool) CloseIdleConnections() {
	p.mu.Lock()
	idle := p.idle
	p.idle = map[string][]*h1Conn{}
	p.mu.Unlock()
	for _, conns := range idle {
		for _, c := range conns {
			c.conn.Close()
		}
	}
}

// Close closes idle connections and stops pooling.
func (p *H1Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.CloseIdleConnections()
}

// ActiveConns is the number of connections carrying an exchange, for metrics.
func (p *H1Pool) ActiveConns() int { return int(p.inUse.Load()) }

// IdleConns is the number of pooled idle connections, for tests and metrics.
func (p *H1Pool) IdleConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, conns := range p.idle {
		n += len(conns)
	}
	return n
}

// Timing collects what a pool learns about an exchange's connection; a caller puts one
// in the request's context with WithTiming.
type Timing struct {
	// Connect is the time spent dialing (summed over attempts); 0 when every attempt
	// reused a pooled connection.
	Connect time.Duration
}

type timingKey struct{}

// WithTiming returns ctx carrying t.
func WithTiming(ctx context.Context, t *Timing) context.Context {
	return context.WithValue(ctx, timingKey{}, t)
}

func timingFrom(ctx context.Context) *Timing {
	t, _ := ctx.Value(timingKey{}).(*Timing)
	return t
}
