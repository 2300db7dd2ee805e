package dataplane

import (
	"net/http"
	"testing"

	"github.com/portico-gw/portico/internal/ir"
)

// TestUnavailableListenerKeepsItsHostname: a TLS listener the translator could not
// program (no usable certificate) stays in the IR to reserve its hostname. Handshakes
// for its name fail, and a request for it on another listener's connection gets 421,
// instead of falling through to the catch-all listener's certificate and routes.
func TestUnavailableListenerKeepsItsHostname(t *testing.T) {
	ca := lfNewCA(t)
	catchAll := lfEcho(t, "catch-all", nil)
	port := freePort(t)
	cfg := lfTLSConfig(port, lfClusters(catchAll),
		ir.Listener{Name: "default/gw/secure", Hostname: "secure.example.com", Protocol: ir.ProtocolHTTPS,
			TLS: &ir.ListenerTLS{Mode: ir.TLSTerminate}, Unavailable: "listener has no usable certificate"},
		lfHTTPSListener("default/gw/any", "", []ir.Certificate{ca.leaf(t, "any", false, "secure.example.com", "other.example.com")},
			lfPrefix("any", "/", "catch-all")),
	)
	lfStart(t, cfg)

	resp, body := lfDo(t, lfTLSClient(t, ca.pool, "other.example.com", "http/1.1"), http.MethodGet, lfTLSBase(port)+"/", "other.example.com", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("other.example.com: status %d (%s), want 200 from the catch-all listener", resp.StatusCode, body)
	}

	if _, err := lfTLSClient(t, ca.pool, "secure.example.com", "http/1.1").Get(lfTLSBase(port) + "/"); err == nil {
		t.Fatal("handshake with SNI secure.example.com succeeded; the unavailable listener must not fall through to the catch-all certificate")
	}

	resp, body = lfDo(t, lfTLSClient(t, ca.pool, "other.example.com", "http/1.1"), http.MethodGet, lfTLSBase(port)+"/", "secure.example.com", nil)
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("Host secure.example.com on the catch-all connection: status %d (%s), want 421", resp.StatusCode, body)
	}
	if got := len(catchAll.requests()); got != 1 {
		t.Fatalf("catch-all backend saw %d requests, want 1", got)
	}
}
