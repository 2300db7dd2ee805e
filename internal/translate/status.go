package translate

import (
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Status is every status the translator computed, sorted by namespace and name so the
// same Snapshot always renders the same bytes. Condition LastTransitionTimes are left
// zero: the translator has no clock, so the status writer fills them in when a condition
// actually changes.
type Status struct {
	GatewayClasses     []GatewayClassStatus `json:"gatewayClasses,omitempty"`
	Gateways           []GatewayStatus      `json:"gateways,omitempty"`
	Routes             []RouteStatus        `json:"routes,omitempty"`
	BackendTLSPolicies []PolicyStatus       `json:"backendTLSPolicies,omitempty"`
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
