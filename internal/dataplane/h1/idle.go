package h1

import (
	"bufio"
	"net"
	"syscall"
)

// An idle keep-alive connection holds no buffers: between requests the loop gives its
// reader and writer back to their pools and waits for the next bytes through the
// connection's raw descriptor (a zero-copy peek), and takes buffers again when they
// arrive. A proxy holds thousands of idle client connections; 8 KiB each is most of what
// they cost.

// idleWaiter waits for a connection to become readable without a buffer.
type idleWaiter struct {
	raw      syscall.RawConn
	peek     [1]byte
	woken    bool // the poller reported the socket readable
	readable func(fd uintptr) bool
}

// newIdleWaiter returns nil when c does not expose its descriptor (the loop then waits
// in the reader, holding its buffer).
func newIdleWaiter(c net.Conn) *idleWaiter {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &idleWaiter{raw: raw}
	// Peek at the socket without consuming: data, end of stream or an error all end the
	// wait (the real read that follows reports them); only "nothing yet" waits, and the
	// runtime's poller wakes it when that changes or the read deadline passes. After a
	// wake the socket is not peeked again: that would cost a syscall per request, and the
	// read that follows finds out anyway (on a rare spurious wake it waits with a buffer).
	w.readable = func(fd uintptr) bool {
		if w.woken {
			return true
		}
		w.woken = true
		_, _, err := syscall.Recvfrom(int(fd), w.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN
	}
	return w
}

// wait blocks until the connection is readable, closed, or past its read deadline.
func (w *idleWaiter) wait() error {
	w.woken = false
	return w.raw.Read(w.readable)
}

// releaseBuffers gives the reader and writer back to their pools; the reader must hold
// nothing.
func (c *conn) releaseBuffers() {
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.bw.Reset(nil)
	writerPool.Put(c.bw)
	c.br, c.bw = nil, nil
	c.s.buffers.Add(-1)
}

// takeBuffers takes a reader and a writer from the pools.
func (c *conn) takeBuffers() {
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&c.in)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(c.rwc)
	c.s.buffers.Add(1)
}
