package translate

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/api/v1alpha1"
	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/resource"
)

// backendResolver turns backendRefs into clusters, sharing one cluster between every
// route that uses the same backend port with the same protocol.
type backendResolver struct {
	snap        *resource.Snapshot
	grants      referenceGrants
	slicesBySvc map[resource.Key][]*discoveryv1.EndpointSlice
	clusters    map[string]*ir.Cluster
	policies    *backendTLSPolicies
	// allowExternalName follows ExternalName Services (see Options).
	allowExternalName bool
}

func newBackendResolver(snap *resource.Snapshot, grants referenceGrants) *backendResolver {
	b := &backendResolver{
		snap:        snap,
		grants:      grants,
		slicesBySvc: map[resource.Key][]*discoveryv1.EndpointSlice{},
		clusters:    map[string]*ir.Cluster{},
	}
	for _, s := range resource.Sorted(snap.EndpointSlices) {
		svc := s.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := resource.Key{Namespace: s.Namespace, Name: svc}
		b.slicesBySvc[k] = append(b.slicesBySvc[k], s)
	}
	b.policies = indexBackendTLSPolicies(snap)
	return b
}

// routeUse says who refers to a backend and what it needs from it.
type routeUse struct {
	from refFrom
	// want is the protocol the route kind needs: "" for HTTP-family routes (take the
	// backend's appProtocol), H2C for gRPC, TCP or UDP for stream routes.
	want ir.Protocol
	// gateways the route is attached to, for policy status.
	gateways []*gatewayState
	// originateTLS lets a BackendTLSPolicy make the gateway speak TLS to the backend:
	// true for HTTP-family routes and TLSRoutes on terminating listeners, never for
	// TLS passthrough or TCPRoute (the stream is forwarded as it is).
	originateTLS bool
}

// resolve returns the cluster for ref, creating it on first use.
func (b *backendResolver) resolve(use routeUse, ref gwv1.BackendObjectReference) (string, *refError) {
	group, kind := "", "Service"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	ns := use.from.namespace
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	name := string(ref.Name)
	switch {
	case group == "" && kind == "Service":
	case group == v1alpha1.GroupName && kind == v1alpha1.BackendKind:
	default:
		return "", &refError{string(gwv1.RouteReasonInvalidKind),
			fmt.Sprintf("backendRef %s %s/%s: kind not supported; use a Service or a %s/%s", groupKind(group, kind), ns, name, v1alpha1.GroupName, v1alpha1.BackendKind)}
	}
	if !b.grants.allows(use.from, refTo{group, kind, ns, name}) {
		return "", &refError{string(gwv1.RouteReasonRefNotPermitted),
			fmt.Sprintf("backendRef %s %s/%s not permitted: no ReferenceGrant in namespace %s allows %s from namespace %s",
				kind, ns, name, ns, use.from.kind, use.from.namespace)}
	}
	if kind == "Service" {
		return b.resolveService(use, resource.Key{Namespace: ns, Name: name}, ref.Port)
	}
	return b.resolveBackend(use, resource.Key{Namespace: ns, Name: name}, ref.Port)
}

