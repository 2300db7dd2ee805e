package translate

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Problem is one condition that says an object is not (fully) working.
type Problem struct {
	// Object is "Kind namespace/name", with the listener or parent it concerns.
	Object    string
	Condition string
	Reason    string
	Message   string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s=False (%s): %s", p.Object, p.Condition, p.Reason, p.Message)
}

// Problems lists every Accepted or ResolvedRefs condition that is False, in status
// order: what an app team's CI should fail on.
func (s *Status) Problems() []Problem {
	var out []Problem
	s.eachConditions(func(_, label string, conds []metav1.Condition) {
		for _, c := range conds {
			if (c.Type == "Accepted" || c.Type == "ResolvedRefs") && c.Status == metav1.ConditionFalse {
				out = append(out, Problem{Object: label, Condition: c.Type, Reason: c.Reason, Message: c.Message})
			}
		}
	})
	return out
}

// ObjectCounts counts the objects with status by kind and state: "accepted" (no
// Accepted or ResolvedRefs condition False), "not_accepted" (an Accepted condition False
// anywhere in its status: the object, one of a Gateway's listeners, one of a route's
// parents) or "unresolved_refs" (no Accepted False, but a ResolvedRefs False). A route
// counts once, however many parents it has. For metrics.
func (s *Status) ObjectCounts() map[string]map[string]int {
	out := map[string]map[string]int{}
	add := func(kind string, condLists ...[]metav1.Condition) {
		state := "accepted"
		for _, conds := range condLists {
			for _, c := range conds {
				if c.Status != metav1.ConditionFalse {
					continue
				}
				switch {
				case c.Type == "Accepted":
					state = "not_accepted"
				case c.Type == "ResolvedRefs" && state == "accepted":
					state = "unresolved_refs"
				}
			}
		}
		if out[kind] == nil {
			out[kind] = map[string]int{}
		}
		out[kind][state]++
	}
	for _, c := range s.GatewayClasses {
		add("GatewayClass", c.Status.Conditions)
	}
	for _, g := range s.Gateways {
		lists := [][]metav1.Condition{g.Status.Conditions}
		for _, l := range g.Status.Listeners {
			lists = append(lists, l.Conditions)
		}
		add("Gateway", lists...)
	}
	for _, ls := range s.ListenerSets {
		lists := [][]metav1.Condition{ls.Status.Conditions}
		for _, l := range ls.Status.Listeners {
			lists = append(lists, l.Conditions)
		}
		add("ListenerSet", lists...)
	}
	for _, r := range s.Routes {
		var lists [][]metav1.Condition
		for _, p := range r.Status.Parents {
			lists = append(lists, p.Conditions)
		}
		add(r.Kind, lists...)
	}
	for _, p := range slices.Concat(s.BackendTLSPolicies, s.ListenerPolicies) {
		var lists [][]metav1.Condition
		for _, a := range p.Status.Ancestors {
			lists = append(lists, a.Conditions)
		}
		add(p.Kind, lists...)
	}
	return out
}
