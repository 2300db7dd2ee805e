package dataplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

// The helpers of this file and filters_test.go are prefixed "lf" (listeners/filters) so
// they do not clash with other test files of the package.

// lfSeen is what an lfEcho backend saw of a request; it answers it as JSON.
type lfSeen struct {
	Backend  string      `json:"backend"`
	Method   string      `json:"method"`
	Host     string      `json:"host"`
	Path     string      `json:"path"`
	RawPath  string      `json:"rawPath"`
	RawQuery string      `json:"rawQuery"`
	Proto    string      `json:"proto"`
	Header   http.Header `json:"header"`
	Body     string      `json:"body"`
}

// lfBackend is a real HTTP backend on 127.0.0.1 that records every request it serves.
type lfBackend struct {
	name     string
	srv      *httptest.Server
	mu       sync.Mutex
	seen     []lfSeen
	arrived  chan struct{} // one token per request, never blocks the handler
	endpoint ir.Endpoint
}

// lfEcho starts a backend that answers every request with 200 and the JSON of lfSeen.
// respond, when set, may add response headers (or write its own answer and return true).
func lfEcho(t *testing.T, name string, respond func(w http.ResponseWriter, r *http.Request) bool) *lfBackend {
	t.Helper()
	b := &lfBackend{name: name, arrived: make(chan struct{}, 10000)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := lfSeen{Backend: name, Method: r.Method, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath,
			RawQuery: r.URL.RawQuery, Proto: r.Proto, Header: r.Header.Clone(), Body: string(body)}
		b.mu.Lock()
		b.seen = append(b.seen, s)
		b.mu.Unlock()
		select {
		case b.arrived <- struct{}{}:
		default:
		}
		w.Header().Set("X-Backend", name)
		if respond != nil && respond(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(b.srv.Close)
	addr := b.srv.Listener.Addr().(*net.TCPAddr)
	b.endpoint = ir.Endpoint{Address: "127.0.0.1", Port: uint32(addr.Port)}
	return b
}

// requests returns a copy of what the backend has seen so far.
func (b *lfBackend) requests() []lfSeen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]lfSeen(nil), b.seen...)
}

// waitFor blocks until the backend has seen n requests in total, or fails the test
// after a generous bound (a hang guard, not a performance assertion).
func (b *lfBackend) waitFor(t *testing.T, n int) []lfSeen {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if got := b.requests(); len(got) >= n {
			return got
		}
		select {
		case <-b.arrived:
		case <-deadline.C:
			t.Fatalf("backend %s: saw %d requests, want %d", b.name, len(b.requests()), n)
		}
	}
}

func (b *lfBackend) cluster() ir.Cluster {
	return ir.Cluster{Name: b.name, Protocol: ir.UpstreamHTTP1, Endpoints: []ir.Endpoint{b.endpoint}}
}

// lfClusters returns the clusters of the given backends.
func lfClusters(bs ...*lfBackend) []ir.Cluster {
	out := make([]ir.Cluster, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.cluster())
	}
	return out
}

// lfStart applies cfg to a new Server and shuts it down when the test ends.
func lfStart(t *testing.T, cfg *ir.Config) *Server {
	t.Helper()
	return startServer(t, Options{}, cfg)
}

// lfPrefix is a route forwarding a path prefix to one cluster.
func lfPrefix(name, prefix, cluster string) ir.Route {
	return ir.Route{
		Name:     name,
		Match:    ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: prefix}},
		Backends: []ir.Backend{{Cluster: cluster, Weight: 1}},
	}
}

// lfHTTPListener is a plain HTTP listener with one virtual host.
func lfHTTPListener(name, hostname, vhost string, routes ...ir.Route) ir.Listener {
	return ir.Listener{Name: name, Hostname: hostname, Protocol: ir.ProtocolHTTP,
		VirtualHosts: []ir.VirtualHost{{Hostname: vhost, Routes: routes}}}
}

// lfHTTPConfig is one Gateway on 127.0.0.1:port with HTTP listeners.
func lfHTTPConfig(port uint32, clusters []ir.Cluster, listeners ...ir.Listener) *ir.Config {
	return &ir.Config{
		Gateways: []ir.Gateway{{Name: "default/gw", Addresses: []string{"127.0.0.1"}, Ports: []ir.Port{{
			Number: port, Protocol: ir.ProtocolHTTP, Listeners: listeners,
		}}}},
		Clusters: clusters,
	}
}

