package translate

import (
	"cmp"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/resource"
)

// listenerSetState is one ListenerSet whose parent is a Gateway this controller serves.
// Its listeners join the Gateway's after the Gateway's own, ListenerSets oldest first:
// that order decides who keeps a port or hostname two of them want.
type listenerSetState struct {
	obj       *gwv1.ListenerSet
	gw        *gatewayState
	listeners []*listenerState // spec order; none unless the Gateway takes the set
	// refused is why the set is not attached: the Gateway does not allow it
	// (NotAllowed) or is itself not accepted (ParentNotAccepted).
	refused problems
}

// listenerSetParent resolves a ListenerSet's parentRef to the Gateway's key, or false
// when it names another kind.
func listenerSetParent(ls *gwv1.ListenerSet) (resource.Key, bool) {
	ref := ls.Spec.ParentRef
	if ref.Group != nil && *ref.Group != gatewayGroup || ref.Kind != nil && *ref.Kind != "Gateway" {
		return resource.Key{}, false
	}
	ns := ls.Namespace
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	return resource.Key{Namespace: ns, Name: string(ref.Name)}, true
}

// listenerSetsByParent indexes the snapshot's ListenerSets by the Gateway they name.
func (t *translator) listenerSetsByParent() map[resource.Key][]*gwv1.ListenerSet {
	out := map[resource.Key][]*gwv1.ListenerSet{}
	for _, ls := range resource.Sorted(t.snap.ListenerSets) {
		if k, ok := listenerSetParent(ls); ok {
			out[k] = append(out[k], ls)
		}
	}
	return out
}

// addListenerSets attaches sets (all naming g as their parent) to g, in the spec's
// precedence order: oldest first, then by namespace/name.
func (t *translator) addListenerSets(g *gatewayState, sets []*gwv1.ListenerSet) {
	sets = slices.Clone(sets)
	slices.SortStableFunc(sets, compareListenerSets)
	for _, obj := range sets {
		s := &listenerSetState{obj: obj, gw: g}
		t.listenerSets = append(t.listenerSets, s)
		t.lsByKey[resource.KeyOf(obj)] = s
		if !g.rejected.ok() {
			s.refused.add(string(gwv1.ListenerSetReasonParentNotAccepted),
				"parent Gateway %s/%s is not accepted: %s", g.obj.Namespace, g.obj.Name, g.rejected.message())
			continue
		}
		if why := listenerSetNotAllowed(t.snap, g.obj, obj.Namespace); why != "" {
			s.refused.add(string(gwv1.ListenerSetReasonNotAllowed), "%s", why)
			continue
		}
		for i := range obj.Spec.Listeners {
			s.listeners = append(s.listeners, t.newListener(g, s, listenerFromEntry(&obj.Spec.Listeners[i])))
		}
		g.sets = append(g.sets, s)
	}
}

// compareListenerSets orders ListenerSets by precedence: oldest first, then by
// "namespace/name".
func compareListenerSets(a, b *gwv1.ListenerSet) int {
	return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
		cmp.Compare(resource.KeyOf(a).String(), resource.KeyOf(b).String()))
}

// listenerFromEntry reads a ListenerSet entry as a Gateway listener: the two have the
// same fields, and a Gateway listener is what the rest of the translator knows.
func listenerFromEntry(e *gwv1.ListenerEntry) *gwv1.Listener {
	return &gwv1.Listener{Name: e.Name, Hostname: e.Hostname, Port: e.Port, Protocol: e.Protocol, TLS: e.TLS, AllowedRoutes: e.AllowedRoutes}
}

