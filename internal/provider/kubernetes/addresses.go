package kubernetes

import (
	"fmt"
	"net/netip"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/resource"
	"github.com/portico-gw/portico/internal/translate"
)

// addressPool gives each Gateway of an owned class an address of its own from a prefix
// ("host" infrastructure: the data plane in this process binds it).
//
// An address, once a Gateway has it, stays with that Gateway for as long as the Gateway
// exists, so that clients and DNS records pointing at it stay right:
//   - The address in a Gateway's status comes first. The leader writes status, so every
//     replica (and a restarted one) takes the leader's choice, and they all agree.
//   - Then the one this process gave it before.
//   - A Gateway that asks for an address by name in spec.addresses gets it, unless
//     another Gateway holds it (then it is told so, and that Gateway keeps it).
//   - The others get the lowest free address, or are told the pool is exhausted.
type addressPool struct {
	prefix   netip.Prefix
	assigned map[resource.Key]netip.Addr
}

func newAddressPool(p netip.Prefix) *addressPool {
	return &addressPool{prefix: p.Masked(), assigned: map[resource.Key]netip.Addr{}}
}

// assign gives an address to every Gateway of a class with controllerName that names no
// IP address in spec.addresses (entries without a value ask for one; Hostname entries
// stay, the IP is added next to them). Such Gateways are replaced in snap by copies with
// the address in spec.addresses, which is how the translator learns it; the cached
// objects are never changed. It returns the Gateways that get no usable address, for
// translate.Options.AddressProblems.
func (a *addressPool) assign(snap *resource.Snapshot, controllerName string) map[string]translate.AddressProblem {
	owned := map[string]bool{}
	for _, gc := range snap.GatewayClasses {
		if string(gc.Spec.ControllerName) == controllerName {
			owned[gc.Name] = true
		}
	}
	problems := map[string]translate.AddressProblem{}
	held := map[netip.Addr]resource.Key{} // addresses given to Gateways that asked for none
	var auto []resource.Key
	explicit := map[resource.Key][]netip.Addr{}
	var explicitOrder []resource.Key
	for _, k := range resource.SortedKeys(snap.Gateways) {
		gw := snap.Gateways[k]
		if !owned[string(gw.Spec.GatewayClassName)] {
			continue
		}
		if ips, named := requested(gw); named {
			explicit[k] = ips
			explicitOrder = append(explicitOrder, k)
			continue
		}
		auto = append(auto, k)
	}
	// Forget Gateways that are gone or now name their own address.
	keep := map[resource.Key]bool{}
	for _, k := range auto {
		keep[k] = true
	}
	for k := range a.assigned {
		if !keep[k] {
			delete(a.assigned, k)
		}
	}
	claim := func(k resource.Key, ip netip.Addr) bool {
		if !ip.IsValid() || !a.prefix.Contains(ip) {
			return false
		}
		if _, taken := held[ip]; taken {
			return false
		}
		held[ip], a.assigned[k] = k, ip
		return true
	}
	// 1. Status (the leader's choice), 2. this process's earlier choice.
	got := map[resource.Key]bool{}
	for _, k := range auto {
		for _, sa := range snap.Gateways[k].Status.Addresses {
			if ip, err := netip.ParseAddr(sa.Value); err == nil && claim(k, ip.Unmap()) {
				got[k] = true
				break
			}
		}
	}
	for _, k := range auto {
		if got[k] {
			continue
		}
		if ip, ok := a.assigned[k]; ok && claim(k, ip) {
			got[k] = true
		} else {
			delete(a.assigned, k)
		}
	}
	// Explicit requests: an address held by another Gateway stays with it.
	requestedBy := map[netip.Addr]resource.Key{}
	for _, k := range explicitOrder {
		for _, ip := range explicit[k] {
			if other, ok := held[ip]; ok {
				problems[k.String()] = translate.AddressProblem{Reason: string(gwv1.GatewayReasonAddressNotUsable),
					Message: fmt.Sprintf("address %s is in use by Gateway %s", ip, other)}
				continue
			}
			if other, ok := requestedBy[ip]; ok && other != k {
				problems[k.String()] = translate.AddressProblem{Reason: string(gwv1.GatewayReasonAddressNotUsable),
					Message: fmt.Sprintf("address %s is asked for by Gateway %s too, which keeps it (the first in namespace/name order)", ip, other)}
				continue
			}
			requestedBy[ip] = k
		}
	}
	// 3. The lowest free address for the others.
	for _, k := range auto {
		if got[k] {
			continue
		}
		if ip, ok := a.free(held, requestedBy); ok && claim(k, ip) {
			got[k] = true
			continue
		}
		problems[k.String()] = translate.AddressProblem{Reason: string(gwv1.GatewayReasonAddressNotAssigned),
			Message: fmt.Sprintf("no free address left in the gateway address pool %s (--gateway-addresses)", a.prefix)}
	}
	for _, k := range auto {
		ip, ok := a.assigned[k]
		if !ok {
			continue
		}
		gw := snap.Gateways[k].DeepCopy()
		typ := gwv1.IPAddressType
		var addrs []gwv1.GatewaySpecAddress
		for _, sa := range gw.Spec.Addresses {
			if sa.Value != "" {
				addrs = append(addrs, sa) // a Hostname (or unsupported) entry: the translator judges it
			}
		}
		gw.Spec.Addresses = append(addrs, gwv1.GatewaySpecAddress{Type: &typ, Value: ip.String()})
		snap.Gateways[k] = gw
	}
	return problems
}

// free is the lowest address of the pool that nobody holds or asks for. In pools of
// more than two addresses the first (network) and, for IPv4, the last (broadcast) are
// skipped.
func (a *addressPool) free(held, asked map[netip.Addr]resource.Key) (netip.Addr, bool) {
	first, bits := a.prefix.Addr(), a.prefix.Addr().BitLen()
	big := a.prefix.Bits() < bits-1
	if big {
		first = first.Next()
	}
	for ip := first; ip.IsValid() && a.prefix.Contains(ip); ip = ip.Next() {
		if big && ip.Is4() && !a.prefix.Contains(ip.Next()) {
			break // the broadcast address
		}
		_, h := held[ip]
		_, r := asked[ip]
		if !h && !r {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// requested lists the IP addresses a Gateway names in spec.addresses, and says whether
// it names any IP-typed address with a value (valid or not: an invalid one is the
// translator's to report, and is no request for an address from the pool).
func requested(gw *gwv1.Gateway) ([]netip.Addr, bool) {
	var out []netip.Addr
	named := false
	for _, sa := range gw.Spec.Addresses {
		if sa.Type != nil && *sa.Type != gwv1.IPAddressType || sa.Value == "" {
			continue
		}
		named = true
		if ip, err := netip.ParseAddr(sa.Value); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out, named
}