// lfClient is an HTTP/1.1 client that does not follow redirects.
func lfClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// lfDo sends a request with an optional Host override and headers and returns the
// response with its body read.
func lfDo(t *testing.T, c *http.Client, method, url, host string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (host %s): %v", method, url, host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(body)
}

// lfDecode parses an lfEcho answer.
func lfDecode(t *testing.T, resp *http.Response, body string) lfSeen {
	t.Helper()
	var s lfSeen
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil {
		t.Fatalf("want 200 with a backend echo, got %d %q", resp.StatusCode, body)
	}
	return s
}

func lfBase(port uint32) string { return "http://127.0.0.1:" + strconv.Itoa(int(port)) }

// --- HTTP listeners ---

func TestListenerHTTP1(t *testing.T) {
	b := lfEcho(t, "app", nil)
	port := freePort(t)
	lfStart(t, lfHTTPConfig(port, lfClusters(b), lfHTTPListener("default/gw/http", "", "*", lfPrefix("root", "/", "app"))))

	resp, body := lfDo(t, lfClient(t), "GET", lfBase(port)+"/hello?x=1", "www.example.com", nil)
	seen := lfDecode(t, resp, body)
	if resp.Proto != "HTTP/1.1" || seen.Host != "www.example.com" || seen.Path != "/hello" || seen.RawQuery != "x=1" {
		t.Fatalf("client proto %s, backend saw %+v", resp.Proto, seen)
	}
	if xfp := seen.Header.Get("X-Forwarded-Proto"); xfp != "http" {
		t.Fatalf("X-Forwarded-Proto %q, want http", xfp)
	}
}

func TestListenerH2CPriorKnowledge(t *testing.T) {
	b := lfEcho(t, "app", nil)
	port := freePort(t)
	lfStart(t, lfHTTPConfig(port, lfClusters(b), lfHTTPListener("default/gw/http", "", "*", lfPrefix("root", "/", "app"))))

	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: protocols}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	// Several requests on the one h2c connection, concurrently.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", lfBase(port)+"/h2c/"+strconv.Itoa(i), nil)
			req.Host = "h2c.example.com"
			resp, err := c.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var s lfSeen
			if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
				errs <- err
				return
			}
			if resp.ProtoMajor != 2 || s.Host != "h2c.example.com" || s.Path != "/h2c/"+strconv.Itoa(i) {
				errs <- errors.New("h2c: proto " + resp.Proto + " backend saw " + s.Host + s.Path)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The same port still speaks HTTP/1.1.
	resp, body := lfDo(t, lfClient(t), "GET", lfBase(port)+"/h1", "", nil)
	if s := lfDecode(t, resp, body); resp.Proto != "HTTP/1.1" || s.Path != "/h1" {
		t.Fatalf("HTTP/1.1 on the h2c port: %s %+v", resp.Proto, s)
	}
}

// TestListenerIsolation follows the Gateway API conformance test
// GatewayHTTPListenerIsolation: a request is served only by the most specific listener
// its Host matches, never by the routes of a less specific one.
func TestListenerIsolation(t *testing.T) {
	b := lfEcho(t, "app", nil)
	port := freePort(t)
	cfg := lfHTTPConfig(port, lfClusters(b),
		lfHTTPListener("gw/abc-foo-example-com", "abc.foo.example.com", "abc.foo.example.com", lfPrefix("abc", "/abc-foo-example-com", "app")),
		lfHTTPListener("gw/wildcard-foo-example-com", "*.foo.example.com", "*.foo.example.com", lfPrefix("wfoo", "/wildcard-foo-example-com", "app")),
		lfHTTPListener("gw/wildcard-example-com", "*.example.com", "*.example.com", lfPrefix("wex", "/wildcard-example-com", "app")),
		lfHTTPListener("gw/empty-hostname", "", "*", lfPrefix("empty", "/empty-hostname", "app")),
	)
	lfStart(t, cfg)
	c := lfClient(t)
	paths := []string{"/empty-hostname", "/wildcard-example-com", "/wildcard-foo-example-com", "/abc-foo-example-com"}
	for host, served := range map[string]string{
		"bar.com":             "/empty-hostname",
		"bar.example.com":     "/wildcard-example-com",
		"bar.foo.example.com": "/wildcard-foo-example-com",
		"abc.foo.example.com": "/abc-foo-example-com",
		"ABC.Foo.Example.com": "/abc-foo-example-com", // hosts compare case-insensitively
		"abc.foo.example.com:" + strconv.Itoa(int(port)): "/abc-foo-example-com",
		"abc.foo.example.com.":                           "/abc-foo-example-com", // trailing dot
		"example.com":                                    "/empty-hostname",      // *.example.com needs a label in front
	} {
		for _, p := range paths {
			resp, body := lfDo(t, c, "GET", lfBase(port)+p, host, nil)
			want := http.StatusNotFound
			if p == served {
				want = http.StatusOK
			}
			if resp.StatusCode != want {
				t.Errorf("host %s path %s: status %d (%q), want %d", host, p, resp.StatusCode, body, want)
			}
		}
	}
}

