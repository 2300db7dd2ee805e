package translate

import (
	"fmt"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/resource"
)

// l4Route is what TLSRoute, TCPRoute and UDPRoute have in common.
type l4Route struct {
	info  routeInfo
	want  ir.Protocol
	rules [][]gwv1.BackendRef
}

func (t *translator) translateL4Routes() {
	var routes []l4Route
	for _, r := range resource.Sorted(t.snap.TLSRoutes) {
		routes = append(routes, l4Route{
			info: routeInfo{kind: "TLSRoute", meta: r.ObjectMeta, parentRefs: r.Spec.ParentRefs,
				hostnames: hostnameStrings(r.Spec.Hostnames), usesHostnames: true},
			want: ir.UpstreamTCP, rules: l4Rules(r.Spec.Rules, func(x gwv1.TLSRouteRule) []gwv1.BackendRef { return x.BackendRefs }),
		})
	}
	for _, r := range resource.Sorted(t.snap.TCPRoutes) {
		routes = append(routes, l4Route{
			info: routeInfo{kind: "TCPRoute", meta: r.ObjectMeta, parentRefs: r.Spec.ParentRefs},
			want: ir.UpstreamTCP, rules: l4Rules(r.Spec.Rules, func(x gwv1.TCPRouteRule) []gwv1.BackendRef { return x.BackendRefs }),
		})
	}
	for _, r := range resource.Sorted(t.snap.UDPRoutes) {
		routes = append(routes, l4Route{
			info: routeInfo{kind: "UDPRoute", meta: r.ObjectMeta, parentRefs: r.Spec.ParentRefs},
			want: ir.UpstreamUDP, rules: l4Rules(r.Spec.Rules, func(x gwv1.UDPRouteRule) []gwv1.BackendRef { return x.BackendRefs }),
		})
	}
	for _, r := range routes {
		t.translateL4Route(r)
	}
}

func l4Rules[R any](rules []R, backends func(R) []gwv1.BackendRef) [][]gwv1.BackendRef {
	out := make([][]gwv1.BackendRef, len(rules))
	for i, r := range rules {
		out[i] = backends(r)
	}
	return out
}

func (t *translator) translateL4Route(r l4Route) {
	parents := t.attach(r.info)
	if len(parents) == 0 {
		return
	}
	var resolved problems
	if len(r.rules) == 0 {
		resolved.add(string(gwv1.RouteReasonBackendNotFound), "the route has no rules, so no backends")
	}
	// A TLSRoute on a terminating listener forwards decrypted bytes, so its backends may
	// be re-encrypted by a BackendTLSPolicy; on a passthrough listener they never are.
	// The two cases get their own entries (and clusters).
	entries := map[bool][]l4Entry{}
	done := map[*listenerState]bool{}
	for _, p := range parents {
		for _, a := range p.attachments {
			if done[a.listener] {
				continue
			}
			done[a.listener] = true
			originate := r.info.kind == "TLSRoute" && a.listener.tls != nil && a.listener.tls.Mode == ir.TLSTerminate
			es, ok := entries[originate]
			if !ok {
				es = t.l4Entries(r, parents, originate, &resolved)
				entries[originate] = es
			}
			for _, e := range es {
				if !r.info.usesHostnames {
					a.listener.l4 = append(a.listener.l4, e)
					continue
				}
				// One entry per SNI name, so ordering by specificity is exact: a route's
				// wildcard name must not outrank another route's exact name.
				for _, h := range a.hostnames {
					e := e
					if h != "*" {
						e.route.Hostnames = []string{h}
					}
					a.listener.l4 = append(a.listener.l4, e)
				}
			}
		}
	}
	if len(entries) == 0 {
		// Not attached anywhere: still resolve backends so status reports their problems.
		t.l4Entries(r, parents, false, &resolved)
	}
	t.finishRoute(r.info, parents, resolved)
}

// l4Entries resolves every rule's backends.
func (t *translator) l4Entries(r l4Route, parents []*parentResult, originateTLS bool, resolved *problems) []l4Entry {
	meta := r.info.meta
	use := routeUse{from: refFrom{gatewayGroup, r.info.kind, meta.Namespace}, want: r.want, gateways: gatewaysOf(parents), originateTLS: originateTLS}
	var entries []l4Entry
	for i, refs := range r.rules {
		route := ir.L4Route{Name: fmt.Sprintf("%s/%s/%s/rule/%d", strings.ToLower(r.info.kind), meta.Namespace, meta.Name, i)}
		for _, br := range refs {
			weight := uint32(1)
			if br.Weight != nil {
				weight = uint32(max(*br.Weight, 0)) // the API forbids negative weights; treat one as 0
			}
			b := ir.Backend{Weight: weight}
			cluster, err := t.backends.resolve(use, br.BackendObjectReference)
			if err != nil {
				resolved.add(err.reason, "%s", err.msg)
				b.Invalid = err.msg
			} else {
				b.Cluster = cluster
			}
			route.Backends = append(route.Backends, b)
		}
		entries = append(entries, l4Entry{route: route, key: precedence{
			created: meta.CreationTimestamp.Unix(), route: meta.Namespace + "/" + meta.Name, rule: i,
		}})
	}
	return entries
}
