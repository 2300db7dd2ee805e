package translate

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/resource"
)

// gatewayState is one Gateway of an accepted, owned GatewayClass.
type gatewayState struct {
	obj       *gwv1.Gateway
	listeners []*listenerState // the Gateway's own, in spec order
	// sets are the ListenerSets the Gateway takes, in precedence order (their
	// listeners come after the Gateway's own; see all).
	sets []*listenerSetState
	// addresses are the usable spec.addresses, with their types defaulted.
	addresses []gwv1.GatewayStatusAddress
	// rejected holds reasons the Gateway is not Accepted (unsupported address types,
	// infrastructure parameters); unusable holds addresses that are of a supported type
	// but cannot be used (Accepted, but not Programmed).
	rejected problems
	unusable problems
	// backendCert is the client certificate presented to TLS backends
	// (tls.backend.clientCertificateRef); backendCertErr says why it is unusable.
	backendCert    *ir.Certificate
	backendCertErr *refError
}

func (t *translator) translateGateways() {
	setsByParent := t.listenerSetsByParent()
	for _, gw := range resource.Sorted(t.snap.Gateways) {
		class, ok := t.classes[string(gw.Spec.GatewayClassName)]
		if !ok {
			continue
		}
		g := &gatewayState{obj: gw}
		if !class.accepted {
			// Still ours to report: a Gateway must not keep saying Programmed while
			// nothing of it is served.
			g.rejected.add(string(gwv1.GatewayReasonInvalidParameters),
				"GatewayClass %s is not accepted (see its status), so none of its Gateways is served", gw.Spec.GatewayClassName)
		}
		g.validateAddresses(t.opts)
		if infra := gw.Spec.Infrastructure; infra != nil && infra.ParametersRef != nil {
			ref := infra.ParametersRef
			g.rejected.add(string(gwv1.GatewayReasonInvalidParameters),
				"infrastructure.parametersRef %s %s: Portico reads no Gateway parameters; remove it", groupKind(string(ref.Group), string(ref.Kind)), ref.Name)
		}
		if gw.Spec.TLS != nil && gw.Spec.TLS.Backend != nil && gw.Spec.TLS.Backend.ClientCertificateRef != nil {
			cert, err := t.loadCertificate(gatewayOwner(gw), *gw.Spec.TLS.Backend.ClientCertificateRef)
			if err != nil {
				g.backendCertErr = err
			} else {
				g.backendCert = &cert
			}
		}
		for i := range gw.Spec.Listeners {
			g.listeners = append(g.listeners, t.newListener(g, nil, &gw.Spec.Listeners[i]))
		}
		t.addListenerSets(g, setsByParent[resource.KeyOf(gw)])
		g.detectConflicts()
		t.gateways = append(t.gateways, g)
		t.gwByKey[resource.KeyOf(gw)] = g
	}
	t.detectPortClashes()
}

// detectPortClashes finds Gateways that would bind the same port on the same address
// (a Gateway without addresses binds the data plane's default address, which clashes
// with every address). The older Gateway keeps the port; the newer one's listeners there
// are not accepted (PortUnavailable), so one team's Gateway cannot stop another's
// config from being applied. Every Gateway's own listeners claim their ports before any
// ListenerSet's do (sets in their precedence order), so a set attached to an old
// Gateway cannot take a port from a newer Gateway that already serves it.
func (t *translator) detectPortClashes() {
	type binding struct {
		address string // "" for the default address
		gw      *gatewayState
	}
	owners := map[portKey][]binding{} // oldest first
	claim := func(g *gatewayState, listeners []*listenerState) {
		addrs := []string{""}
		if len(g.addresses) > 0 {
			addrs = addrs[:0]
			for _, a := range g.addresses {
				addrs = append(addrs, normalizeAddress(a.Value))
			}
		}
		var mine []portKey
		for _, l := range listeners {
			if !l.canAttach() {
				continue
			}
			p := portKey{l.spec.Port, transport(l.kind)}
			var other *gatewayState
			for _, b := range owners[p] {
				if b.gw != g && slices.ContainsFunc(addrs, func(a string) bool { return a == "" || b.address == "" || a == b.address }) {
					other = b.gw
					break
				}
			}
			if other != nil {
				l.accepted.add(string(gwv1.ListenerReasonPortUnavailable),
					"port %d is already used by Gateway %s/%s on the same address", l.spec.Port, other.obj.Namespace, other.obj.Name)
				continue
			}
			if !slices.Contains(mine, p) {
				mine = append(mine, p)
			}
		}
		for _, p := range mine {
			for _, a := range addrs {
				if !slices.Contains(owners[p], binding{a, g}) {
					owners[p] = append(owners[p], binding{a, g})
				}
			}
		}
	}
	byAge := slices.Clone(t.gateways)
	slices.SortStableFunc(byAge, func(a, b *gatewayState) int {
		return cmp.Or(a.obj.CreationTimestamp.Compare(b.obj.CreationTimestamp.Time),
			cmp.Compare(a.obj.Namespace+"/"+a.obj.Name, b.obj.Namespace+"/"+b.obj.Name))
	})
	var sets []*listenerSetState
	for _, g := range byAge {
		if g.bindable() {
			claim(g, g.listeners)
			sets = append(sets, g.sets...)
		}
	}
	slices.SortStableFunc(sets, func(a, b *listenerSetState) int { return compareListenerSets(a.obj, b.obj) })
	for _, s := range sets {
		claim(s.gw, s.listeners)
	}
}

