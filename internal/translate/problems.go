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
	s.eachConditions(func(_, label string, conds []metav1.Condition) {
		for _, c := range conds {
			if (c.Type == "Accepted" || c.Type == "ResolvedRefs") && c.Status == metav1.ConditionFalse {
				out = append(out, Problem{Object: label, Condition: c.Type, Reason: c.Reason, Message: c.Message})
			}
		}
	})
	return out
}
