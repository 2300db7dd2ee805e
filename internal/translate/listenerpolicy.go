package translate

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/api/v1alpha1"
	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/resource"
)

// listenerPolicyState is one ListenerPolicy: its validation and, per Gateway it
// targets, whether it applies there.
type listenerPolicyState struct {
	obj     *v1alpha1.ListenerPolicy
	invalid problems
	// ancestors are the Gateways it names (ours, or missing), with their outcome.
	ancestors map[resource.Key]*problems
	// wins counts, per Gateway, the scopes (the Gateway, or one of its listeners) where
	// the policy is the one in force; losses says where an older one is.
	wins   map[resource.Key]int
	losses map[resource.Key][]string
}

func (p *listenerPolicyState) won(gw resource.Key) { p.wins[gw]++ }

func (p *listenerPolicyState) lost(gw resource.Key, why string) {
	p.losses[gw] = append(p.losses[gw], why)
}

// policyScope is what a policy targets: a Gateway, or one of its listeners.
type policyScope struct {
	gateway resource.Key
	section string // "" for the whole Gateway
}

// applyListenerPolicies validates every ListenerPolicy, picks the one in force for each
// Gateway and listener (the oldest of a scope; one naming a listener overrides the
// Gateway-wide one, field by field) and records the result on the listeners. It runs
// after the Gateways and before routes are attached.
func (t *translator) applyListenerPolicies() {
	byScope := map[policyScope][]*listenerPolicyState{}
	for _, p := range resource.Sorted(t.snap.ListenerPolicies) {
		st := &listenerPolicyState{obj: p, ancestors: map[resource.Key]*problems{}, wins: map[resource.Key]int{}, losses: map[resource.Key][]string{}}
		st.validate()
		for _, ref := range p.Spec.TargetRefs {
			if ref.Group != gatewayGroup || ref.Kind != "Gateway" {
				continue // invalid (see validate), which keeps the whole policy out of force
			}
			key := resource.Key{Namespace: p.Namespace, Name: string(ref.Name)}
			g, ours := t.gwByKey[key]
			if !ours {
				if _, exists := t.snap.Gateways[key]; exists {
					continue // another controller's Gateway: not ours to report on
				}
			}
			out := st.ancestors[key]
			if out == nil {
				out = &problems{}
				st.ancestors[key] = out
			}
			if g == nil {
				out.add(string(gwv1.PolicyReasonTargetNotFound), "Gateway %s not found", key)
				continue
			}
			scope := policyScope{gateway: key}
			if ref.SectionName != nil {
				scope.section = string(*ref.SectionName)
				if !slices.ContainsFunc(g.listeners, func(l *listenerState) bool { return string(l.spec.Name) == scope.section }) {
					out.add(string(gwv1.PolicyReasonTargetNotFound), "Gateway %s has no listener named %q", key, scope.section)
					continue
				}
			}
			if st.invalid.ok() && !slices.Contains(byScope[scope], st) {
				byScope[scope] = append(byScope[scope], st)
			}
		}
		if len(st.ancestors) > 0 {
			t.listenerPolicies = append(t.listenerPolicies, st)
		}
	}
	winner := map[policyScope]*v1alpha1.ListenerPolicy{}
	scopes := make([]policyScope, 0, len(byScope))
	for scope := range byScope {
		scopes = append(scopes, scope)
	}
	slices.SortFunc(scopes, func(a, b policyScope) int {
		return cmp.Or(a.gateway.Compare(b.gateway), cmp.Compare(a.section, b.section))
	})
	for _, scope := range scopes {
		ps := byScope[scope]
		slices.SortStableFunc(ps, func(a, b *listenerPolicyState) int {
			return cmp.Or(a.obj.CreationTimestamp.Compare(b.obj.CreationTimestamp.Time), cmp.Compare(a.obj.Name, b.obj.Name))
		})
		winner[scope] = ps[0].obj
		ps[0].won(scope.gateway)
		for _, p := range ps[1:] {
			what := "Gateway " + scope.gateway.String()
			if scope.section != "" {
				what = fmt.Sprintf("listener %q of %s", scope.section, what)
			}
			p.lost(scope.gateway, fmt.Sprintf("ListenerPolicy %q also targets %s and takes precedence (older, or first by name)", ps[0].obj.Name, what))
		}
	}
	for _, g := range t.gateways {
		key := resource.KeyOf(g.obj)
		whole := winner[policyScope{gateway: key}]
		for _, l := range g.all() {
			var section *v1alpha1.ListenerPolicy
			if l.set == nil {
				section = winner[policyScope{gateway: key, section: string(l.spec.Name)}]
			}
			l.applyPolicy(whole, section)
		}
	}
}

