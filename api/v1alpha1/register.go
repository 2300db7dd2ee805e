package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// AddToScheme registers this group's types (for Kubernetes clients and caches).
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Backend{}, &BackendList{}, &ListenerPolicy{}, &ListenerPolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
