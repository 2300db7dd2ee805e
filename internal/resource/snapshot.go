// Package resource holds Portico's input model: a Snapshot of every object the
// translator reads, and loaders that build one from YAML or JSON.
package resource

import (
	"cmp"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/api/v1alpha1"
)

// Key identifies an object of a known kind. Cluster-scoped objects have an empty Namespace.
type Key struct {
	Namespace string
	Name      string
}

// KeyOf returns the key of obj.
func KeyOf(obj client.Object) Key {
	return Key{Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// String renders "namespace/name", or "name" for cluster-scoped objects.
func (k Key) String() string {
	if k.Namespace == "" {
		return k.Name
	}
	return k.Namespace + "/" + k.Name
}

// Compare orders keys by namespace, then name.
func (k Key) Compare(o Key) int {
	if c := cmp.Compare(k.Namespace, o.Namespace); c != 0 {
		return c
	}
	return cmp.Compare(k.Name, o.Name)
}

// Snapshot is every input object at one point in time, indexed by kind and key.
// A Snapshot is built once and then only read: the translator and anything else that
// receives one must not modify it or the objects it holds.
type Snapshot struct {
	GatewayClasses     map[Key]*gwv1.GatewayClass
	Gateways           map[Key]*gwv1.Gateway
	ListenerSets       map[Key]*gwv1.ListenerSet
	HTTPRoutes         map[Key]*gwv1.HTTPRoute
	GRPCRoutes         map[Key]*gwv1.GRPCRoute
	TLSRoutes          map[Key]*gwv1.TLSRoute
	TCPRoutes          map[Key]*gwv1.TCPRoute
	UDPRoutes          map[Key]*gwv1.UDPRoute
	ReferenceGrants    map[Key]*gwv1.ReferenceGrant
	BackendTLSPolicies map[Key]*gwv1.BackendTLSPolicy
	Services           map[Key]*corev1.Service
	EndpointSlices     map[Key]*discoveryv1.EndpointSlice
	Secrets            map[Key]*corev1.Secret
	ConfigMaps         map[Key]*corev1.ConfigMap
	Namespaces         map[Key]*corev1.Namespace
	Backends           map[Key]*v1alpha1.Backend
	ListenerPolicies   map[Key]*v1alpha1.ListenerPolicy
}

// NewSnapshot returns an empty Snapshot ready for Add.
func NewSnapshot() *Snapshot {
	return &Snapshot{
		GatewayClasses:     map[Key]*gwv1.GatewayClass{},
		Gateways:           map[Key]*gwv1.Gateway{},
		ListenerSets:       map[Key]*gwv1.ListenerSet{},
		HTTPRoutes:         map[Key]*gwv1.HTTPRoute{},
		GRPCRoutes:         map[Key]*gwv1.GRPCRoute{},
		TLSRoutes:          map[Key]*gwv1.TLSRoute{},
		TCPRoutes:          map[Key]*gwv1.TCPRoute{},
		UDPRoutes:          map[Key]*gwv1.UDPRoute{},
		ReferenceGrants:    map[Key]*gwv1.ReferenceGrant{},
		BackendTLSPolicies: map[Key]*gwv1.BackendTLSPolicy{},
		Services:           map[Key]*corev1.Service{},
		EndpointSlices:     map[Key]*discoveryv1.EndpointSlice{},
		Secrets:            map[Key]*corev1.Secret{},
		ConfigMaps:         map[Key]*corev1.ConfigMap{},
		Namespaces:         map[Key]*corev1.Namespace{},
		Backends:           map[Key]*v1alpha1.Backend{},
		ListenerPolicies:   map[Key]*v1alpha1.ListenerPolicy{},
	}
}

// Add stores obj, replacing any object of the same kind and key. It reports whether an
// object was replaced, and fails for kinds a Snapshot does not hold.
func (s *Snapshot) Add(obj client.Object) (replaced bool, err error) {
	k := KeyOf(obj)
	switch o := obj.(type) {
	case *gwv1.GatewayClass:
		return put(s.GatewayClasses, k, o), nil
	case *gwv1.Gateway:
		return put(s.Gateways, k, o), nil
	case *gwv1.ListenerSet:
		return put(s.ListenerSets, k, o), nil
	case *gwv1.HTTPRoute:
		return put(s.HTTPRoutes, k, o), nil
	case *gwv1.GRPCRoute:
		return put(s.GRPCRoutes, k, o), nil
	case *gwv1.TLSRoute:
		return put(s.TLSRoutes, k, o), nil
	case *gwv1.TCPRoute:
		return put(s.TCPRoutes, k, o), nil
	case *gwv1.UDPRoute:
		return put(s.UDPRoutes, k, o), nil
	case *gwv1.ReferenceGrant:
		return put(s.ReferenceGrants, k, o), nil
	case *gwv1.BackendTLSPolicy:
		return put(s.BackendTLSPolicies, k, o), nil
	case *corev1.Service:
		return put(s.Services, k, o), nil
	case *discoveryv1.EndpointSlice:
		return put(s.EndpointSlices, k, o), nil
	case *corev1.Secret:
		return put(s.Secrets, k, o), nil
	case *corev1.ConfigMap:
		return put(s.ConfigMaps, k, o), nil
	case *corev1.Namespace:
		return put(s.Namespaces, k, o), nil
	case *v1alpha1.Backend:
		return put(s.Backends, k, o), nil
	case *v1alpha1.ListenerPolicy:
		return put(s.ListenerPolicies, k, o), nil
	}
	return false, fmt.Errorf("snapshot cannot hold %T", obj)
}

func put[T any](m map[Key]T, k Key, v T) bool {
	_, had := m[k]
	m[k] = v
	return had
}

// Len is the number of objects held.
func (s *Snapshot) Len() int {
	return len(s.GatewayClasses) + len(s.Gateways) + len(s.ListenerSets) + len(s.HTTPRoutes) + len(s.GRPCRoutes) +
		len(s.TLSRoutes) + len(s.TCPRoutes) + len(s.UDPRoutes) + len(s.ReferenceGrants) +
		len(s.BackendTLSPolicies) + len(s.Services) + len(s.EndpointSlices) + len(s.Secrets) +
		len(s.ConfigMaps) + len(s.Namespaces) + len(s.Backends) + len(s.ListenerPolicies)
}

// SortedKeys returns the keys of m in (namespace, name) order: the translator iterates
// maps only through it, so its output never depends on map order.
func SortedKeys[T any](m map[Key]T) []Key {
	keys := make([]Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, Key.Compare)
	return keys
}

// Sorted returns the values of m in key order.
func Sorted[T any](m map[Key]T) []T {
	out := make([]T, 0, len(m))
	for _, k := range SortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}