// mergeListenerPolicies is what applies to a listener: the Gateway-wide policy's
// settings, with those the listener's own policy sets in their place.
func mergeListenerPolicies(whole, section *v1alpha1.ListenerPolicy) v1alpha1.ListenerPolicySpec {
	var out v1alpha1.ListenerPolicySpec
	for _, p := range []*v1alpha1.ListenerPolicy{whole, section} {
		if p == nil {
			continue
		}
		if t := p.Spec.TLS; t != nil {
			if out.TLS == nil {
				out.TLS = &v1alpha1.ListenerTLSPolicy{}
			}
			if t.MinVersion != nil {
				out.TLS.MinVersion = t.MinVersion
			}
			if t.CipherSuites != nil {
				out.TLS.CipherSuites = t.CipherSuites
			}
		}
		if p.Spec.HSTS != nil {
			out.HSTS = p.Spec.HSTS
		}
		if p.Spec.HTTPSRedirect != nil {
			out.HTTPSRedirect = p.Spec.HTTPSRedirect
		}
		if p.Spec.RateLimit != nil {
			out.RateLimit = p.Spec.RateLimit
		}
		if lim := p.Spec.Limits; lim != nil {
			if out.Limits == nil {
				out.Limits = &v1alpha1.ListenerLimits{}
			}
			if lim.MaxRequestBodyBytes != nil {
				out.Limits.MaxRequestBodyBytes = lim.MaxRequestBodyBytes
			}
			if lim.MaxConnections != nil {
				out.Limits.MaxConnections = lim.MaxConnections
			}
		}
		if to := p.Spec.Timeouts; to != nil {
			if out.Timeouts == nil {
				out.Timeouts = &v1alpha1.ListenerTimeouts{}
			}
			if to.Request != nil {
				out.Timeouts.Request = to.Request
			}
			if to.MaxRequest != nil {
				out.Timeouts.MaxRequest = to.MaxRequest
			}
		}
	}
	return out
}

// applyPolicy records what the ListenerPolicies in force ask of this listener (the
// Gateway's, and the listener's own): TLS bounds on a terminating listener, HSTS on
// HTTPS, the redirect on plain HTTP.
func (l *listenerState) applyPolicy(whole, section *v1alpha1.ListenerPolicy) {
	p := mergeListenerPolicies(whole, section)
	if p.TLS != nil && l.tls != nil && l.tls.Mode == ir.TLSTerminate {
		tlsCopy := *l.tls
		if p.TLS.MinVersion != nil {
			tlsCopy.MinVersion = *p.TLS.MinVersion
		}
		tlsCopy.CipherSuites = slices.Clone(p.TLS.CipherSuites)
		l.tls = &tlsCopy
	}
	if p.HSTS != nil && l.spec.Protocol == gwv1.HTTPSProtocolType {
		l.hsts = hstsValue(p.HSTS)
	}
	servesHTTP := l.spec.Protocol == gwv1.HTTPProtocolType || l.spec.Protocol == gwv1.HTTPSProtocolType
	if lim := p.Limits; lim != nil && lim.MaxRequestBodyBytes != nil && servesHTTP {
		l.maxRequestBody = *lim.MaxRequestBodyBytes
	}
	if lim := p.Limits; lim != nil && lim.MaxConnections != nil && l.kind != ir.ProtocolTCP && l.kind != ir.ProtocolUDP {
		l.maxConnections = uint32(*lim.MaxConnections)
	}
	if to := p.Timeouts; to != nil && servesHTTP {
		// Validated with the policy: both parse.
		if to.Request != nil {
			l.timeoutDefault, _ = parseDuration(string(*to.Request))
		}
		if to.MaxRequest != nil {
			l.timeoutMax, _ = parseDuration(string(*to.MaxRequest))
		}
		if l.timeoutMax > 0 && l.timeoutDefault > l.timeoutMax {
			// A listener's own policy lowered the maximum below the Gateway's default.
			l.timeoutDefault = l.timeoutMax
		}
	}
	if rl := p.RateLimit; rl != nil && servesHTTP {
		l.rateLimit = &ir.RateLimit{RequestsPerSecond: uint32(rl.RequestsPerSecond), Burst: uint32(rl.RequestsPerSecond)}
		if rl.Burst != nil {
			l.rateLimit.Burst = uint32(*rl.Burst)
		}
	}
	if p.HTTPSRedirect != nil && l.spec.Protocol == gwv1.HTTPProtocolType {
		r := &ir.Redirect{Scheme: "https", StatusCode: 301}
		if c := p.HTTPSRedirect.StatusCode; c != nil {
			r.StatusCode = int(*c)
		}
		if port := p.HTTPSRedirect.Port; port != nil && *port != 443 {
			r.Port = uint32(*port)
		}
		l.httpsRedirect = r
		from := whole
		if section != nil && section.Spec.HTTPSRedirect != nil {
			from = section
		}
		l.redirectName = "listenerpolicy/" + from.Namespace + "/" + from.Name + "/https-redirect"
	}
}

