// Package h1 is a lean keep-alive HTTP/1.1 server for plain-text ports. It serves the
// common request shape (a complete head within one 4 KiB buffer, one Host, at most one
// Content-Length, no Transfer-Encoding, Upgrade or Expect) with one goroutine per
// connection, reused buffers, no per-request background read and no per-request
// goroutine. Everything else is handed, connection and buffered bytes together, to a
// net/http server (the Fallback), which then serves that connection to its end: HTTP/2
// with prior knowledge, upgrades (WebSocket), CONNECT, 100-continue, chunked uploads,
// oversized or unusual heads. The fallback's answers are therefore the authority on
// every unusual request; the lean path only takes what it can serve identically.
package h1

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.x connections. Set the fields before Serve.
type Server struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request head once its first byte arrived, and
	// the wait for the first request of a connection.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive connection.
	IdleTimeout time.Duration
	// Fallback serves the connections the lean loop hands over. Its Handler should be
	// Handler; Serve starts it on an internal listener.
	Fallback *http.Server
	// WrapFallback, when set, wraps each handed-over connection (the data plane puts its
	// request framing guard there). The wrapper starts at a request boundary.
	WrapFallback func(net.Conn) net.Conn
	// WatchDelay is how long a request may wait for its response before the connection is
	// watched for a client disconnect (which cancels the request's context). Watching
	// costs a read and a goroutine, so quick requests skip it. Default 100ms.
	WatchDelay time.Duration
	Log        *slog.Logger

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	shutting atomic.Bool
	buffers  atomic.Int64 // reader-writer pairs held by connections (idle ones hold none)
	fbLn     *chanListener
	fbDone   chan struct{}
}

// Serve accepts connections on ln until it is closed, and serves each in its own
// goroutine. It returns http.ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	if s.WatchDelay <= 0 {
		s.WatchDelay = 100 * time.Millisecond
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.conns = map[*conn]struct{}{}
	s.fbLn = &chanListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr()}
	s.fbDone = make(chan struct{})
	s.mu.Unlock()
	go func() {
		defer close(s.fbDone)
		s.Fallback.Serve(s.fbLn)
	}()

	var delay time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors, buffers and the like: back off and try again, as
			// net/http does; the connections being served carry on.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if delay == time.Second {
				s.Log.Warn("accepting connections fails; retrying", "error", err)
			}
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := newConn(s, rwc)
		s.mu.Lock()
		if s.shutting.Load() {
			s.mu.Unlock()
			rwc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections, and waits until the active ones
// have finished their request (they close after it) and the fallback has shut down, or
// until ctx is done. The fallback stops last, so that a request being read as the
// shutdown begins can still be handed over and answered.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	started := s.fbLn != nil
	s.mu.Unlock()
	if started {
		s.Fallback.SetKeepAlivesEnabled(false) // closes its idle connections too
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.closeIdle() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	if !started {
		return nil
	}
	return s.Fallback.Shutdown(ctx)
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.shutting.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.rwc.Close()
	}
	started := s.fbLn != nil
	s.mu.Unlock()
	if started {
		s.Fallback.Close()
	}
	return nil
}

// freshGrace is how long a connection that has not sent a request yet is left to send
// one when the server shuts down (its client may be about to), as net/http does.
const freshGrace = 5 * time.Second

// closeIdle closes idle connections and returns how many are still open.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.fresh.Load() && time.Since(c.accepted) < freshGrace {
			continue
		}
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.rwc.Close()
		}
	}
	return len(s.conns)
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// handOff gives a connection to the fallback server.
func (s *Server) handOff(c net.Conn) {
	if s.WrapFallback != nil {
		c = s.WrapFallback(c)
	}
	select {
	case s.fbLn.ch <- c:
	case <-s.fbLn.done:
		c.Close()
	}
}

// chanListener is the fallback server's listener, fed by handOff.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
