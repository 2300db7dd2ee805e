package filter

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/portico-gw/portico/internal/ir"
)

func TestHeadersNil(t *testing.T) {
	if CompileHeaders(nil) != nil {
		t.Fatal("nil modifier compiled to a filter")
	}
	h := http.Header{"A": {"1"}}
	var f *Headers
	f.Apply(h) // a nil filter does nothing
	if !reflect.DeepEqual(h, http.Header{"A": {"1"}}) {
		t.Fatalf("nil filter changed headers: %v", h)
	}
}

// TestHeadersApply follows the Gateway API examples for set, add and remove, including
// the conformance "case-insensitivity" and "multiple" cases.
func TestHeadersApply(t *testing.T) {
	f := CompileHeaders(&ir.HeaderModifier{
		Set: []ir.Header{{Name: "X-Header-Set", Value: "set"}, {Name: "x-lower-set", Value: "lower"}},
		Add: []ir.Header{
			{Name: "X-Header-Add", Value: "added"},
			{Name: "x-Mixedcase-ADD-1", Value: "m1"},
			{Name: "X-New", Value: "one"},
			{Name: "X-New", Value: "two"},
		},
		Remove: []string{"x-header-remove", "X-ADDED-AND-REMOVED"},
	})
	h := http.Header{}
	h.Set("X-Header-Set", "original")
	h.Add("X-Header-Set", "second original")
	h.Set("X-Header-Add", "original")
	h.Set("X-Header-Remove", "gone")
	h.Set("Another-Header", "kept")
	f.Apply(h)
	want := http.Header{
		"X-Header-Set":      {"set"},
		"X-Lower-Set":       {"lower"},
		"X-Header-Add":      {"original", "added"},
		"X-Mixedcase-Add-1": {"m1"},
		"X-New":             {"one", "two"},
		"Another-Header":    {"kept"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %v\nwant %v", h, want)
	}
}

// TestHeadersOrder: remove runs after set and add, so a header both added and removed
// is absent.
func TestHeadersOrder(t *testing.T) {
	f := CompileHeaders(&ir.HeaderModifier{
		Set:    []ir.Header{{Name: "X-Both", Value: "set"}},
		Add:    []ir.Header{{Name: "X-Both", Value: "added"}},
		Remove: []string{"x-both"},
	})
	h := http.Header{"X-Both": {"original"}}
	f.Apply(h)
	if _, ok := h["X-Both"]; ok {
		t.Fatalf("removed header present: %v", h)
	}
}

func BenchmarkHeadersApply(b *testing.B) {
	f := CompileHeaders(&ir.HeaderModifier{
		Set:    []ir.Header{{Name: "X-Set", Value: "v"}},
		Add:    []ir.Header{{Name: "X-Add", Value: "v"}},
		Remove: []string{"X-Remove"},
	})
	h := http.Header{"X-Set": {"old"}, "X-Remove": {"x"}}
	b.ReportAllocs()
	for b.Loop() {
		h["X-Remove"] = h["X-Set"]
		delete(h, "X-Add")
		f.Apply(h)
	}
}

// The proxy shares value slices between the inbound and the outbound header: adding a
// value must never write into an array another map still uses.
func TestHeadersAddDoesNotWriteIntoSharedValues(t *testing.T) {
	backing := []string{"a", "b"}
	inbound := http.Header{"Accept": backing[:1]} // spare capacity behind "a"
	outbound := http.Header{"Accept": inbound["Accept"]}
	CompileHeaders(&ir.HeaderModifier{Add: []ir.Header{{Name: "accept", Value: "c"}}}).Apply(outbound)
	if backing[1] != "b" || len(inbound["Accept"]) != 1 {
		t.Fatalf("the inbound header changed: %q %q", backing, inbound["Accept"])
	}
	if got := outbound["Accept"]; len(got) != 2 || got[1] != "c" {
		t.Fatalf("outbound Accept = %q", got)
	}
}