func (b *backendResolver) resolveService(use routeUse, key resource.Key, port *gwv1.PortNumber) (string, *refError) {
	svc, ok := b.snap.Services[key]
	if !ok {
		return "", &refError{string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("backendRef Service %s not found", key)}
	}
	if port == nil {
		return "", &refError{string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("backendRef Service %s: port is required", key)}
	}
	idx := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == int32(*port) })
	if idx < 0 && svc.Spec.Type != corev1.ServiceTypeExternalName {
		return "", &refError{string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("backendRef Service %s has no port %d", key, *port)}
	}
	var sp corev1.ServicePort
	if idx >= 0 {
		sp = svc.Spec.Ports[idx]
	} else {
		sp = corev1.ServicePort{Port: int32(*port), Protocol: corev1.ProtocolTCP}
	}
	natural, err := naturalProtocol(sp.Protocol, sp.AppProtocol)
	if err != nil {
		return "", &refError{string(gwv1.RouteReasonUnsupportedProtocol), fmt.Sprintf("backendRef Service %s port %d: %v", key, *port, err)}
	}
	if speaksTLS(sp.AppProtocol) && (!use.originateTLS || b.policies.policyFor(key, sp.Name) == nil) {
		// Never send plain text to a port that says it speaks TLS.
		return "", &refError{string(gwv1.RouteReasonUnsupportedProtocol), fmt.Sprintf(
			"backendRef Service %s port %d: appProtocol %s needs TLS to the backend; attach a BackendTLSPolicy to the Service", key, *port, *sp.AppProtocol)}
	}
	proto, err := effectiveProtocol(natural, use.want)
	if err != nil {
		return "", &refError{string(gwv1.RouteReasonUnsupportedProtocol), fmt.Sprintf("backendRef Service %s port %d: %v", key, *port, err)}
	}
	// A policy applies only where the gateway originates the connection's TLS.
	var policy *tlsPolicyState
	if use.originateTLS && proto != ir.UpstreamUDP {
		policy = b.policies.policyFor(key, sp.Name)
		b.policies.recordUse(key, sp.Name, use.gateways)
	}
	name := fmt.Sprintf("service/%s/%s/%d", key.Namespace, key.Name, *port)
	switch {
	case proto == ir.UpstreamTCP && policy != nil:
		name += "/tls" // re-encrypted stream: not the same cluster as plain TCP users of this port
	case proto != natural:
		name += "/" + strings.ToLower(string(proto))
	}
	if _, done := b.clusters[name]; done {
		return name, nil
	}
	c := &ir.Cluster{Name: name, Protocol: proto}
	switch {
	case svc.Spec.Type != corev1.ServiceTypeExternalName:
		c.Endpoints = b.endpoints(key, sp)
	case b.allowExternalName:
		c.Endpoints = []ir.Endpoint{{Address: svc.Spec.ExternalName, Port: uint32(*port)}}
	default:
		return "", &refError{string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf(
			"backendRef Service %s is an ExternalName Service, which Portico does not follow by default: it could reach any DNS name, bypassing ReferenceGrants (CVE-2021-25740)", key)}
	}
	if policy != nil {
		policy.load(b.snap)
		c.TLS = policy.tls
		if policy.tls == nil {
			// The reference itself is fine; the policy reports its own problem. The
			// cluster is unusable: never fall back to plain text.
			c.Endpoints = nil
			c.Invalid = fmt.Sprintf("BackendTLSPolicy %s/%s is invalid: %s", policy.obj.Namespace, policy.obj.Name, policy.invalidMessage())
		}
	}
	b.clusters[name] = c
	return name, nil
}

// endpoints lists the ready addresses of the Service's EndpointSlices for one port.
func (b *backendResolver) endpoints(key resource.Key, sp corev1.ServicePort) []ir.Endpoint {
	var out []ir.Endpoint
	for _, s := range b.slicesBySvc[key] {
		var port int32
		found := false
		for _, p := range s.Ports {
			pn := ""
			if p.Name != nil {
				pn = *p.Name
			}
			if pn == sp.Name && p.Port != nil {
				port, found = *p.Port, true
				break
			}
		}
		if !found {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, addr := range ep.Addresses {
				out = append(out, ir.Endpoint{Address: addr, Port: uint32(port)})
			}
		}
	}
	return sortEndpoints(out)
}

// sortEndpoints orders endpoints by address (numerically for IPs, so 10.0.0.2 comes
// before 10.0.0.10) and port, dropping duplicates.
func sortEndpoints(eps []ir.Endpoint) []ir.Endpoint {
	slices.SortFunc(eps, func(a, b ir.Endpoint) int {
		ia, errA := netip.ParseAddr(a.Address)
		ib, errB := netip.ParseAddr(b.Address)
		var byAddr int
		if errA == nil && errB == nil {
			byAddr = ia.Compare(ib)
		} else {
			byAddr = cmp.Compare(a.Address, b.Address)
		}
		return cmp.Or(byAddr, cmp.Compare(a.Port, b.Port))
	})
	return slices.Compact(eps)
}

