package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/translate"
)

type fakeState struct {
	mu    sync.Mutex
	ready bool
	view  View
}

func (s *fakeState) Ready() bool    { s.mu.Lock(); defer s.mu.Unlock(); return s.ready }
func (s *fakeState) Snapshot() View { s.mu.Lock(); defer s.mu.Unlock(); return s.view }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestReadinessFollowsTheFirstApply(t *testing.T) {
	s := &fakeState{}
	h := Handler(s, nil)
	if code, _ := get(t, h, "/healthz"); code != 200 {
		t.Fatalf("/healthz = %d before any config, want 200 (alive)", code)
	}
	for _, p := range []string{"/readyz", "/config"} {
		if code, _ := get(t, h, p); code != http.StatusServiceUnavailable {
			t.Fatalf("%s = %d before any config, want 503", p, code)
		}
	}
	s.mu.Lock()
	s.ready = true
	s.view = View{Config: &ir.Config{}, Status: &translate.Status{}, AppliedAt: time.Now()}
	s.mu.Unlock()
	if code, _ := get(t, h, "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d after apply, want 200", code)
	}
}

func TestConfigRedactsPrivateKeys(t *testing.T) {
	cfg := &ir.Config{Gateways: []ir.Gateway{{Name: "g", Ports: []ir.Port{{Number: 443, Protocol: ir.ProtocolTLS,
		Listeners: []ir.Listener{{Name: "g/https", Protocol: ir.ProtocolHTTPS, TLS: &ir.ListenerTLS{Mode: ir.TLSTerminate,
			Certificates: []ir.Certificate{{Name: "secret/x/y", CertPEM: "CERT", KeyPEM: "-----BEGIN PRIVATE KEY----- secret"}}}}}}}}}}
	s := &fakeState{ready: true, view: View{Config: cfg}}
	code, body := get(t, Handler(s, nil), "/config")
	if code != 200 || strings.Contains(body, "PRIVATE KEY") || !strings.Contains(body, "<redacted>") || !strings.Contains(body, "CERT") {
		t.Fatalf("/config = %d, body:\n%s\nwant the certificate with its key redacted", code, body)
	}
	if cfg.Gateways[0].Ports[0].Listeners[0].TLS.Certificates[0].KeyPEM == "<redacted>" {
		t.Fatal("redaction changed the served config")
	}
}

func TestStatusDocument(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &fakeState{ready: true, view: View{Config: &ir.Config{}, Status: &translate.Status{}, AppliedAt: when,
		Errors: []Error{{Time: when, Stage: "load", Message: "routes.yaml: document 2: bad"}}}}
	code, body := get(t, Handler(s, nil), "/status")
	var doc StatusDocument
	if err := json.Unmarshal([]byte(body), &doc); err != nil || code != 200 {
		t.Fatalf("/status = %d, %v:\n%s", code, err, body)
	}
	if !doc.Ready || doc.AppliedAt == nil || !doc.AppliedAt.Equal(when) || len(doc.Errors) != 1 || doc.Errors[0].Stage != "load" {
		t.Fatalf("status document = %+v", doc)
	}
}
