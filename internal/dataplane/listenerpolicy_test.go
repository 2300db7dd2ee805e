package dataplane

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/telemetry"
)

// TestListenerTLSBounds: a listener's minimum TLS version and cipher suites (a
// ListenerPolicy) apply to handshakes whose SNI selects it, and only to those: another
// listener of the same port keeps the defaults. Both HTTPS and TLS-terminate listeners.
func TestListenerTLSBounds(t *testing.T) {
	ca := lfNewCA(t)
	app := lfEcho(t, "app", nil)
	port := freePort(t)
	strict := lfHTTPSListener("gw/strict", "strict.example.com",
		[]ir.Certificate{ca.leaf(t, "strict", false, "strict.example.com")}, lfPrefix("strict", "/", "app"))
	strict.TLS.MinVersion = "1.3"
	ciphers := lfHTTPSListener("gw/ciphers", "ciphers.example.com",
		[]ir.Certificate{ca.leaf(t, "ciphers", false, "ciphers.example.com")}, lfPrefix("ciphers", "/", "app"))
	ciphers.TLS.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"}
	open := lfHTTPSListener("gw/open", "open.example.com",
		[]ir.Certificate{ca.leaf(t, "open", false, "open.example.com")}, lfPrefix("open", "/", "app"))
	s := lfStart(t, lfTLSConfig(port, lfClusters(app), strict, ciphers, open))
	addr := "127.0.0.1:" + strconv.Itoa(int(port))

	handshake := func(sni string, maxVersion uint16, suites ...uint16) (uint16, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: ca.pool, ServerName: sni, MaxVersion: maxVersion, CipherSuites: suites})
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		return conn.ConnectionState().Version, nil
	}
	check := func(what, sni string, maxVersion uint16, wantOK bool, suites ...uint16) {
		t.Helper()
		v, err := handshake(sni, maxVersion, suites...)
		switch {
		case wantOK && err != nil:
			t.Errorf("%s: handshake failed: %v", what, err)
		case !wantOK && err == nil:
			t.Errorf("%s: handshake succeeded with TLS %x, want it refused", what, v)
		}
	}
	check("TLS 1.2 to the 1.3-only listener", "strict.example.com", tls.VersionTLS12, false)
	check("TLS 1.3 to the 1.3-only listener", "strict.example.com", tls.VersionTLS13, true)
	check("TLS 1.2 to a listener without bounds on the same port", "open.example.com", tls.VersionTLS12, true)
	check("TLS 1.2 with an allowed suite", "ciphers.example.com", tls.VersionTLS12, true, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305)
	check("TLS 1.2 with a suite the listener does not allow", "ciphers.example.com", tls.VersionTLS12, false, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
	check("the same suite elsewhere", "open.example.com", tls.VersionTLS12, true, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)

	// A TLS-terminate listener (TLSRoutes) takes its bounds too, and an unknown version
	// or suite is refused whole, keeping the config that serves.
	backend := lineEcho(t, "stream")
	tlsPort := freePort(t)
	term := ir.Listener{Name: "gw/term", Hostname: "term.example.com", Protocol: ir.ProtocolTLS,
		TLS:      &ir.ListenerTLS{Mode: ir.TLSTerminate, MinVersion: "1.3", Certificates: []ir.Certificate{ca.leaf(t, "term", false, "term.example.com")}},
		L4Routes: []ir.L4Route{{Name: "tlsroute/default/r/rule/0", Backends: []ir.Backend{{Cluster: "stream", Weight: 1}}}}}
	lfStart(t, lfTLSConfig(tlsPort, []ir.Cluster{{Name: "stream", Protocol: ir.UpstreamTCP, Endpoints: []ir.Endpoint{backend}}}, term))
	addr = "127.0.0.1:" + strconv.Itoa(int(tlsPort))
	check("TLS 1.2 to a TLS-terminate listener with minimum 1.3", "term.example.com", tls.VersionTLS12, false)
	check("TLS 1.3 to a TLS-terminate listener with minimum 1.3", "term.example.com", tls.VersionTLS13, true)

	bad := lfHTTPSListener("gw/bad", "bad.example.com", []ir.Certificate{ca.leaf(t, "bad", false, "bad.example.com")})
	bad.TLS.MinVersion = "1.1"
	if err := s.Apply(lfTLSConfig(port, lfClusters(app), bad)); err == nil || !strings.Contains(err.Error(), `TLS minimum version "1.1" is not supported`) {
		t.Errorf("a TLS minimum of 1.1: Apply = %v", err)
	}
	bad.TLS.MinVersion, bad.TLS.CipherSuites = "", []string{"TLS_RSA_WITH_RC4_128_SHA"}
	if err := s.Apply(lfTLSConfig(port, lfClusters(app), bad)); err == nil || !strings.Contains(err.Error(), `cipher suite "TLS_RSA_WITH_RC4_128_SHA" is not supported`) {
		t.Errorf("an insecure cipher suite: Apply = %v", err)
	}
	addr = "127.0.0.1:" + strconv.Itoa(int(port))
	check("the refused configs left the old one serving", "strict.example.com", tls.VersionTLS12, false)
}

