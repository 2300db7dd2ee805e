package resource

import "k8s.io/apimachinery/pkg/runtime/schema"

func gvkOf(apiVersion, kind string) schema.GroupVersionKind {
	gv, _ := schema.ParseGroupVersion(apiVersion)
	return gv.WithKind(kind)
}
