package translate

import (
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// StampTransitions fills every condition's LastTransitionTime: a condition whose
// status is the same as in prev (same object, same place, same type) keeps prev's
// time, any other gets now. The translator itself has no clock; whoever publishes
// status calls this with the previously published status.
func (s *Status) StampTransitions(prev *Status, now metav1.Time) {
	old := map[string]metav1.Condition{}
	if prev != nil {
		prev.eachConditions(func(where, _ string, conds []metav1.Condition) {
			for _, c := range conds {
				old[where+"|"+c.Type] = c
			}
		})
	}
	s.eachConditions(func(where, _ string, conds []metav1.Condition) {
		for i := range conds {
			c := &conds[i]
			if o, ok := old[where+"|"+c.Type]; ok && o.Status == c.Status && !o.LastTransitionTime.IsZero() {
				c.LastTransitionTime = o.LastTransitionTime
			} else {
				c.LastTransitionTime = now
			}
		}
	})
}

// eachConditions calls fn with every condition list, a key naming where it lives
// (stable across translations) and a label saying the same for people.
func (s *Status) eachConditions(fn func(key, label string, conds []metav1.Condition)) {
	for _, c := range s.GatewayClasses {
		fn("gc/"+c.Name, "GatewayClass "+c.Name, c.Status.Conditions)
	}
	for _, g := range s.Gateways {
		id := g.Namespace + "/" + g.Name
		fn("gw/"+id, "Gateway "+id, g.Status.Conditions)
		for _, l := range g.Status.Listeners {
			fn("gw/"+id+"/l/"+string(l.Name), "Gateway "+id+" listener "+string(l.Name), l.Conditions)
		}
	}
	for _, s := range s.ListenerSets {
		id := s.Namespace + "/" + s.Name
		fn("ls/"+id, "ListenerSet "+id, s.Status.Conditions)
		for _, l := range s.Status.Listeners {
			fn("ls/"+id+"/l/"+string(l.Name), "ListenerSet "+id+" listener "+string(l.Name), l.Conditions)
		}
	}
	for _, r := range s.Routes {
		for _, p := range r.Status.Parents {
			id := r.Kind + " " + r.Namespace + "/" + r.Name
			fn(id+"/p/"+parentKey(p.ParentRef), id+" on "+ParentName(p.ParentRef), p.Conditions)
		}
	}
	for _, p := range slices.Concat(s.BackendTLSPolicies, s.ListenerPolicies) {
		for _, a := range p.Status.Ancestors {
			id := p.Kind + " " + p.Namespace + "/" + p.Name
			fn(id+"/a/"+parentKey(a.AncestorRef), id+" for Gateway "+ParentName(a.AncestorRef), a.Conditions)
		}
	}
}

// ParentName renders a parentRef as "namespace/name[/section]", with "ListenerSet "
// in front for a ListenerSet (a Gateway is the default parent kind).
func ParentName(ref gwv1.ParentReference) string {
	name := string(ref.Name)
	if ref.Namespace != nil {
		name = string(*ref.Namespace) + "/" + name
	}
	if ref.SectionName != nil {
		name += "/" + string(*ref.SectionName)
	}
	if ref.Kind != nil && *ref.Kind == "ListenerSet" {
		name = "ListenerSet " + name
	}
	return name
}

func parentKey(ref gwv1.ParentReference) string {
	k := ParentName(ref)
	if ref.Port != nil {
		k += ":" + strconv.Itoa(int(*ref.Port))
	}
	return k
}