func (b *backendResolver) resolveBackend(use routeUse, key resource.Key, port *gwv1.PortNumber) (string, *refError) {
	be, ok := b.snap.Backends[key]
	if !ok {
		return "", &refError{string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("backendRef Backend %s not found", key)}
	}
	natural, err := naturalProtocol(corev1.ProtocolTCP, be.Spec.AppProtocol)
	if err == nil && speaksTLS(be.Spec.AppProtocol) {
		err = fmt.Errorf("appProtocol %s needs TLS to the backend, which Backend objects cannot configure yet", *be.Spec.AppProtocol)
	}
	if err != nil {
		return "", &refError{string(gwv1.RouteReasonUnsupportedProtocol), fmt.Sprintf("backendRef Backend %s: %v", key, err)}
	}
	proto, err := effectiveProtocol(natural, use.want)
	if err != nil {
		return "", &refError{string(gwv1.RouteReasonUnsupportedProtocol), fmt.Sprintf("backendRef Backend %s: %v", key, err)}
	}
	name := fmt.Sprintf("backend/%s/%s", key.Namespace, key.Name)
	if port != nil {
		name += fmt.Sprintf("/%d", *port)
	}
	if proto != natural {
		name += "/" + strings.ToLower(string(proto))
	}
	if _, done := b.clusters[name]; done {
		return name, nil
	}
	c := &ir.Cluster{Name: name, Protocol: proto}
	for i, ep := range be.Spec.Endpoints {
		if ep.Address == "" || ep.Port < 1 || ep.Port > 65535 {
			return "", &refError{string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("backendRef Backend %s: endpoints[%d] needs an address and a port in 1-65535", key, i)}
		}
		p := uint32(ep.Port)
		if port != nil {
			p = uint32(*port) // the route's port overrides the endpoints' own
		}
		c.Endpoints = append(c.Endpoints, ir.Endpoint{Address: ep.Address, Port: p})
	}
	c.Endpoints = sortEndpoints(c.Endpoints)
	b.clusters[name] = c
	return name, nil
}

// naturalProtocol maps a port's protocol and appProtocol to what the data plane speaks.
func naturalProtocol(p corev1.Protocol, appProtocol *string) (ir.Protocol, error) {
	if p == corev1.ProtocolUDP {
		return ir.UpstreamUDP, nil
	}
	if appProtocol == nil {
		return ir.UpstreamHTTP1, nil
	}
	switch strings.ToLower(*appProtocol) {
	case "", "http", "https", "http1", "kubernetes.io/http":
		return ir.UpstreamHTTP1, nil
	case "kubernetes.io/h2c", "h2c", "grpc", "http2":
		return ir.UpstreamH2C, nil
	case "kubernetes.io/ws", "kubernetes.io/wss", "ws", "wss":
		return ir.UpstreamWebSocket, nil
	case "tcp":
		return ir.UpstreamTCP, nil
	case "udp":
		return ir.UpstreamUDP, nil
	}
	return "", fmt.Errorf("appProtocol %q is not supported (use http, kubernetes.io/h2c, kubernetes.io/ws, kubernetes.io/wss or tcp)", *appProtocol)
}

// speaksTLS reports whether an appProtocol says the port expects TLS.
func speaksTLS(appProtocol *string) bool {
	if appProtocol == nil {
		return false
	}
	switch strings.ToLower(*appProtocol) {
	case "https", "kubernetes.io/wss", "wss":
		return true
	}
	return false
}

// effectiveProtocol is what the route kind needs from a backend whose port speaks natural.
func effectiveProtocol(natural, want ir.Protocol) (ir.Protocol, error) {
	switch want {
	case "":
		if natural == ir.UpstreamTCP || natural == ir.UpstreamUDP {
			return "", fmt.Errorf("the port speaks %s, not HTTP", natural)
		}
		return natural, nil
	case ir.UpstreamH2C:
		if natural == ir.UpstreamUDP || natural == ir.UpstreamTCP || natural == ir.UpstreamWebSocket {
			return "", fmt.Errorf("gRPC needs HTTP/2, the port speaks %s", natural)
		}
		return ir.UpstreamH2C, nil
	case ir.UpstreamUDP:
		if natural != ir.UpstreamUDP {
			return "", fmt.Errorf("UDPRoute needs a UDP port")
		}
		return ir.UpstreamUDP, nil
	default:
		if natural == ir.UpstreamUDP {
			return "", fmt.Errorf("%s needs a TCP port", want)
		}
		return ir.UpstreamTCP, nil
	}
}

func (b *backendResolver) clusterList() []ir.Cluster {
	out := make([]ir.Cluster, 0, len(b.clusters))
	for _, n := range sortedKeys(b.clusters) {
		out = append(out, *b.clusters[n])
	}
	return out
}
