package translate

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/resource"
)

// listenerState is one listener of a Gateway: its validation results and, once routes
// are attached, what it serves.
type listenerState struct {
	gw   *gatewayState
	set  *listenerSetState // the ListenerSet that defines it; nil for the Gateway's own
	spec *gwv1.Listener
	kind ir.Protocol // socket kind; "" for unsupported protocols

	accepted     problems // reasons the listener is not Accepted
	resolvedRefs problems // reasons ResolvedRefs is False
	conflict     gwv1.ListenerConditionReason
	conflictMsg  string
	overlapsTLS  []string // TLS listeners on the same port with overlapping hostnames (see nameFor)

	supportedKinds []gwv1.RouteGroupKind
	tls            *ir.ListenerTLS
	allowed        routeNamespaces

	// hsts is the Strict-Transport-Security value a ListenerPolicy sets on an HTTPS
	// listener's responses; httpsRedirect is the redirect it answers plain HTTP with.
	hsts           string
	httpsRedirect  *ir.Redirect
	redirectName   string // the redirect route's IR name
	rateLimit      *ir.RateLimit
	maxRequestBody int64
	maxConnections uint32 // of the listener's port (ListenerPolicy limits)
	// timeoutDefault and timeoutMax bound the request timeouts of the listener's
	// routes (ListenerPolicy timeouts; 0: no bound).
	timeoutDefault, timeoutMax time.Duration

	attached map[string]bool // route ids attached
	claims   [2]hostClaims   // hostnames claimed by HTTPRoutes and GRPCRoutes
	vhosts   map[string]*vhostBuilder
	l4       []l4Entry
}

const gatewayGroup = gwv1.GroupName

// routeKindsFor lists the route kinds a protocol can carry.
func routeKindsFor(p gwv1.ProtocolType) []gwv1.Kind {
	switch p {
	case gwv1.HTTPProtocolType, gwv1.HTTPSProtocolType:
		return []gwv1.Kind{"HTTPRoute", "GRPCRoute"}
	case gwv1.TLSProtocolType:
		return []gwv1.Kind{"TLSRoute"}
	case gwv1.TCPProtocolType:
		return []gwv1.Kind{"TCPRoute"}
	case gwv1.UDPProtocolType:
		return []gwv1.Kind{"UDPRoute"}
	}
	return nil
}

func (t *translator) newListener(g *gatewayState, set *listenerSetState, spec *gwv1.Listener) *listenerState {
	l := &listenerState{gw: g, set: set, spec: spec, kind: portKind(spec.Protocol), attached: map[string]bool{}, vhosts: map[string]*vhostBuilder{}}
	if l.kind == "" {
		l.accepted.add(string(gwv1.ListenerReasonUnsupportedProtocol),
			"protocol %q is not supported; use HTTP, HTTPS, TLS, TCP or UDP", spec.Protocol)
	}
	if spec.Hostname != nil && (l.kind == ir.ProtocolTCP || l.kind == ir.ProtocolUDP) {
		// The spec says hostname is ignored for protocols without hostname matching; keep it
		// out of the IR so nobody thinks it filters anything.
		l.spec = spec.DeepCopy()
		l.spec.Hostname = nil
	}
	if spec.Port < 1 || spec.Port > 65535 {
		l.accepted.add(string(gwv1.ListenerReasonUnsupportedValue), "port %d is outside 1-65535", spec.Port)
	}
	if spec.Hostname != nil {
		if err := validateHostname(string(*spec.Hostname)); err != nil {
			l.accepted.add(string(gwv1.ListenerReasonUnsupportedValue), "hostname: %v", err)
		}
	}
	siblings := g.listeners
	if set != nil {
		siblings = set.listeners // names are unique per Gateway or ListenerSet, not across them
	}
	for _, other := range siblings {
		if other.spec.Name == spec.Name {
			l.accepted.add(string(gwv1.ListenerReasonUnsupportedValue), "another listener is already named %q; names must be unique", spec.Name)
		}
	}
	l.validateKinds()
	l.allowed = t.routeNamespacesFor(l.owner().namespace, spec)
	if l.allowed.err != nil {
		l.accepted.add(string(gwv1.ListenerReasonUnsupportedValue), "%v", l.allowed.err)
	}
	l.validateTLS(t)
	return l
}

