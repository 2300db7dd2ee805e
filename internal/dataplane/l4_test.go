package dataplane

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

// tlsBackend is an HTTPS server with its own certificate for names: what a TLS
// passthrough route forwards to. It answers with its name and the SNI it saw.
func tlsBackend(t *testing.T, ca *lfCA, name string, names ...string) ir.Endpoint {
	t.Helper()
	c := ca.leaf(t, name, false, names...)
	pair, err := tls.X509KeyPair([]byte(c.CertPEM), []byte(c.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name+" sni="+r.TLS.ServerName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	return ir.Endpoint{Address: "127.0.0.1", Port: uint32(port)}
}

// serveConns accepts on ln until the test ends, handling each connection in its own
// goroutine and closing it afterwards.
func serveConns(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

// lineEcho is a plain TCP backend that answers each line with name: line.
func lineEcho(t *testing.T, name string) ir.Endpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveConns(t, ln, func(c net.Conn) {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			if _, err := io.WriteString(c, name+": "+sc.Text()+"\n"); err != nil {
				return
			}
		}
	})
	return ir.Endpoint{Address: "127.0.0.1", Port: uint32(ln.Addr().(*net.TCPAddr).Port)}
}

// TestTLSListenersShareAPortWithHTTPS puts a passthrough TLS listener, a terminating
// TLS listener and an HTTPS listener on one port: each connection goes where its SNI
// belongs, a passthrough route's backend presents its own certificate, and names no
// listener or route takes see the connection closed (EOF), as the Gateway API asks of
// TLS listeners.
func TestTLSListenersShareAPortWithHTTPS(t *testing.T) {
	ca := lfNewCA(t)
	web := lfEcho(t, "web", nil)
	port := freePort(t)
	cfg := lfTLSConfig(port, []ir.Cluster{
		web.cluster(),
		{Name: "pass-a", Protocol: ir.UpstreamTCP, Endpoints: []ir.Endpoint{tlsBackend(t, ca, "pass-a", "a.pass.example", "x.wild.example")}},
		{Name: "pass-b", Protocol: ir.UpstreamTCP, Endpoints: []ir.Endpoint{tlsBackend(t, ca, "pass-b", "b.pass.example")}},
		{Name: "plain", Protocol: ir.UpstreamTCP, Endpoints: []ir.Endpoint{lineEcho(t, "plain")}},
	},
		ir.Listener{Name: "default/gw/pass", Hostname: "*.pass.example", Protocol: ir.ProtocolTLS,
			TLS: &ir.ListenerTLS{Mode: ir.TLSPassthrough},
			L4Routes: []ir.L4Route{
				{Name: "tlsroute/default/a/rule/0", Hostnames: []string{"a.pass.example"}, Backends: []ir.Backend{{Cluster: "pass-a", Weight: 1}}},
				{Name: "tlsroute/default/b/rule/0", Hostnames: []string{"b.pass.example"}, Backends: []ir.Backend{{Cluster: "pass-b", Weight: 1}}},
				{Name: "tlsroute/default/bad/rule/0", Hostnames: []string{"bad.pass.example"}, Backends: []ir.Backend{{Weight: 1, Invalid: "not found"}}},
			}},
		ir.Listener{Name: "default/gw/wild", Hostname: "*.wild.example", Protocol: ir.ProtocolTLS,
			TLS: &ir.ListenerTLS{Mode: ir.TLSPassthrough},
			L4Routes: []ir.L4Route{
				{Name: "tlsroute/default/w/rule/0", Backends: []ir.Backend{{Cluster: "pass-a", Weight: 1}}},
			}},
		ir.Listener{Name: "default/gw/term", Hostname: "term.example", Protocol: ir.ProtocolTLS,
			TLS: &ir.ListenerTLS{Mode: ir.TLSTerminate, Certificates: []ir.Certificate{ca.leaf(t, "term", false, "term.example")}},
			L4Routes: []ir.L4Route{
				{Name: "tlsroute/default/t/rule/0", Backends: []ir.Backend{{Cluster: "plain", Weight: 1}}},
			}},
		lfHTTPSListener("default/gw/https", "www.example", []ir.Certificate{ca.leaf(t, "www", false, "www.example")}, lfPrefix("r", "/", "web")),
	)
	lfStart(t, cfg)
	addr := "127.0.0.1:" + strconv.Itoa(int(port))

	// Passthrough: the backend's own certificate and answer, by SNI.
	for _, tc := range []struct{ sni, want string }{
		{"a.pass.example", "pass-a sni=a.pass.example"},
		{"b.pass.example", "pass-b sni=b.pass.example"},
		{"x.wild.example", "pass-a sni=x.wild.example"},
	} {
		c := lfTLSClient(t, ca.pool, tc.sni, "http/1.1")
		resp, err := c.Get("https://" + addr + "/")
		if err != nil {
			t.Fatalf("%s: %v", tc.sni, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tc.want {
			t.Fatalf("%s: got %q, want %q", tc.sni, body, tc.want)
		}
		if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != tc.sni && !strings.HasPrefix(tc.sni, "x.") {
			t.Fatalf("%s: certificate for %q, want the backend's own", tc.sni, cn)
		}
	}

	// HTTPS on the same port still terminates here and serves HTTP routes (h2 too).
	resp, body := lfDo(t, lfTLSClient(t, ca.pool, "www.example", "h2"), "GET", "https://"+addr+"/x", "www.example", nil)
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || lfDecode(t, resp, body).Backend != "web" {
		t.Fatalf("HTTPS listener: %d %s %s", resp.StatusCode, resp.Proto, body)
	}

	// Terminate: TLS ends here, the plain stream goes to the backend, both ways.
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: "term.example"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tc, "hello\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(tc).ReadString('\n')
	tc.Close()
	if err != nil || line != "plain: hello\n" {
		t.Fatalf("terminated TLS route: %q, %v", line, err)
	}

	// No listener, no route, or an invalid backend: the connection is closed.
	for _, sni := range []string{"nobody.example", "c.pass.example", "bad.pass.example"} {
		d := &tls.Dialer{Config: &tls.Config{ServerName: sni, InsecureSkipVerify: true}}
		c, err := d.Dial("tcp", addr)
		if err == nil {
			c.Close()
			t.Fatalf("%s: handshake succeeded, want the connection closed", sni)
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("%s: %v, want EOF or a reset", sni, err)
		}
	}
}

// TestTLSPassthroughConnectionsEndWithTheSocket: forwarded connections close when the
// port is removed by a new config.
func TestTLSPassthroughConnectionsEndWithTheSocket(t *testing.T) {
	ca := lfNewCA(t)
	port := freePort(t)
	cfg := lfTLSConfig(port, []ir.Cluster{
		{Name: "pass", Protocol: ir.UpstreamTCP, Endpoints: []ir.Endpoint{tlsBackend(t, ca, "pass", "a.example")}},
	}, ir.Listener{Name: "default/gw/pass", Protocol: ir.ProtocolTLS, TLS: &ir.ListenerTLS{Mode: ir.TLSPassthrough},
		L4Routes: []ir.L4Route{{Name: "tlsroute/default/a/rule/0", Backends: []ir.Backend{{Cluster: "pass", Weight: 1}}}}})
	s := startServer(t, Options{DrainTimeout: time.Second}, cfg)
	c, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), &tls.Config{RootCAs: ca.pool, ServerName: "a.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.Apply(&ir.Config{}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
		t.Fatalf("read after the port was removed: %v, want the connection closed", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// clientCert issues a client certificate (ExtKeyUsageClientAuth) from ca.
func clientCert(t *testing.T, ca *lfCA, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestHTTPSClientCertificateValidation: a port with client validation (Gateway
// tls.frontend) serves only clients whose certificate chains to its CAs; in
// AllowInsecureFallback mode it serves every client.
func TestHTTPSClientCertificateValidation(t *testing.T) {
	serverCA, clientCA, otherCA := lfNewCA(t), lfNewCA(t), lfNewCA(t)
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientCA.cert.Raw}))
	web := lfEcho(t, "web", nil)
	good, bad := clientCert(t, clientCA, "good"), clientCert(t, otherCA, "bad")
	for _, fallback := range []bool{false, true} {
		port := freePort(t)
		l := lfHTTPSListener("default/gw/https", "", []ir.Certificate{serverCA.leaf(t, "www", false, "www.example")}, lfPrefix("r", "/", "web"))
		l.TLS.ClientValidation = &ir.ClientValidation{CACertificates: caPEM, AllowInsecureFallback: fallback}
		lfStart(t, lfTLSConfig(port, lfClusters(web), l))
		for _, tc := range []struct {
			name string
			cert *tls.Certificate
			ok   bool
		}{{"trusted", &good, true}, {"untrusted", &bad, fallback}, {"none", nil, fallback}} {
			cfg := &tls.Config{RootCAs: serverCA.pool, ServerName: "www.example"}
			if tc.cert != nil {
				cfg.Certificates = []tls.Certificate{*tc.cert}
			}
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
			resp, err := c.Get("https://127.0.0.1:" + strconv.Itoa(int(port)) + "/")
			if err == nil {
				resp.Body.Close()
			}
			if got := err == nil && resp.StatusCode == 200; got != tc.ok {
				t.Errorf("fallback=%v, %s client certificate: served=%v (err %v), want %v", fallback, tc.name, got, err, tc.ok)
			}
			c.CloseIdleConnections()
		}
	}
}

// TestTLSTerminateReencryptsToTheBackend: a TLSRoute on a terminating listener whose
// backend cluster has TLS (a BackendTLSPolicy, and the Gateway's client certificate)
// speaks TLS to the backend, verifying it and presenting the certificate; it never
// forwards the stream in plain text.
func TestTLSTerminateReencryptsToTheBackend(t *testing.T) {
	ca, clientCA := lfNewCA(t), lfNewCA(t)
	serverPair := ca.leaf(t, "backend", false, "backend.internal")
	pair, err := tls.X509KeyPair([]byte(serverPair.CertPEM), []byte(serverPair.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.pool})
	if err != nil {
		t.Fatal(err)
	}
	serveConns(t, ln, func(c net.Conn) {
		tc := c.(*tls.Conn)
		if tc.Handshake() != nil {
			return
		}
		line, err := bufio.NewReader(tc).ReadString('\n')
		if err == nil {
			io.WriteString(tc, tc.ConnectionState().PeerCertificates[0].Subject.CommonName+": "+line)
		}
	})
	backend := ir.Endpoint{Address: "127.0.0.1", Port: uint32(ln.Addr().(*net.TCPAddr).Port)}
	cc := clientCert(t, clientCA, "gateway")
	keyDER, err := x509.MarshalECPrivateKey(cc.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	clientPEM := &ir.Certificate{Name: "secret/default/client",
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cc.Certificate[0]})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))}
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))

	port := freePort(t)
	cfg := lfTLSConfig(port, []ir.Cluster{
		{Name: "mtls", Protocol: ir.UpstreamTCP, Endpoints: []ir.Endpoint{backend},
			TLS: &ir.UpstreamTLS{SNI: "backend.internal", CACertificates: caPEM, ClientCertificate: clientPEM}},
		{Name: "no-client-cert", Protocol: ir.UpstreamTCP, Endpoints: []ir.Endpoint{backend},
			TLS: &ir.UpstreamTLS{SNI: "backend.internal", CACertificates: caPEM}},
	},
		ir.Listener{Name: "default/gw/a", Hostname: "a.example", Protocol: ir.ProtocolTLS,
			TLS:      &ir.ListenerTLS{Mode: ir.TLSTerminate, Certificates: []ir.Certificate{ca.leaf(t, "a", false, "a.example")}},
			L4Routes: []ir.L4Route{{Name: "tlsroute/default/a/rule/0", Backends: []ir.Backend{{Cluster: "mtls", Weight: 1}}}}},
		ir.Listener{Name: "default/gw/b", Hostname: "b.example", Protocol: ir.ProtocolTLS,
			TLS:      &ir.ListenerTLS{Mode: ir.TLSTerminate, Certificates: []ir.Certificate{ca.leaf(t, "b", false, "b.example")}},
			L4Routes: []ir.L4Route{{Name: "tlsroute/default/b/rule/0", Backends: []ir.Backend{{Cluster: "no-client-cert", Weight: 1}}}}},
	)
	lfStart(t, cfg)
	ask := func(sni string) (string, error) {
		c, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), &tls.Config{RootCAs: ca.pool, ServerName: sni})
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "hello\n"); err != nil {
			return "", err
		}
		return bufio.NewReader(c).ReadString('\n')
	}
	if got, err := ask("a.example"); err != nil || got != "gateway: hello\n" {
		t.Fatalf("with the client certificate: %q, %v", got, err)
	}
	if got, err := ask("b.example"); err == nil {
		t.Fatalf("a backend that requires a client certificate answered %q without one", got)
	}
}

