package dataplane

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

func streamConfig(port uint32, proto ir.Protocol, clusters []ir.Cluster, routes ...ir.L4Route) *ir.Config {
	return &ir.Config{
		Gateways: []ir.Gateway{{Name: "default/gw", Addresses: []string{"127.0.0.1"}, Ports: []ir.Port{{
			Number: port, Protocol: proto,
			Listeners: []ir.Listener{{Name: "default/gw/l", Protocol: proto, L4Routes: routes}},
		}}}},
		Clusters: clusters,
	}
}

// tcpAsk sends one line on a new connection and returns the answer line.
func tcpAsk(t *testing.T, addr, line string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// TestTCPListenerForwardsToTheFirstRoute: a TCP port forwards each connection to its
// route's backends by weight, follows a route change for new connections, and closes
// connections while it has no usable route.
func TestTCPListenerForwardsToTheFirstRoute(t *testing.T) {
	a, b := lineEcho(t, "a"), lineEcho(t, "b")
	clusters := []ir.Cluster{
		{Name: "a", Protocol: ir.UpstreamTCP, Endpoints: []ir.Endpoint{a}},
		{Name: "b", Protocol: ir.UpstreamTCP, Endpoints: []ir.Endpoint{b}},
	}
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	s := startServer(t, Options{}, streamConfig(port, ir.ProtocolTCP, clusters,
		ir.L4Route{Name: "tcproute/default/old/rule/0", Backends: []ir.Backend{{Cluster: "a", Weight: 1}}},
		ir.L4Route{Name: "tcproute/default/new/rule/0", Backends: []ir.Backend{{Cluster: "b", Weight: 1}}}))
	for range 5 {
		if got, err := tcpAsk(t, addr, "hi"); err != nil || got != "a: hi\n" {
			t.Fatalf("got %q, %v; want the oldest route's backend a", got, err)
		}
	}

	// Weights: 3 to a, 1 to b (200 connections; a loose bound against flakiness).
	if err := s.Apply(streamConfig(port, ir.ProtocolTCP, clusters, ir.L4Route{Name: "tcproute/default/w/rule/0",
		Backends: []ir.Backend{{Cluster: "a", Weight: 3}, {Cluster: "b", Weight: 1}}})); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for range 200 {
		got, err := tcpAsk(t, addr, "x")
		if err != nil {
			t.Fatal(err)
		}
		counts[got[:1]]++
	}
	if counts["a"] < 110 || counts["b"] < 20 || counts["a"]+counts["b"] != 200 {
		t.Fatalf("weighted 3:1 split gave %v", counts)
	}

	// No route, or an invalid backend: connections are closed.
	for _, cfg := range []*ir.Config{
		streamConfig(port, ir.ProtocolTCP, clusters),
		streamConfig(port, ir.ProtocolTCP, clusters, ir.L4Route{Name: "tcproute/default/bad/rule/0", Backends: []ir.Backend{{Weight: 1, Invalid: "no such Service"}}}),
	} {
		if err := s.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		if got, err := tcpAsk(t, addr, "x"); err == nil || !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("without a usable route: got %q, %v; want the connection closed", got, err)
		}
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// udpEcho is a UDP backend answering each datagram with name: payload.
func udpEcho(t *testing.T, name string) ir.Endpoint {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte(name+": "), buf[:n]...), from)
		}
	}()
	return ir.Endpoint{Address: "127.0.0.1", Port: uint32(pc.LocalAddr().(*net.UDPAddr).Port)}
}

