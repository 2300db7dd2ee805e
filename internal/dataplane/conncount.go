package dataplane

import (
	"errors"
	"net"
	"sync"
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
	return &countedConn{Conn: c, open: l.open}, nil
}

type countedConn struct {
	net.Conn
	open *telemetry.ConnCounter
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
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
