// Package translate turns a resource.Snapshot into the data plane's ir.Config and the
// status of every object this controller owns. It is a pure function of its input:
// no I/O, no clock, no globals, and output sorted wherever it comes from maps, so the
// same Snapshot always gives byte-identical results.
package translate

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/resource"
)

// DefaultControllerName is the GatewayClass spec.controllerName Portico answers to.
const DefaultControllerName = "portico.dev/gateway-controller"

// Options tune a translation.
type Options struct {
	// ControllerName selects the GatewayClasses to serve; DefaultControllerName if empty.
	ControllerName string
	// AllowExternalNameServices lets routes use ExternalName Services. Off by default,
	// as the Gateway API recommends: such a Service can point at any DNS name, including
	// Services in namespaces no ReferenceGrant opened (CVE-2021-25740).
	AllowExternalNameServices bool
	// AddressPool, when valid, is where Gateway IP addresses must come from (the
	// controller's --gateway-addresses): a spec.addresses IP outside it is not usable.
	AddressPool netip.Prefix
	// AddressProblems are Gateways ("namespace/name") the provider could not give a
	// usable address, and why (reason AddressNotAssigned or AddressNotUsable): they
	// are not programmed, and their Programmed condition says so.
	AddressProblems map[string]AddressProblem
}

// AddressProblem is why a Gateway has no usable address.
type AddressProblem struct {
	Reason, Message string
}

// Translate computes the IR and status for snap with default options.
func Translate(snap *resource.Snapshot) (*ir.Config, *Status) {
	return TranslateWith(snap, Options{})
}

// TranslateWith computes the IR and status for snap.
func TranslateWith(snap *resource.Snapshot, opts Options) (*ir.Config, *Status) {
	if opts.ControllerName == "" {
		opts.ControllerName = DefaultControllerName
	}
	t := newTranslator(snap, opts)
	t.translateGatewayClasses()
	t.translateGateways()
	t.applyListenerPolicies()
	t.translateHTTPFamily()
	t.translateL4Routes()
	return t.buildConfig(), t.buildStatus()
}

// translator carries the state of one translation; it lives for one call.
type translator struct {
	opts   Options
	snap   *resource.Snapshot
	grants referenceGrants

	classes  map[string]*classState
	gateways []*gatewayState // sorted by key
	gwByKey  map[resource.Key]*gatewayState
	// listenerSets are the ListenerSets whose parent is one of gateways.
	listenerSets []*listenerSetState
	lsByKey      map[resource.Key]*listenerSetState
	// listenerPolicies are the ListenerPolicies that name a Gateway of ours (or a
	// missing one), for status.
	listenerPolicies []*listenerPolicyState

	backends *backendResolver
	routes   []RouteStatus
}

func newTranslator(snap *resource.Snapshot, opts Options) *translator {
	t := &translator{
		opts:    opts,
		snap:    snap,
		grants:  indexReferenceGrants(snap),
		classes: map[string]*classState{},
		gwByKey: map[resource.Key]*gatewayState{},
		lsByKey: map[resource.Key]*listenerSetState{},
	}
	t.backends = newBackendResolver(snap, t.grants)
	t.backends.allowExternalName = opts.AllowExternalNameServices
	return t
}

// buildConfig assembles the IR from the programmed listeners.
func (t *translator) buildConfig() *ir.Config {
	cfg := &ir.Config{}
	all := t.backends.clusterList()
	for _, gw := range t.gateways {
		if g, ok := gw.buildIR(); ok {
			if gw.backendCert != nil {
				all = withClientCertificate(&g, all, *gw.backendCert)
			}
			cfg.Gateways = append(cfg.Gateways, g)
		}
	}
	cfg.Clusters = usedClusters(cfg, all)
	slices.SortFunc(cfg.Clusters, func(a, b ir.Cluster) int { return cmp.Compare(a.Name, b.Name) })
	return cfg
}

