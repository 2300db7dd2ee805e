package translate

import (
	"strings"
	"testing"

	"github.com/portico-gw/portico/internal/resource"
)

func translateFile(t *testing.T, path string) *Status {
	t.Helper()
	snap, err := resource.Load(path, readCase(t, path))
	if err != nil {
		t.Fatal(err)
	}
	_, st := Translate(snap)
	return st
}

func TestProblemsEmptyWhenEverythingWorks(t *testing.T) {
	if ps := translateFile(t, "testdata/httproute-basic.yaml").Problems(); len(ps) != 0 {
		t.Fatalf("problems = %v, want none", ps)
	}
}

func TestProblemsNameObjectAndReason(t *testing.T) {
	ps := translateFile(t, "testdata/httproute-backend-not-found.yaml").Problems()
	if len(ps) == 0 {
		t.Fatal("no problems reported for a missing backend")
	}
	found := false
	for _, p := range ps {
		if strings.HasPrefix(p.Object, "HTTPRoute ") && p.Condition == "ResolvedRefs" && p.Reason == "BackendNotFound" && p.Message != "" {
			found = true
		}
	}
	if !found {
		t.Fatalf("problems %v lack the route's ResolvedRefs=False BackendNotFound", ps)
	}
}

func TestProblemsIncludeListeners(t *testing.T) {
	ps := translateFile(t, "testdata/listener-cert-missing-secret.yaml").Problems()
	for _, p := range ps {
		if strings.Contains(p.Object, " listener ") && p.Reason == "InvalidCertificateRef" {
			return
		}
	}
	t.Fatalf("problems %v lack the listener's InvalidCertificateRef", ps)
}

// ObjectCounts sorts each object into one state: its worst condition decides.
func TestObjectCounts(t *testing.T) {
	for _, c := range []struct {
		file, kind, state string
	}{
		{"testdata/httproute-basic.yaml", "HTTPRoute", "accepted"},
		{"testdata/httproute-backend-not-found.yaml", "HTTPRoute", "unresolved_refs"},
		{"testdata/httproute-parentref-no-matching-listener.yaml", "HTTPRoute", "not_accepted"},
	} {
		counts := translateFile(t, c.file).ObjectCounts()
		if counts[c.kind][c.state] < 1 || len(counts[c.kind]) != 1 {
			t.Errorf("%s: %s counts %v, want them all %s", c.file, c.kind, counts[c.kind], c.state)
		}
		if counts["Gateway"]["accepted"] < 1 || counts["GatewayClass"]["accepted"] != 1 {
			t.Errorf("%s: %v, want the Gateway and GatewayClass accepted", c.file, counts)
		}
	}
}