// TestListenerHostRouting checks exact and wildcard virtual hosts inside one listener:
// the most specific virtual host is tried first, and a request it has no route for falls
// through to the next matching one; nothing matching anywhere is 404.
func TestListenerHostRouting(t *testing.T) {
	exact, wild, other := lfEcho(t, "exact", nil), lfEcho(t, "wild", nil), lfEcho(t, "other", nil)
	port := freePort(t)
	l := ir.Listener{Name: "gw/http", Protocol: ir.ProtocolHTTP, VirtualHosts: []ir.VirtualHost{
		{Hostname: "foo.example.com", Routes: []ir.Route{lfPrefix("exact-api", "/api", "exact")}},
		{Hostname: "*.example.com", Routes: []ir.Route{lfPrefix("wild-api", "/api", "wild"), lfPrefix("wild-web", "/web", "wild")}},
		{Hostname: "other.org", Routes: []ir.Route{lfPrefix("other", "/", "other")}},
	}}
	lfStart(t, lfHTTPConfig(port, lfClusters(exact, wild, other), l))
	c := lfClient(t)
	for _, tc := range []struct {
		host, path, backend string
	}{
		{"foo.example.com", "/api/x", "exact"},
		{"foo.example.com", "/web/x", "wild"}, // falls through to the wildcard host
		{"bar.example.com", "/api", "wild"},
		{"a.b.example.com", "/api", "wild"}, // a wildcard covers several labels
		{"other.org", "/anything", "other"},
		{"example.com", "/api", ""},      // no virtual host
		{"nothing.test", "/", ""},        // no virtual host
		{"foo.example.com", "/none", ""}, // host matches, no route
	} {
		resp, body := lfDo(t, c, "GET", lfBase(port)+tc.path, tc.host, nil)
		if tc.backend == "" {
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s%s: status %d, want 404", tc.host, tc.path, resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != tc.backend {
			t.Errorf("%s%s: status %d backend %q (%q), want %s", tc.host, tc.path, resp.StatusCode, resp.Header.Get("X-Backend"), body, tc.backend)
		}
	}
}

// --- HTTPS termination ---

// lfCA is a test certificate authority.
type lfCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func lfNewCA(t *testing.T) *lfCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "portico test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &lfCA{cert: cert, key: key, pool: pool}
}

var lfSerial struct {
	sync.Mutex
	n int64
}

// leaf issues a server certificate for names; rsaKey selects an RSA key (else ECDSA).
func (ca *lfCA) leaf(t *testing.T, name string, rsaKey bool, names ...string) ir.Certificate {
	t.Helper()
	lfSerial.Lock()
	lfSerial.n++
	serial := lfSerial.n + 100
	lfSerial.Unlock()
	var pub any
	var keyPEM []byte
	if rsaKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pub = &k.PublicKey
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = &k.PublicKey
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return ir.Certificate{Name: "secret/default/" + name, CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), KeyPEM: string(keyPEM)}
}

// lfHTTPSListener terminates TLS with certs and serves routes for hostname.
func lfHTTPSListener(name, hostname string, certs []ir.Certificate, routes ...ir.Route) ir.Listener {
	vhost := hostname
	if vhost == "" {
		vhost = "*"
	}
	return ir.Listener{Name: name, Hostname: hostname, Protocol: ir.ProtocolHTTPS,
		TLS:          &ir.ListenerTLS{Mode: ir.TLSTerminate, Certificates: certs},
		VirtualHosts: []ir.VirtualHost{{Hostname: vhost, Routes: routes}}}
}