// TestClientValidationTurnedOnClosesOpenConnections: connections accepted before a
// port required client certificates are closed when it starts to; none goes on being
// served without a certificate.
func TestClientValidationTurnedOnClosesOpenConnections(t *testing.T) {
	serverCA, clientCA := lfNewCA(t), lfNewCA(t)
	web := lfEcho(t, "web", nil)
	port := freePort(t)
	l := lfHTTPSListener("default/gw/https", "", []ir.Certificate{serverCA.leaf(t, "www", false, "www.example")}, lfPrefix("r", "/", "web"))
	s := lfStart(t, lfTLSConfig(port, lfClusters(web), l))
	c := lfTLSClient(t, serverCA.pool, "www.example", "h2") // no client certificate
	url := "https://127.0.0.1:" + strconv.Itoa(int(port)) + "/"
	if resp, _ := lfDo(t, c, "GET", url, "www.example", nil); resp.StatusCode != 200 {
		t.Fatalf("before validation: %d", resp.StatusCode)
	}
	l.TLS = &ir.ListenerTLS{Mode: l.TLS.Mode, Certificates: l.TLS.Certificates, ClientValidation: &ir.ClientValidation{
		CACertificates: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientCA.cert.Raw}))}}
	if err := s.Apply(lfTLSConfig(port, lfClusters(web), l)); err != nil {
		t.Fatal(err)
	}
	// The open HTTP/2 connection is closed (shortly after the Apply): every request
	// from then on needs a new handshake, which fails without a certificate.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := c.Get(url)
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("still served without a client certificate after validation was turned on")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClientValidationMustAgreeOnAPort: listeners of one port with different client
// validation are refused (the config is not applied), never served by whichever
// listener came first.
func TestClientValidationMustAgreeOnAPort(t *testing.T) {
	serverCA, a, b := lfNewCA(t), lfNewCA(t), lfNewCA(t)
	bundle := func(ca *lfCA) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))
	}
	web := lfEcho(t, "web", nil)
	one := lfHTTPSListener("default/gw/one", "one.example", []ir.Certificate{serverCA.leaf(t, "one", false, "one.example")}, lfPrefix("r", "/", "web"))
	two := lfHTTPSListener("default/gw/two", "two.example", []ir.Certificate{serverCA.leaf(t, "two", false, "two.example")}, lfPrefix("r", "/", "web"))
	one.TLS.ClientValidation = &ir.ClientValidation{CACertificates: bundle(a)}
	two.TLS.ClientValidation = &ir.ClientValidation{CACertificates: bundle(b)}
	s := New(Options{})
	shutdownOnCleanup(t, s)
	err := s.Apply(lfTLSConfig(freePort(t), lfClusters(web), one, two))
	if err == nil || !strings.Contains(err.Error(), "client validation differs") {
		t.Fatalf("Apply = %v, want a client validation conflict", err)
	}
}
