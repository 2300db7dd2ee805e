package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackendKind is the kind routes name in a backendRef to a Backend.
const BackendKind = "Backend"

// Backend is a set of static endpoints that routes can send traffic to, for use where
// there is no Kubernetes Service (standalone Portico, or destinations outside the cluster).
// A route refers to it with backendRefs {group: gateway.portico.dev, kind: Backend, name}.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=portico
// +kubebuilder:subresource:status
type Backend struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BackendSpec `json:"spec"`
	// +optional
	Status BackendStatus `json:"status,omitempty"`
}

// BackendSpec lists where traffic goes and how to speak to it.
type BackendSpec struct {
	// Endpoints receive the traffic, balanced between them.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Endpoints []BackendEndpoint `json:"endpoints"`

	// AppProtocol is the protocol spoken to the endpoints, with the values Kubernetes
	// Services use: "http" (the default), "kubernetes.io/h2c", "kubernetes.io/ws",
	// "kubernetes.io/wss", "https", "tcp", "udp".
	// +optional
	AppProtocol *string `json:"appProtocol,omitempty"`
}

// BackendEndpoint is one destination: an IP address or a DNS name, and a port.
type BackendEndpoint struct {
	// Address is an IPv4/IPv6 address or a DNS name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Address string `json:"address"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
}

// BackendStatus is reserved for conditions reported by the controller.
type BackendStatus struct {
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BackendList is a list of Backends.
//
// +kubebuilder:object:root=true
type BackendList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Backend `json:"items"`
}