func lfTLSConfig(port uint32, clusters []ir.Cluster, listeners ...ir.Listener) *ir.Config {
	return &ir.Config{
		Gateways: []ir.Gateway{{Name: "default/gw", Addresses: []string{"127.0.0.1"}, Ports: []ir.Port{{
			Number: port, Protocol: ir.ProtocolTLS, Listeners: listeners,
		}}}},
		Clusters: clusters,
	}
}

// lfTLSClient connects to the gateway's address with the given SNI; alpn selects the
// protocols offered ("h2", "http/1.1", or both).
func lfTLSClient(t *testing.T, roots *x509.CertPool, sni string, alpn ...string) *http.Client {
	t.Helper()
	protocols := new(http.Protocols)
	for _, p := range alpn {
		switch p {
		case "h2":
			protocols.SetHTTP2(true)
		case "http/1.1":
			protocols.SetHTTP1(true)
		}
	}
	tr := &http.Transport{
		// Go's client offers no ALPN for HTTP/1.1 alone unless told to.
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: sni, NextProtos: alpn},
		Protocols:       protocols,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func lfTLSBase(port uint32) string { return "https://127.0.0.1:" + strconv.Itoa(int(port)) }

// TestListenerHTTPSSNI follows the Gateway API conformance test
// HTTPRouteHTTPSListenerDetectMisdirectedRequests: four HTTPS listeners on one port,
// the certificate chosen by SNI, 421 when the Host belongs to another listener than the
// SNI's, 404 when the listener has no route for the Host. Both h2 and HTTP/1.1.
func TestListenerHTTPSSNI(t *testing.T) {
	ca := lfNewCA(t)
	v1, v2, v3 := lfEcho(t, "v1", nil), lfEcho(t, "v2", nil), lfEcho(t, "v3", nil)
	port := freePort(t)
	route := func(name, cluster string) ir.Route { return lfPrefix(name, "/detect-misdirected-requests", cluster) }
	// The hostname-less listener serves only example.org (its route's hostname).
	anyListener := ir.Listener{Name: "gw/https", Protocol: ir.ProtocolHTTPS,
		TLS:          &ir.ListenerTLS{Mode: ir.TLSTerminate, Certificates: []ir.Certificate{ca.leaf(t, "default", false, "example.org", "unknown-example.org")}},
		VirtualHosts: []ir.VirtualHost{{Hostname: "example.org", Routes: []ir.Route{route("r1", "v1")}}}}
	cfg := lfTLSConfig(port, lfClusters(v1, v2, v3),
		lfHTTPSListener("gw/https-with-hostname", "second-example.org", []ir.Certificate{ca.leaf(t, "second", false, "second-example.org")}, route("r2", "v2")),
		lfHTTPSListener("gw/https-with-hostname-matching-wildcard", "fourth-example.wildcard.org", []ir.Certificate{ca.leaf(t, "fourth", false, "fourth-example.wildcard.org")}, route("r4", "v1")),
		lfHTTPSListener("gw/https-with-wildcard-hostname", "*.wildcard.org", []ir.Certificate{ca.leaf(t, "wildcard", false, "*.wildcard.org")}, route("r3", "v3")),
		anyListener,
	)
	lfStart(t, cfg)

	cases := []struct {
		sni, host, backend string
		status             int
		certName           string // first DNS name of the certificate served
	}{
		{"example.org", "example.org", "v1", 200, "example.org"},
		{"example.org", "second-example.org", "", 421, "example.org"},
		{"example.org", "unknown-example.org", "", 404, "example.org"},
		{"second-example.org", "second-example.org", "v2", 200, "second-example.org"},
		{"second-example.org", "example.org", "", 421, "second-example.org"},
		{"second-example.org", "unknown-example.org", "", 421, "second-example.org"},
		{"third-example.wildcard.org", "third-example.wildcard.org", "v3", 200, "*.wildcard.org"},
		{"third-example.wildcard.org", "fith-example.wildcard.org", "v3", 200, "*.wildcard.org"},
		{"third-example.wildcard.org", "fourth-example.wildcard.org", "", 421, "*.wildcard.org"},
		{"third-example.wildcard.org", "second-example.org", "", 421, "*.wildcard.org"},
		{"third-example.wildcard.org", "unknown-example.org", "", 421, "*.wildcard.org"},
		{"fourth-example.wildcard.org", "fourth-example.wildcard.org", "v1", 200, "fourth-example.wildcard.org"},
		{"fourth-example.wildcard.org", "fith-example.wildcard.org", "", 421, "fourth-example.wildcard.org"},
		{"unknown-example.org", "example.org", "v1", 200, "example.org"},
		{"unknown-example.org", "unknown-example.org", "", 404, "example.org"},
		{"Second-Example.org", "second-example.org", "v2", 200, "second-example.org"}, // SNI is case-insensitive
	}
	for _, alpn := range []string{"h2", "http/1.1"} {
		for _, tc := range cases {
			c := lfTLSClient(t, ca.pool, tc.sni, alpn)
			resp, body := lfDo(t, c, "GET", lfTLSBase(port)+"/detect-misdirected-requests", tc.host, nil)
			name := alpn + " sni=" + tc.sni + " host=" + tc.host
			if resp.StatusCode != tc.status {
				t.Errorf("%s: status %d (%q), want %d", name, resp.StatusCode, body, tc.status)
				continue
			}
			if got := resp.TLS.PeerCertificates[0].DNSNames[0]; got != tc.certName {
				t.Errorf("%s: certificate for %s, want %s", name, got, tc.certName)
			}
			if got := resp.TLS.NegotiatedProtocol; got != alpn {
				t.Errorf("%s: ALPN %q", name, got)
			}
			if wantMajor := map[string]int{"h2": 2, "http/1.1": 1}[alpn]; resp.ProtoMajor != wantMajor {
				t.Errorf("%s: proto %s", name, resp.Proto)
			}
			if tc.backend != "" {
				s := lfDecode(t, resp, body)
				if s.Backend != tc.backend || s.Header.Get("X-Forwarded-Proto") != "https" {
					t.Errorf("%s: backend %s X-Forwarded-Proto %q, want %s https", name, s.Backend, s.Header.Get("X-Forwarded-Proto"), tc.backend)
				}
			}
		}
	}
}

// TestListenerHTTPSMisdirectedOnOneConnection sends, on a single TLS connection, a
// request for the SNI's listener and then one whose Host belongs to another listener
// (as an HTTP/2 client coalescing connections would): the second answers 421 without
// closing the connection.
func TestListenerHTTPSMisdirectedOnOneConnection(t *testing.T) {
	ca := lfNewCA(t)
	a, b := lfEcho(t, "a", nil), lfEcho(t, "b", nil)
	port := freePort(t)
	// One certificate valid for both names, as coalescing needs.
	shared := []ir.Certificate{ca.leaf(t, "shared", false, "a.example.com", "b.example.com")}
	lfStart(t, lfTLSConfig(port, lfClusters(a, b),
		lfHTTPSListener("gw/a", "a.example.com", shared, lfPrefix("a", "/", "a")),
		lfHTTPSListener("gw/b", "b.example.com", shared, lfPrefix("b", "/", "b")),
	))
	for _, alpn := range []string{"h2", "http/1.1"} {
		c := lfTLSClient(t, ca.pool, "a.example.com", alpn)
		var conns []string
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			conns = append(conns, info.Conn.LocalAddr().String())
		}}
		for _, tc := range []struct {
			host   string
			status int
		}{{"a.example.com", 200}, {"b.example.com", 421}, {"a.example.com", 200}} {
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", lfTLSBase(port)+"/x", nil)
			req.Host = tc.host
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s host %s: %v", alpn, tc.host, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("%s host %s: status %d, want %d", alpn, tc.host, resp.StatusCode, tc.status)
			}
		}
		if len(conns) != 3 || conns[0] != conns[1] || conns[1] != conns[2] {
			t.Errorf("%s: requests went over connections %v, want one", alpn, conns)
		}
	}
	if n := len(b.requests()); n != 0 {
		t.Errorf("backend b saw %d misdirected requests", n)
	}
}