// withClientCertificate points the Gateway's routes at copies of their TLS clusters
// that present the Gateway's client certificate (clusters are shared by every Gateway
// that uses a backend; the certificate is one Gateway's). It returns the cluster list
// with the copies added; the routes' slices are copied before they change, since other
// listeners may share them.
func withClientCertificate(g *ir.Gateway, clusters []ir.Cluster, cert ir.Certificate) []ir.Cluster {
	byName := make(map[string]int, len(clusters))
	for i, c := range clusters {
		byName[c.Name] = i
	}
	suffix := "/client/" + g.Name
	remap := func(name string) string {
		i, ok := byName[name]
		if !ok || clusters[i].TLS == nil {
			return name
		}
		derived := name + suffix
		if _, done := byName[derived]; !done {
			c := clusters[i]
			tlsCopy := *c.TLS
			tlsCopy.ClientCertificate = &cert
			c.TLS, c.Name = &tlsCopy, derived
			byName[derived] = len(clusters)
			clusters = append(clusters, c)
		}
		return derived
	}
	remapBackends := func(bs []ir.Backend) []ir.Backend {
		bs = slices.Clone(bs)
		for i := range bs {
			bs[i].Cluster = remap(bs[i].Cluster)
		}
		return bs
	}
	for pi := range g.Ports {
		p := &g.Ports[pi]
		p.Listeners = slices.Clone(p.Listeners)
		for li := range p.Listeners {
			l := &p.Listeners[li]
			l.VirtualHosts = slices.Clone(l.VirtualHosts)
			for vi := range l.VirtualHosts {
				vh := &l.VirtualHosts[vi]
				vh.Routes = slices.Clone(vh.Routes)
				for ri := range vh.Routes {
					r := &vh.Routes[ri]
					r.Backends = remapBackends(r.Backends)
					r.Mirrors = slices.Clone(r.Mirrors)
					for mi := range r.Mirrors {
						r.Mirrors[mi].Cluster = remap(r.Mirrors[mi].Cluster)
					}
				}
			}
			l.L4Routes = slices.Clone(l.L4Routes)
			for ri := range l.L4Routes {
				l.L4Routes[ri].Backends = remapBackends(l.L4Routes[ri].Backends)
			}
		}
	}
	return clusters
}

func (t *translator) buildStatus() *Status {
	st := &Status{}
	for _, name := range sortedKeys(t.classes) {
		c := t.classes[name]
		st.GatewayClasses = append(st.GatewayClasses, GatewayClassStatus{Name: name, Status: c.status})
	}
	for _, gw := range t.gateways {
		st.Gateways = append(st.Gateways, GatewayStatus{Namespace: gw.obj.Namespace, Name: gw.obj.Name, Status: gw.status()})
	}
	for _, s := range t.listenerSets {
		st.ListenerSets = append(st.ListenerSets, ListenerSetStatus{Namespace: s.obj.Namespace, Name: s.obj.Name, Status: s.status()})
	}
	slices.SortFunc(st.ListenerSets, func(a, b ListenerSetStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	st.Routes = t.routes
	slices.SortFunc(st.Routes, func(a, b RouteStatus) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	st.BackendTLSPolicies = t.backends.policies.policyStatuses(t.snap, t.opts.ControllerName)
	st.ListenerPolicies = t.listenerPolicyStatuses()
	return st
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// usedClusters keeps the clusters some programmed route refers to: routes that did not
// attach anywhere still resolve their backends (for status) but must not cost the data
// plane a connection pool.
func usedClusters(cfg *ir.Config, all []ir.Cluster) []ir.Cluster {
	used := map[string]bool{}
	mark := func(bs []ir.Backend) {
		for _, b := range bs {
			used[b.Cluster] = true
		}
	}
	for _, g := range cfg.Gateways {
		for _, p := range g.Ports {
			for _, l := range p.Listeners {
				for _, vh := range l.VirtualHosts {
					for _, r := range vh.Routes {
						mark(r.Backends)
						for _, m := range r.Mirrors {
							used[m.Cluster] = true
						}
					}
				}
				for _, r := range l.L4Routes {
					mark(r.Backends)
				}
			}
		}
	}
	return slices.DeleteFunc(all, func(c ir.Cluster) bool { return !used[c.Name] })
}
