package dataplane

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/portico-gw/portico/internal/dataplane/upstream"
	"github.com/portico-gw/portico/internal/ir"
)

// l4Route is a compiled ir.L4Route: TLSRoute entries of a TLS listener, chosen by SNI.
type l4Route struct {
	name     string
	hostname string // "", an exact name or "*.suffix"
	backends []l4Backend
	total    uint64
}

type l4Backend struct {
	cluster *upstream.Cluster // nil: an invalid reference; connections picked for it close
	weight  uint64
}

func compileL4Routes(routes []ir.L4Route, clusters upstream.Set) []l4Route {
	out := make([]l4Route, 0, len(routes))
	for _, r := range routes {
		cr := l4Route{name: r.Name}
		if len(r.Hostnames) > 0 {
			cr.hostname = strings.ToLower(r.Hostnames[0])
		}
		for _, b := range r.Backends {
			if b.Weight == 0 {
				continue
			}
			cr.backends = append(cr.backends, l4Backend{cluster: clusters[b.Cluster], weight: uint64(b.Weight)})
			cr.total += uint64(b.Weight)
		}
		out = append(out, cr)
	}
	return out
}

// matches reports whether the route's hostname takes the SNI name.
func (r *l4Route) matches(sni string) bool {
	switch {
	case r.hostname == "":
		return true
	case strings.HasPrefix(r.hostname, "*."):
		suffix := r.hostname[1:]
		return len(sni) > len(suffix) && strings.HasSuffix(sni, suffix)
	}
	return sni == r.hostname
}

// pick chooses a backend by weight; nil when the rule has none or the chosen one is
// invalid.
func (r *l4Route) pick() *upstream.Cluster {
	if r.total == 0 {
		return nil
	}
	n := rand.Uint64N(r.total)
	for _, b := range r.backends {
		if n < b.weight {
			return b.cluster
		}
		n -= b.weight
	}
	return nil
}

// route finds the listener's first route for the SNI name.
func (l *tlsListener) route(sni string) *l4Route {
	for i := range l.l4 {
		if l.l4[i].matches(sni) {
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
	fwd     *streamForwarder // forwarded connections, closed with the listener
	log     *slog.Logger

	ready chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// helloTimeout bounds how long a client may take to send its ClientHello.
const helloTimeout = 10 * time.Second

func newSNIListener(ln net.Listener, certs *certStore, dialTimeout time.Duration, log *slog.Logger) *sniListener {
	s := &sniListener{
		Listener: ln, certs: certs, fwd: newStreamForwarder(dialTimeout, log), log: log,
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
	s.httpCfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		if t := s.certs.p.Load(); t != nil {
			return t.serverConfig(s.httpCfg), nil
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
	s.fwd.closeAll()
	return err
}

func (s *sniListener) acceptLoop() {
	serveAccepts(s.Listener, s.log, func(c net.Conn) {
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
		s.fwd.forward(conn, c, l.route(strings.ToLower(sni)))
	default: // TLS listener, Terminate mode
		tc := tls.Server(conn, &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
				return certificate(t, h, true)
			},
		})
		_ = tc.SetDeadline(time.Now().Add(helloTimeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return
		}
		_ = tc.SetDeadline(time.Time{})
		s.fwd.forward(tc, c, l.route(strings.ToLower(sni)))
	}
}

// streamForwarder connects clients to TCP backends and keeps track of the forwarded
// connections, so that they end with their socket.
type streamForwarder struct {
	dialTimeout time.Duration
	log         *slog.Logger

	open connSet // the raw client and backend connections
}

// connSet is a set of open connections that can all be closed at once.
type connSet struct {
	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool // closeAll was called: add refuses
}

// add adds cs, unless closeAll was called.
func (s *connSet) add(cs ...net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.m == nil {
		s.m = map[net.Conn]struct{}{}
	}
	for _, c := range cs {
		s.m[c] = struct{}{}
	}
	return true
}

func (s *connSet) remove(cs ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		delete(s.m, c)
	}
}

func (s *connSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// closeEach closes every connection in the set (outside the lock: a TLS close can
// wait on its peer); refuse also makes later adds fail.
func (s *connSet) closeEach(refuse bool) {
	s.mu.Lock()
	s.closed = s.closed || refuse
	open := make([]net.Conn, 0, len(s.m))
	for c := range s.m {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

func newStreamForwarder(dialTimeout time.Duration, log *slog.Logger) *streamForwarder {
	if dialTimeout <= 0 {
		dialTimeout = 5 * time.Second
	}
	return &streamForwarder{dialTimeout: dialTimeout, log: log}
}

// forward connects client (raw is its TCP connection, under any TLS) to a backend of
// the route and copies both ways until both sides end, or either fails.
func (f *streamForwarder) forward(client, raw net.Conn, r *l4Route) {
	var cl *upstream.Cluster
	if r != nil {
		cl = r.pick()
	}
	if cl == nil || cl.Invalid != "" {
		raw.Close()
		return
	}
	ep, err := cl.Pick()
	var up net.Conn
	if err == nil {
		up, err = net.DialTimeout("tcp", ep, f.dialTimeout)
	}
	if err == nil && cl.StreamTLS != nil {
		// Re-encrypt towards the backend (BackendTLSPolicy; the Gateway's client
		// certificate, if it has one): never forward a protected stream in plain text.
		tc := tls.Client(up, cl.StreamTLS)
		_ = tc.SetDeadline(time.Now().Add(f.dialTimeout))
		if err = tc.Handshake(); err != nil {
			up.Close()
		} else {
			_ = tc.SetDeadline(time.Time{})
			up = tc
		}
	}
	if err != nil {
		f.log.Debug("route backend unreachable", "route", r.name, "cluster", cl.Name, "error", err)
		raw.Close()
		return
	}
	if !f.track(raw, up) {
		raw.Close()
		up.Close()
		return
	}
	defer f.untrack(raw, up)
	var wg sync.WaitGroup
	wg.Go(func() { pipe(up, client, raw) })
	pipe(client, up, up)
	wg.Wait()
}

// pipe copies src to dst, then half-closes dst so the other direction sees the end. An
// error (a reset, a closed connection) ends both directions: kill is closed.
func pipe(dst, src, kill net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		kill.Close()
		_ = dst.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
}

func (f *streamForwarder) track(cs ...net.Conn) bool { return f.open.add(cs...) }

func (f *streamForwarder) untrack(cs ...net.Conn) {
	f.open.remove(cs...)
	for _, c := range cs {
		c.Close()
	}
}

// count is how many connections (client and backend sides) are open.
func (f *streamForwarder) count() int { return f.open.len() }

// closeAll ends every forwarded connection; later ones are refused.
func (f *streamForwarder) closeAll() { f.open.closeEach(true) }

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
