package dataplane

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

// The tests in this file prove the Apply contract: a config swap is atomic, keeps the
// sockets and client connections, lets in-flight requests finish on the table they
// started on, and a config that fails to compile or bind changes nothing.

// swapFamilies are the paths the proof test's clients use. Each is routed, in variant
// v, by route "<family>/v<v>" to cluster "<family>-<v>", whose backend is named the same.
var swapFamilies = []struct {
	name     string
	pathType ir.PathMatchType
	match    string
	paths    []string
}{
	{"alpha", ir.PathPrefix, "/alpha", []string{"/alpha", "/alpha/", "/alpha/x/y"}},
	{"beta", ir.PathPrefix, "/beta", []string{"/beta/1", "/beta/two"}},
	{"gamma", ir.PathExact, "/gamma", []string{"/gamma"}},
}

// swapProofConfig is configuration number i of the proof test: variant i%2 of the used
// routes, plus a pseudo-random set of routes, virtual hosts and clusters that no client
// request matches (added and removed from one config to the next).
func swapProofConfig(port uint32, i int, eps map[string]ir.Endpoint) *ir.Config {
	v := i % 2
	rng := mrand.New(mrand.NewPCG(uint64(i), 42))
	var exact, regex, prefix []ir.Route
	clusters := map[string]bool{}
	for _, f := range swapFamilies {
		cl := fmt.Sprintf("%s-%d", f.name, v)
		clusters[cl] = true
		r := swapRoute(fmt.Sprintf("%s/v%d", f.name, v), f.pathType, f.match, cl)
		if f.pathType == ir.PathExact {
			exact = append(exact, r)
			continue
		}
		if rng.IntN(2) == 0 {
			// Same path, but only for a header no client sends: must never win.
			gated := swapRoute(fmt.Sprintf("%s/gated/%d", f.name, i), f.pathType, f.match, "spare")
			gated.Match.Headers = []ir.StringMatch{{Name: "X-Never", Type: ir.MatchExact, Value: "yes"}}
			prefix = append(prefix, gated)
			clusters["spare"] = true
		}
		prefix = append(prefix, r)
	}
	for j := range rng.IntN(6) {
		clusters["spare"] = true
		switch rng.IntN(4) {
		case 0:
			exact = append(exact, swapRoute(fmt.Sprintf("unused/exact/%d/%d", i, j), ir.PathExact, fmt.Sprintf("/unused/exact/%d", j), "spare"))
		case 1:
			regex = append(regex, swapRoute(fmt.Sprintf("unused/regex/%d/%d", i, j), ir.PathRegex, fmt.Sprintf("/unused/re/[0-9]+/%d", j), "spare"))
		case 2:
			// Shares the characters but not the segment: "/alphabet" must not take "/alpha".
			prefix = append([]ir.Route{swapRoute(fmt.Sprintf("unused/alphabet/%d/%d", i, j), ir.PathPrefix, "/alphabet", "spare")}, prefix...)
		default:
			r := swapRoute(fmt.Sprintf("unused/mirror/%d/%d", i, j), ir.PathPrefix, fmt.Sprintf("/unused/mirror/%d", j), "spare")
			r.Mirrors = []ir.Mirror{{Cluster: "spare", Numerator: 1, Denominator: 1}}
			prefix = append([]ir.Route{r}, prefix...)
		}
	}
	// Prefixes longest first, as the translator orders them; every third config puts
	// the regexes last instead, which makes the router scan linearly.
	routes := append(append([]ir.Route{}, exact...), regex...)
	routes = append(routes, prefix...)
	if i%3 == 2 {
		routes = append(append(append([]ir.Route{}, exact...), prefix...), regex...)
	}
	vhosts := []ir.VirtualHost{}
	if rng.IntN(2) == 0 {
		clusters["spare"] = true
		vhosts = append(vhosts, ir.VirtualHost{Hostname: "unused.example", Routes: []ir.Route{swapRoute(fmt.Sprintf("unused/vhost/%d", i), ir.PathPrefix, "/", "spare")}})
	}
	vhosts = append(vhosts, ir.VirtualHost{Hostname: "*", Routes: routes})
	if rng.IntN(2) == 0 {
		// Keep the other variant's clusters defined (their transports stay warm) half
		// of the time; otherwise they are removed and their transports closed.
		for _, f := range swapFamilies {
			clusters[fmt.Sprintf("%s-%d", f.name, 1-v)] = true
		}
	}
	cfg := &ir.Config{Gateways: []ir.Gateway{swapGateway(port, vhosts...)}}
	for name := range clusters {
		proto := ir.UpstreamHTTP1
		if strings.HasSuffix(name, "-1") && strings.HasPrefix(name, "alpha") {
			proto = ir.UpstreamH2C
		}
		cfg.Clusters = append(cfg.Clusters, ir.Cluster{Name: name, Protocol: proto, Endpoints: []ir.Endpoint{eps[name]}})
	}
	return cfg
}

