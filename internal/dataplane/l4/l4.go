// Package l4 is the data plane's stream forwarding: TLSRoute, TCPRoute and UDPRoute
// backends chosen by weight, connections copied both ways (re-encrypted where the
// cluster has TLS), TCP and UDP port servers, and the bookkeeping that ends forwarded
// connections with their socket. The TLS port's ClientHello sorting stays in package
// dataplane, next to the certificates it shares with HTTPS.
package l4

import (
	"crypto/tls"
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

// Route is a compiled ir.L4Route: a TLSRoute entry of a TLS listener (chosen by SNI), or
// the route of a TCP or UDP port.
type Route struct {
	name     string
	hostname string // "", an exact name or "*.suffix"
	backends []backend
	total    uint64
}

type backend struct {
	cluster *upstream.Cluster // nil: an invalid reference; connections picked for it close
	weight  uint64
}

func CompileRoutes(routes []ir.L4Route, clusters upstream.Set) []Route {
	out := make([]Route, 0, len(routes))
	for _, r := range routes {
		cr := Route{name: r.Name}
		if len(r.Hostnames) > 0 {
			cr.hostname = strings.ToLower(r.Hostnames[0])
		}
		for _, b := range r.Backends {
			if b.Weight == 0 {
				continue
			}
			cr.backends = append(cr.backends, backend{cluster: clusters[b.Cluster], weight: uint64(b.Weight)})
			cr.total += uint64(b.Weight)
		}
		out = append(out, cr)
	}
	return out
}

// Matches reports whether the route's hostname takes the SNI name.
func (r *Route) Matches(sni string) bool {
	switch {
	case r.hostname == "":
		return true
	case strings.HasPrefix(r.hostname, "*."):
		suffix := r.hostname[1:]
		return len(sni) > len(suffix) && strings.HasSuffix(sni, suffix)
	}
	return sni == r.hostname
}

// Pick chooses a backend by weight; nil when the rule has none or the chosen one is
// invalid.
func (r *Route) Pick() *upstream.Cluster {
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

// Forwarder connects clients to TCP backends and keeps track of the forwarded
// connections, so that they end with their socket.
type Forwarder struct {
	dialTimeout time.Duration
	log         *slog.Logger

	open ConnSet // the raw client and backend connections
}

// ConnSet is a set of open connections that can all be closed at once.
type ConnSet struct {
	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool // closeAll was called: add refuses
}

// Add adds cs, unless closeAll was called.
func (s *ConnSet) Add(cs ...net.Conn) bool {
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

func (s *ConnSet) Remove(cs ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		delete(s.m, c)
	}
}

func (s *ConnSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// CloseEach closes every connection in the set (outside the lock: a TLS close can
// wait on its peer); refuse also makes later adds fail.
func (s *ConnSet) CloseEach(refuse bool) {
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

func NewForwarder(dialTimeout time.Duration, log *slog.Logger) *Forwarder {
	if dialTimeout <= 0 {
		dialTimeout = 5 * time.Second
	}
	return &Forwarder{dialTimeout: dialTimeout, log: log}
}

// Forward connects client (raw is its TCP connection, under any TLS) to a backend of
// the route and copies both ways until both sides end, or either fails.
func (f *Forwarder) Forward(client, raw net.Conn, r *Route) {
	var cl *upstream.Cluster
	if r != nil {
		cl = r.Pick()
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

func (f *Forwarder) track(cs ...net.Conn) bool { return f.open.Add(cs...) }

func (f *Forwarder) untrack(cs ...net.Conn) {
	f.open.Remove(cs...)
	for _, c := range cs {
		c.Close()
	}
}

// Count is how many connections (client and backend sides) are open.
func (f *Forwarder) Count() int { return f.open.Len() }

// CloseAll ends every forwarded connection; later ones are refused.
func (f *Forwarder) CloseAll() { f.open.CloseEach(true) }
