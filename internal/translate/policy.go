package translate

import (
	"cmp"
	"crypto/x509"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/resource"
)

// backendTLSPolicies indexes BackendTLSPolicies by the Service ports they target and
// collects their status.
type backendTLSPolicies struct {
	states   []*tlsPolicyState // sorted by key
	byTarget map[policyTarget][]*tlsPolicyState
}

// policyTarget is a Service, and a port name ("" for every port).
type policyTarget struct {
	service resource.Key
	port    string
}

type tlsPolicyState struct {
	obj *gwv1.BackendTLSPolicy
	// conflictedBy names the older policy that already targets the same port.
	conflictedBy map[policyTarget]string
	resolved     problems // CA certificate problems
	accepted     problems // validation problems other than references
	tls          *ir.UpstreamTLS
	validCAs     int
	ancestors    map[resource.Key]*gatewayState
	loaded       bool
}

func indexBackendTLSPolicies(snap *resource.Snapshot) *backendTLSPolicies {
	idx := &backendTLSPolicies{byTarget: map[policyTarget][]*tlsPolicyState{}}
	for _, p := range resource.Sorted(snap.BackendTLSPolicies) {
		st := &tlsPolicyState{obj: p, conflictedBy: map[policyTarget]string{}, ancestors: map[resource.Key]*gatewayState{}}
		idx.states = append(idx.states, st)
		for _, ref := range p.Spec.TargetRefs {
			if ref.Group != "" || ref.Kind != "Service" {
				st.accepted.add(string(gwv1.PolicyReasonInvalid), "targetRef %s %s: only core Services can be targeted", groupKind(string(ref.Group), string(ref.Kind)), ref.Name)
				continue
			}
			target := policyTarget{service: resource.Key{Namespace: p.Namespace, Name: string(ref.Name)}}
			if ref.SectionName != nil {
				target.port = string(*ref.SectionName)
			}
			idx.byTarget[target] = append(idx.byTarget[target], st)
		}
	}
	// The oldest policy on a target wins; the others are Conflicted there.
	for target, ps := range idx.byTarget {
		slices.SortStableFunc(ps, func(a, b *tlsPolicyState) int {
			return cmp.Or(a.obj.CreationTimestamp.Compare(b.obj.CreationTimestamp.Time),
				resource.KeyOf(a.obj).Compare(resource.KeyOf(b.obj)))
		})
		for _, p := range ps[1:] {
			p.conflictedBy[target] = ps[0].obj.Name
		}
	}
	return idx
}

// policyFor returns the policy that applies to a Service port: one naming the port
// wins over one for the whole Service.
func (idx *backendTLSPolicies) policyFor(svc resource.Key, portName string) *tlsPolicyState {
	if portName != "" {
		if ps := idx.byTarget[policyTarget{svc, portName}]; len(ps) > 0 {
			return ps[0]
		}
	}
	if ps := idx.byTarget[policyTarget{svc, ""}]; len(ps) > 0 {
		return ps[0]
	}
	return nil
}

// recordUse notes that Gateways send traffic to a Service port, so every policy
// targeting it (the winner and any it conflicts with) reports status for them.
func (idx *backendTLSPolicies) recordUse(svc resource.Key, portName string, gws []*gatewayState) {
	targets := []policyTarget{{svc, ""}}
	if portName != "" {
		targets = append(targets, policyTarget{svc, portName})
	}
	for _, target := range targets {
		for _, p := range idx.byTarget[target] {
			for _, g := range gws {
				p.ancestors[resource.KeyOf(g.obj)] = g
			}
		}
	}
}

func (p *tlsPolicyState) invalidMessage() string {
	if !p.accepted.ok() {
		return p.accepted.message()
	}
	return p.resolved.message()
}