// TestListenerHSTS: an HTTPS listener's HSTS header is on every response it gives,
// set last: over the upstream's own header and after the route's and the backend's
// filters that remove it, on the route's redirects, and on 404s. A listener without
// HSTS on the same port adds none.
func TestListenerHSTS(t *testing.T) {
	ca := lfNewCA(t)
	app := lfEcho(t, "app", func(w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Strict-Transport-Security", "max-age=0")
		return false
	})
	port := freePort(t)
	removeHSTS := &ir.HeaderModifier{Remove: []string{"Strict-Transport-Security"}}
	proxied := lfPrefix("proxied", "/app", "app")
	proxied.ResponseHeaders = removeHSTS
	proxied.Backends[0].ResponseHeaders = removeHSTS
	redirect := ir.Route{Name: "redirect", Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/old"}},
		Redirect: &ir.Redirect{Path: &ir.PathModifier{Type: ir.FullPath, Value: "/new"}, StatusCode: 302}, ResponseHeaders: removeHSTS}
	strict := lfHTTPSListener("gw/strict", "strict.example.com",
		[]ir.Certificate{ca.leaf(t, "strict", false, "strict.example.com")}, redirect, proxied)
	strict.HSTS = "max-age=31536000; includeSubDomains"
	open := lfHTTPSListener("gw/open", "open.example.com",
		[]ir.Certificate{ca.leaf(t, "open", false, "open.example.com")}, lfPrefix("open", "/only", "app"))
	lfStart(t, lfTLSConfig(port, lfClusters(app), strict, open))

	for _, tc := range []struct {
		host, path string
		code       int
		want       string
	}{
		{"strict.example.com", "/app", 200, strict.HSTS},
		{"strict.example.com", "/nothing-here", 404, strict.HSTS},
		{"strict.example.com", "/old", 302, strict.HSTS},
		{"open.example.com", "/nothing-here", 404, ""},
		{"open.example.com", "/only", 200, "max-age=0"}, // the upstream's own, untouched
	} {
		for _, proto := range []string{"h2", "http/1.1"} {
			c := lfTLSClient(t, ca.pool, tc.host, proto)
			resp, _ := lfDo(t, c, "GET", lfTLSBase(port)+tc.path, tc.host, nil)
			if got := resp.Header.Get("Strict-Transport-Security"); resp.StatusCode != tc.code || got != tc.want {
				t.Errorf("%s %s%s: %d, Strict-Transport-Security %q; want %d, %q", proto, tc.host, tc.path, resp.StatusCode, got, tc.code, tc.want)
			}
		}
	}
}

// TestTLSWithoutSNIIsNotServedByAnotherListener: a client that sends no SNI
// handshakes with the hostname-less listener's settings, so a Host naming another
// listener (one that asks for TLS 1.3, say) is misdirected (421), not served.
func TestTLSWithoutSNIIsNotServedByAnotherListener(t *testing.T) {
	ca := lfNewCA(t)
	app := lfEcho(t, "app", nil)
	port := freePort(t)
	strict := lfHTTPSListener("gw/strict", "strict.example.com",
		[]ir.Certificate{ca.leaf(t, "strict", false, "strict.example.com")}, lfPrefix("strict", "/", "app"))
	strict.TLS.MinVersion = "1.3"
	anyHost := lfHTTPSListener("gw/any", "", []ir.Certificate{ca.leaf(t, "any", false, "any.example.com")}, lfPrefix("any", "/", "app"))
	lfStart(t, lfTLSConfig(port, lfClusters(app), strict, anyHost))
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	// https://127.0.0.1 sends no SNI (an IP address is never sent as one).
	resp, _ := lfDo(t, c, "GET", lfTLSBase(port)+"/", "strict.example.com", nil)
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("TLS 1.2 without SNI, Host of the TLS 1.3 listener: %d, want 421", resp.StatusCode)
	}
	resp, _ = lfDo(t, c, "GET", lfTLSBase(port)+"/", "other.example.com", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("without SNI, Host of the hostname-less listener: %d, want 200", resp.StatusCode)
	}
}