// acmeChallengePrefix is where ACME HTTP-01 challenges are answered: over plain HTTP,
// whatever the policy says, or certificates could not be issued.
const acmeChallengePrefix = "/.well-known/acme-challenge"

// applyPolicyRoutes applies a listener's ListenerPolicies to its IR: on plain HTTP every
// request but an ACME challenge is redirected to HTTPS (also for hostnames no route
// serves); on HTTPS every response carries HSTS.
func (l *listenerState) applyPolicyRoutes(out *ir.Listener) {
	if r := l.httpsRedirect; r != nil {
		redirect := ir.Route{Name: l.redirectName, Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}}, Redirect: r}
		catchAll := l.hostname()
		if catchAll == "" {
			catchAll = "*"
		}
		if !slices.ContainsFunc(out.VirtualHosts, func(vh ir.VirtualHost) bool { return vh.Hostname == catchAll }) {
			out.VirtualHosts = append(out.VirtualHosts, ir.VirtualHost{Hostname: catchAll})
			slices.SortStableFunc(out.VirtualHosts, func(a, b ir.VirtualHost) int { return compareHostSpecificity(a.Hostname, b.Hostname) })
		}
		for i := range out.VirtualHosts {
			vh := &out.VirtualHosts[i]
			kept := slices.DeleteFunc(slices.Clone(vh.Routes), func(rt ir.Route) bool { return !isACMEChallenge(rt) })
			vh.Routes = append(kept, redirect)
		}
	}
	if l.timeoutDefault > 0 || l.timeoutMax > 0 {
		for i := range out.VirtualHosts {
			vh := &out.VirtualHosts[i]
			vh.Routes = slices.Clone(vh.Routes)
			for j := range vh.Routes {
				if vh.Routes[j].GRPC {
					// GRPCRoutes have no timeouts of their own, and a bound on the whole
					// exchange would cut every long-lived stream.
					continue
				}
				vh.Routes[j].Timeouts = boundTimeouts(vh.Routes[j].Timeouts, l.timeoutDefault, l.timeoutMax)
			}
		}
	}
	out.HSTS = l.hsts
	out.RateLimit = l.rateLimit
	out.MaxRequestBodyBytes = l.maxRequestBody
}

// isACMEChallenge reports whether a route only answers ACME challenges: its path is
// under the challenge prefix and it forwards requests as they are (a rewrite or a
// mirror could send them to anything else over plain HTTP).
func isACMEChallenge(rt ir.Route) bool {
	p := rt.Match.Path
	return (p.Type == ir.PathExact || p.Type == ir.PathPrefix) &&
		(p.Value == acmeChallengePrefix || strings.HasPrefix(p.Value, acmeChallengePrefix+"/")) &&
		rt.Rewrite == nil && len(rt.Mirrors) == 0
}

// boundTimeouts applies a listener's timeout bounds to a route's timeouts: def for a
// route that sets no request timeout, at most maxT for any, including one that asked
// for none ("0s"); 0 is no such bound. The result is a copy: routes are shared between
// listeners.
func boundTimeouts(t *ir.Timeouts, def, maxT time.Duration) *ir.Timeouts {
	var out ir.Timeouts
	if t != nil {
		out = *t
	}
	req, _ := time.ParseDuration(out.Request) // written by the translator: "" or valid
	if out.Request == "" {
		req = def
	}
	if maxT > 0 && (req == 0 || req > maxT) {
		req = maxT
	}
	if req > 0 {
		out.Request = req.String()
		if backend, _ := time.ParseDuration(out.BackendRequest); backend > req {
			out.BackendRequest = req.String()
		}
	}
	if out == (ir.Timeouts{}) {
		return nil
	}
	return &out
}