// load validates the policy and builds its TLS settings, once.
func (p *tlsPolicyState) load(snap *resource.Snapshot) {
	if p.loaded {
		return
	}
	p.loaded = true
	v := p.obj.Spec.Validation
	if v.Hostname == "" {
		p.accepted.add(string(gwv1.PolicyReasonInvalid), "validation.hostname is required")
	}
	out := &ir.UpstreamTLS{SNI: string(v.Hostname)}
	for _, san := range v.SubjectAltNames {
		switch san.Type {
		case gwv1.HostnameSubjectAltNameType:
			out.SubjectAltNames = append(out.SubjectAltNames, ir.SubjectAltName{Hostname: string(san.Hostname)})
		case gwv1.URISubjectAltNameType:
			out.SubjectAltNames = append(out.SubjectAltNames, ir.SubjectAltName{URI: string(san.URI)})
		default:
			p.accepted.add(string(gwv1.PolicyReasonInvalid), "subjectAltNames type %q is not supported", san.Type)
		}
	}
	switch {
	case v.WellKnownCACertificates != nil && len(v.CACertificateRefs) > 0:
		p.accepted.add(string(gwv1.PolicyReasonInvalid), "set either caCertificateRefs or wellKnownCACertificates, not both")
	case v.WellKnownCACertificates != nil:
		if *v.WellKnownCACertificates != gwv1.WellKnownCACertificatesSystem {
			p.accepted.add(string(gwv1.PolicyReasonInvalid), "wellKnownCACertificates %q is not supported; use System", *v.WellKnownCACertificates)
		}
		out.SystemRoots = true
	case len(v.CACertificateRefs) == 0:
		p.accepted.add(string(gwv1.PolicyReasonInvalid), "validation needs caCertificateRefs or wellKnownCACertificates")
	}
	var bundle string
	p.validCAs = 0
	for i, ref := range v.CACertificateRefs {
		if ref.Group != "" || ref.Kind != "ConfigMap" {
			p.resolved.add(string(gwv1.BackendTLSPolicyReasonInvalidKind), "caCertificateRefs[%d]: kind %s is not supported; use a ConfigMap", i, groupKind(string(ref.Group), string(ref.Kind)))
			continue
		}
		cm, ok := snap.ConfigMaps[resource.Key{Namespace: p.obj.Namespace, Name: string(ref.Name)}]
		if !ok {
			p.resolved.add(string(gwv1.BackendTLSPolicyReasonInvalidCACertificateRef), "caCertificateRefs[%d]: ConfigMap %s/%s not found", i, p.obj.Namespace, ref.Name)
			continue
		}
		pemData := cm.Data["ca.crt"]
		pool := x509.NewCertPool()
		if pemData == "" || !pool.AppendCertsFromPEM([]byte(pemData)) {
			p.resolved.add(string(gwv1.BackendTLSPolicyReasonInvalidCACertificateRef), "caCertificateRefs[%d]: ConfigMap %s/%s has no PEM certificate under key ca.crt", i, p.obj.Namespace, ref.Name)
			continue
		}
		bundle += pemData
		if bundle[len(bundle)-1] != '\n' {
			bundle += "\n"
		}
		p.validCAs++
	}
	out.CACertificates = bundle
	// Some unusable CA references still leave a usable policy with the others (the
	// policy reports ResolvedRefs=False); only when none is usable is it rejected.
	if p.accepted.ok() && (out.SystemRoots || p.validCAs > 0) {
		p.tls = out
	}
}

// maxAncestors is the API's limit on status.ancestors entries.
const maxAncestors = 16

// ancestorKeys are the Gateways a policy reports on, sorted, and at most maxAncestors
// of them (the API caps status.ancestors; the policy still applies on every Gateway).
func ancestorKeys[V any](ancestors map[resource.Key]V) []resource.Key {
	keys := make([]resource.Key, 0, len(ancestors))
	for k := range ancestors {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, resource.Key.Compare)
	if len(keys) > maxAncestors {
		keys = keys[:maxAncestors]
	}
	return keys
}

// policyStatuses renders the status of every BackendTLSPolicy that affects a Gateway
// this controller serves.
func (idx *backendTLSPolicies) policyStatuses(snap *resource.Snapshot, controller string) []PolicyStatus {
	var out []PolicyStatus
	for _, p := range idx.states {
		if len(p.ancestors) == 0 {
			continue
		}
		p.load(snap)
		gen := p.obj.Generation
		var conds []metav1.Condition
		switch {
		case len(p.conflictedBy) > 0 && len(p.conflictedBy) == len(p.obj.Spec.TargetRefs):
			var older []string
			for _, n := range p.conflictedBy {
				older = append(older, n)
			}
			slices.Sort(older)
			conds = append(conds, condition(string(gwv1.PolicyConditionAccepted), false, string(gwv1.PolicyReasonConflicted), gen,
				fmt.Sprintf("BackendTLSPolicy %s targets the same Service port and takes precedence (older, or first by name)", joinQuoted(slices.Compact(older)))))
		case !p.accepted.ok():
			conds = append(conds, condition(string(gwv1.PolicyConditionAccepted), false, p.accepted.reason, gen, p.accepted.message()))
		case p.tls == nil:
			conds = append(conds, condition(string(gwv1.PolicyConditionAccepted), false, string(gwv1.BackendTLSPolicyReasonNoValidCACertificate), gen,
				"no CA certificate is usable: "+p.resolved.message()))
		default:
			conds = append(conds, condition(string(gwv1.PolicyConditionAccepted), true, string(gwv1.PolicyReasonAccepted), gen, "policy is accepted"))
		}
		if p.resolved.ok() {
			conds = append(conds, condition(string(gwv1.BackendTLSPolicyConditionResolvedRefs), true, string(gwv1.BackendTLSPolicyReasonResolvedRefs), gen, "all references resolved"))
		} else {
			conds = append(conds, condition(string(gwv1.BackendTLSPolicyConditionResolvedRefs), false, p.resolved.reason, gen, p.resolved.message()))
		}
		st := PolicyStatus{Kind: "BackendTLSPolicy", Namespace: p.obj.Namespace, Name: p.obj.Name}
		for _, k := range ancestorKeys(p.ancestors) {
			ns := gwv1.Namespace(k.Namespace)
			group := gwv1.Group(gatewayGroup)
			kind := gwv1.Kind("Gateway")
			st.Status.Ancestors = append(st.Status.Ancestors, gwv1.PolicyAncestorStatus{
				AncestorRef:    gwv1.ParentReference{Group: &group, Kind: &kind, Namespace: &ns, Name: gwv1.ObjectName(k.Name)},
				ControllerName: gwv1.GatewayController(controller),
				Conditions:     slices.Clone(conds),
			})
		}
		out = append(out, st)
	}
	return out
}