// normalizeAddress makes two spellings of one IP compare equal.
func normalizeAddress(a string) string {
	if ip, err := netip.ParseAddr(a); err == nil {
		return ip.String()
	}
	return strings.ToLower(a)
}

// validateAddresses accepts IP addresses (type IPAddress, the default) and hostnames.
// An address without a value asks for one to be assigned, which the provider does.
func (g *gatewayState) validateAddresses(opts Options) {
	pool := opts.AddressPool
	if p, ok := opts.AddressProblems[resource.KeyOf(g.obj).String()]; ok {
		g.unusable.add(p.Reason, "%s", p.Message)
	}
	for _, a := range g.obj.Spec.Addresses {
		typ := gwv1.IPAddressType
		if a.Type != nil {
			typ = *a.Type
		}
		switch typ {
		case gwv1.IPAddressType:
			if a.Value == "" {
				continue
			}
			ip, err := netip.ParseAddr(a.Value)
			if err != nil {
				g.unusable.add(string(gwv1.GatewayReasonAddressNotUsable), "address %q is not a valid IP address", a.Value)
				continue
			}
			if pool.IsValid() && !pool.Contains(ip.Unmap()) {
				g.unusable.add(string(gwv1.GatewayReasonAddressNotUsable),
					"address %s is outside the gateway address pool %s: ask for an address in the pool, or none to be given one", a.Value, pool)
				continue
			}
			g.addresses = append(g.addresses, gwv1.GatewayStatusAddress{Type: &typ, Value: a.Value})
		case gwv1.HostnameAddressType:
			if a.Value == "" {
				continue
			}
			g.addresses = append(g.addresses, gwv1.GatewayStatusAddress{Type: &typ, Value: a.Value})
		default:
			g.rejected.add(string(gwv1.GatewayReasonUnsupportedAddress),
				"address type %q is not supported (use IPAddress or Hostname)", typ)
		}
	}
}

// portKind groups listener protocols that can share one socket.
func portKind(p gwv1.ProtocolType) ir.Protocol {
	switch p {
	case gwv1.HTTPProtocolType:
		return ir.ProtocolHTTP
	case gwv1.HTTPSProtocolType, gwv1.TLSProtocolType:
		return ir.ProtocolTLS
	case gwv1.TCPProtocolType:
		return ir.ProtocolTCP
	case gwv1.UDPProtocolType:
		return ir.ProtocolUDP
	}
	return ""
}

// transport is the socket type: TCP and UDP listeners may share a port number.
func transport(k ir.Protocol) string {
	if k == ir.ProtocolUDP {
		return "udp"
	}
	return "tcp"
}

// all is every listener the Gateway serves: its own, then its ListenerSets'.
func (g *gatewayState) all() []*listenerState {
	if len(g.sets) == 0 {
		return g.listeners
	}
	out := slices.Clone(g.listeners)
	for _, s := range g.sets {
		out = append(out, s.listeners...)
	}
	return out
}

type portKey struct {
	port      gwv1.PortNumber
	transport string
}

