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

// snapshot reads every watched object from the informers' cache. The objects are the
// cache's own (no copies): a Snapshot is read-only, and the one object the provider
// changes (a Gateway given an address) is copied first.
func (p *Provider) snapshot(ctx context.Context) (*resource.Snapshot, error) {
	snap := resource.NewSnapshot()
	c := p.mgr.GetCache()
	lists := []client.ObjectList{
		&gwv1.GatewayClassList{}, &gwv1.GatewayList{},
		&gwv1.HTTPRouteList{}, &gwv1.GRPCRouteList{}, &gwv1.TLSRouteList{}, &gwv1.TCPRouteList{}, &gwv1.UDPRouteList{},
		&gwv1.ReferenceGrantList{}, &gwv1.BackendTLSPolicyList{},
		&corev1.ServiceList{}, &discoveryv1.EndpointSliceList{}, &corev1.SecretList{}, &corev1.ConfigMapList{}, &corev1.NamespaceList{},
		&v1alpha1.BackendList{},
	}
	for _, l := range lists {
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