// listenerSetNotAllowed says why Gateway gw does not take ListenerSets from namespace
// ns (spec.allowedListeners, which allows none unless set), or "" if it does.
func listenerSetNotAllowed(snap *resource.Snapshot, gw *gwv1.Gateway, ns string) string {
	from := gwv1.NamespacesFromNone
	var sel *metav1.LabelSelector
	if al := gw.Spec.AllowedListeners; al != nil && al.Namespaces != nil {
		if al.Namespaces.From != nil {
			from = *al.Namespaces.From
		}
		sel = al.Namespaces.Selector
	}
	who := fmt.Sprintf("Gateway %s/%s", gw.Namespace, gw.Name)
	switch from {
	case gwv1.NamespacesFromNone:
		return who + " takes no ListenerSets: its spec.allowedListeners.namespaces.from is None (the default)"
	case gwv1.NamespacesFromAll:
		return ""
	case gwv1.NamespacesFromSame:
		if ns == gw.Namespace {
			return ""
		}
		return fmt.Sprintf("%s takes ListenerSets only from its own namespace %s (allowedListeners.namespaces.from: Same)", who, gw.Namespace)
	case gwv1.NamespacesFromSelector:
		if sel == nil {
			return who + " allowedListeners.namespaces.from is Selector but no selector is set"
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return fmt.Sprintf("%s allowedListeners.namespaces.selector: %v", who, err)
		}
		if (routeNamespaces{from: gwv1.NamespacesFromSelector, selector: s}).allows(snap, ns) {
			return ""
		}
		return fmt.Sprintf("namespace %s does not match the allowedListeners.namespaces.selector (%s) of %s", ns, s, who)
	}
	return fmt.Sprintf("%s allowedListeners.namespaces.from %q is not one of All, Same, Selector, None", who, from)
}

// attached reports whether the Gateway took the set and it has a listener that could
// be accepted; AttachedListenerSets counts these.
func (s *listenerSetState) attached() bool {
	return s.refused.ok() && slices.ContainsFunc(s.listeners, (*listenerState).valid)
}

func (s *listenerSetState) status() gwv1.ListenerSetStatus {
	gen := s.obj.Generation
	var st gwv1.ListenerSetStatus
	var invalid []string
	for _, l := range s.listeners {
		st.Listeners = append(st.Listeners, gwv1.ListenerEntryStatus(l.status()))
		if !l.valid() {
			invalid = append(invalid, string(l.spec.Name))
		}
	}
	accepted := string(gwv1.ListenerSetConditionAccepted)
	programmed := string(gwv1.ListenerSetConditionProgrammed)
	notValid := string(gwv1.ListenerSetReasonListenersNotValid)
	switch {
	case !s.refused.ok():
		st.Conditions = []metav1.Condition{
			condition(accepted, false, s.refused.reason, gen, s.refused.message()),
			condition(programmed, false, s.refused.reason, gen, s.refused.message()),
		}
	case len(invalid) == len(s.listeners):
		msg := "no listener is valid (see each listener's conditions): " + joinQuoted(invalid)
		st.Conditions = []metav1.Condition{
			condition(accepted, false, notValid, gen, msg),
			condition(programmed, false, notValid, gen, msg),
		}
	default:
		a := condition(accepted, true, string(gwv1.ListenerSetReasonAccepted), gen,
			fmt.Sprintf("ListenerSet is attached to Gateway %s/%s", s.gw.obj.Namespace, s.gw.obj.Name))
		if len(invalid) > 0 {
			a = condition(accepted, true, notValid, gen,
				"ListenerSet is attached, but these listeners are not valid and serve nothing: "+joinQuoted(invalid))
		}
		p := condition(programmed, true, string(gwv1.ListenerSetReasonProgrammed), gen,
			fmt.Sprintf("%d of %d listeners programmed", s.programmedCount(), len(s.listeners)))
		if !s.gw.bindable() {
			p = condition(programmed, false, "ParentNotProgrammed", gen,
				fmt.Sprintf("parent Gateway %s/%s is not programmed: see its conditions", s.gw.obj.Namespace, s.gw.obj.Name))
		}
		st.Conditions = []metav1.Condition{a, p}
	}
	return st
}

func (s *listenerSetState) programmedCount() int {
	n := 0
	for _, l := range s.listeners {
		if l.programmed() {
			n++
		}
	}
	return n
}

// attachedListenerSets is the Gateway's status.attachedListenerSets: reported when the
// Gateway takes ListenerSets at all (or some are attached), nil otherwise.
func (g *gatewayState) attachedListenerSets() *int32 {
	n := int32(0)
	for _, s := range g.sets {
		if s.attached() {
			n++
		}
	}
	al := g.obj.Spec.AllowedListeners
	takes := al != nil && al.Namespaces != nil && al.Namespaces.From != nil && *al.Namespaces.From != gwv1.NamespacesFromNone
	if n == 0 && !takes {
		return nil
	}
	return &n
}

// ListenerSetStatus is the status of one ListenerSet whose parent Gateway this
// controller serves.
type ListenerSetStatus struct {
	Namespace string                 `json:"namespace"`
	Name      string                 `json:"name"`
	Status    gwv1.ListenerSetStatus `json:"status"`
}