// detectConflicts marks listeners that cannot be told apart: different protocols on one
// port, or the same hostname twice on one port. Among the Gateway's own listeners the
// spec forbids picking a winner, so every listener of a conflicting group is marked and
// none of them binds the port. A ListenerSet's listener comes after them and after
// older sets' listeners, and is the one marked when it clashes with one of those.
// It also flags TLS listeners whose hostnames overlap (OverlappingTLSConfig), which are
// served but let a client's SNI and Host disagree about the listener.
func (g *gatewayState) detectConflicts() {
	byPort := map[portKey][]*listenerState{}
	var order []portKey
	for _, l := range g.listeners {
		if !l.accepted.ok() || l.kind == "" {
			continue
		}
		k := portKey{l.spec.Port, transport(l.kind)}
		if _, seen := byPort[k]; !seen {
			order = append(order, k)
		}
		byPort[k] = append(byPort[k], l)
	}
	for _, k := range order {
		markConflicts(k, byPort[k])
	}
	for _, s := range g.sets {
		for _, l := range s.listeners {
			if !l.accepted.ok() || l.kind == "" {
				continue
			}
			k := portKey{l.spec.Port, transport(l.kind)}
			if _, seen := byPort[k]; !seen {
				order = append(order, k)
			}
			if !l.conflictsWithEarlier(byPort[k]) {
				byPort[k] = append(byPort[k], l)
			}
		}
	}
	for _, k := range order {
		markOverlappingTLS(slices.DeleteFunc(slices.Clone(byPort[k]), func(l *listenerState) bool {
			return l.conflict != "" || l.kind != ir.ProtocolTLS
		}))
	}
}

// listenerHostKey is the hostname that tells listeners of one port apart; TCP and UDP
// listeners cannot be told apart by hostname.
func (l *listenerState) listenerHostKey() string {
	if l.kind == ir.ProtocolTCP || l.kind == ir.ProtocolUDP {
		return ""
	}
	return l.hostname()
}

// markConflicts marks the Gateway's own listeners of one port that conflict.
func markConflicts(k portKey, ls []*listenerState) {
	if slices.ContainsFunc(ls, func(l *listenerState) bool { return l.kind != ls[0].kind }) {
		var protos []string
		for _, l := range ls {
			protos = append(protos, fmt.Sprintf("%q (%s)", l.spec.Name, l.spec.Protocol))
		}
		msg := fmt.Sprintf("listeners on port %d use protocols that cannot share a port: %s", k.port, strings.Join(protos, ", "))
		for _, l := range ls {
			l.conflict, l.conflictMsg = gwv1.ListenerReasonProtocolConflict, msg
		}
		return
	}
	byHost := map[string][]*listenerState{}
	for _, l := range ls {
		byHost[l.listenerHostKey()] = append(byHost[l.listenerHostKey()], l)
	}
	for h, group := range byHost {
		if len(group) < 2 {
			continue
		}
		names := make([]string, len(group))
		for i, l := range group {
			names[i] = string(l.spec.Name)
		}
		msg := fmt.Sprintf("listeners %s all serve %s on port %d", joinQuoted(names), shownHost(h), k.port)
		for _, l := range group {
			l.conflict, l.conflictMsg = gwv1.ListenerReasonHostnameConflict, msg
		}
	}
}

func shownHost(h string) string {
	if h == "" {
		return "(any hostname)"
	}
	return h
}

// conflictsWithEarlier marks a ListenerSet listener that clashes with a listener that
// takes precedence on its port (earlier: the Gateway's own, or an older set's), and
// reports whether it did. The Gateway's own listeners hold their port and hostname even
// when they conflict among themselves: a set cannot take over what the Gateway's owner
// asked for.
func (l *listenerState) conflictsWithEarlier(earlier []*listenerState) bool {
	holds := func(e *listenerState) bool { return e.set == nil || e.conflict == "" }
	for _, e := range earlier {
		if holds(e) && e.kind != l.kind {
			l.conflict = gwv1.ListenerReasonProtocolConflict
			l.conflictMsg = fmt.Sprintf("port %d is already served with protocol %s by %s, which takes precedence", l.spec.Port, e.spec.Protocol, e.describeTo(l))
			return true
		}
	}
	for _, e := range earlier {
		if holds(e) && e.listenerHostKey() == l.listenerHostKey() {
			l.conflict = gwv1.ListenerReasonHostnameConflict
			l.conflictMsg = fmt.Sprintf("%s on port %d is already served by %s, which takes precedence", shownHost(l.listenerHostKey()), l.spec.Port, e.describeTo(l))
			return true
		}
	}
	return false
}

