package l4

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portico-gw/portico/internal/dataplane/upstream"
	"github.com/portico-gw/portico/internal/ir"
)

// Stream ports (TCP and UDP listeners) forward to the first route of the port: the IR
// orders a listener's L4Routes oldest first, and only the first receives traffic.

// PortRoute finds the route a TCP or UDP port serves: the first route of the first
// listener that has one (nil: connections are closed, datagrams dropped).
func PortRoute(p *ir.Port, clusters upstream.Set) *Route {
	for i := range p.Listeners {
		if l := &p.Listeners[i]; len(l.L4Routes) > 0 && l.Unavailable == "" {
			r := CompileRoutes(l.L4Routes[:1], clusters)
			return &r[0]
		}
	}
	return nil
}

// RouteStore is a stream socket's current route, swapped by Apply.
type RouteStore struct {
	p atomic.Pointer[Route]
}

// Store swaps in the route (nil: connections are closed, datagrams dropped).
func (s *RouteStore) Store(r *Route) { s.p.Store(r) }

// TCPServer serves a TCP port: each connection is forwarded to a backend of the port's
// route, chosen by weight.
type TCPServer struct {
	route *RouteStore
	fwd   *Forwarder
	log   *slog.Logger

	ln net.Listener // known from the start, so a Shutdown before Serve still closes it
}

func NewTCPServer(ln net.Listener, route *RouteStore, dialTimeout time.Duration, log *slog.Logger) *TCPServer {
	return &TCPServer{ln: ln, route: route, fwd: NewForwarder(dialTimeout, log), log: log}
}

// Serve accepts on the listener given to NewTCPServer (ln is the same one).
func (s *TCPServer) Serve(net.Listener) error {
	ServeAccepts(s.ln, s.log, func(c net.Conn) { go s.fwd.Forward(c, c, s.route.p.Load()) })
	return http.ErrServerClosed
}

// ServeAccepts accepts until ln is closed, handing each connection to handle. Other
// accept errors (out of file descriptors and the like) are retried after a growing
// pause, as net/http does.
func ServeAccepts(ln net.Listener, log *slog.Logger, handle func(net.Conn)) {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Warn("accept failed; retrying", "error", err, "in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		handle(c)
	}
}

// Shutdown stops accepting and waits until the forwarded connections end or ctx is
// done; then it closes what is left and returns ctx's error.
func (s *TCPServer) Shutdown(ctx context.Context) error {
	s.closeListener()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for s.fwd.Count() > 0 {
		select {
		case <-ctx.Done():
			s.fwd.CloseAll()
			return ctx.Err()
		case <-t.C:
		}
	}
	s.fwd.CloseAll()
	return nil
}

func (s *TCPServer) Close() error {
	s.closeListener()
	s.fwd.CloseAll()
	return nil
}

func (s *TCPServer) closeListener() { s.ln.Close() }

// UDP session limits: a session ends (and frees its backend socket) after
// udpIdleTimeout without a datagram either way, or after udpUnansweredTimeout if the
// backend never answered; a port keeps at most udpMaxSessions, and datagrams of new
// clients beyond that are dropped.
const (
	udpIdleTimeout       = 60 * time.Second
	udpUnansweredTimeout = 10 * time.Second
	udpMaxSessions       = 16384
)

// UDPServer serves a UDP port. Each client address is a session with a socket of its
// own towards one backend (chosen by weight when the session starts): datagrams from
// the client go to that backend, and the backend's replies go back to the client from
// the Gateway's address.
type UDPServer struct {
	route *RouteStore
	pc    net.PacketConn
	log   *slog.Logger
	idle  time.Duration

	mu       sync.Mutex
	sessions map[string]*udpSession
	closed   bool
}

type udpSession struct {
	up       net.Conn
	last     atomic.Int64 // unix nanoseconds of the last datagram either way
	answered atomic.Bool  // the backend has replied at least once
}

// timeout is how long the session may be quiet.
func (u *udpSession) timeout(idle time.Duration) time.Duration {
	if u.answered.Load() {
		return idle
	}
	return min(idle, udpUnansweredTimeout)
}

func NewUDPServer(pc net.PacketConn, route *RouteStore, log *slog.Logger) *UDPServer {
	return &UDPServer{route: route, pc: pc, log: log, idle: udpIdleTimeout, sessions: map[string]*udpSession{}}
}

