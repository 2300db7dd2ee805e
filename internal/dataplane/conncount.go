package dataplane

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/portico-gw/portico/internal/telemetry"
)

// countingListener counts its open connections.
type countingListener struct {
	net.Listener
	open *telemetry.ConnCounter
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &countedConn{Conn: c, onClose: func() { l.open.Add(-1) }}, nil
}

// connLimit bounds a socket's open connections (ListenerPolicy limits.maxConnections);
// max can change while the socket serves (0: no bound).
type connLimit struct {
	max  atomic.Int64
	open atomic.Int64
}

func (l *connLimit) acquire() bool {
	if n, m := l.open.Add(1), l.max.Load(); m > 0 && n > m {
		l.open.Add(-1)
		return false
	}
	return true
}

func (l *connLimit) release() { l.open.Add(-1) }

// limitListener closes connections over its limit as soon as they are accepted,
// rather than leaving them queued where clients only see a timeout.
type limitListener struct {
	net.Listener
	limit *connLimit
}

func (l limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.limit.acquire() {
			return &countedConn{Conn: c, onClose: l.limit.release}, nil
		}
		c.Close()
	}
}

// countedConn runs onClose once when it is closed.
type countedConn struct {
	net.Conn
	onClose func()
	once    sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(c.onClose)
	return c.Conn.Close()
}

// SyscallConn exposes the socket (the lean HTTP/1.1 loop waits on it while a connection
// is idle, without holding buffers).
func (c *countedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("not a socket")
}

// CloseWrite keeps half-closes (net/http's graceful close) working.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
