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

// ipOf is the IP address assign put in a Gateway's spec ("" for none).
func ipOf(s *resource.Snapshot, name string) string {
	g := s.Gateways[resource.Key{Namespace: "ns", Name: name}]
	for _, a := range g.Spec.Addresses {
		if a.Type == nil || *a.Type == gwv1.IPAddressType {
			return a.Value
		}
	}
	return ""
}

func withStatus(g *gwv1.Gateway, ip string) *gwv1.Gateway {
	g.Status.Addresses = []gwv1.GatewayStatusAddress{{Value: ip}}
	return g
}

func withSpec(g *gwv1.Gateway, addrs ...gwv1.GatewaySpecAddress) *gwv1.Gateway {
	g.Spec.Addresses = addrs
	return g
}

func gw(name string) *gwv1.Gateway { return gateway("ns", name, "ours", 80) }

func TestAddressPool(t *testing.T) {
	const ctl = "portico.dev/x"
	p := newAddressPool(pool("127.0.10.0/29")) // .1 to .6 (.0 and .7 are skipped)
	a, b := gw("a"), gw("b")
	other := gateway("ns", "other", "theirs", 80)
	s := addrSnapshot(a, b, other)
	if problems := p.assign(s, ctl); len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	if ipOf(s, "a") != "127.0.10.1" || ipOf(s, "b") != "127.0.10.2" || ipOf(s, "other") != "" {
		t.Fatalf("a=%q b=%q other=%q", ipOf(s, "a"), ipOf(s, "b"), ipOf(s, "other"))
	}
	if len(a.Spec.Addresses) != 0 {
		t.Error("the cached Gateway was modified; only a copy may be")
	}

	// a goes away: b keeps its address, and a Gateway asking for a's old one gets it.
	named := withSpec(gw("named"), gwv1.GatewaySpecAddress{Value: "127.0.10.1"})
	s = addrSnapshot(b, named)
	if problems := p.assign(s, ctl); len(problems) != 0 || ipOf(s, "b") != "127.0.10.2" || ipOf(s, "named") != "127.0.10.1" {
		t.Fatalf("b=%q named=%q problems %v", ipOf(s, "b"), ipOf(s, "named"), problems)
	}

	// An address a Gateway holds stays with it; a later request for it is refused.
	thief := withSpec(gw("thief"), gwv1.GatewaySpecAddress{Value: "127.0.10.2"})
	s = addrSnapshot(b, thief)
	problems := p.assign(s, ctl)
	if ipOf(s, "b") != "127.0.10.2" || problems["ns/thief"].Reason != "AddressNotUsable" {
		t.Fatalf("b=%q thief problem %+v", ipOf(s, "b"), problems["ns/thief"])
	}

	// A Hostname address stays, and the pool's IP is added next to it.
	host := withSpec(gw("host"), gwv1.GatewaySpecAddress{Type: ptrTo(gwv1.HostnameAddressType), Value: "gw.example.com"})
	s = addrSnapshot(host)
	p.assign(s, ctl)
	if g := s.Gateways[resource.Key{Namespace: "ns", Name: "host"}]; len(g.Spec.Addresses) != 2 || g.Spec.Addresses[0].Value != "gw.example.com" {
		t.Fatalf("host's addresses %+v", g.Spec.Addresses)
	}
}

// After a restart (a new pool), and on every replica, the address in status wins, even
// over one this process chose: the leader writes status, so all replicas agree.
func TestAddressPoolFollowsStatus(t *testing.T) {
	const ctl = "portico.dev/x"
	p := newAddressPool(pool("127.0.10.0/29"))
	// "a" was created while Portico was down and sorts before "b", which had .1.
	s := addrSnapshot(gw("a"), withStatus(gw("b"), "127.0.10.1"))
	p.assign(s, ctl)
	if ipOf(s, "b") != "127.0.10.1" || ipOf(s, "a") != "127.0.10.2" {
		t.Fatalf("after a restart a=%q b=%q; b must keep .1", ipOf(s, "a"), ipOf(s, "b"))
	}
	// A replica that chose differently takes the leader's choice once it is in status.
	s = addrSnapshot(withStatus(gw("a"), "127.0.10.5"), withStatus(gw("b"), "127.0.10.1"))
	p.assign(s, ctl)
	if ipOf(s, "a") != "127.0.10.5" {
		t.Fatalf("a=%q, want the status address .5", ipOf(s, "a"))
	}
}

func TestAddressPoolExhausted(t *testing.T) {
	p := newAddressPool(pool("127.0.10.0/30")) // .1 and .2
	s := addrSnapshot(gw("a"), gw("b"), gw("c"))
	problems := p.assign(s, "portico.dev/x")
	if ipOf(s, "a") != "127.0.10.1" || ipOf(s, "b") != "127.0.10.2" || ipOf(s, "c") != "" {
		t.Fatalf("a=%q b=%q c=%q", ipOf(s, "a"), ipOf(s, "b"), ipOf(s, "c"))
	}
	if problems["ns/c"].Reason != "AddressNotAssigned" || len(problems) != 1 {
		t.Fatalf("problems %+v, want c: AddressNotAssigned", problems)
	}
	// A /32 pool is one address, and it is usable.
	p = newAddressPool(pool("127.0.10.9/32"))
	s = addrSnapshot(gw("a"))
	p.assign(s, "portico.dev/x")
	if ipOf(s, "a") != "127.0.10.9" {
		t.Fatalf("a /32 pool gave %q", ipOf(s, "a"))
	}
}

func ptrTo[T any](v T) *T { return &v }
