package translate

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/resource"
)

// routeInfo is what attachment needs to know about a route of any kind.
type routeInfo struct {
	kind       string // HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute
	meta       metav1.ObjectMeta
	parentRefs []gwv1.ParentReference
	// hostnames is nil for kinds without hostnames (TCPRoute, UDPRoute).
	hostnames []string
	// usesHostnames is true for kinds that match on hostnames.
	usesHostnames bool
}

func (r routeInfo) id() string {
	return r.kind + "/" + r.meta.Namespace + "/" + r.meta.Name
}

// attachment is a listener a route attached to, and the hostnames it serves there.
type attachment struct {
	listener  *listenerState
	hostnames []string
}

// parentResult is the outcome of one parentRef owned by this controller.
type parentResult struct {
	status      gwv1.RouteParentStatus
	attachments []attachment
}

func (p *parentResult) accepted() bool { return len(p.attachments) > 0 }

func hostnameStrings(hs []gwv1.Hostname) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = string(h)
	}
	return out
}

// attach resolves every parentRef of r that names a Gateway this controller serves,
// records the attachment on the listeners, and returns one result per such parentRef
// with its Accepted condition set.
func (t *translator) attach(r routeInfo) []*parentResult {
	var results []*parentResult
	var badHostname error
	for i, h := range r.hostnames {
		if err := validateHostname(h); err != nil {
			badHostname = fmt.Errorf("hostnames[%d]: %w", i, err)
			break
		}
	}
	for _, ref := range r.parentRefs {
		group, kind := gatewayGroup, "Gateway"
		if ref.Group != nil {
			group = string(*ref.Group)
		}
		if ref.Kind != nil {
			kind = string(*ref.Kind)
		}
		if group != gatewayGroup || kind != "Gateway" && kind != "ListenerSet" {
			continue // a parent of another kind (a Service): not ours
		}
		ns := r.meta.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		key := resource.Key{Namespace: ns, Name: string(ref.Name)}
		var gw *gatewayState
		var set *listenerSetState
		if kind == "Gateway" {
			gw = t.gwByKey[key]
		} else {
			set = t.lsByKey[key]
		}
		if gw == nil && set == nil {
			continue // a parent we do not serve (or that does not exist): not ours to report
		}
		// Status echoes the parentRef with its defaults filled in, so readers (and the
		// conformance suite) need not know the defaults.
		shown := *ref.DeepCopy() // its pointers must not lead into the route's spec
		shown.Group, shown.Kind, shown.Namespace = ptrTo(gwv1.Group(group)), ptrTo(gwv1.Kind(kind)), ptrTo(gwv1.Namespace(ns))
		if slices.ContainsFunc(results, func(p *parentResult) bool { return parentRefEqual(p.status.ParentRef, shown) }) {
			continue
		}
		res := &parentResult{status: gwv1.RouteParentStatus{
			ParentRef:      shown,
			ControllerName: gwv1.GatewayController(t.opts.ControllerName),
		}}
		if badHostname != nil {
			res.status.Conditions = append(res.status.Conditions, condition(string(gwv1.RouteConditionAccepted), false,
				string(gwv1.RouteReasonUnsupportedValue), r.meta.Generation, badHostname.Error()))
		} else if set != nil {
			t.attachToListenerSet(r, set, ref, res)
		} else {
			t.attachToGateway(r, gw, ref, res)
		}
		results = append(results, res)
	}
	return results
}

// attachToGateway attaches r to the Gateway's own listeners (those of its ListenerSets
// take only routes that name the set).
func (t *translator) attachToGateway(r routeInfo, gw *gatewayState, ref gwv1.ParentReference, res *parentResult) {
	if !gw.rejected.ok() {
		res.status.Conditions = append(res.status.Conditions, condition(string(gwv1.RouteConditionAccepted), false,
			string(gwv1.RouteReasonNoMatchingParent), r.meta.Generation,
			fmt.Sprintf("Gateway %s/%s is not accepted (%s), so it serves no routes", gw.obj.Namespace, gw.obj.Name, gw.rejected.message())))
		return
	}
	t.attachToListeners(r, gatewayOwner(gw.obj), gw.listeners, ref, res)
	if ref.SectionName == nil || res.accepted() {
		return
	}
	for _, s := range gw.sets {
		for _, l := range s.listeners {
			if l.spec.Name == *ref.SectionName {
				last := &res.status.Conditions[len(res.status.Conditions)-1]
				last.Message += fmt.Sprintf("; listener %q is in ListenerSet %s/%s: to attach there, name the ListenerSet as the parent (kind: ListenerSet)",
					l.spec.Name, s.obj.Namespace, s.obj.Name)
				return
			}
		}
	}
}

// attachToListenerSet attaches r to the set's listeners.
func (t *translator) attachToListenerSet(r routeInfo, set *listenerSetState, ref gwv1.ParentReference, res *parentResult) {
	if !set.refused.ok() {
		res.status.Conditions = append(res.status.Conditions, condition(string(gwv1.RouteConditionAccepted), false,
			string(gwv1.RouteReasonNoMatchingParent), r.meta.Generation,
			fmt.Sprintf("ListenerSet %s/%s is not attached to its Gateway (%s), so it serves no routes", set.obj.Namespace, set.obj.Name, set.refused.message())))
		return
	}
	t.attachToListeners(r, owner{"ListenerSet", set.obj.Namespace, set.obj.Name}, set.listeners, ref, res)
}

