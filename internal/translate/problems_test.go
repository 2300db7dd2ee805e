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
