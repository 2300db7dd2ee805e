package translate

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// metaLike is the object metadata the translator reads.
type metaLike interface {
	GetNamespace() string
	GetName() string
	GetCreationTimestamp() metav1.Time
}
