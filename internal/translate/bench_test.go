package translate

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/resource"
)

// scaleSnapshot builds one shared Gateway (HTTP and HTTPS listeners, routes from all
// namespaces) and n HTTPRoutes spread over namespaces, each with its own hostname, two
// rules with header and path matches, a filter, and a Service with an EndpointSlice.
func scaleSnapshot(n, namespaces int) *resource.Snapshot {
	snap := resource.NewSnapshot()
	add := func(obj client.Object) {
		if _, err := snap.Add(obj); err != nil {
			panic(err)
		}
	}
	add(&gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "portico"}, Spec: gwv1.GatewayClassSpec{ControllerName: DefaultControllerName}})
	all := gwv1.NamespacesFromAll
	add(&gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "public", Namespace: "infra"},
		Spec: gwv1.GatewaySpec{GatewayClassName: "portico", Listeners: []gwv1.Listener{{
			Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType,
			AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &all}},
		}}},
	})
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ns := fmt.Sprintf("team-%03d", i%namespaces)
		name := fmt.Sprintf("app-%05d", i)
		prefix := gwv1.PathMatchPathPrefix
		add(&gwv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, CreationTimestamp: metav1.NewTime(start.Add(time.Duration(i) * time.Second))},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{
					Name: "public", Namespace: ptr.To(gwv1.Namespace("infra")),
				}}},
				Hostnames: []gwv1.Hostname{gwv1.Hostname(name + ".example.com")},
				Rules: []gwv1.HTTPRouteRule{
					{
						Matches: []gwv1.HTTPRouteMatch{{
							Path:    &gwv1.HTTPPathMatch{Type: &prefix, Value: ptr.To("/api")},
							Headers: []gwv1.HTTPHeaderMatch{{Name: "x-canary", Value: "true"}},
						}},
						Filters: []gwv1.HTTPRouteFilter{{
							Type:                  gwv1.HTTPRouteFilterRequestHeaderModifier,
							RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "x-team", Value: ns}}},
						}},
						BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: ptr.To(gwv1.PortNumber(8080))}}}},
					},
					{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: ptr.To(gwv1.PortNumber(8080))}}}}},
				},
			},
		})
		add(&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
		})
		add(&discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080))}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{fmt.Sprintf("10.%d.%d.1", i/256%256, i%256)}},
				{Addresses: []string{fmt.Sprintf("10.%d.%d.2", i/256%256, i%256)}},
			},
		})
	}
	return snap
}

func BenchmarkTranslate(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			snap := scaleSnapshot(n, 100)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				cfg, _ := Translate(snap)
				if len(cfg.Clusters) != n {
					b.Fatalf("got %d clusters, want %d", len(cfg.Clusters), n)
				}
			}
		})
	}
}

// TestScaleSnapshot checks the benchmark's input is what it claims: every route attached.
func TestScaleSnapshot(t *testing.T) {
	cfg, st := Translate(scaleSnapshot(300, 10))
	if got := st.Gateways[0].Status.Listeners[0].AttachedRoutes; got != 300 {
		t.Fatalf("attachedRoutes = %d, want 300", got)
	}
	if got := len(cfg.Gateways[0].Ports[0].Listeners[0].VirtualHosts); got != 300 {
		t.Fatalf("virtual hosts = %d, want 300", got)
	}
}
