package kubernetes

import (
	"testing"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/resource"
)

func addrSnapshot(gws ...*gwv1.Gateway) *resource.Snapshot {
	s := resource.NewSnapshot()
	_, _ = s.Add(gatewayClass("ours", "portico.dev/x"))
	_, _ = s.Add(gatewayClass("theirs", "example.com/y"))
	for _, g := range gws {
		_, _ = s.Add(g)
	}
	return s
}

func specAddress(s *resource.Snapshot, ns, name string) string {
	g := s.Gateways[resource.Key{Namespace: ns, Name: name}]
	if len(g.Spec.Addresses) == 0 {
		return ""
	}
	return g.Spec.Addresses[0].Value
}

func TestAddressPool(t *testing.T) {
	p := newAddressPool(pool("127.0.10.0/30")) // room for .1, .2, .3
	a, b := gateway("ns", "a", "ours", 80), gateway("ns", "b", "ours", 80)
	other := gateway("ns", "other", "theirs", 80)
	named := gateway("ns", "named", "ours", 80)
	named.Spec.Addresses = []gwv1.GatewaySpecAddress{{Value: "127.0.10.1"}}

	s := addrSnapshot(a, b, other)
	p.assign(s, "portico.dev/x")
	if got := specAddress(s, "ns", "a"); got != "127.0.10.1" {
		t.Errorf("a got %q, want the pool's first address", got)
	}
	if got := specAddress(s, "ns", "b"); got != "127.0.10.2" {
		t.Errorf("b got %q", got)
	}
	if got := specAddress(s, "ns", "other"); got != "" {
		t.Errorf("another controller's Gateway got %q", got)
	}
	if len(a.Spec.Addresses) != 0 {
		t.Error("the cached Gateway was modified; only a copy may be")
	}

	// a goes away: b keeps its address. A Gateway naming a's old address gets it.
	s = addrSnapshot(b, named)
	p.assign(s, "portico.dev/x")
	if got := specAddress(s, "ns", "b"); got != "127.0.10.2" {
		t.Errorf("b moved to %q", got)
	}
	if got := specAddress(s, "ns", "named"); got != "127.0.10.1" {
		t.Errorf("named has %q", got)
	}

	// A new pool (a restart) gives a Gateway the address in its status if free, and
	// says nothing when the pool is exhausted.
	p = newAddressPool(pool("127.0.10.0/30"))
	b.Status.Addresses = []gwv1.GatewayStatusAddress{{Value: "127.0.10.3"}}
	c, d := gateway("ns", "c", "ours", 80), gateway("ns", "d", "ours", 80)
	s = addrSnapshot(b, c, d, named)
	p.assign(s, "portico.dev/x")
	if got := specAddress(s, "ns", "b"); got != "127.0.10.3" {
		t.Errorf("after a restart b has %q, want its status address", got)
	}
	if got := specAddress(s, "ns", "c"); got != "127.0.10.2" {
		t.Errorf("c has %q", got)
	}
	if got := specAddress(s, "ns", "d"); got != "" {
		t.Errorf("d has %q from an exhausted pool", got)
	}
}
