package resource

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestKeyString(t *testing.T) {
	if got := (Key{Namespace: "shop", Name: "web"}).String(); got != "shop/web" {
		t.Errorf("namespaced key = %q, want shop/web", got)
	}
	if got := (Key{Name: "portico"}).String(); got != "portico" {
		t.Errorf("cluster-scoped key = %q, want portico", got)
	}
}

func TestSnapshotAdd(t *testing.T) {
	s := NewSnapshot()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	if replaced, err := s.Add(svc); err != nil || replaced {
		t.Fatalf("first Add: replaced=%v err=%v", replaced, err)
	}
	again := svc.DeepCopy()
	again.Labels = map[string]string{"v": "2"}
	if replaced, err := s.Add(again); err != nil || !replaced {
		t.Fatalf("second Add: replaced=%v err=%v, want replaced", replaced, err)
	}
	if s.Services[Key{"shop", "web"}] != again {
		t.Error("second Add did not replace the first object")
	}
	// Same key, other kind: a separate object.
	if replaced, _ := s.Add(&gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}); replaced {
		t.Error("an HTTPRoute replaced a Service")
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2", s.Len())
	}
	if _, err := s.Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}); err == nil {
		t.Error("Add accepted a Pod")
	}
	if s.Len() != 2 {
		t.Errorf("Len after a rejected Add = %d, want 2", s.Len())
	}
}

func TestSortedKeys(t *testing.T) {
	m := map[Key]int{
		{"b", "a"}: 3,
		{"a", "z"}: 2,
		{"", "m"}:  0,
		{"a", "b"}: 1,
	}
	want := []Key{{"", "m"}, {"a", "b"}, {"a", "z"}, {"b", "a"}}
	if got := SortedKeys(m); !slices.Equal(got, want) {
		t.Errorf("SortedKeys = %v, want %v", got, want)
	}
	if got := Sorted(m); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("Sorted = %v, want [0 1 2 3]", got)
	}
}

func TestKnownKindsSorted(t *testing.T) {
	got := KnownKinds()
	if !slices.IsSorted(got) {
		t.Errorf("KnownKinds not sorted: %v", got)
	}
	if len(got) != 17 {
		t.Errorf("KnownKinds has %d kinds, want the 17 a Snapshot holds: %v", len(got), got)
	}
}