func hstsValue(h *v1alpha1.HSTSPolicy) string {
	v := fmt.Sprintf("max-age=%d", h.MaxAgeSeconds)
	if h.IncludeSubDomains {
		v += "; includeSubDomains"
	}
	if h.Preload {
		v += "; preload"
	}
	return v
}

// validate checks what the CRD's schema cannot.
func (p *listenerPolicyState) validate() {
	spec := p.obj.Spec
	invalid := string(gwv1.PolicyReasonInvalid)
	for _, ref := range spec.TargetRefs {
		if ref.Group != gatewayGroup || ref.Kind != "Gateway" {
			p.invalid.add(invalid, "targetRef %s %s: only Gateways can be targeted", groupKind(string(ref.Group), string(ref.Kind)), ref.Name)
		}
	}
	if spec.TLS == nil && spec.HSTS == nil && spec.HTTPSRedirect == nil && spec.RateLimit == nil && spec.Limits == nil && spec.Timeouts == nil {
		p.invalid.add(invalid, "the policy sets nothing: give tls, hsts, httpsRedirect, rateLimit, limits or timeouts")
	}
	if to := spec.Timeouts; to != nil {
		var def, maxT time.Duration
		var err error
		if to.Request != nil {
			if def, err = parseDuration(string(*to.Request)); err != nil || def == 0 {
				p.invalid.add(invalid, "timeouts.request %q is not a positive duration (such as 30s or 1m)", *to.Request)
			}
		}
		if to.MaxRequest != nil {
			if maxT, err = parseDuration(string(*to.MaxRequest)); err != nil || maxT == 0 {
				p.invalid.add(invalid, "timeouts.maxRequest %q is not a positive duration (such as 30s or 1m)", *to.MaxRequest)
			}
		}
		if def > 0 && maxT > 0 && def > maxT {
			p.invalid.add(invalid, "timeouts.request %s is longer than timeouts.maxRequest %s", def, maxT)
		}
		if to.Request == nil && to.MaxRequest == nil {
			p.invalid.add(invalid, "timeouts sets neither request nor maxRequest")
		}
	}
	if lim := spec.Limits; lim != nil && lim.MaxRequestBodyBytes != nil && *lim.MaxRequestBodyBytes < 1 {
		p.invalid.add(invalid, "limits.maxRequestBodyBytes must be at least 1")
	}
	if lim := spec.Limits; lim != nil && lim.MaxConnections != nil && (*lim.MaxConnections < 1 || *lim.MaxConnections > 1000000) {
		p.invalid.add(invalid, "limits.maxConnections %d is outside 1-1000000", *lim.MaxConnections)
	}
	if rl := spec.RateLimit; rl != nil {
		if rl.RequestsPerSecond < 1 || rl.RequestsPerSecond > 1000000 {
			p.invalid.add(invalid, "rateLimit.requestsPerSecond %d is outside 1-1000000", rl.RequestsPerSecond)
		}
		if rl.Burst != nil && (*rl.Burst < 1 || *rl.Burst > 1000000) {
			p.invalid.add(invalid, "rateLimit.burst %d is outside 1-1000000", *rl.Burst)
		}
	}
	if t := spec.TLS; t != nil {
		if t.MinVersion != nil && *t.MinVersion != "1.2" && *t.MinVersion != "1.3" {
			p.invalid.add(invalid, "tls.minVersion %q is not supported: use \"1.2\" or \"1.3\"", *t.MinVersion)
		}
		if t.MinVersion != nil && *t.MinVersion == "1.3" && len(t.CipherSuites) > 0 {
			p.invalid.add(invalid, "tls.cipherSuites apply to TLS 1.2 only, and tls.minVersion 1.3 refuses TLS 1.2: remove one of them")
		}
		for _, name := range t.CipherSuites {
			if err := checkCipherSuite(name); err != nil {
				p.invalid.add(invalid, "tls.cipherSuites: %v", err)
			}
		}
	}
	if h := spec.HSTS; h != nil {
		if h.MaxAgeSeconds < 0 {
			p.invalid.add(invalid, "hsts.maxAgeSeconds must not be negative")
		}
		if h.Preload && (!h.IncludeSubDomains || h.MaxAgeSeconds < 31536000) {
			p.invalid.add(invalid, "hsts.preload needs includeSubDomains and a maxAgeSeconds of at least 31536000 (a year), as browsers' preload lists require")
		}
	}
	if r := spec.HTTPSRedirect; r != nil {
		if c := r.StatusCode; c != nil && !slices.Contains([]int32{301, 302, 307, 308}, *c) {
			p.invalid.add(invalid, "httpsRedirect.statusCode %d is not a redirect: use 301, 302, 307 or 308", *c)
		}
		if port := r.Port; port != nil && (*port < 1 || *port > 65535) {
			p.invalid.add(invalid, "httpsRedirect.port %d is outside 1-65535", *port)
		}
	}
}