// TestSwapProofUnderLoad replaces the whole route table 200 times while 8 clients (5
// HTTP/1.1, 3 h2c) send requests back to back on keep-alive connections: no request
// fails, none is served by a backend or route its path is not routed to in either
// config, and no client ever needs a second TCP connection.
func TestSwapProofUnderLoad(t *testing.T) {
	const applies, h1Clients, h2cClients = 200, 5, 3
	eps := map[string]ir.Endpoint{"spare": swapBackend(t, "spare", false)}
	allowedBackend := map[string]map[string]bool{}
	allowedRoute := map[string]map[string]bool{}
	for _, f := range swapFamilies {
		allowedBackend[f.name] = map[string]bool{}
		allowedRoute[f.name] = map[string]bool{}
		for v := range 2 {
			name := fmt.Sprintf("%s-%d", f.name, v)
			eps[name] = swapBackend(t, name, name == "alpha-1")
			allowedBackend[f.name][name] = true
			allowedRoute[f.name][fmt.Sprintf("%s/v%d", f.name, v)] = true
		}
	}
	port := freePort(t)
	s, logs := swapServerLogged(t, swapProofConfig(port, 0, eps))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var (
		completed atomic.Int64
		mu        sync.Mutex
		failures  []string
		seen      = map[string]map[string]bool{} // family -> backends that served it
		wg        sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		} else if len(failures) == 20 {
			failures = append(failures, "...")
		}
	}
	var failed atomic.Int64
	clients := make([]*swapClient, h1Clients+h2cClients)
	perClient := make([]atomic.Int64, len(clients)) // requests completed by each client
	for ci := range clients {
		h2c := ci >= h1Clients
		c := newSwapClient(t, h2c)
		clients[ci] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				f := swapFamilies[(n+ci)%len(swapFamilies)]
				path := f.paths[n%len(f.paths)]
				res, err := c.get(ctx, swapURL(port, path))
				completed.Add(1)
				perClient[ci].Add(1)
				switch {
				case err != nil:
					failed.Add(1)
					fail("client %d (h2c=%v) %s: %v", ci, h2c, path, err)
				case res.close:
					failed.Add(1)
					fail("client %d %s: the response closes the connection", ci, path)
				case res.status != http.StatusOK:
					failed.Add(1)
					fail("client %d %s: status %d body %q", ci, path, res.status, res.body)
				case !allowedBackend[f.name][res.backend] || !allowedRoute[f.name][res.route] || res.body != res.backend+" "+path:
					failed.Add(1)
					fail("client %d %s: misrouted to backend %q route %q body %q", ci, path, res.backend, res.route, res.body)
				default:
					mu.Lock()
					if seen[f.name] == nil {
						seen[f.name] = map[string]bool{}
					}
					seen[f.name][res.backend] = true
					mu.Unlock()
				}
			}
		}()
	}

	applyErr := func() error {
		for i := 1; i <= applies; i++ {
			// Every client completes a request between two swaps (progress, not time),
			// so each keep-alive connection lives through every swap.
			for ci := range perClient {
				for target := perClient[ci].Load() + 1; perClient[ci].Load() < target; {
					if ctx.Err() != nil {
						return fmt.Errorf("apply %d: client %d made no progress: %w", i, ci, ctx.Err())
					}
					time.Sleep(50 * time.Microsecond)
				}
			}
			if err := s.Apply(swapProofConfig(port, i, eps)); err != nil {
				return fmt.Errorf("apply %d: %w", i, err)
			}
		}
		return nil
	}()
	close(stop)
	wg.Wait()
	if applyErr != nil {
		t.Fatal(applyErr)
	}
	t.Logf("%d requests across %d applies", completed.Load(), applies)
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed or were misrouted:\n%s", n, completed.Load(), strings.Join(failures, "\n"))
	}
	redials := 0
	for ci, c := range clients {
		server, byClient := c.serverEnds()
		if len(server) > 0 {
			t.Errorf("client %d: the server closed or reset %d keep-alive connections: %s", ci, len(server), strings.Join(server, "; "))
		}
		if d := c.dials.Load(); d != int64(1+byClient) {
			t.Errorf("client %d opened %d connections and closed %d itself, want 1 + %d", ci, d, byClient, byClient)
		}
		redials += byClient
	}
	if redials > 0 {
		t.Logf("HTTP/1.1 clients dropped %d healthy connections by themselves (Go transport on a starved CPU) and dialled again", redials)
	}
	if t.Failed() {
		t.Logf("data plane log:\n%s", logs)
	}
	for _, f := range swapFamilies {
		if len(seen[f.name]) != 2 {
			t.Errorf("%s was served only by %v: the swaps did not take effect under load", f.name, seen[f.name])
		}
	}
	if got := s.Addresses(); len(got) != 1 || got[0] != "127.0.0.1:"+strconv.Itoa(int(port)) {
		t.Errorf("addresses after the swaps: %v", got)
	}
}