// markOverlappingTLS flags TLS listeners on one port whose hostnames overlap (one is a
// wildcard covering the other, or either has no hostname).
func markOverlappingTLS(ls []*listenerState) {
	for i, a := range ls {
		for _, b := range ls[i+1:] {
			if a.conflict != "" || b.conflict != "" {
				continue
			}
			ha, hb := a.hostname(), b.hostname()
			if ha == "" || hb == "" || wildcardMatches(ha, hb) || wildcardMatches(hb, ha) {
				a.overlapsTLS = append(a.overlapsTLS, b.nameFor(a))
				b.overlapsTLS = append(b.overlapsTLS, a.nameFor(b))
			}
		}
	}
}

// bindable reports whether the Gateway is accepted and all its addresses usable.
func (g *gatewayState) bindable() bool {
	return g.rejected.ok() && g.unusable.ok()
}

// status renders the Gateway's status. A listener that is accepted counts as valid even
// when some of its references do not resolve: it reports that itself, and the Gateway
// stays Accepted and Programmed for its other listeners.
func (g *gatewayState) status() gwv1.GatewayStatus {
	gen := g.obj.Generation
	var st gwv1.GatewayStatus
	var invalid []string
	for _, l := range g.listeners {
		st.Listeners = append(st.Listeners, l.status())
		if !l.canAttach() {
			invalid = append(invalid, string(l.spec.Name))
		}
	}
	if g.bindable() {
		st.Addresses = g.addresses // only addresses actually bound are reported
	}
	st.AttachedListenerSets = g.attachedListenerSets()
	valid := len(g.listeners) - len(invalid)
	// Listeners of attached ListenerSets are the Gateway's too: with one of them valid,
	// the Gateway is accepted and bound even if none of its own listeners is.
	setsServe := st.AttachedListenerSets != nil && *st.AttachedListenerSets > 0
	noneValid := len(g.listeners) > 0 && valid == 0 && !setsServe

	var accepted, programmed metav1.Condition
	switch {
	case !g.rejected.ok():
		accepted = condition(string(gwv1.GatewayConditionAccepted), false, g.rejected.reason, gen, g.rejected.message())
	case noneValid:
		accepted = condition(string(gwv1.GatewayConditionAccepted), false, string(gwv1.GatewayReasonListenersNotValid), gen,
			fmt.Sprintf("no listener is valid: %s", joinQuoted(invalid)))
	case len(invalid) > 0:
		accepted = condition(string(gwv1.GatewayConditionAccepted), true, string(gwv1.GatewayReasonListenersNotValid), gen,
			fmt.Sprintf("Gateway is accepted, but these listeners are not valid and serve nothing: %s", joinQuoted(invalid)))
	default:
		accepted = condition(string(gwv1.GatewayConditionAccepted), true, string(gwv1.GatewayReasonAccepted), gen, "Gateway is accepted")
	}
	switch {
	case !g.rejected.ok():
		programmed = condition(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonInvalid), gen, "Gateway is not accepted: "+g.rejected.message())
	case !g.unusable.ok():
		programmed = condition(string(gwv1.GatewayConditionProgrammed), false, g.unusable.reason, gen, g.unusable.message())
	case noneValid:
		programmed = condition(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonInvalid), gen, "no listener can be programmed")
	default:
		n := 0
		for _, l := range g.listeners {
			if l.programmed() {
				n++
			}
		}
		msg := fmt.Sprintf("%d of %d listeners programmed", n, len(g.listeners))
		if len(g.sets) > 0 {
			setN, setAll := 0, 0
			for _, s := range g.sets {
				setN += s.programmedCount()
				setAll += len(s.listeners)
			}
			msg += fmt.Sprintf(", and %d of %d listeners of its ListenerSets", setN, setAll)
		}
		programmed = condition(string(gwv1.GatewayConditionProgrammed), true, string(gwv1.GatewayReasonProgrammed), gen, msg)
	}
	var unresolved []string
	for _, l := range g.listeners {
		if !l.resolvedRefs.ok() {
			unresolved = append(unresolved, string(l.spec.Name))
		}
	}
	resolved := condition(string(gwv1.GatewayConditionResolvedRefs), true, string(gwv1.GatewayReasonResolvedRefs), gen, "all listener references resolved")
	switch {
	case g.backendCertErr != nil:
		reason := string(gwv1.GatewayReasonInvalidClientCertificateRef)
		if g.backendCertErr.reason == string(gwv1.ListenerReasonRefNotPermitted) {
			reason = string(gwv1.GatewayReasonRefNotPermitted)
		}
		resolved = condition(string(gwv1.GatewayConditionResolvedRefs), false, reason, gen,
			"tls.backend.clientCertificateRef: "+g.backendCertErr.msg+"; TLS backends get no client certificate")
	case len(unresolved) > 0:
		resolved = condition(string(gwv1.GatewayConditionResolvedRefs), false, string(gwv1.GatewayReasonListenersNotResolved), gen,
			"these listeners have unresolved references (see their ResolvedRefs condition): "+joinQuoted(unresolved))
	}
	st.Conditions = []metav1.Condition{accepted, programmed, resolved}
	if port, insecure := insecureFrontendValidation(g); insecure {
		st.Conditions = append(st.Conditions, condition(string(gwv1.GatewayConditionInsecureFrontendValidationMode), true,
			string(gwv1.GatewayReasonConfigurationChanged), gen,
			fmt.Sprintf("tls.frontend validation mode is AllowInsecureFallback (%s): clients without a valid certificate are let in", port)))
	}
	return st
}

