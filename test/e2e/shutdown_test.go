package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// heldBackend is a backend owned by the test: it answers at once, except GET /slow,
// which it announces on arrived and holds until release is closed (at most 30s). It
// stands in for the echo backend's ?delay= because the test must know for certain that
// the request is in flight before it sends SIGTERM.
type heldBackend struct {
	port    int
	arrived chan struct{}
	release chan struct{}
}

func startHeldBackend(t *testing.T) *heldBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &heldBackend{port: ln.Addr().(*net.TCPAddr).Port, arrived: make(chan struct{}, 1), release: make(chan struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case b.arrived <- struct{}{}:
			default:
			}
			select {
			case <-b.release:
			case <-time.After(30 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"name":"held","path":%q}`, r.URL.Path)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

// TestSIGTERMDrainsInFlightRequests sends SIGTERM while a request is in flight: the
// gateway stops accepting connections at once, lets the request finish with 200, and
// then exits 0.
func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	b := startHeldBackend(t)
	g := startGateway(t, quickstartPorts{Web: b.port})
	if got := g.backendOf(t, "/"); got != "held" {
		t.Fatalf("GET / went to %s, want the test's backend", got)
	}

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	slow := newClient(t)
	go func() {
		resp, err := slow.Get(g.url + "/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		done <- result{code: resp.StatusCode, body: string(body), err: err}
	}()
	select {
	case <-b.arrived:
	case r := <-done:
		t.Fatalf("the slow request ended before reaching the backend: %+v", r)
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request did not reach the backend within 10s")
	}

	g.signal(t, syscall.SIGTERM)
	sent := time.Now()
	if err := waitRefused(g); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	t.Logf("new connections refused %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
	if g.exited() {
		t.Fatal("portico exited while a request was still in flight")
	}
	select {
	case r := <-done:
		t.Fatalf("the in-flight request ended before its backend answered: %+v", r)
	default:
	}

	close(b.release)
	select {
	case r := <-done:
		if r.err != nil || r.code != http.StatusOK || r.body != `{"name":"held","path":"/slow"}` {
			t.Fatalf("in-flight request: %d %q %v, want 200 from the backend", r.code, r.body, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight request did not finish within 10s of its backend answering")
	}
	if code := g.exitCode(t, 10*time.Second); code != 0 {
		t.Fatalf("portico exited %d after SIGTERM, want 0", code)
	}
	t.Logf("portico exited 0 %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
	if err := g.stderr.waitFor(time.Second, `msg="shutting down: draining in-flight requests"`, "msg=stopped"); err != nil {
		t.Errorf("log: %v", err)
	}
	if _, _, err := g.adminGet("/healthz"); err == nil {
		t.Error("the admin API still answers after exit")
	}
}

// TestSIGTERMWithEchoDelay is the same story with --echo-backends and the echo
// backend's ?delay=2s: the request is in flight when SIGTERM arrives (the gateway's
// connection to the backend exists), finishes with 200 after its 2s, and portico exits 0.
func TestSIGTERMWithEchoDelay(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("needs /proc/net/tcp to see the gateway's upstream connection")
	}
	g := startGateway(t, quickstartPorts{}, "--echo-backends")
	type result struct {
		reply echoReply
		err   error
		took  time.Duration
	}
	done := make(chan result, 1)
	slow := newClient(t)
	start := time.Now()
	go func() {
		reply, err := fetchEcho(slow, g.url+"/?delay=2s")
		done <- result{reply, err, time.Since(start)}
	}()
	// Nothing else talks to shop/web, so a connection to it is this request, forwarded.
	if _, err := eventually(5*time.Second, func() error {
		ok, err := establishedTo(g.q.Web)
		if err == nil && !ok {
			err = errors.New("no connection to the shop/web echo backend yet")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	g.signal(t, syscall.SIGTERM)
	if err := waitRefused(g); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	select {
	case r := <-done:
		t.Fatalf("the 2s request ended before new connections were refused: %+v", r)
	default:
	}
	select {
	case r := <-done:
		if r.err != nil || r.reply.Name != "shop/web" || r.reply.Query != "delay=2s" {
			t.Fatalf("request in flight during SIGTERM: %v (answer from %q, query %q)", r.err, r.reply.Name, r.reply.Query)
		}
		if r.took < 2*time.Second {
			t.Fatalf("the 2s request finished after %s", r.took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the 2s request did not finish within 10s")
	}
	if code := g.exitCode(t, 10*time.Second); code != 0 {
		t.Fatalf("portico exited %d after SIGTERM, want 0", code)
	}
}

// waitRefused waits until a new connection to the gateway's listener is refused.
func waitRefused(g *gateway) error {
	addr := strings.TrimPrefix(g.url, "http://")
	_, err := eventually(5*time.Second, func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return errors.New("a new connection was accepted")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("dial: %v, want connection refused", err)
		}
		return nil
	})
	return err
}

// establishedTo reports whether some IPv4 TCP connection on this machine is established
// to 127.0.0.1:port (Linux only).
func establishedTo(port int) (bool, error) {
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, err
	}
	// The address is the kernel's 32-bit word in hex: 0100007F on little-endian machines.
	le, be := fmt.Sprintf("0100007F:%04X", port), fmt.Sprintf("7F000001:%04X", port)
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && (f[2] == le || f[2] == be) && f[3] == "01" {
			return true, nil
		}
	}
	return false, nil
}