func udpAsk(t *testing.T, c net.Conn, msg string) (string, error) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// TestUDPListenerSessions: each client address is a session to one backend, replies
// come back from the Gateway's address, and a route change applies to new sessions.
func TestUDPListenerSessions(t *testing.T) {
	a, b := udpEcho(t, "a"), udpEcho(t, "b")
	clusters := []ir.Cluster{
		{Name: "a", Protocol: ir.UpstreamUDP, Endpoints: []ir.Endpoint{a}},
		{Name: "b", Protocol: ir.UpstreamUDP, Endpoints: []ir.Endpoint{b}},
	}
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	s := startServer(t, Options{}, streamConfig(port, ir.ProtocolUDP, clusters,
		ir.L4Route{Name: "udproute/default/r/rule/0", Backends: []ir.Backend{{Cluster: "a", Weight: 1}}}))
	c1, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	for i := range 3 {
		msg := "ping" + strconv.Itoa(i)
		if got, err := udpAsk(t, c1, msg); err != nil || got != "a: "+msg {
			t.Fatalf("got %q, %v; want a: %s", got, err, msg)
		}
	}
	if err := s.Apply(streamConfig(port, ir.ProtocolUDP, clusters,
		ir.L4Route{Name: "udproute/default/r/rule/0", Backends: []ir.Backend{{Cluster: "b", Weight: 1}}})); err != nil {
		t.Fatal(err)
	}
	// The running session keeps its backend; a new client gets the new route's.
	if got, err := udpAsk(t, c1, "again"); err != nil || got != "a: again" {
		t.Fatalf("existing session: got %q, %v", got, err)
	}
	c2, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := udpAsk(t, c2, "new"); err != nil || got != "b: new" {
		t.Fatalf("new session: got %q, %v; want b: new", got, err)
	}
	// Removing the port ends the sessions: nothing answers any more.
	if err := s.Apply(&ir.Config{}); err != nil {
		t.Fatal(err)
	}
	if got, err := udpAsk(t, c2, "gone"); err == nil {
		t.Fatalf("after the port was removed: got %q", got)
	}
}

// TestStreamPortsChangeKindAndShutDownAtOnce: a TCP port turned into a UDP one, and a
// shutdown straight after an Apply, finish (a stream server closed before it started
// serving must still stop).
func TestStreamPortsChangeKindAndShutDownAtOnce(t *testing.T) {
	clusters := []ir.Cluster{{Name: "a", Protocol: ir.UpstreamTCP, Endpoints: []ir.Endpoint{lineEcho(t, "a")}}}
	route := ir.L4Route{Name: "tcproute/default/r/rule/0", Backends: []ir.Backend{{Cluster: "a", Weight: 1}}}
	for i := range 50 {
		port := freePort(t)
		s := New(Options{DrainTimeout: time.Second})
		if err := s.Apply(streamConfig(port, ir.ProtocolTCP, clusters, route)); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			if i%2 == 0 {
				if err := s.Apply(streamConfig(port, ir.ProtocolUDP, clusters, route)); err != nil {
					done <- err
					return
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done <- s.Shutdown(ctx)
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: Apply or Shutdown hangs", i)
		}
	}
}

// TestUDPSessionLeavesARefusingBackend: a session whose backend answers with ICMP port
// unreachable ends, and the client's next datagram picks a backend again.
func TestUDPSessionLeavesARefusingBackend(t *testing.T) {
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := uint32(dead.LocalAddr().(*net.UDPAddr).Port)
	dead.Close() // nothing listens there now: the kernel answers port unreachable
	live := udpEcho(t, "live")
	clusters := []ir.Cluster{{Name: "mixed", Protocol: ir.UpstreamUDP,
		Endpoints: []ir.Endpoint{{Address: "127.0.0.1", Port: deadPort}, live}}}
	port := freePort(t)
	startServer(t, Options{}, streamConfig(port, ir.ProtocolUDP, clusters,
		ir.L4Route{Name: "udproute/default/r/rule/0", Backends: []ir.Backend{{Cluster: "mixed", Weight: 1}}}))
	c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(int(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Round robin gives the dead endpoint to one of the first two sessions; within a few
	// tries the client must be answered by the live one, on the same client socket.
	for i := range 10 {
		if got, err := udpAsk(t, c, "hi"); err == nil {
			if got != "live: hi" {
				t.Fatalf("got %q", got)
			}
			return
		} else if i == 9 {
			t.Fatalf("never answered after 10 tries: %v", err)
		}
	}
}