// insecureFrontendValidation reports whether the Gateway's tls.frontend lets clients
// without a valid certificate into one of its HTTPS listeners, and on which port (the
// effective validation of each port: a perPort entry overrides the default).
func insecureFrontendValidation(g *gatewayState) (string, bool) {
	for _, l := range g.all() {
		if l.spec.Protocol != gwv1.HTTPSProtocolType {
			continue
		}
		if v := frontendValidation(g.obj, l.spec.Port); v != nil && v.Mode == gwv1.AllowInsecureFallback {
			return fmt.Sprintf("port %d", l.spec.Port), true
		}
	}
	return "", false
}

// buildIR renders the Gateway's programmed listeners as IR ports.
func (g *gatewayState) buildIR() (ir.Gateway, bool) {
	if !g.bindable() {
		return ir.Gateway{}, false
	}
	out := ir.Gateway{Name: resource.KeyOf(g.obj).String()}
	for _, a := range g.addresses {
		if ip, err := netip.ParseAddr(a.Value); err == nil {
			out.Addresses = append(out.Addresses, ip.String())
		} else {
			out.Addresses = append(out.Addresses, a.Value)
		}
	}
	type irPortKey struct {
		number    uint32
		transport string
	}
	ports := map[irPortKey]*ir.Port{}
	var order []irPortKey
	for _, l := range g.all() {
		unavailable := !l.programmed() && l.canAttach() && l.tls != nil
		if !l.programmed() && !unavailable {
			continue
		}
		k := irPortKey{uint32(l.spec.Port), transport(l.kind)}
		p, ok := ports[k]
		if !ok {
			p = &ir.Port{Number: k.number, Protocol: l.kind}
			ports[k] = p
			order = append(order, k)
		}
		if mc := l.maxConnections; mc > 0 && (p.MaxConnections == 0 || mc < p.MaxConnections) {
			p.MaxConnections = mc // listeners of a port share its sockets: the smallest bound
		}
		il := l.buildIR()
		if unavailable {
			il = ir.Listener{Name: il.Name, Hostname: il.Hostname, Protocol: il.Protocol, TLS: il.TLS,
				Unavailable: l.notProgrammedWhy()}
		}
		p.Listeners = append(p.Listeners, il)
	}
	slices.SortFunc(order, func(a, b irPortKey) int {
		if a.number != b.number {
			return int(a.number) - int(b.number)
		}
		return cmp.Compare(a.transport, b.transport)
	})
	for _, k := range order {
		p := ports[k]
		slices.SortStableFunc(p.Listeners, func(a, b ir.Listener) int {
			return compareHostSpecificity(a.Hostname, b.Hostname)
		})
		out.Ports = append(out.Ports, *p)
	}
	return out, len(out.Ports) > 0
}

func joinQuoted(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q", n)
	}
	return s
}
