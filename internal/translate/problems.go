package translate

import (
	"fmt"

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
	check := func(object string, conds []metav1.Condition) {
		for _, c := range conds {
			if (c.Type == "Accepted" || c.Type == "ResolvedRefs") && c.Status == metav1.ConditionFalse {
				out = append(out, Problem{Object: object, Condition: c.Type, Reason: c.Reason, Message: c.Message})
			}
		}
	}
	for _, c := range s.GatewayClasses {
		check("GatewayClass "+c.Name, c.Status.Conditions)
	}
	for _, g := range s.Gateways {
		id := "Gateway " + g.Namespace + "/" + g.Name
		check(id, g.Status.Conditions)
		for _, l := range g.Status.Listeners {
			check(id+" listener "+string(l.Name), l.Conditions)
		}
	}
	for _, r := range s.Routes {
		for _, p := range r.Status.Parents {
			parent := string(p.ParentRef.Name)
			if p.ParentRef.Namespace != nil {
				parent = string(*p.ParentRef.Namespace) + "/" + parent
			}
			if p.ParentRef.SectionName != nil {
				parent += "/" + string(*p.ParentRef.SectionName)
			}
			check(fmt.Sprintf("%s %s/%s on %s", r.Kind, r.Namespace, r.Name, parent), p.Conditions)
		}
	}
	for _, pol := range s.BackendTLSPolicies {
		for _, a := range pol.Status.Ancestors {
			check(fmt.Sprintf("%s %s/%s for Gateway %s", pol.Kind, pol.Namespace, pol.Name, a.AncestorRef.Name), a.Conditions)
		}
	}
	return out
}