// attachToListeners attaches r to those of parent's listeners that ref selects and
// that take it, and sets the parent's Accepted condition.
func (t *translator) attachToListeners(r routeInfo, parent owner, listeners []*listenerState, ref gwv1.ParentReference, res *parentResult) {
	gen := r.meta.Generation
	var candidates []*listenerState
	for _, l := range listeners {
		if ref.SectionName != nil && l.spec.Name != *ref.SectionName {
			continue
		}
		if ref.Port != nil && l.spec.Port != *ref.Port {
			continue
		}
		candidates = append(candidates, l)
	}
	if len(candidates) == 0 {
		what := "no listeners"
		switch {
		case ref.SectionName != nil && ref.Port != nil:
			what = fmt.Sprintf("no listener named %q on port %d", *ref.SectionName, *ref.Port)
			for _, l := range listeners {
				if l.spec.Name == *ref.SectionName {
					what += fmt.Sprintf(" (listener %q is on port %d)", l.spec.Name, l.spec.Port)
				}
			}
		case ref.SectionName != nil:
			what = fmt.Sprintf("no listener named %q", *ref.SectionName)
		case ref.Port != nil:
			what = fmt.Sprintf("no listener on port %d", *ref.Port)
		}
		res.status.Conditions = append(res.status.Conditions, condition(string(gwv1.RouteConditionAccepted), false,
			string(gwv1.RouteReasonNoMatchingParent), gen,
			fmt.Sprintf("%s has %s", parent, what)))
		return
	}
	var notAllowed, noHost problems
	for _, l := range candidates {
		switch {
		case !l.canAttach():
			notAllowed.add(string(gwv1.RouteReasonNotAllowedByListeners), "listener %q is not accepted", l.spec.Name)
		case !l.allowsKind(r.kind):
			notAllowed.add(string(gwv1.RouteReasonNotAllowedByListeners), "listener %q does not allow kind %s", l.spec.Name, r.kind)
		case !l.allowed.allows(t.snap, r.meta.Namespace):
			notAllowed.add(string(gwv1.RouteReasonNotAllowedByListeners), "listener %q does not allow routes from namespace %s", l.spec.Name, r.meta.Namespace)
		default:
			var hosts []string
			if r.usesHostnames {
				var ok bool
				hosts, ok = intersectHostnames(l.hostname(), r.hostnames)
				if !ok {
					noHost.add(string(gwv1.RouteReasonNoMatchingListenerHostname), "listener %q hostname %s matches none of the route's hostnames", l.spec.Name, l.hostname())
					continue
				}
			}
			res.attachments = append(res.attachments, attachment{listener: l, hostnames: hosts})
			l.attached[r.id()] = true
		}
	}
	switch {
	case res.accepted():
		res.status.Conditions = append(res.status.Conditions, condition(string(gwv1.RouteConditionAccepted), true,
			string(gwv1.RouteReasonAccepted), gen, "route is accepted"))
	case !notAllowed.ok():
		res.status.Conditions = append(res.status.Conditions, condition(string(gwv1.RouteConditionAccepted), false,
			notAllowed.reason, gen, notAllowed.message()))
	default:
		res.status.Conditions = append(res.status.Conditions, condition(string(gwv1.RouteConditionAccepted), false,
			noHost.reason, gen, noHost.message()))
	}
}

func (l *listenerState) allowsKind(kind string) bool {
	return slices.ContainsFunc(l.supportedKinds, func(k gwv1.RouteGroupKind) bool { return string(k.Kind) == kind })
}

func parentRefEqual(a, b gwv1.ParentReference) bool {
	return ptrEq(a.Group, b.Group) && ptrEq(a.Kind, b.Kind) && ptrEq(a.Namespace, b.Namespace) &&
		a.Name == b.Name && ptrEq(a.SectionName, b.SectionName) && ptrEq(a.Port, b.Port)
}

func ptrTo[T any](v T) *T { return &v }

func ptrEq[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// finishRoute records a route's status: each parent gets ResolvedRefs after its other
// conditions.
func (t *translator) finishRoute(r routeInfo, parents []*parentResult, resolved problems) {
	if len(parents) == 0 {
		return
	}
	gen := r.meta.Generation
	rs := RouteStatus{Kind: r.kind, Namespace: r.meta.Namespace, Name: r.meta.Name}
	for _, p := range parents {
		if resolved.ok() {
			p.status.Conditions = append(p.status.Conditions, condition(string(gwv1.RouteConditionResolvedRefs), true,
				string(gwv1.RouteReasonResolvedRefs), gen, "all references resolved"))
		} else {
			p.status.Conditions = append(p.status.Conditions, condition(string(gwv1.RouteConditionResolvedRefs), false,
				resolved.reason, gen, resolved.message()))
		}
		rs.Status.Parents = append(rs.Status.Parents, p.status)
	}
	t.routes = append(t.routes, rs)
}