func (s *UDPServer) Serve(net.Listener) error {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return http.ErrServerClosed
			}
			s.log.Warn("UDP read failed", "error", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for try := 0; try < 2; try++ {
			sess := s.session(from)
			if sess == nil {
				break // no route, no backend or too many sessions: dropped
			}
			sess.last.Store(time.Now().UnixNano())
			_, err := sess.up.Write(buf[:n])
			if err == nil {
				break
			}
			// The session ended meanwhile (idle expiry) or its backend refuses (ICMP
			// unreachable): drop it, and send this datagram on a fresh one.
			s.log.Debug("UDP backend write failed", "error", err)
			s.endSession(from.String(), sess)
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNREFUSED) {
				break
			}
		}
	}
}

// endSession removes a session (if it is still the client's) and closes its socket.
func (s *UDPServer) endSession(key string, sess *udpSession) {
	s.mu.Lock()
	if s.sessions[key] == sess {
		delete(s.sessions, key)
	}
	s.mu.Unlock()
	sess.up.Close()
}

// session finds or starts the client's session.
func (s *UDPServer) session(from net.Addr) *udpSession {
	key := from.String()
	s.mu.Lock()
	sess := s.sessions[key]
	s.mu.Unlock()
	if sess != nil {
		return sess
	}
	r := s.route.p.Load()
	if r == nil {
		return nil
	}
	cl := r.Pick()
	if cl == nil || cl.Invalid != "" {
		return nil
	}
	ep, err := cl.Pick()
	if err != nil {
		return nil
	}
	up, err := net.Dial("udp", ep)
	if err != nil {
		s.log.Debug("UDP backend unreachable", "route", r.name, "cluster", cl.Name, "error", err)
		return nil
	}
	sess = &udpSession{up: up}
	sess.last.Store(time.Now().UnixNano()) // before replies reads it for its first deadline
	s.mu.Lock()
	if s.closed || len(s.sessions) >= udpMaxSessions {
		full := !s.closed
		s.mu.Unlock()
		up.Close()
		if full {
			s.log.Debug("UDP sessions at their limit; datagram dropped", "limit", udpMaxSessions, "client", key)
		}
		return nil
	}
	if prev := s.sessions[key]; prev != nil { // another datagram of the client won the race
		s.mu.Unlock()
		up.Close()
		return prev
	}
	s.sessions[key] = sess
	s.mu.Unlock()
	go s.replies(key, from, sess)
	return sess
}

// replies copies the backend's datagrams back to the client until the session idles
// out, its backend refuses, or the server closes.
func (s *UDPServer) replies(key string, client net.Addr, sess *udpSession) {
	defer s.endSession(key, sess)
	buf := make([]byte, 64<<10)
	for {
		last := time.Unix(0, sess.last.Load())
		_ = sess.up.SetReadDeadline(last.Add(sess.timeout(s.idle)))
		n, err := sess.up.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if time.Since(time.Unix(0, sess.last.Load())) < sess.timeout(s.idle) {
					continue // the client spoke meanwhile
				}
				return
			}
			// Closed, or the backend is gone (ICMP unreachable): the client's next
			// datagram starts a new session, and picks a backend again.
			return
		}
		sess.answered.Store(true)
		sess.last.Store(time.Now().UnixNano())
		if _, err := s.pc.WriteTo(buf[:n], client); err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Shutdown and Close stop reading and end every session: UDP has nothing to drain.
func (s *UDPServer) Shutdown(context.Context) error { return s.Close() }

func (s *UDPServer) Close() error {
	s.mu.Lock()
	s.closed = true
	ups := make([]net.Conn, 0, len(s.sessions))
	for _, sess := range s.sessions {
		ups = append(ups, sess.up)
	}
	s.mu.Unlock()
	err := s.pc.Close()
	for _, up := range ups {
		up.Close()
	}
	return err
}

// PacketListener lets a UDP socket sit where the sockets keep a net.Listener (its
// address, and closing it); nothing is ever accepted from it.
type PacketListener struct {
	pc   net.PacketConn
	once sync.Once
	done chan struct{}
}

func NewPacketListener(pc net.PacketConn) *PacketListener {
	return &PacketListener{pc: pc, done: make(chan struct{})}
}

func (l *PacketListener) Accept() (net.Conn, error) {
	<-l.done
	return nil, net.ErrClosed
}

func (l *PacketListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.pc.Close()
}

func (l *PacketListener) Addr() net.Addr { return l.pc.LocalAddr() }
