// Package v1alpha1 holds the Go types of Portico's own API group, gateway.portico.dev.
//
// +kubebuilder:object:generate=true
// +groupName=gateway.portico.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is Portico's API group.
const GroupName = "gateway.portico.dev"

// GroupVersion is the group and version of the types in this package.
var GroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}
