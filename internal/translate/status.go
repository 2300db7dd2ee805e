package translate

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Status is every status the translator computed, sorted by namespace and name so the
// same Snapshot always renders the same bytes. Condition LastTransitionTimes are left
// zero: the translator has no clock, so the status writer fills them in when a condition
// actually changes.
type Status struct {
	GatewayClasses     []GatewayClassStatus `json:"gatewayClasses,omitempty"`
	Gateways           []GatewayStatus      `json:"gateways,omitempty"`
	ListenerSets       []ListenerSetStatus  `json:"listenerSets,omitempty"`
	Routes             []RouteStatus        `json:"routes,omitempty"`
	BackendTLSPolicies []PolicyStatus       `json:"backendTLSPolicies,omitempty"`
	ListenerPolicies   []PolicyStatus       `json:"listenerPolicies,omitempty"`
}

// GatewayClassStatus is the status of one GatewayClass this controller owns.
type GatewayClassStatus struct {
	Name   string                  `json:"name"`
	Status gwv1.GatewayClassStatus `json:"status"`
}

// GatewayStatus is the status of one Gateway of an owned GatewayClass.
type GatewayStatus struct {
	Namespace string             `json:"namespace"`
	Name      string             `json:"name"`
	Status    gwv1.GatewayStatus `json:"status"`
}

// RouteStatus is the status of one route (any kind) with at least one parent owned by
// this controller. Parents lists only those parents: other controllers own the rest.
type RouteStatus struct {
	Kind      string           `json:"kind"`
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	Status    gwv1.RouteStatus `json:"status"`
}

// PolicyStatus is the status of one policy, with one ancestor entry per Gateway it
// affects.
type PolicyStatus struct {
	Kind      string            `json:"kind"`
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Status    gwv1.PolicyStatus `json:"status"`
}

// MarkNotProgrammed turns every Gateway's Programmed condition false with err as the
// reason, for a config the data plane refused (the previous one keeps serving).
func (s *Status) MarkNotProgrammed(err error) {
	for i := range s.Gateways {
		conds := s.Gateways[i].Status.Conditions
		for j := range conds {
			if conds[j].Type == string(gwv1.GatewayConditionProgrammed) {
				conds[j].Status = metav1.ConditionFalse
				conds[j].Reason = string(gwv1.GatewayReasonInvalid)
				conds[j].Message = "the data plane rejected this config, so the previous one is still served: " + err.Error()
			}
		}
	}
}