// swapHoldPortEnv makes the test binary, run as a child process, hold a port (see
// TestSwapHelperHoldPort).
const swapHoldPortEnv = "PORTICO_SWAP_HOLD_PORT"

// TestSwapHelperHoldPort is not a test: run as a child process by swapHoldPort, it binds
// 127.0.0.1:0, prints the port and keeps it until its stdin is closed.
func TestSwapHelperHoldPort(t *testing.T) {
	if os.Getenv(swapHoldPortEnv) != "1" {
		t.Skip("helper process for TestSwapRejectsBadConfig")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	_, _ = io.Copy(io.Discard, os.Stdin)
	ln.Close()
	os.Exit(0)
}

// swapHoldPort starts another process that holds a port on 127.0.0.1 and returns it.
func swapHoldPort(t *testing.T) uint32 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSwapHelperHoldPort$")
	cmd.Env = append(os.Environ(), swapHoldPortEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("port holder: %v", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("port holder said %q", line)
	}
	return uint32(port)
}

// TestSwapRejectsBadConfig applies configs that would move the live port's traffic to
// another backend but fail to compile or bind: each Apply returns an error, the live
// port keeps serving the old table on the same keep-alive connection, no port is left
// bound, and the good version of the change applies afterwards.
func TestSwapRejectsBadConfig(t *testing.T) {
	eps := map[string]ir.Endpoint{"old": swapBackend(t, "old", false), "new": swapBackend(t, "new", false)}
	clusters := []ir.Cluster{
		{Name: "new", Protocol: ir.UpstreamHTTP1, Endpoints: []ir.Endpoint{eps["new"]}},
		{Name: "old", Protocol: ir.UpstreamHTTP1, Endpoints: []ir.Endpoint{eps["old"]}},
	}
	port := freePort(t)
	oldCfg := &ir.Config{
		Gateways: []ir.Gateway{swapGateway(port, ir.VirtualHost{Hostname: "*", Routes: []ir.Route{swapRoute("old", ir.PathPrefix, "/", "old")}})},
		Clusters: clusters,
	}
	// newCfg moves "/" to the new backend; each case breaks one thing in it.
	newCfg := func() *ir.Config {
		return &ir.Config{
			Gateways: []ir.Gateway{swapGateway(port, ir.VirtualHost{Hostname: "*", Routes: []ir.Route{swapRoute("new", ir.PathPrefix, "/", "new")}})},
			Clusters: append([]ir.Cluster{}, clusters...),
		}
	}
	routes := func(c *ir.Config) *[]ir.Route { return &c.Gateways[0].Ports[0].Listeners[0].VirtualHosts[0].Routes }
	addRoute := func(c *ir.Config, r ir.Route) { *routes(c) = append([]ir.Route{r}, *routes(c)...) }
	certPEM, _, _ := swapCert(t, "tls.example")
	s := swapServer(t, oldCfg)
	client := newSwapClient(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	expectOld := func(t *testing.T) {
		t.Helper()
		res, err := client.get(ctx, swapURL(port, "/x"))
		if err != nil {
			t.Fatal(err)
		}
		if res.status != 200 || res.backend != "old" || res.route != "old" {
			t.Fatalf("after a rejected Apply: status %d backend %q route %q, want the old config", res.status, res.backend, res.route)
		}
	}
	expectOld(t)

	cases := []struct {
		name    string
		breakIt func(t *testing.T, c *ir.Config) (freed []uint32)
		want    string
	}{
		{"bad path regex", func(t *testing.T, c *ir.Config) []uint32 {
			addRoute(c, swapRoute("bad", ir.PathRegex, "/(unclosed", "new"))
			return nil
		}, "regex"},
		{"bad header regex", func(t *testing.T, c *ir.Config) []uint32 {
			r := swapRoute("bad", ir.PathPrefix, "/h", "new")
			r.Match.Headers = []ir.StringMatch{{Name: "X-A", Type: ir.MatchRegex, Value: "a**+"}}
			addRoute(c, r)
			return nil
		}, "regex"},
		{"bad query regex", func(t *testing.T, c *ir.Config) []uint32 {
			r := swapRoute("bad", ir.PathPrefix, "/q", "new")
			r.Match.QueryParams = []ir.StringMatch{{Name: "a", Type: ir.MatchRegex, Value: "[z-a]"}}
			addRoute(c, r)
			return nil
		}, "regex"},
		{"unknown path match type", func(t *testing.T, c *ir.Config) []uint32 {
			addRoute(c, swapRoute("bad", "Glob", "/*", "new"))
			return nil
		}, "Glob"},
		{"unknown cluster", func(t *testing.T, c *ir.Config) []uint32 {
			addRoute(c, swapRoute("bad", ir.PathPrefix, "/u", "no-such-cluster"))
			return nil
		}, "no-such-cluster"},
		{"unknown mirror cluster", func(t *testing.T, c *ir.Config) []uint32 {
			(*routes(c))[0].Mirrors = []ir.Mirror{{Cluster: "no-such-mirror", Numerator: 1, Denominator: 1}}
			return nil
		}, "no-such-mirror"},
		{"bad timeout", func(t *testing.T, c *ir.Config) []uint32 {
			(*routes(c))[0].Timeouts = &ir.Timeouts{Request: "soon"}
			return nil
		}, "timeouts"},
		{"endpoint port out of range", func(t *testing.T, c *ir.Config) []uint32 {
			c.Clusters = append(c.Clusters, ir.Cluster{Name: "zzz", Protocol: ir.UpstreamHTTP1, Endpoints: []ir.Endpoint{{Address: "127.0.0.1", Port: 70000}}})
			return nil
		}, "70000"},
		{"bad certificate on a new TLS port", func(t *testing.T, c *ir.Config) []uint32 {
			p := freePort(t)
			c.Gateways[0].Ports = append(c.Gateways[0].Ports, swapTLSPort(p, "tls.example", certPEM, "not a key", "new"))
			return []uint32{p}
		}, "certificate"},
		{"two gateways on one port", func(t *testing.T, c *ir.Config) []uint32 {
			g := swapGateway(port, ir.VirtualHost{Hostname: "*", Routes: []ir.Route{swapRoute("other", ir.PathPrefix, "/", "new")}})
			g.Name = "swap/other"
			c.Gateways = append(c.Gateways, g)
			return nil
		}, "both bind"},
		{"port held by another process", func(t *testing.T, c *ir.Config) []uint32 {
			held := swapHoldPort(t)
			// Two new ports that could be bound, and the held one: whichever order the
			// binds happen in, none may stay bound after the failure.
			p1, p2 := freePort(t), freePort(t)
			for _, p := range []uint32{p1, held, p2} {
				c.Gateways[0].Ports = append(c.Gateways[0].Ports, ir.Port{Number: p, Protocol: ir.ProtocolHTTP, Listeners: c.Gateways[0].Ports[0].Listeners})
			}
			return []uint32{p1, p2}
		}, "address already in use"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newCfg()
			freed := tc.breakIt(t, cfg)
			err := s.Apply(cfg)
			if err == nil {
				t.Fatal("Apply accepted a config that cannot be served")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			expectOld(t)
			if got := s.Addresses(); len(got) != 1 || got[0] != "127.0.0.1:"+strconv.Itoa(int(port)) {
				t.Errorf("addresses after a rejected Apply: %v", got)
			}
			for _, p := range freed {
				ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(int(p)))
				if err != nil {
					t.Errorf("port %d still bound after a rejected Apply: %v", p, err)
					continue
				}
				ln.Close()
			}
		})
	}
	if server, byClient := client.serverEnds(); len(server) > 0 || client.dials.Load() != int64(1+byClient) {
		t.Errorf("the server closed or reset the client's connection across the rejected applies: %v (%d dials)", server, client.dials.Load())
	}
	if err := s.Apply(newCfg()); err != nil {
		t.Fatalf("the good config: %v", err)
	}
	res, err := client.get(ctx, swapURL(port, "/x"))
	if err != nil || res.backend != "new" || res.route != "new" {
		t.Fatalf("after the good config: %+v %v", res, err)
	}
}

// TestSwapKeepsKeepAliveConnection sends a request, applies a config that routes the
// path elsewhere (and adds a port), and sends again: the second request goes over the
// same TCP connection (httptrace: reused, same local address) and is served by the new
// table.
func TestSwapKeepsKeepAliveConnection(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1", true: "h2c"}[h2c], func(t *testing.T) {
			// A Go HTTP/1.1 client may drop a healthy connection by itself on a starved
			// CPU (see swapClient.serverEnds); only then is the sequence tried again.
			for attempt := 1; ; attempt++ {
				if !swapKeepAliveAcrossApply(t, h2c) {
					return
				}
				if attempt == 3 {
					t.Fatal("the client dropped its own connection in 3 attempts")
				}
				t.Logf("attempt %d: the client closed its connection by itself; trying again", attempt)
			}
		})
	}
}

