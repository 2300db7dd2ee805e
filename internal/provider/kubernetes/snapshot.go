package kubernetes

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/api/v1alpha1"
	"github.com/portico-gw/portico/internal/resource"
)

// kind is one watched kind: an empty object (for its informer) and a new list of it.
type kind struct {
	obj  client.Object
	list func() client.ObjectList
	// endpoints marks the kinds an EndpointSlice-only refresh reads.
	endpoints bool
}

// kinds lists every kind the provider watches.
func kinds() []kind {
	return []kind{
		{obj: &gwv1.GatewayClass{}, list: func() client.ObjectList { return &gwv1.GatewayClassList{} }},
		{obj: &gwv1.Gateway{}, list: func() client.ObjectList { return &gwv1.GatewayList{} }},
		{obj: &gwv1.ListenerSet{}, list: func() client.ObjectList { return &gwv1.ListenerSetList{} }},
		{obj: &gwv1.HTTPRoute{}, list: func() client.ObjectList { return &gwv1.HTTPRouteList{} }},
		{obj: &gwv1.GRPCRoute{}, list: func() client.ObjectList { return &gwv1.GRPCRouteList{} }},
		{obj: &gwv1.TLSRoute{}, list: func() client.ObjectList { return &gwv1.TLSRouteList{} }},
		{obj: &gwv1.TCPRoute{}, list: func() client.ObjectList { return &gwv1.TCPRouteList{} }},
		{obj: &gwv1.UDPRoute{}, list: func() client.ObjectList { return &gwv1.UDPRouteList{} }},
		{obj: &gwv1.ReferenceGrant{}, list: func() client.ObjectList { return &gwv1.ReferenceGrantList{} }},
		{obj: &gwv1.BackendTLSPolicy{}, list: func() client.ObjectList { return &gwv1.BackendTLSPolicyList{} }},
		{obj: &corev1.Service{}, list: func() client.ObjectList { return &corev1.ServiceList{} }, endpoints: true},
		{obj: &discoveryv1.EndpointSlice{}, list: func() client.ObjectList { return &discoveryv1.EndpointSliceList{} }, endpoints: true},
		{obj: &corev1.Secret{}, list: func() client.ObjectList { return &corev1.SecretList{} }},
		{obj: &corev1.ConfigMap{}, list: func() client.ObjectList { return &corev1.ConfigMapList{} }},
		{obj: &corev1.Namespace{}, list: func() client.ObjectList { return &corev1.NamespaceList{} }},
		{obj: &v1alpha1.Backend{}, list: func() client.ObjectList { return &v1alpha1.BackendList{} }},
		{obj: &v1alpha1.ListenerPolicy{}, list: func() client.ObjectList { return &v1alpha1.ListenerPolicyList{} }},
	}
}

// snapshot reads the watched objects from the informers' cache: every kind, or with
// endpointsOnly the Services and EndpointSlices an endpoint refresh needs. Kinds whose
// CRD the API server lacks are left out. The objects are shallow copies of the cache's
// (their maps, slices and pointers are the cache's): a Snapshot is read-only, and the
// one object the provider changes (a Gateway given an address) is deep-copied first.
func (p *Provider) snapshot(ctx context.Context, endpointsOnly bool) (*resource.Snapshot, error) {
	snap := resource.NewSnapshot()
	c := p.mgr.GetCache()
	for _, k := range p.kinds {
		if endpointsOnly && !k.endpoints {
			continue
		}
		l := k.list()
		if err := c.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing %T: %w", l, err)
		}
		if err := addItems(snap, l); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

// addItems adds a list's items (pointers into the list) to snap.
func addItems(snap *resource.Snapshot, l client.ObjectList) error {
	items, err := meta.ExtractList(l)
	if err != nil {
		return err
	}
	for _, it := range items {
		o, ok := it.(client.Object)
		if !ok {
			return fmt.Errorf("%T is not an object", it)
		}
		if _, err := snap.Add(o); err != nil {
			return err
		}
	}
	return nil
}