// checkCipherSuite accepts the TLS 1.2 suites with forward secrecy and an AEAD cipher
// (ECDHE with AES-GCM or ChaCha20-Poly1305), by IANA name: the others are weaker, and
// HTTP/2 refuses connections that use them.
func checkCipherSuite(name string) error {
	for _, s := range tls.CipherSuites() {
		if s.Name == name {
			switch {
			case !slices.Contains(s.SupportedVersions, tls.VersionTLS12):
				return fmt.Errorf("%s is a TLS 1.3 suite, which cannot be configured", name)
			case !strings.Contains(name, "_ECDHE_") || !strings.Contains(name, "_GCM_") && !strings.Contains(name, "_CHACHA20_"):
				return fmt.Errorf("%s is not allowed: use ECDHE suites with AES-GCM or ChaCha20-Poly1305 (HTTP/2 refuses the others)", name)
			}
			return nil
		}
	}
	for _, s := range tls.InsecureCipherSuites() {
		if s.Name == name {
			return fmt.Errorf("%s is insecure and not offered", name)
		}
	}
	return fmt.Errorf("%s is not a cipher suite Portico knows (IANA names, such as TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)", name)
}

// listenerPolicyStatuses renders each policy's status: one ancestor per Gateway it
// targets (this controller's, or missing).
func (t *translator) listenerPolicyStatuses() []PolicyStatus {
	var out []PolicyStatus
	for _, p := range t.listenerPolicies {
		gen := p.obj.Generation
		st := PolicyStatus{Kind: v1alpha1.ListenerPolicyKind, Namespace: p.obj.Namespace, Name: p.obj.Name}
		for _, k := range ancestorKeys(p.ancestors) {
			var cond metav1.Condition
			switch out := p.ancestors[k]; {
			case !p.invalid.ok():
				cond = condition(string(gwv1.PolicyConditionAccepted), false, p.invalid.reason, gen, p.invalid.message())
			case !out.ok():
				cond = condition(string(gwv1.PolicyConditionAccepted), false, out.reason, gen, out.message())
			case p.wins[k] == 0:
				cond = condition(string(gwv1.PolicyConditionAccepted), false, string(gwv1.PolicyReasonConflicted), gen, strings.Join(p.losses[k], "; "))
			default:
				msg := "policy applies to " + p.appliesTo(k)
				if len(p.losses[k]) > 0 {
					msg += ", except where another takes precedence: " + strings.Join(p.losses[k], "; ")
				}
				cond = condition(string(gwv1.PolicyConditionAccepted), true, string(gwv1.PolicyReasonAccepted), gen, msg)
			}
			ns := gwv1.Namespace(k.Namespace)
			st.Status.Ancestors = append(st.Status.Ancestors, gwv1.PolicyAncestorStatus{
				AncestorRef:    gwv1.ParentReference{Group: ptrTo(gwv1.Group(gatewayGroup)), Kind: ptrTo(gwv1.Kind("Gateway")), Namespace: &ns, Name: gwv1.ObjectName(k.Name)},
				ControllerName: gwv1.GatewayController(t.opts.ControllerName),
				Conditions:     []metav1.Condition{cond},
			})
		}
		out = append(out, st)
	}
	return out
}

// appliesTo says which listeners of Gateway k the (accepted) policy covers.
func (p *listenerPolicyState) appliesTo(k resource.Key) string {
	var sections []string
	for _, ref := range p.obj.Spec.TargetRefs {
		if string(ref.Name) != k.Name {
			continue
		}
		if ref.SectionName == nil {
			return "the HTTP, HTTPS and TLS-terminating listeners of Gateway " + k.String() + " and of its ListenerSets"
		}
		sections = append(sections, string(*ref.SectionName))
	}
	what := "listener"
	if len(sections) > 1 {
		what = "listeners"
	}
	return fmt.Sprintf("%s %s of Gateway %s", what, joinQuoted(sections), k)
}
