package dataplane

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/portico-gw/portico/internal/dataplane/l4"
	"github.com/portico-gw/portico/internal/ir"
)

// route finds the listener's first route for the SNI name.
func (l *tlsListener) route(sni string) *l4.Route {
	for i := range l.l4 {
		if l.l4[i].Matches(sni) {
			return &l.l4[i]
		}
	}
	return nil
}

// sniListener serves a TLS port. It reads each connection's ClientHello and, by its
// server name, hands the connection to the HTTP server (HTTPS listeners: TLS terminated
// here, ALPN h2 or http/1.1), forwards it encrypted to a TLSRoute backend (TLS listeners
// in Passthrough mode), or terminates TLS and forwards the plain stream (TLS listeners in
// Terminate mode). Connections no listener or route takes are closed: the client sees
// the connection end, as a TLS passthrough proxy cannot answer with an alert of its own.
type sniListener struct {
	net.Listener
	certs   *certStore
	httpCfg *tls.Config
	fwd     *l4.Forwarder // forwarded connections, closed with the listener
	log     *slog.Logger

	ready chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// helloTimeout bounds how long a client may take to send its ClientHello.
const helloTimeout = 10 * time.Second

func newSNIListener(ln net.Listener, certs *certStore, dialTimeout time.Duration, log *slog.Logger) *sniListener {
	s := &sniListener{
		Listener: ln, certs: certs, fwd: l4.NewForwarder(dialTimeout, log), log: log,
		ready: make(chan net.Conn), done: make(chan struct{}),
	}
	s.httpCfg = &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return certificate(s.certs.p.Load(), hello, false)
		},
	}
	// Each handshake takes its certificate and its client certificate validation from
	// one table, the one in force when the ClientHello arrived.
	s.httpCfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if t := s.certs.p.Load(); t != nil {
			return t.serverConfig(s.httpCfg, hello), nil
		}
		return nil, nil
	}
	go s.acceptLoop()
	return s
}

// certificate finds the certificate for a handshake on a terminating listener of table
// t; l4 says whether the listener must be a TLS one (TLSRoutes) rather than an HTTPS one.
func certificate(t *certTable, hello *tls.ClientHelloInfo, l4 bool) (*tls.Certificate, error) {
	if t == nil {
		return nil, errNoListener
	}
	l := t.listener(hello.ServerName)
	if l == nil || l.mode != ir.TLSTerminate || l.unavailable || l.tlsProto != l4 {
		return nil, errNoListener
	}
	return l.certificate(hello), nil
}

// Accept returns the next connection for the HTTP server.
func (s *sniListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.ready:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and ends the forwarded connections at once: unlike HTTP
// requests, TLS streams have no natural end to drain to. A stream also outlives a change
// that removes its route or listener while the port stays.
func (s *sniListener) Close() error {
	err := s.Listener.Close()
	s.once.Do(func() { close(s.done) })
	s.fwd.CloseAll()
	return err
}

func (s *sniListener) acceptLoop() {
	l4.ServeAccepts(s.Listener, s.log, func(c net.Conn) {
		if t := s.certs.p.Load(); t != nil && !t.hasL4 {
			// Only HTTPS listeners: no need to look at the ClientHello here.
			s.handOver(tls.Server(c, s.httpCfg))
			return
		}
		go s.sort(c)
	})
	s.once.Do(func() { close(s.done) })
}

func (s *sniListener) handOver(c net.Conn) {
	select {
	case s.ready <- c:
	case <-s.done:
		c.Close()
	}
}

// sort reads the ClientHello and sends the connection where its server name belongs,
// by the routing in force once the hello has arrived.
func (s *sniListener) sort(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(helloTimeout))
	sni, hello, err := peekClientHello(c)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	conn := &prefixConn{Conn: c, prefix: hello}
	t := s.certs.p.Load()
	var l *tlsListener
	if t != nil {
		l = t.listener(sni)
	}
	switch {
	case l == nil || l.unavailable:
		c.Close()
	case !l.tlsProto && l.mode == ir.TLSTerminate:
		s.handOver(tls.Server(conn, s.httpCfg))
	case l.mode == ir.TLSPassthrough:
		s.fwd.Forward(conn, c, l.route(strings.ToLower(sni)))
	default: // TLS listener, Terminate mode
		tc := tls.Server(conn, l.limits(&tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
				return certificate(t, h, true)
			},
		}))
		_ = tc.SetDeadline(time.Now().Add(helloTimeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return
		}
		_ = tc.SetDeadline(time.Time{})
		s.fwd.Forward(tc, c, l.route(strings.ToLower(sni)))
	}
}

// prefixConn replays bytes already read from the connection before reading more.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite passes a half close through to the TCP connection.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// peekClientHello reads the connection's ClientHello with crypto/tls's own parser
// (a handshake that stops once the hello is parsed; nothing is written to the client)
// and returns its server name and every byte it read.
func peekClientHello(c net.Conn) (string, []byte, error) {
	rec := &recordingConn{Conn: c}
	var sni string
	var seen bool
	err := tls.Server(rec, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni, seen = h.ServerName, true
			return nil, errHelloRead
		},
	}).Handshake()
	if !seen {
		if err == nil {
			err = errors.New("no ClientHello")
		}
		return "", nil, err
	}
	return sni, rec.buf.Bytes(), nil
}

var errHelloRead = errors.New("ClientHello read")

// recordingConn keeps what is read and drops what is written (the alert crypto/tls
// sends when the peek handshake stops) and the close.
type recordingConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.buf.Write(p[:n])
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *recordingConn) Close() error                     { return nil }
func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }
