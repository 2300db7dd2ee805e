// Package dataplane serves an ir.Config: it binds the Gateways' ports, compiles routing
// tables and upstream pools, and swaps new configs in atomically. It knows only the IR.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-gw/portico/internal/dataplane/h1"
	"github.com/portico-gw/portico/internal/dataplane/l4"
	"github.com/portico-gw/portico/internal/dataplane/proxy"
	"github.com/portico-gw/portico/internal/dataplane/router"
	"github.com/portico-gw/portico/internal/dataplane/upstream"
	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/telemetry"
)

// Options tune the data plane. Zero values take the defaults noted.
type Options struct {
	// DefaultAddress is bound by Gateways that list no address (default 0.0.0.0).
	DefaultAddress string
	// ReadHeaderTimeout bounds reading request headers, against slowloris (default 10s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections (default 120s).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds request headers (default 64 KiB).
	MaxHeaderBytes int
	// MaxConcurrentStreams bounds HTTP/2 streams per connection (default 250).
	MaxConcurrentStreams int
	// DrainTimeout bounds how long a removed port serves in-flight requests (default 30s).
	DrainTimeout time.Duration
	// NetHTTP1 serves plain-text HTTP/1.x with net/http's server instead of the lean
	// loop (package h1). The lean loop hands every unusual request to net/http anyway;
	// this turns it off entirely, for comparison or as an escape hatch.
	NetHTTP1 bool
	// ReverseProxy forwards every request with net/http/httputil's ReverseProxy instead
	// of Portico's forwarder (which it uses only for upgrades otherwise), for comparison.
	ReverseProxy bool
	// Telemetry receives access log entries, metrics and spans (nil: all off).
	Telemetry *telemetry.Set
	Upstream  upstream.Options
	Logger    *slog.Logger
}

func (o *Options) defaults() {
	if o.DefaultAddress == "" {
		o.DefaultAddress = "0.0.0.0"
	}
	if o.ReadHeaderTimeout == 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 120 * time.Second
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 250
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is the data plane. Apply and Shutdown may be called from any goroutine.
type Server struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex // serialises Apply and Shutdown; never taken by requests
	sockets  map[socketKey]*socket
	clusters upstream.Set
	conns    *proxy.ConnTracker
	live     atomic.Pointer[upstream.Set] // the clusters serving, for metrics
	closed   bool
	draining sync.WaitGroup // removed sockets still finishing requests
}

// New returns a Server with nothing bound.
func New(opts Options) *Server {
	opts.defaults()
	s := &Server{opts: opts, log: opts.Logger, sockets: map[socketKey]*socket{}, conns: proxy.NewConnTracker()}
	if m := s.metrics(); m != nil {
		m.SetClusterSource(s.clusterStats)
	}
	return s
}

func (s *Server) metrics() *telemetry.Metrics {
	if s.opts.Telemetry == nil {
		return nil
	}
	return s.opts.Telemetry.Metrics
}

// clusterStats reports the serving clusters' endpoints and pools, for metrics.
func (s *Server) clusterStats() []telemetry.ClusterStats {
	set := s.live.Load()
	if set == nil {
		return nil
	}
	out := make([]telemetry.ClusterStats, 0, len(*set))
	for name, c := range *set {
		st := telemetry.ClusterStats{Name: name, Endpoints: len(c.Endpoints()), IdleConns: -1, ActiveConns: -1}
		if c.Fast != nil {
			st.IdleConns, st.ActiveConns = c.Fast.IdleConns(), c.Fast.ActiveConns()
		}
		out = append(out, st)
	}
	return out
}

// socketKey identifies a bound socket: it survives an Apply when its key does.
type socketKey struct {
	address string
	port    uint32
	tls     bool
	stream  ir.Protocol // TCP or UDP for stream listeners; empty for HTTP and TLS ports
}

func (k socketKey) String() string {
	return net.JoinHostPort(k.address, strconv.Itoa(int(k.port)))
}

// socket is one bound port and the HTTP server on it.
type socket struct {
	key     socketKey
	gateway string
	ln      net.Listener
	srv     httpServer
	handler *proxy.Handler
	certs   *certStore     // TLS ports only
	route   *l4.RouteStore // TCP and UDP ports only (handler is nil there)

	tlsConns l4.ConnSet             // TLS ports: the HTTP server's open connections
	conns    *telemetry.ConnCounter // nil with metrics off
	limit    *connLimit             // HTTP and TLS ports: the open connections' bound
	served   chan struct{}
}

// httpServer is what a socket needs of its server: net/http's, or the lean HTTP/1.1
// loop on plain-text ports.
type httpServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// compiledPort is a port's new routing, ready to be stored in its socket.
type compiledPort struct {
	gateway   string
	table     *proxy.Table
	certs     *certTable
	route     *l4.Route                 // TCP and UDP ports
	maxConns  int64                     // HTTP and TLS ports: 0 for no bound
	metrics   []*telemetry.RouteMetrics // of every route, to retain their series
	listeners []string                  // IR names, and "gateway/" for requests no listener takes
}

// Apply compiles cfg and swaps it in. Sockets whose address, port and kind are
// unchanged keep serving (with their open connections) on the new tables; new ports are
// bound; removed ports drain. If anything fails to compile or bind, nothing changes and
// the previous config keeps serving.
func (s *Server) Apply(cfg *ir.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("data plane is shut down")
	}
	clusters, unused, err := upstream.Build(cfg.Clusters, s.clusters, s.opts.Upstream)
	if err != nil {
		return err
	}
	ports, err := s.compile(cfg, clusters)
	if err != nil {
		return err
	}

	// A live socket whose key is gone but whose port a new key needs (the port changed
	// kind, or its address changed to or from the wildcard) must let the port go first,
	// or the new bind fails with EADDRINUSE. Serve returns as soon as the listener is
	// closed; the socket's open connections keep draining in the background.
	for key, sock := range s.sockets {
		if _, keep := ports[key]; keep {
			continue
		}
		for nk := range ports {
			if _, live := s.sockets[nk]; !live && nk.port == key.port && (nk.address == key.address || isWildcardAddr(nk.address) || isWildcardAddr(key.address)) {
				delete(s.sockets, key)
				s.drain(sock)
				<-sock.served
				break
			}
		}
	}

	// Bind what is new before touching anything live.
	fresh := map[socketKey]*socket{}
	for key, cp := range ports {
		if _, ok := s.sockets[key]; ok {
			continue
		}
		sock, err := s.bind(key, cp.gateway, cp.maxConns)
		if err != nil {
			for _, f := range fresh {
				f.ln.Close()
			}
			return err
		}
		fresh[key] = sock
	}

	// Swap: every socket gets its new table at once (each is one atomic store).
	for key, cp := range ports {
		sock := s.sockets[key]
		if sock == nil {
			sock = fresh[key]
		}
		if sock.handler != nil {
			sock.handler.Store(cp.table)
		}
		if sock.limit != nil {
			sock.limit.max.Store(cp.maxConns)
		}
		if sock.route != nil {
			sock.route.Store(cp.route)
		}
		if sock.certs != nil {
			prev := sock.certs.p.Load()
			sock.certs.store(cp.certs)
			if prev != nil && cp.certs != nil && prev.clientKey != cp.certs.clientKey {
				// Client certificate validation changed: connections accepted under the
				// old rules must not go on serving under the new ones.
				go sock.tlsConns.CloseEach(false)
			}
		}
	}
	for key, sock := range fresh {
		s.sockets[key] = sock
		s.serve(sock)
	}
	for key, sock := range s.sockets {
		if _, keep := ports[key]; !keep {
			delete(s.sockets, key)
			if key.stream == ir.ProtocolUDP {
				// UDP has nothing to drain: the port and its sessions end before Apply
				// returns, so no datagram sent after it is still forwarded.
				sock.srv.Close()
			}
			s.drain(sock)
		}
	}
	s.clusters = clusters
	s.live.Store(&clusters)
	if m := s.metrics(); m != nil {
		var live []*telemetry.RouteMetrics
		var listeners []string
		for _, cp := range ports {
			live = append(live, cp.metrics...)
			listeners = append(listeners, cp.listeners...)
		}
		m.Retain(live, listeners)
	}
	for _, t := range unused {
		t.CloseIdleConnections() // in-flight requests finish; idle pooled connections go
	}
	return nil
}

// compile builds every port's routing table.
func (s *Server) compile(cfg *ir.Config, clusters upstream.Set) (map[socketKey]*compiledPort, error) {
	out := map[socketKey]*compiledPort{}
	for gi := range cfg.Gateways {
		g := &cfg.Gateways[gi]
		addrs := g.Addresses
		if len(addrs) == 0 {
			addrs = []string{s.opts.DefaultAddress}
		}
		for pi := range g.Ports {
			p := &g.Ports[pi]
			var isTLS bool
			switch p.Protocol {
			case ir.ProtocolHTTP:
			case ir.ProtocolTLS:
				isTLS = true
			case ir.ProtocolTCP, ir.ProtocolUDP:
				cp := &compiledPort{gateway: g.Name, listeners: []string{g.Name + "/"},
					route: l4.PortRoute(p, clusters)}
				for li := range p.Listeners {
					cp.listeners = append(cp.listeners, p.Listeners[li].Name)
				}
				for _, a := range addrs {
					key := socketKey{address: a, port: p.Number, stream: p.Protocol}
					if prev, dup := out[key]; dup {
						return nil, fmt.Errorf("gateways %s and %s both bind %s/%s", prev.gateway, g.Name, key, p.Protocol)
					}
					out[key] = cp
				}
				continue
			default:
				s.log.Warn("port protocol not served by this data plane yet; skipped", "gateway", g.Name, "port", p.Number, "protocol", p.Protocol)
				continue
			}
			var routeMetrics []*telemetry.RouteMetrics
			table, err := router.Compile(p.Listeners, func(l *ir.Listener, r *ir.Route) (*proxy.Action, error) {
				a, err := proxy.Compile(l, r, clusters, s.metrics())
				if err == nil && a.Metrics() != nil {
					routeMetrics = append(routeMetrics, a.Metrics())
				}
				return a, err
			})
			if err != nil {
				return nil, fmt.Errorf("gateway %s port %d: %w", g.Name, p.Number, err)
			}
			cp := &compiledPort{gateway: g.Name, table: table, metrics: routeMetrics, listeners: []string{g.Name + "/"}, maxConns: int64(p.MaxConnections)}
			for li := range p.Listeners {
				cp.listeners = append(cp.listeners, p.Listeners[li].Name)
			}
			if isTLS {
				if cp.certs, err = compileCerts(p.Listeners, clusters); err != nil {
					return nil, fmt.Errorf("gateway %s port %d: %w", g.Name, p.Number, err)
				}
			}
			for _, a := range addrs {
				key := socketKey{address: a, port: p.Number, tls: isTLS}
				if prev, dup := out[key]; dup {
					return nil, fmt.Errorf("gateways %s and %s both bind %s", prev.gateway, g.Name, key)
				}
				out[key] = cp
			}
		}
	}
	return out, nil
}

// bind binds a port; maxConns is its connection bound from the start (a TLS socket
// accepts as soon as it is bound).
func (s *Server) bind(key socketKey, gateway string, maxConns int64) (*socket, error) {
	if key.stream != "" {
		return s.bindStream(key, gateway)
	}
	ln, err := net.Listen("tcp", key.String())
	if err != nil {
		return nil, fmt.Errorf("gateway %s: bind %s: %w", gateway, key, err)
	}
	limit := &connLimit{}
	limit.max.Store(maxConns)
	ln = limitListener{Listener: ln, limit: limit}
	var counter *telemetry.ConnCounter
	if m := s.metrics(); m != nil {
		counter = m.Connections(gateway, key.String())
		ln = countingListener{Listener: ln, open: counter}
	}
	sock := &socket{key: key, gateway: gateway, ln: ln, conns: counter, limit: limit, served: make(chan struct{})}
	sock.handler = proxy.NewHandler(gateway, key.port, key.tls, s.conns, s.opts.Telemetry, s.log.With("gateway", gateway, "address", key.String()))
	if s.opts.ReverseProxy {
		sock.handler.UseReverseProxy()
	}
	hs := &http.Server{
		Handler:           sock.handler,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: s.opts.MaxConcurrentStreams},
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	hs.Protocols = protocols
	sock.srv = hs
	maxHead := s.opts.MaxHeaderBytes + 8<<10
	switch {
	case key.tls:
		protocols.SetHTTP2(true)
		hs.ConnState = sock.trackTLSConn
		sock.certs = &certStore{}
		sock.ln = newSNIListener(ln, sock.certs, s.opts.Upstream.DialTimeout, s.log.With("gateway", gateway, "address", key.String()))
	case s.opts.NetHTTP1:
		protocols.SetUnencryptedHTTP2(true)
		sock.ln = framingListener{Listener: ln, maxHead: maxHead}
	default:
		// The lean loop serves the common requests; net/http gets the connections it
		// hands over (h2c, upgrades, chunked uploads, ...), behind the framing guard.
		protocols.SetUnencryptedHTTP2(true)
		sock.srv = &h1.Server{
			Handler:           sock.handler,
			ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
			IdleTimeout:       s.opts.IdleTimeout,
			Fallback:          hs,
			WrapFallback:      func(c net.Conn) net.Conn { return &framingConn{Conn: c, maxHead: maxHead} },
			Log:               s.log,
		}
	}
	return sock, nil
}

// bindStream binds a TCP or UDP port of stream listeners.
func (s *Server) bindStream(key socketKey, gateway string) (*socket, error) {
	log := s.log.With("gateway", gateway, "address", key.String(), "protocol", key.stream)
	sock := &socket{key: key, gateway: gateway, route: &l4.RouteStore{}, served: make(chan struct{})}
	if key.stream == ir.ProtocolUDP {
		pc, err := net.ListenPacket("udp", key.String())
		if err != nil {
			return nil, fmt.Errorf("gateway %s: bind %s/udp: %w", gateway, key, err)
		}
		sock.ln = l4.NewPacketListener(pc)
		sock.srv = l4.NewUDPServer(pc, sock.route, log)
		return sock, nil
	}
	ln, err := net.Listen("tcp", key.String())
	if err != nil {
		return nil, fmt.Errorf("gateway %s: bind %s: %w", gateway, key, err)
	}
	if m := s.metrics(); m != nil {
		sock.conns = m.Connections(gateway, key.String())
		ln = countingListener{Listener: ln, open: sock.conns}
	}
	sock.ln = ln
	sock.srv = l4.NewTCPServer(ln, sock.route, s.opts.Upstream.DialTimeout, log)
	return sock, nil
}

// trackTLSConn keeps the set of a TLS socket's open HTTP connections.
func (sock *socket) trackTLSConn(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		sock.tlsConns.Add(c)
	case http.StateClosed, http.StateHijacked:
		sock.tlsConns.Remove(c)
	}
}

func (s *Server) serve(sock *socket) {
	go func() {
		defer close(sock.served)
		if err := sock.srv.Serve(sock.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("listener stopped", "address", sock.key.String(), "error", err)
		}
	}()
}

// drain stops a removed socket gracefully in the background.
func (s *Server) drain(sock *socket) {
	s.draining.Add(1)
	go func() {
		defer s.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
		defer cancel()
		if err := sock.srv.Shutdown(ctx); err != nil {
			sock.srv.Close()
		}
		<-sock.served
		if sock.handler != nil {
			sock.handler.Close()
		}
		s.forgetSocket(sock)
	}()
}

// forgetSocket drops the metrics of a socket that is no longer bound.
func (s *Server) forgetSocket(sock *socket) {
	if m := s.metrics(); m != nil && sock.conns != nil {
		m.ForgetConnections(sock.conns)
	}
}

// Addresses lists the bound sockets ("host:port"), for logs and tests.
func (s *Server) Addresses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.sockets))
	for _, sock := range s.sockets {
		out = append(out, sock.ln.Addr().String())
	}
	return out
}

// Shutdown stops accepting connections and waits, until ctx is done, for in-flight
// requests and hijacked connections (WebSockets) to finish; idle keep-alive connections
// are closed (HTTP/2 clients get a GOAWAY). When ctx ends first, whatever is still open
// is closed and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	socks := make([]*socket, 0, len(s.sockets))
	for _, sock := range s.sockets {
		socks = append(socks, sock)
	}
	s.sockets = map[socketKey]*socket{}
	s.mu.Unlock()

	var wg sync.WaitGroup
	errs := make(chan error, len(socks))
	for _, sock := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sock.srv.Shutdown(ctx); err != nil {
				sock.srv.Close()
				errs <- err
			}
			<-sock.served
			if sock.handler != nil {
				sock.handler.Close()
			}
			s.forgetSocket(sock)
		}()
	}
	wg.Wait()
	clean := s.conns.Wait(ctx.Done())
	s.draining.Wait()
	for _, c := range s.clusters {
		if c.Transport != nil {
			c.Transport.CloseIdleConnections()
		}
		if c.Fast != nil {
			c.Fast.Close()
		}
	}
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if !clean {
		return ctx.Err()
	}
	return nil
}

// isWildcardAddr reports whether addr binds every local address.
func isWildcardAddr(addr string) bool {
	ip := net.ParseIP(addr)
	return addr == "" || (ip != nil && ip.IsUnspecified())
}
