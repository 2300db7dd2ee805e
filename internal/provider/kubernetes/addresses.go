package kubernetes

import (
	"net/netip"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/resource"
)

// addressPool gives each Gateway of an owned class an address of its own from a prefix
// ("host" infrastructure: the data plane in this process binds it). A Gateway keeps its
// address for as long as it exists, also across restarts (the address in its status is
// taken again), so that clients and DNS records pointing at it stay right.
type addressPool struct {
	prefix   netip.Prefix
	assigned map[resource.Key]netip.Addr
}

func newAddressPool(p netip.Prefix) *addressPool {
	return &addressPool{prefix: p.Masked(), assigned: map[resource.Key]netip.Addr{}}
}

// assign fills in an address for every Gateway of a class with controllerName that asks
// for none (no spec.addresses, or only entries without a value). Such Gateways are
// replaced in snap by copies with the address in spec.addresses, which is how the
// translator learns it. Gateways that name their own addresses keep them; the translator
// reports those outside the pool as not usable.
func (a *addressPool) assign(snap *resource.Snapshot, controllerName string) {
	owned := map[string]bool{}
	for _, gc := range snap.GatewayClasses {
		if string(gc.Spec.ControllerName) == controllerName {
			owned[gc.Name] = true
		}
	}
	used := map[netip.Addr]resource.Key{}
	var want []resource.Key
	for _, k := range resource.SortedKeys(snap.Gateways) {
		gw := snap.Gateways[k]
		if !owned[string(gw.Spec.GatewayClassName)] {
			continue
		}
		if ips := requested(gw); len(ips) > 0 {
			for _, ip := range ips {
				used[ip] = k
			}
			delete(a.assigned, k)
			continue
		}
		want = append(want, k)
	}
	// Forget Gateways that are gone or no longer ask for an address.
	keep := map[resource.Key]bool{}
	for _, k := range want {
		keep[k] = true
	}
	for k := range a.assigned {
		if !keep[k] {
			delete(a.assigned, k)
		}
	}
	for k, ip := range a.assigned {
		if _, taken := used[ip]; taken {
			delete(a.assigned, k) // someone asked for it by name since
			continue
		}
		used[ip] = k
	}
	// Gateways without an address yet: the one in their status if it is free (a
	// restart), else the lowest free one.
	for _, k := range want {
		if _, ok := a.assigned[k]; ok {
			continue
		}
		gw := snap.Gateways[k]
		for _, sa := range gw.Status.Addresses {
			ip, err := netip.ParseAddr(sa.Value)
			if err != nil || !a.prefix.Contains(ip) {
				continue
			}
			if _, taken := used[ip]; !taken {
				a.assigned[k], used[ip] = ip, k
				break
			}
		}
		if _, ok := a.assigned[k]; ok {
			continue
		}
		if ip, ok := a.free(used); ok {
			a.assigned[k], used[ip] = ip, k
		}
	}
	for _, k := range want {
		ip, ok := a.assigned[k]
		if !ok {
			continue // the pool is exhausted: the Gateway stays without an address
		}
		gw := snap.Gateways[k].DeepCopy()
		typ := gwv1.IPAddressType
		gw.Spec.Addresses = []gwv1.GatewaySpecAddress{{Type: &typ, Value: ip.String()}}
		snap.Gateways[k] = gw
	}
}

// free is the lowest address of the pool that is not used, skipping the prefix's own
// (network) address.
func (a *addressPool) free(used map[netip.Addr]resource.Key) (netip.Addr, bool) {
	for ip := a.prefix.Addr().Next(); ip.IsValid() && a.prefix.Contains(ip); ip = ip.Next() {
		if _, taken := used[ip]; !taken {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// requested lists the IP addresses a Gateway names in spec.addresses.
func requested(gw *gwv1.Gateway) []netip.Addr {
	var out []netip.Addr
	for _, sa := range gw.Spec.Addresses {
		if sa.Type != nil && *sa.Type != gwv1.IPAddressType {
			continue
		}
		if ip, err := netip.ParseAddr(sa.Value); err == nil {
			out = append(out, ip)
		}
	}
	return out
}