// validateKinds fills supportedKinds with the allowedRoutes kinds this listener can
// carry, flagging any it cannot.
func (l *listenerState) validateKinds() {
	valid := routeKindsFor(l.spec.Protocol)
	group := gwv1.Group(gatewayGroup)
	if l.spec.AllowedRoutes == nil || len(l.spec.AllowedRoutes.Kinds) == 0 {
		for _, k := range valid {
			l.supportedKinds = append(l.supportedKinds, gwv1.RouteGroupKind{Group: &group, Kind: k})
		}
		return
	}
	l.supportedKinds = []gwv1.RouteGroupKind{}
	for _, rk := range l.spec.AllowedRoutes.Kinds {
		g := gatewayGroup
		if rk.Group != nil {
			g = string(*rk.Group)
		}
		if g == gatewayGroup && slices.Contains(valid, rk.Kind) {
			if !slices.ContainsFunc(l.supportedKinds, func(s gwv1.RouteGroupKind) bool { return s.Kind == rk.Kind }) {
				l.supportedKinds = append(l.supportedKinds, gwv1.RouteGroupKind{Group: &group, Kind: rk.Kind})
			}
			continue
		}
		l.resolvedRefs.add(string(gwv1.ListenerReasonInvalidRouteKinds),
			"route kind %s/%s is not supported on a %s listener", g, rk.Kind, l.spec.Protocol)
	}
}

// validateTLS checks the TLS block against the protocol and loads certificates.
func (l *listenerState) validateTLS(t *translator) {
	cfg := l.spec.TLS
	switch l.spec.Protocol {
	case gwv1.HTTPSProtocolType, gwv1.TLSProtocolType:
	default:
		if cfg != nil {
			l.accepted.add(string(gwv1.ListenerReasonUnsupportedValue), "tls must not be set on a %s listener", l.spec.Protocol)
		}
		return
	}
	if cfg == nil {
		l.accepted.add(string(gwv1.ListenerReasonUnsupportedValue), "a %s listener needs a tls block", l.spec.Protocol)
		return
	}
	var clientValidation *ir.ClientValidation
	if v := frontendValidation(l.gw.obj, l.spec.Port); v != nil && l.spec.Protocol == gwv1.HTTPSProtocolType {
		if clientValidation = t.loadClientValidation(l, v); clientValidation == nil {
			// Serving without the client certificate check the platform asked for
			// would be a silent security downgrade: the listener is refused instead.
			return
		}
	}
	mode := gwv1.TLSModeTerminate
	if cfg.Mode != nil {
		mode = *cfg.Mode
	}
	switch {
	case mode == gwv1.TLSModePassthrough && l.spec.Protocol == gwv1.HTTPSProtocolType:
		l.accepted.add(string(gwv1.ListenerReasonUnsupportedValue), "tls.mode Passthrough is not allowed on an HTTPS listener; use protocol TLS")
		return
	case mode == gwv1.TLSModePassthrough:
		l.tls = &ir.ListenerTLS{Mode: ir.TLSPassthrough}
		return
	case mode != gwv1.TLSModeTerminate:
		l.accepted.add(string(gwv1.ListenerReasonUnsupportedValue), "tls.mode %q is not supported", mode)
		return
	}
	l.tls = &ir.ListenerTLS{Mode: ir.TLSTerminate, ClientValidation: clientValidation}
	if len(cfg.CertificateRefs) == 0 {
		l.resolvedRefs.add(string(gwv1.ListenerReasonInvalidCertificateRef), "tls.certificateRefs is empty: TLS termination needs a certificate")
	}
	for i, ref := range cfg.CertificateRefs {
		cert, err := t.loadCertificate(l.owner(), ref)
		if err != nil {
			l.resolvedRefs.add(err.reason, "tls.certificateRefs[%d]: %s", i, err.msg)
			continue
		}
		l.tls.Certificates = append(l.tls.Certificates, cert)
	}
}

type refError struct {
	reason string
	msg    string
}

// owner is the object that defines a listener (a Gateway or a ListenerSet): its
// namespace is the default for references, and ReferenceGrants must name its kind.
type owner struct {
	kind, namespace, name string
}

func (o owner) String() string { return o.kind + " " + o.namespace + "/" + o.name }

func gatewayOwner(gw *gwv1.Gateway) owner { return owner{"Gateway", gw.Namespace, gw.Name} }