// TestListenerRateLimit: a listener's rate limit answers a client over it with 429 and
// Retry-After (the access log flags it RL), counts each client address on its own,
// and keeps its state across a config change that keeps the limit.
func TestListenerRateLimit(t *testing.T) {
	app := lfEcho(t, "app", nil)
	out := &safeBuffer{}
	accessLog, err := telemetry.NewAccessLog(telemetry.AccessLogOptions{Writer: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accessLog.Close() })
	s := New(Options{Telemetry: &telemetry.Set{Log: accessLog}})
	shutdownOnCleanup(t, s)
	port := freePort(t)
	config := func(path string) *ir.Config { // a route for path, and one for everything else
		l := lfHTTPListener("default/gw/http", "", "*", lfPrefix("r", path, "app"), lfPrefix("rest", "/", "app"))
		l.RateLimit = &ir.RateLimit{RequestsPerSecond: 1, Burst: 2}
		cfg := lfHTTPConfig(port, lfClusters(app), l)
		cfg.Gateways[0].Addresses = []string{"127.0.0.1"}
		return cfg
	}
	if err := s.Apply(config("/")); err != nil {
		t.Fatal(err)
	}
	from := func(local string) *http.Client {
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).DialContext}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 5 * time.Second}
	}
	// The limit's window is one second: an attempt that takes longer (a loaded
	// machine) proves nothing either way, and is made again with fresh clients.
	for attempt := range 3 {
		a, b := from("127.0.0."+strconv.Itoa(10+attempt)), from("127.0.1."+strconv.Itoa(10+attempt))
		over := "/over-" + strconv.Itoa(attempt)
		start := time.Now()
		var codes []int
		var retryAfter string
		get := func(c *http.Client, path string) {
			resp, _ := lfDo(t, c, "GET", lfBase(port)+path, "", nil)
			codes = append(codes, resp.StatusCode)
			if path == over {
				retryAfter = resp.Header.Get("Retry-After")
			}
		}
		get(a, "/burst")
		get(a, "/burst")
		get(a, over)
		get(b, "/other-client")
		// A route change keeps the buckets: the client is still over its limit.
		if err := s.Apply(config("/v" + strconv.Itoa(attempt+2))); err != nil {
			t.Fatal(err)
		}
		get(a, "/v"+strconv.Itoa(attempt+2)+"/after-change")
		if took := time.Since(start); took > 900*time.Millisecond {
			t.Logf("attempt %d took %s, too long for a one-second window; again", attempt, took)
			continue
		}
		want := []int{200, 200, 429, 200, 429} // burst of 2, over it, another client, after the change
		if !slices.Equal(codes, want) || retryAfter == "" {
			t.Fatalf("statuses %v (Retry-After %q), want %v with Retry-After on the 429", codes, retryAfter, want)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(out.String(), `"path":"`+over+`"`) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.Contains(line, `"path":"`+over+`"`) {
				if !strings.Contains(line, `"response_flags":"RL"`) || !strings.Contains(line, `"status":429`) {
					t.Errorf("access log line of the limited request: %s", line)
				}
				return
			}
		}
		t.Fatalf("no access log line for the limited request:\n%s", out.String())
	}
	t.Fatal("every attempt took longer than the limit's one-second window")
}

// TestListenerBodyLimit: a listener's request body limit answers 413 for a body that
// says it is larger, and for a chunked one once it gets larger, without passing it on.
func TestListenerBodyLimit(t *testing.T) {
	app := lfEcho(t, "app", nil)
	port := freePort(t)
	l := lfHTTPListener("default/gw/http", "", "*", lfPrefix("r", "/", "app"))
	l.MaxRequestBodyBytes = 10
	lfStart(t, lfHTTPConfig(port, lfClusters(app), l))
	c := lfClient(t)
	post := func(body io.Reader, length int64) int {
		req, err := http.NewRequest("POST", lfBase(port)+"/upload", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = length
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code := post(strings.NewReader("0123456789"), 10); code != 200 {
		t.Errorf("a body of the limit: %d", code)
	}
	if code := post(strings.NewReader("0123456789A"), 11); code != http.StatusRequestEntityTooLarge {
		t.Errorf("Content-Length over the limit: %d, want 413", code)
	}
	if code := post(io.MultiReader(strings.NewReader("01234"), strings.NewReader("56789ABCDEF")), -1); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a chunked body over the limit: %d, want 413", code)
	}
	for _, seen := range app.requests() {
		if len(seen.Body) > 10 {
			t.Errorf("the backend got a body of %d bytes", len(seen.Body))
		}
	}
}

// TestPortConnectionLimit: a port's connection bound closes connections over it at
// once, lets a new one in when one closes, and follows a config change.
func TestPortConnectionLimit(t *testing.T) {
	app := lfEcho(t, "app", nil)
	s := New(Options{})
	shutdownOnCleanup(t, s)
	port := freePort(t)
	config := func(maxConns uint32) *ir.Config {
		cfg := lfHTTPConfig(port, lfClusters(app), lfHTTPListener("default/gw/http", "", "*", lfPrefix("r", "/", "app")))
		cfg.Gateways[0].Ports[0].MaxConnections = maxConns
		return cfg
	}
	if err := s.Apply(config(2)); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	// served reports whether a request on a new connection is answered; the
	// connection stays open when it is.
	served := func() (net.Conn, bool) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return c, false
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return c, false
		}
		resp.Body.Close()
		return c, resp.StatusCode == 200
	}
	first, ok1 := served()
	_, ok2 := served()
	if !ok1 || !ok2 {
		t.Fatal("the first two connections were not served")
	}
	if _, ok := served(); ok {
		t.Fatal("a third connection was served with a bound of 2")
	}
	first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := served(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new connection was served after one of the two closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Apply(config(0)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, ok := served(); !ok {
			t.Fatal("a connection was refused after the bound was lifted")
		}
	}
}