// TestListenerHTTPSALPN checks that h2 and http/1.1 are both negotiated, h2 preferred
// when a client offers both.
func TestListenerHTTPSALPN(t *testing.T) {
	ca := lfNewCA(t)
	app := lfEcho(t, "app", nil)
	port := freePort(t)
	lfStart(t, lfTLSConfig(port, lfClusters(app),
		lfHTTPSListener("gw/https", "www.example.com", []ir.Certificate{ca.leaf(t, "www", false, "www.example.com")}, lfPrefix("r", "/", "app"))))
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"h2", "http/1.1"}, "h2"},
		{[]string{"http/1.1", "h2"}, "h2"}, // the server's preference
		{[]string{"h2"}, "h2"},
		{[]string{"http/1.1"}, "http/1.1"},
		{nil, ""},
	} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: ca.pool, ServerName: "www.example.com", NextProtos: tc.offer})
		if err != nil {
			t.Fatalf("offer %v: %v", tc.offer, err)
		}
		got := conn.ConnectionState().NegotiatedProtocol
		conn.Close()
		if got != tc.want {
			t.Errorf("offer %v: negotiated %q, want %q", tc.offer, got, tc.want)
		}
	}
	// Without ALPN the connection speaks HTTP/1.1.
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: "www.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /plain HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(raw), "HTTP/1.1 200 ") || !strings.Contains(string(raw), `"path":"/plain"`) {
		t.Fatalf("HTTP/1.1 without ALPN: %q", raw)
	}
}