func (l *listenerState) owner() owner {
	if l.set != nil {
		return owner{"ListenerSet", l.set.obj.Namespace, l.set.obj.Name}
	}
	return gatewayOwner(l.gw.obj)
}

// generation is the generation of the object that defines the listener.
func (l *listenerState) generation() int64 {
	if l.set != nil {
		return l.set.obj.Generation
	}
	return l.gw.obj.Generation
}

// loadCertificate resolves a certificateRef of from to a validated PEM key pair.
func (t *translator) loadCertificate(from owner, ref gwv1.SecretObjectReference) (ir.Certificate, *refError) {
	group, kind := "", "Secret"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	ns := from.namespace
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	reason := string(gwv1.ListenerReasonInvalidCertificateRef)
	if group != "" || kind != "Secret" {
		return ir.Certificate{}, &refError{reason, fmt.Sprintf("%s %s/%s: only core Secrets are supported", groupKind(group, kind), ns, ref.Name)}
	}
	if !t.grants.allows(refFrom{gatewayGroup, from.kind, from.namespace}, refTo{"", "Secret", ns, string(ref.Name)}) {
		return ir.Certificate{}, &refError{string(gwv1.ListenerReasonRefNotPermitted),
			fmt.Sprintf("Secret %s/%s not permitted: no ReferenceGrant in namespace %s allows %s", ns, ref.Name, ns, from)}
	}
	secret, ok := t.snap.Secrets[resource.Key{Namespace: ns, Name: string(ref.Name)}]
	if !ok {
		return ir.Certificate{}, &refError{reason, fmt.Sprintf("Secret %s/%s not found", ns, ref.Name)}
	}
	certPEM, keyPEM := secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]
	if secret.Type != corev1.SecretTypeTLS && secret.Type != "" && secret.Type != corev1.SecretTypeOpaque {
		return ir.Certificate{}, &refError{reason, fmt.Sprintf("Secret %s/%s has type %s; want %s", ns, ref.Name, secret.Type, corev1.SecretTypeTLS)}
	}
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		certPEM, keyPEM = []byte(secret.StringData[corev1.TLSCertKey]), []byte(secret.StringData[corev1.TLSPrivateKeyKey])
	}
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return ir.Certificate{}, &refError{reason, fmt.Sprintf("Secret %s/%s lacks %s or %s", ns, ref.Name, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)}
	}
	if err := validateKeyPair(certPEM, keyPEM); err != nil {
		return ir.Certificate{}, &refError{reason, fmt.Sprintf("Secret %s/%s: %v", ns, ref.Name, err)}
	}
	return ir.Certificate{Name: "secret/" + ns + "/" + string(ref.Name), CertPEM: string(certPEM), KeyPEM: string(keyPEM)}, nil
}

// validateKeyPair checks that the PEM holds a parseable certificate chain matching the key.
func validateKeyPair(certPEM, keyPEM []byte) error {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("invalid certificate or key: %w", err)
	}
	if _, err := x509.ParseCertificate(pair.Certificate[0]); err != nil {
		return fmt.Errorf("invalid certificate: %w", err)
	}
	if block, _ := pem.Decode(certPEM); block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("%s does not start with a PEM CERTIFICATE block", corev1.TLSCertKey)
	}
	return nil
}

func groupKind(group, kind string) string {
	if group == "" {
		return kind
	}
	return group + "/" + kind
}

func (l *listenerState) hostname() string {
	if l.spec.Hostname == nil {
		return ""
	}
	return string(*l.spec.Hostname)
}

// canAttach reports whether routes may attach: the listener is accepted and not in conflict.
func (l *listenerState) canAttach() bool {
	return l.accepted.ok() && l.conflict == ""
}

// valid reports whether the listener can serve something: it is accepted, not in
// conflict, takes some route kind and, if it terminates TLS, has a usable certificate.
// One with some unresolved references still serves the rest, and says so in its own
// conditions.
func (l *listenerState) valid() bool {
	if !l.canAttach() || len(l.supportedKinds) == 0 {
		return false
	}
	return l.tls == nil || l.tls.Mode != ir.TLSTerminate || len(l.tls.Certificates) > 0
}

// programmed reports whether the listener ends up in the IR: valid, on a Gateway whose
// addresses are usable.
func (l *listenerState) programmed() bool {
	return l.valid() && l.gw.bindable()
}

