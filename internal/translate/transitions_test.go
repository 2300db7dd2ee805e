package translate

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/portico-gw/portico/internal/resource"
)

// TestStampTransitions: unchanged conditions keep their time, changed ones get now.
func TestStampTransitions(t *testing.T) {
	good := translateFile(t, "testdata/httproute-basic.yaml")
	t1 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	good.StampTransitions(nil, t1)
	good.eachConditions(func(key, _ string, conds []metav1.Condition) {
		for _, c := range conds {
			if !c.LastTransitionTime.Equal(&t1) {
				t.Fatalf("%s %s: first publication time %v, want %v", key, c.Type, c.LastTransitionTime, t1)
			}
		}
	})

	// The same inputs, except the route's backend is now missing.
	data := readCase(t, "testdata/httproute-basic.yaml")
	snap, err := resource.Load("basic.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	delete(snap.Services, resource.Key{Namespace: "infra", Name: "api"})
	_, next := Translate(snap)
	t2 := metav1.NewTime(t1.Add(time.Hour))
	next.StampTransitions(good, t2)
	changed, kept := 0, 0
	next.eachConditions(func(key, _ string, conds []metav1.Condition) {
		for _, c := range conds {
			switch {
			case c.Type == "ResolvedRefs" && key == "HTTPRoute infra/shop/p/infra/public":
				if !c.LastTransitionTime.Equal(&t2) {
					t.Errorf("the route's ResolvedRefs flipped but kept time %v", c.LastTransitionTime)
				}
				changed++
			default:
				if !c.LastTransitionTime.Equal(&t1) {
					t.Errorf("%s %s did not change but got time %v", key, c.Type, c.LastTransitionTime)
				}
				kept++
			}
		}
	})
	if changed != 1 || kept == 0 {
		t.Fatalf("changed %d, kept %d conditions; want 1 changed and the rest kept", changed, kept)
	}
}
