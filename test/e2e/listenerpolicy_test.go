package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestListenerPolicyGuardrails runs the quickstart with an HTTPS listener and the
// platform's ListenerPolicy from a folder of YAML: plain HTTP redirects to HTTPS, HTTPS
// refuses TLS 1.2 and answers with HSTS even though the app team's route removes the
// header, and `portico status` reports the policy.
func TestListenerPolicyGuardrails(t *testing.T) {
	t.Parallel()
	q := newQuickstart(t, quickstartPorts{})
	httpsPort := freePort(t)
	certPEM, keyPEM, pool := selfSigned(t, "www.example.com")
	q.replace(t, "gateway.yaml", "    allowedRoutes:\n", fmt.Sprintf(`    allowedRoutes:
      namespaces:
        from: All
  - name: https
    port: %d
    protocol: HTTPS
    hostname: www.example.com
    tls: {certificateRefs: [{name: www}]}
    allowedRoutes:
`, httpsPort))
	q.write(t, "platform-policy.yaml", fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: www, namespace: infra}
type: kubernetes.io/tls
data: {tls.crt: %s, tls.key: %s}
---
apiVersion: gateway.portico.dev/v1alpha1
kind: ListenerPolicy
metadata: {name: defaults, namespace: infra}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: public}]
  tls: {minVersion: "1.3"}
  hsts: {maxAgeSeconds: 31536000, includeSubDomains: true}
  httpsRedirect: {statusCode: 308, port: %d}
`, base64.StdEncoding.EncodeToString(certPEM), base64.StdEncoding.EncodeToString(keyPEM), httpsPort))
	q.replace(t, "routes.yaml", "  - matches:\n    - path: {type: PathPrefix, value: /}\n", `  - matches:
    - path: {type: PathPrefix, value: /}
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {remove: [Strict-Transport-Security]}
`)
	g := launchGateway(t, q, "--echo-backends")
	if err := g.waitReady(20 * time.Second); err != nil {
		t.Fatalf("portico did not become ready: %v\n%s", err, g.stderr.String())
	}

	// Plain HTTP: a redirect to the same URL on the HTTPS port.
	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, g.url+"/cart?id=7", nil)
	req.Host = "www.example.com"
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "https://www.example.com:" + strconv.Itoa(httpsPort) + "/cart?id=7"
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	// HTTPS: TLS 1.2 is refused, TLS 1.3 is served with HSTS.
	dial := func(maxVersion uint16) *http.Client {
		tr := &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "www.example.com", MaxVersion: maxVersion},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort)))
			},
		}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 5 * time.Second}
	}
	if resp, err := dial(tls.VersionTLS12).Get("https://www.example.com/"); err == nil {
		resp.Body.Close()
		t.Errorf("a TLS 1.2 client was served (%s)", resp.Status)
	}
	resp, err = dial(tls.VersionTLS13).Get("https://www.example.com/")
	if err != nil {
		t.Fatalf("TLS 1.3 client: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Strict-Transport-Security") != "max-age=31536000; includeSubDomains" {
		t.Errorf("HTTPS: %s, Strict-Transport-Security %q", resp.Status, resp.Header.Get("Strict-Transport-Security"))
	}

	// The policy's status, as `portico status` prints it for the platform team.
	code, stdout, stderr := runPortico(t, "status", "--admin-address", g.admin)
	if code != 0 {
		t.Errorf("portico status exited %d: %s%s", code, stdout, stderr)
	}
	stdout = strings.Join(strings.Fields(stdout), " ")
	for _, s := range []string{"ListenerPolicy infra/defaults infra/public True"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("portico status does not mention %q:\n%s", s, stdout)
		}
	}
}

// selfSigned makes a certificate for name and returns its PEM, its key's PEM and a
// pool that trusts it.
func selfSigned(t *testing.T, name string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), pool
}