// name is the listener's IR name: "ns/gateway/listener", or for a ListenerSet's
// listener "ns/gateway/listenerset/ns/set/listener" (names repeat across the two).
func (l *listenerState) name() string {
	gw := l.gw.obj.Namespace + "/" + l.gw.obj.Name + "/"
	if l.set != nil {
		gw += "listenerset/" + l.set.obj.Namespace + "/" + l.set.obj.Name + "/"
	}
	return gw + string(l.spec.Name)
}

// describe names the listener for messages: `listener "http" of Gateway infra/public`.
func (l *listenerState) describe() string {
	return fmt.Sprintf("listener %q of %s", l.spec.Name, l.owner())
}

// describeTo names the listener in a message shown on reader's status. Another team's
// ListenerSet is not named there: the reader may have no right to see it.
func (l *listenerState) describeTo(reader *listenerState) string {
	if l.set != nil && reader.set != nil && l.set != reader.set {
		return fmt.Sprintf("a listener of another ListenerSet of Gateway %s/%s", l.gw.obj.Namespace, l.gw.obj.Name)
	}
	return l.describe()
}

// nameFor is describeTo, shortened to `listener "http"` between two listeners of the
// same Gateway or ListenerSet.
func (l *listenerState) nameFor(reader *listenerState) string {
	if l.set == reader.set {
		return fmt.Sprintf("listener %q", l.spec.Name)
	}
	return l.describeTo(reader)
}

func (l *listenerState) status() gwv1.ListenerStatus {
	gen := l.generation()
	st := gwv1.ListenerStatus{
		Name:           l.spec.Name,
		SupportedKinds: l.supportedKinds,
		AttachedRoutes: int32(len(l.attached)),
	}
	if !l.canAttach() || st.SupportedKinds == nil {
		st.SupportedKinds = []gwv1.RouteGroupKind{} // a listener that takes no routes supports no kinds
	}
	var conds []metav1.Condition
	switch {
	case !l.accepted.ok():
		conds = append(conds, condition(string(gwv1.ListenerConditionAccepted), false, l.accepted.reason, gen, l.accepted.message()))
	case l.conflict != "":
		conds = append(conds, condition(string(gwv1.ListenerConditionAccepted), false, string(l.conflict), gen, l.conflictMsg))
	default:
		conds = append(conds, condition(string(gwv1.ListenerConditionAccepted), true, string(gwv1.ListenerReasonAccepted), gen, "listener is accepted"))
	}
	if l.conflict != "" {
		conds = append(conds, condition(string(gwv1.ListenerConditionConflicted), true, string(l.conflict), gen, l.conflictMsg))
	} else {
		conds = append(conds, condition(string(gwv1.ListenerConditionConflicted), false, string(gwv1.ListenerReasonNoConflicts), gen, "no conflicts"))
	}
	if l.resolvedRefs.ok() {
		conds = append(conds, condition(string(gwv1.ListenerConditionResolvedRefs), true, string(gwv1.ListenerReasonResolvedRefs), gen, "all references resolved"))
	} else {
		conds = append(conds, condition(string(gwv1.ListenerConditionResolvedRefs), false, l.resolvedRefs.reason, gen, l.resolvedRefs.message()))
	}
	switch {
	case l.programmed():
		conds = append(conds, condition(string(gwv1.ListenerConditionProgrammed), true, string(gwv1.ListenerReasonProgrammed), gen, "listener is programmed"))
	case l.conflict != "":
		conds = append(conds, condition(string(gwv1.ListenerConditionProgrammed), false, string(l.conflict), gen, l.notProgrammedWhy()))
	default:
		conds = append(conds, condition(string(gwv1.ListenerConditionProgrammed), false, string(gwv1.ListenerReasonInvalid), gen, l.notProgrammedWhy()))
	}
	if len(l.overlapsTLS) > 0 {
		// Negative polarity: only ever written as True.
		conds = append(conds, condition(string(gwv1.ListenerConditionOverlappingTLSConfig), true, string(gwv1.ListenerReasonOverlappingHostnames), gen,
			"hostname overlaps TLS "+strings.Join(l.overlapsTLS, ", ")+" on the same port: a client may reach a different listener than its SNI selected"))
	}
	st.Conditions = conds
	return st
}