// TestListenerHTTPSCertificateSelection covers the certificate choice beyond one per
// listener: no SNI takes the hostname-less listener's certificate, a listener with
// several certificates picks the one valid for the SNI, an SNI no listener serves fails
// the handshake, and between an RSA and an ECDSA certificate for the same name the one
// the client supports is served.
func TestListenerHTTPSCertificateSelection(t *testing.T) {
	ca := lfNewCA(t)
	app := lfEcho(t, "app", nil)
	port := freePort(t)
	lfStart(t, lfTLSConfig(port, lfClusters(app),
		lfHTTPSListener("gw/dual", "dual.example.com", []ir.Certificate{
			ca.leaf(t, "dual-ecdsa", false, "dual.example.com"),
			ca.leaf(t, "dual-rsa", true, "dual.example.com"),
		}, lfPrefix("dual", "/", "app")),
		lfHTTPSListener("gw/catch-all", "", []ir.Certificate{
			ca.leaf(t, "one", false, "one.test"),
			ca.leaf(t, "two", false, "two.test"),
		}, lfPrefix("any", "/", "app")),
	))
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	handshake := func(cfg *tls.Config) (*x509.Certificate, error) {
		cfg.RootCAs = ca.pool
		var leaf *x509.Certificate
		if cfg.ServerName == "" {
			// No SNI: verify by hand against the expected names.
			cfg.InsecureSkipVerify = true
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		leaf = conn.ConnectionState().PeerCertificates[0]
		return leaf, nil
	}
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		want string // first DNS name, and key algorithm below
		alg  x509.PublicKeyAlgorithm
	}{
		{"no SNI", &tls.Config{}, "one.test", x509.ECDSA},
		{"second certificate by SNI", &tls.Config{ServerName: "two.test"}, "two.test", x509.ECDSA},
		{"first certificate by SNI", &tls.Config{ServerName: "one.test"}, "one.test", x509.ECDSA},
		{"unknown SNI falls back to the first", &tls.Config{ServerName: "three.test"}, "one.test", x509.ECDSA},
		{"ECDSA preferred first", &tls.Config{ServerName: "dual.example.com"}, "dual.example.com", x509.ECDSA},
		{"RSA-only TLS 1.2 client", &tls.Config{ServerName: "dual.example.com", MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}, "dual.example.com", x509.RSA},
		{"ECDSA-only TLS 1.2 client", &tls.Config{ServerName: "dual.example.com", MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, "dual.example.com", x509.ECDSA},
	} {
		leaf, err := handshake(tc.cfg)
		if tc.name == "unknown SNI falls back to the first" {
			// The catch-all listener serves it; its first certificate does not name the
			// host, so verification fails, but the certificate offered is the first.
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) || verr.UnverifiedCertificates[0].DNSNames[0] != tc.want {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if leaf.DNSNames[0] != tc.want || leaf.PublicKeyAlgorithm != tc.alg {
			t.Errorf("%s: got %s %v, want %s %v", tc.name, leaf.DNSNames[0], leaf.PublicKeyAlgorithm, tc.want, tc.alg)
		}
	}

	// Without a hostname-less listener, an SNI nobody serves fails the handshake.
	port2 := freePort(t)
	lfStart(t, lfTLSConfig(port2, lfClusters(app),
		lfHTTPSListener("gw/only", "only.example.com", []ir.Certificate{ca.leaf(t, "only", false, "only.example.com")}, lfPrefix("only", "/", "app"))))
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(int(port2)),
		&tls.Config{RootCAs: ca.pool, ServerName: "elsewhere.example.com"})
	if err == nil {
		conn.Close()
		t.Fatal("handshake for an SNI no listener serves succeeded")
	}
}

// --- Gateways and addresses ---

// lfFreePortOn returns a port free on every address given.
func lfFreePortOn(t *testing.T, addrs ...string) uint32 {
	t.Helper()
	for range 20 {
		port := freePort(t)
		ok := true
		for _, a := range addrs {
			ln, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(int(port))))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no port free on all of", addrs)
	return 0
}

// TestListenerGatewaysSideBySide binds two Gateways on the same port of 127.0.0.2 and
// 127.0.0.3: each address serves only its own Gateway's routes. A third Gateway lists
// two addresses and is served on both.
func TestListenerGatewaysSideBySide(t *testing.T) {
	one, two, three := lfEcho(t, "one", nil), lfEcho(t, "two", nil), lfEcho(t, "three", nil)
	port := lfFreePortOn(t, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	gw := func(name string, addrs []string, cluster, prefix string) ir.Gateway {
		return ir.Gateway{Name: name, Addresses: addrs, Ports: []ir.Port{{Number: port, Protocol: ir.ProtocolHTTP,
			Listeners: []ir.Listener{lfHTTPListener(name+"/http", "", "*", lfPrefix(name, prefix, cluster))}}}}
	}
	cfg := &ir.Config{
		Gateways: []ir.Gateway{
			gw("default/one", []string{"127.0.0.2"}, "one", "/"),
			gw("default/two", []string{"127.0.0.3"}, "two", "/two"),
			gw("default/three", []string{"127.0.0.4", "127.0.0.5"}, "three", "/"),
		},
		Clusters: lfClusters(one, two, three),
	}
	s := lfStart(t, cfg)
	p := strconv.Itoa(int(port))
	got := s.Addresses()
	want := []string{"127.0.0.2:" + p, "127.0.0.3:" + p, "127.0.0.4:" + p, "127.0.0.5:" + p}
	if slices.Sort(got); !slices.Equal(got, want) {
		t.Fatalf("bound %v, want %v", got, want)
	}
	c := lfClient(t)
	for _, tc := range []struct {
		addr, path, backend string
		status              int
	}{
		{"127.0.0.2", "/two", "one", 200},
		{"127.0.0.3", "/two", "two", 200},
		{"127.0.0.3", "/", "", 404}, // gateway two has no route for /
		{"127.0.0.4", "/x", "three", 200},
		{"127.0.0.5", "/x", "three", 200},
	} {
		resp, body := lfDo(t, c, "GET", "http://"+tc.addr+":"+p+tc.path, "", nil)
		if resp.StatusCode != tc.status || resp.Header.Get("X-Backend") != tc.backend {
			t.Errorf("%s%s: status %d backend %q (%q), want %d %q", tc.addr, tc.path, resp.StatusCode, resp.Header.Get("X-Backend"), body, tc.status, tc.backend)
		}
	}
	// Nothing is bound on 127.0.0.1 for this port.
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+p, 5*time.Second); err == nil {
		conn.Close()
		t.Error("127.0.0.1 accepted a connection on a port only bound on other addresses")
	}

	// Two Gateways on the same address and port is rejected whole; the last good config
	// keeps serving.
	bad := &ir.Config{Gateways: []ir.Gateway{gw("default/one", []string{"127.0.0.2"}, "one", "/"), gw("default/clash", []string{"127.0.0.2"}, "two", "/")},
		Clusters: lfClusters(one, two)}
	if err := s.Apply(bad); err == nil || !strings.Contains(err.Error(), "both bind") {
		t.Fatalf("apply of clashing gateways: %v", err)
	}
	resp, _ := lfDo(t, c, "GET", "http://127.0.0.3:"+p+"/two", "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "two" {
		t.Fatalf("after a rejected apply: status %d backend %q", resp.StatusCode, resp.Header.Get("X-Backend"))
	}
}
