package translate

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/resource"
)

// routeNamespaces is a listener's allowedRoutes.namespaces, ready to evaluate.
type routeNamespaces struct {
	from     gwv1.FromNamespaces
	own      string
	selector labels.Selector
	err      error
}

// routeNamespacesFor reads a listener's allowedRoutes.namespaces; own is the namespace
// of the Gateway or ListenerSet that defines the listener ("Same" means that one).
func (t *translator) routeNamespacesFor(own string, spec *gwv1.Listener) routeNamespaces {
	rn := routeNamespaces{from: gwv1.NamespacesFromSame, own: own}
	if spec.AllowedRoutes == nil || spec.AllowedRoutes.Namespaces == nil {
		return rn
	}
	ns := spec.AllowedRoutes.Namespaces
	if ns.From != nil {
		rn.from = *ns.From
	}
	if rn.from == gwv1.NamespacesFromSelector {
		if ns.Selector == nil {
			rn.err = fmt.Errorf("allowedRoutes.namespaces.from is Selector but no selector is set")
			return rn
		}
		sel, err := metav1.LabelSelectorAsSelector(ns.Selector)
		if err != nil {
			rn.err = fmt.Errorf("allowedRoutes.namespaces.selector: %w", err)
			return rn
		}
		rn.selector = sel
	}
	switch rn.from {
	case gwv1.NamespacesFromAll, gwv1.NamespacesFromSame, gwv1.NamespacesFromSelector:
	default:
		rn.err = fmt.Errorf("allowedRoutes.namespaces.from %q is not one of All, Same, Selector", rn.from)
	}
	return rn
}

// allows reports whether routes in namespace ns may attach. Namespaces that are not in
// the Snapshot (standalone configs often omit them) carry only the well-known
// kubernetes.io/metadata.name label.
func (rn routeNamespaces) allows(snap *resource.Snapshot, ns string) bool {
	switch rn.from {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame:
		return ns == rn.own
	case gwv1.NamespacesFromSelector:
		if rn.selector == nil {
			return false
		}
		set := labels.Set{corev1.LabelMetadataName: ns}
		if obj, ok := snap.Namespaces[resource.Key{Name: ns}]; ok {
			set = labels.Set(obj.Labels)
			if _, has := set[corev1.LabelMetadataName]; !has {
				set = labels.Merge(set, labels.Set{corev1.LabelMetadataName: ns})
			}
		}
		return rn.selector.Matches(set)
	}
	return false
}