func (l *listenerState) notProgrammedWhy() string {
	switch {
	case !l.accepted.ok():
		return "listener is not accepted: " + l.accepted.message()
	case l.conflict != "":
		return "listener conflicts with another listener: " + l.conflictMsg
	case !l.gw.bindable():
		return "the Gateway is not programmed: see its conditions"
	case len(l.supportedKinds) == 0:
		return "listener supports none of the route kinds it allows: " + l.resolvedRefs.message()
	}
	return "listener has no usable certificate: " + l.resolvedRefs.message()
}

// buildIR renders what the listener serves.
func (l *listenerState) buildIR() ir.Listener {
	out := ir.Listener{
		Name:     l.name(),
		Hostname: l.hostname(),
		Protocol: ir.Protocol(l.spec.Protocol),
		TLS:      l.tls,
	}
	out.VirtualHosts = buildVirtualHosts(l.vhosts)
	out.L4Routes = buildL4Routes(l.l4)
	l.applyPolicyRoutes(&out)
	return out
}

// frontendValidation is the client certificate validation the Gateway's tls.frontend
// asks for on port (a perPort entry, else the default), or nil.
func frontendValidation(gw *gwv1.Gateway, port gwv1.PortNumber) *gwv1.FrontendTLSValidation {
	if gw.Spec.TLS == nil || gw.Spec.TLS.Frontend == nil {
		return nil
	}
	f := gw.Spec.TLS.Frontend
	for _, pp := range f.PerPort {
		if pp.Port == port {
			return pp.TLS.Validation
		}
	}
	return f.Default.Validation
}

// loadClientValidation resolves the CA certificates of a frontend validation for
// listener l (ConfigMaps with a PEM bundle under ca.crt, in the Gateway's namespace or
// granted by a ReferenceGrant). References that do not resolve are reported on the
// listener's ResolvedRefs; with no usable CA at all the listener is not accepted
// (NoValidCACertificate) and nil is returned.
func (t *translator) loadClientValidation(l *listenerState, v *gwv1.FrontendTLSValidation) *ir.ClientValidation {
	gw := l.gw.obj
	var bundle strings.Builder
	for i, ref := range v.CACertificateRefs {
		ns := gw.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		if ref.Group != "" || ref.Kind != "ConfigMap" {
			l.resolvedRefs.add(string(gwv1.ListenerReasonInvalidCACertificateKind),
				"tls.frontend caCertificateRefs[%d]: %s %s/%s is not supported; use a ConfigMap", i, groupKind(string(ref.Group), string(ref.Kind)), ns, ref.Name)
			continue
		}
		if !t.grants.allows(refFrom{gatewayGroup, "Gateway", gw.Namespace}, refTo{"", "ConfigMap", ns, string(ref.Name)}) {
			l.resolvedRefs.add(string(gwv1.ListenerReasonRefNotPermitted),
				"tls.frontend caCertificateRefs[%d]: ConfigMap %s/%s not permitted: no ReferenceGrant in namespace %s allows Gateway %s/%s", i, ns, ref.Name, ns, gw.Namespace, gw.Name)
			continue
		}
		cm, ok := t.snap.ConfigMaps[resource.Key{Namespace: ns, Name: string(ref.Name)}]
		if !ok {
			l.resolvedRefs.add(string(gwv1.ListenerReasonInvalidCACertificateRef), "tls.frontend caCertificateRefs[%d]: ConfigMap %s/%s not found", i, ns, ref.Name)
			continue
		}
		pemData := cm.Data["ca.crt"]
		if pemData == "" || !x509.NewCertPool().AppendCertsFromPEM([]byte(pemData)) {
			l.resolvedRefs.add(string(gwv1.ListenerReasonInvalidCACertificateRef),
				"tls.frontend caCertificateRefs[%d]: ConfigMap %s/%s has no PEM certificate under key ca.crt", i, ns, ref.Name)
			continue
		}
		bundle.WriteString(pemData)
		if !strings.HasSuffix(pemData, "\n") {
			bundle.WriteByte('\n')
		}
	}
	if bundle.Len() == 0 {
		l.accepted.add(string(gwv1.ListenerReasonNoValidCACertificate),
			"client certificate validation on port %d has no usable CA certificate; the listener is not served", l.spec.Port)
		return nil
	}
	return &ir.ClientValidation{CACertificates: bundle.String(), AllowInsecureFallback: v.Mode == gwv1.AllowInsecureFallback}
}