// swapKeepAliveAcrossApply is one try of TestSwapKeepsKeepAliveConnection; it reports
// whether the client itself dropped the connection, which voids the try.
func swapKeepAliveAcrossApply(t *testing.T, h2c bool) (clientDropped bool) {
	eps := map[string]ir.Endpoint{"one": swapBackend(t, "one", false), "two": swapBackend(t, "two", true)}
	clusters := []ir.Cluster{
		{Name: "one", Protocol: ir.UpstreamHTTP1, Endpoints: []ir.Endpoint{eps["one"]}},
		{Name: "two", Protocol: ir.UpstreamH2C, Endpoints: []ir.Endpoint{eps["two"]}},
	}
	port, extra := freePort(t), freePort(t)
	cfg := func(cluster string, ports ...uint32) *ir.Config {
		g := swapGateway(port, ir.VirtualHost{Hostname: "*", Routes: []ir.Route{swapRoute("to-"+cluster, ir.PathPrefix, "/", cluster)}})
		for _, p := range ports {
			g.Ports = append(g.Ports, ir.Port{Number: p, Protocol: ir.ProtocolHTTP, Listeners: g.Ports[0].Listeners})
		}
		return &ir.Config{Gateways: []ir.Gateway{g}, Clusters: clusters}
	}
	s := swapServer(t, cfg("one"))
	client := newSwapClient(t, h2c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sameConn := func(what string, first, res swapResult) bool {
		t.Helper()
		if res.reused && res.local == first.local && client.dials.Load() == 1 {
			return true
		}
		if server, byClient := client.serverEnds(); len(server) == 0 && byClient > 0 {
			clientDropped = true
			return false
		}
		t.Fatalf("%s: connection reused=%v from %s, want the connection from %s (%d dials)", what, res.reused, res.local, first.local, client.dials.Load())
		return false
	}

	first, err := client.get(ctx, swapURL(port, "/k"))
	if err != nil {
		t.Fatal(err)
	}
	if first.reused || first.backend != "one" {
		t.Fatalf("first request: %+v", first)
	}
	if err := s.Apply(cfg("two", extra)); err != nil {
		t.Fatal(err)
	}
	second, err := client.get(ctx, swapURL(port, "/k"))
	if err != nil {
		t.Fatal(err)
	}
	if !sameConn("after Apply", first, second) {
		return clientDropped
	}
	if second.backend != "two" || second.route != "to-two" {
		t.Errorf("after Apply the old connection was served by %q/%q, want the new table (two/to-two)", second.backend, second.route)
	}
	if err := s.Apply(cfg("one")); err != nil {
		t.Fatal(err)
	}
	third, err := client.get(ctx, swapURL(port, "/k"))
	if err != nil {
		t.Fatal(err)
	}
	if !sameConn("after the second Apply", first, third) {
		return clientDropped
	}
	if third.backend != "one" || third.route != "to-one" {
		t.Errorf("after the second Apply: served by %q/%q, want one/to-one", third.backend, third.route)
	}
	return false
}

// TestSwapInFlightFinishesOnOldTable holds a request at the backend, applies a config
// that sends the path to another backend (removing the old cluster, or the whole port),
// and then lets the backend answer: the held request completes through the old route
// (its response filter included) while new requests already use the new table.
func TestSwapInFlightFinishesOnOldTable(t *testing.T) {
	type variant struct {
		name         string
		clientH2C    bool
		upstreamH2C  bool
		portMoves    bool
		oldRemovedIn bool // the old cluster is gone from the new config
	}
	for _, v := range []variant{
		{name: "http1", oldRemovedIn: true},
		{name: "h2c client, h2c upstream", clientH2C: true, upstreamH2C: true, oldRemovedIn: true},
		{name: "http1, old cluster kept", oldRemovedIn: false},
		{name: "port removed", portMoves: true, oldRemovedIn: true},
		{name: "h2c client, port removed", clientH2C: true, portMoves: true, oldRemovedIn: true},
	} {
		t.Run(v.name, func(t *testing.T) {
			proto := ir.UpstreamHTTP1
			if v.upstreamH2C {
				proto = ir.UpstreamH2C
			}
			holdEP, arrived, release := swapHoldBackend(t, "held", v.upstreamH2C)
			newEP := swapBackend(t, "fresh", v.upstreamH2C)
			oldPort, newPort := freePort(t), freePort(t)
			oldCfg := &ir.Config{
				Gateways: []ir.Gateway{swapGateway(oldPort, ir.VirtualHost{Hostname: "*", Routes: []ir.Route{swapRoute("old", ir.PathPrefix, "/", "held")}})},
				Clusters: []ir.Cluster{{Name: "held", Protocol: proto, Endpoints: []ir.Endpoint{holdEP}}},
			}
			p := oldPort
			if v.portMoves {
				p = newPort
			}
			newCfg := &ir.Config{
				Gateways: []ir.Gateway{swapGateway(p, ir.VirtualHost{Hostname: "*", Routes: []ir.Route{swapRoute("new", ir.PathPrefix, "/", "fresh")}})},
				Clusters: []ir.Cluster{{Name: "fresh", Protocol: proto, Endpoints: []ir.Endpoint{newEP}}},
			}
			if !v.oldRemovedIn {
				newCfg.Clusters = append(newCfg.Clusters, oldCfg.Clusters...)
			}
			s := swapServer(t, oldCfg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			client := newSwapClient(t, v.clientH2C)

			type outcome struct {
				res swapResult
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				res, err := client.get(ctx, swapURL(oldPort, "/held"))
				done <- outcome{res, err}
			}()
			select {
			case <-arrived:
			case <-ctx.Done():
				t.Fatal("the request never reached the backend")
			}
			if err := s.Apply(newCfg); err != nil {
				t.Fatal(err)
			}
			// The new table is live while the old request is still held.
			other := newSwapClient(t, v.clientH2C)
			res, err := other.get(ctx, swapURL(p, "/after"))
			if err != nil || res.status != 200 || res.backend != "fresh" || res.route != "new" {
				t.Fatalf("request after Apply: %+v %v, want the new table", res, err)
			}
			select {
			case o := <-done:
				t.Fatalf("the held request finished before the backend answered: %+v %v", o.res, o.err)
			default:
			}
			release()
			var o outcome
			select {
			case o = <-done:
			case <-ctx.Done():
				t.Fatal("the held request never finished")
			}
			if o.err != nil {
				t.Fatalf("held request: %v", o.err)
			}
			if o.res.status != 200 || o.res.backend != "held" || o.res.route != "old" || o.res.body != "held /held" {
				t.Fatalf("held request: %+v, want it finished by the old route and backend", o.res)
			}
			if v.portMoves {
				// The removed port stops accepting once drained.
				for {
					c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(oldPort)), time.Second)
					if err != nil {
						break
					}
					c.Close()
					if ctx.Err() != nil {
						t.Fatal("the removed port still accepts connections")
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
}

// TestSwapPortRebind changes what a port is bound as without changing its number: from
// plain HTTP to TLS, and from 127.0.0.1 to the wildcard address. The old socket cannot
// be kept (its key changed) and holds the port, so Apply has to give it up before it
// binds the new one; today it binds first and fails with EADDRINUSE.
func TestSwapPortRebind(t *testing.T) {
	ep := swapBackend(t, "b", false)
	clusters := []ir.Cluster{{Name: "b", Protocol: ir.UpstreamHTTP1, Endpoints: []ir.Endpoint{ep}}}
	plain := func(port uint32, addr string) *ir.Config {
		g := swapGateway(port, ir.VirtualHost{Hostname: "*", Routes: []ir.Route{swapRoute("plain", ir.PathPrefix, "/", "b")}})
		g.Addresses = []string{addr}
		return &ir.Config{Gateways: []ir.Gateway{g}, Clusters: clusters}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("http to tls", func(t *testing.T) {
		certPEM, keyPEM, pool := swapCert(t, "tls.example")
		// In the moment between giving the port up and binding it again, a parallel
		// test's outgoing connection may take it as its ephemeral port: that is not what
		// is tested, so try another port.
		var port uint32
		for try := 0; ; try++ {
			port = freePort(t)
			s := swapServer(t, plain(port, "127.0.0.1"))
			tlsCfg := &ir.Config{
				Gateways: []ir.Gateway{{Name: "swap/gw", Addresses: []string{"127.0.0.1"}, Ports: []ir.Port{swapTLSPort(port, "tls.example", certPEM, keyPEM, "b")}}},
				Clusters: clusters,
			}
			err := s.Apply(tlsCfg)
			if err == nil {
				break
			}
			if !errors.Is(err, syscall.EADDRINUSE) || try == 4 {
				t.Fatalf("HTTP -> TLS on the same port: %v", err)
			}
			t.Logf("port %d was taken meanwhile: %v", port, err)
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "tls.example"}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://127.0.0.1:"+strconv.Itoa(int(port))+"/", nil)
		req.Host = "tls.example"
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "b" {
			t.Fatalf("HTTPS after the change: %d %q", resp.StatusCode, resp.Header.Get("X-Backend"))
		}
	})
	t.Run("loopback to wildcard address", func(t *testing.T) {
		// Another process's or test's socket may hold the port on some other address
		// (the port was only checked on 127.0.0.1, and ephemeral client ports come from
		// the same range): that is not what is tested, so try another port.
		var port uint32
		for try := 0; ; try++ {
			port = freePort(t)
			s := swapServer(t, plain(port, "127.0.0.1"))
			err := s.Apply(plain(port, "0.0.0.0"))
			if err == nil {
				break
			}
			if !errors.Is(err, syscall.EADDRINUSE) || try == 4 {
				t.Fatalf("127.0.0.1 -> 0.0.0.0 on the same port: %v", err)
			}
			t.Logf("port %d is taken elsewhere: %v", port, err)
		}
		res, err := newSwapClient(t, false).get(ctx, swapURL(port, "/"))
		if err != nil || res.backend != "b" {
			t.Fatalf("after the change: %+v %v", res, err)
		}
	})
}
