package kubernetes

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/translate"
)

// TestGatewayRoutesStatusAndTraffic drives one Gateway through a route's life: status
// on every object, traffic through the Gateway's own address to a backend listed in an
// EndpointSlice (in a network namespace standing in for a pod), a route deleted, a cross-namespace reference refused until a
// ReferenceGrant allows it, and another controller's status entries left alone.
func TestGatewayRoutesStatusAndTraffic(t *testing.T) {
	const controller = "portico.dev/test-lifecycle"
	ctx := context.Background()
	c := newClient(t)
	p := startProvider(t, testEnv.Config, Options{
		Translate:   translate.Options{ControllerName: controller},
		AddressPool: pool("127.0.21.0/28"),
	})
	pod := podNetwork(t)
	one, two := backend(t, pod, "one"), backend(t, pod, "two")
	svc, slice := service("lc-apps", "echo", pod, one)
	create(t, c, namespace("lc-infra"), namespace("lc-apps"), namespace("lc-other"),
		gatewayClass("lc", controller), gateway("lc-infra", "public", "lc", 8080), svc, slice,
		httpRoute("lc-apps", "web", "lc-infra", "public", "/", "lc-apps", "echo"))

	// GatewayClass: accepted, with the features it supports.
	eventually(t, 20*time.Second, "GatewayClass status", func() error {
		var gc gwv1.GatewayClass
		if err := c.Get(ctx, client.ObjectKey{Name: "lc"}, &gc); err != nil {
			return err
		}
		if len(gc.Status.SupportedFeatures) != len(translate.SupportedFeatures) {
			return fmt.Errorf("supportedFeatures has %d entries, want %d", len(gc.Status.SupportedFeatures), len(translate.SupportedFeatures))
		}
		return wantCondition(gc.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted")
	})
	// Gateway: programmed on the first address of the pool, its listener too.
	eventually(t, 20*time.Second, "Gateway status", func() error {
		var gw gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKey{Namespace: "lc-infra", Name: "public"}, &gw); err != nil {
			return err
		}
		if len(gw.Status.Addresses) != 1 || gw.Status.Addresses[0].Value != "127.0.21.1" {
			return fmt.Errorf("addresses = %+v, want 127.0.21.1", gw.Status.Addresses)
		}
		if err := wantCondition(gw.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed"); err != nil {
			return err
		}
		if len(gw.Status.Listeners) != 1 || gw.Status.Listeners[0].AttachedRoutes != 1 {
			return fmt.Errorf("listeners = %+v, want one with 1 attached route", gw.Status.Listeners)
		}
		if gw.Status.Conditions[0].ObservedGeneration != gw.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", gw.Status.Conditions[0].ObservedGeneration, gw.Generation)
		}
		return wantCondition(gw.Status.Listeners[0].Conditions, "Programmed", metav1.ConditionTrue, "Programmed")
	})
	eventually(t, 20*time.Second, "route status", routeCondition(c, "lc-apps", "web", controller, "Accepted", metav1.ConditionTrue, "Accepted"))
	eventually(t, 10*time.Second, "traffic to the backend", wantBody(url("127.0.21.1", 8080, "/"), 200, "one"))

	// Another controller's parent entry on the same route survives our writes. (Both
	// edits retry on conflicts: the controller writes this route's status meanwhile.)
	key := client.ObjectKey{Namespace: "lc-apps", Name: "web"}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var r gwv1.HTTPRoute
		if err := c.Get(ctx, key, &r); err != nil {
			return err
		}
		r.Status.Parents = append(r.Status.Parents, gwv1.RouteParentStatus{
			ParentRef:      gwv1.ParentReference{Name: "elsewhere", SectionName: ptr.To(gwv1.SectionName("https"))},
			ControllerName: "example.com/other",
			Conditions:     []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: metav1.Now()}},
		})
		return c.Status().Update(ctx, &r)
	}); err != nil {
		t.Fatal(err)
	}
	// A second rule (a spec change) makes us write the route's status again.
	r2 := httpRoute("lc-apps", "web", "lc-infra", "public", "/", "lc-apps", "echo")
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var r gwv1.HTTPRoute
		if err := c.Get(ctx, key, &r); err != nil {
			return err
		}
		r.Spec.Rules = append(r.Spec.Rules, gwv1.HTTPRouteRule{
			Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/two")}}},
			BackendRefs: r2.Spec.Rules[0].BackendRefs,
		})
		return c.Update(ctx, &r)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "our entry updated, the other kept", func() error {
		var got gwv1.HTTPRoute
		if err := c.Get(ctx, client.ObjectKey{Namespace: "lc-apps", Name: "web"}, &got); err != nil {
			return err
		}
		var ours, theirs int
		for _, ps := range got.Status.Parents {
			switch ps.ControllerName {
			case controller:
				ours++
				if ps.Conditions[0].ObservedGeneration != got.Generation {
					return fmt.Errorf("our entry is for generation %d, the route is at %d", ps.Conditions[0].ObservedGeneration, got.Generation)
				}
			case "example.com/other":
				theirs++
			}
		}
		if ours != 1 || theirs != 1 {
			return fmt.Errorf("parents = %+v, want one of ours and the other controller's", got.Status.Parents)
		}
		return nil
	})

	// EndpointSlice change: the backend moves, with no translation.
	translations := p.Translations()
	var es discoveryv1.EndpointSlice
	if err := c.Get(ctx, client.ObjectKey{Namespace: "lc-apps", Name: "echo-1"}, &es); err != nil {
		t.Fatal(err)
	}
	es.Ports[0].Port = ptr.To(int32(two))
	if err := c.Update(ctx, &es); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "traffic to the moved backend", wantBody(url("127.0.21.1", 8080, "/"), 200, "two"))
	if got := p.Translations(); got != translations {
		t.Errorf("an EndpointSlice change caused %d translations, want none", got-translations)
	}
	if p.EndpointRefreshes() == 0 {
		t.Error("no endpoint refresh counted")
	}

	// An unrelated change translates but writes no status: nothing changed.
	eventually(t, 10*time.Second, "status settled", func() error {
		w := p.StatusWrites()
		time.Sleep(500 * time.Millisecond)
		if p.StatusWrites() != w {
			return fmt.Errorf("status still being written")
		}
		return nil
	})
	writes, translations := p.StatusWrites(), p.Translations()
	create(t, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: "lc-apps"}})
	eventually(t, 10*time.Second, "a translation", func() error {
		if p.Translations() == translations {
			return fmt.Errorf("no translation yet")
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	if got := p.StatusWrites(); got != writes {
		t.Errorf("an unrelated change wrote status %d times, want 0", got-writes)
	}

	// A cross-namespace backend without a ReferenceGrant is refused, then allowed.
	osvc, oslice := service("lc-other", "other", pod, one)
	create(t, c, osvc, oslice, httpRoute("lc-apps", "cross", "lc-infra", "public", "/cross", "lc-other", "other"))
	eventually(t, 20*time.Second, "cross-namespace route refused",
		routeCondition(c, "lc-apps", "cross", controller, "ResolvedRefs", metav1.ConditionFalse, "RefNotPermitted"))
	eventually(t, 10*time.Second, "refused backend answers 500", wantBody(url("127.0.21.1", 8080, "/cross"), 500, ""))
	create(t, c, &gwv1.ReferenceGrant{
		ObjectMeta: metav1.ObjectMeta{Name: "from-apps", Namespace: "lc-other"},
		Spec: gwv1.ReferenceGrantSpec{
			From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "HTTPRoute", Namespace: "lc-apps"}},
			To:   []gwv1.ReferenceGrantTo{{Kind: "Service"}},
		},
	})
	eventually(t, 20*time.Second, "cross-namespace route allowed",
		routeCondition(c, "lc-apps", "cross", controller, "ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs"))
	eventually(t, 10*time.Second, "cross-namespace traffic", wantBody(url("127.0.21.1", 8080, "/cross"), 200, "one"))

	// Deleting a route removes it from the data plane.
	if err := c.Delete(ctx, httpRoute("lc-apps", "cross", "", "", "", "", "")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "deleted route gone", wantBody(url("127.0.21.1", 8080, "/cross"), 200, "two"))
}

// routeCondition checks the condition of our parent entry of an HTTPRoute.
func routeCondition(c client.Client, ns, name, controller, typ string, status metav1.ConditionStatus, reason string) func() error {
	return func() error {
		var r gwv1.HTTPRoute
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &r); err != nil {
			return err
		}
		for _, ps := range r.Status.Parents {
			if string(ps.ControllerName) == controller {
				return wantCondition(ps.Conditions, typ, status, reason)
			}
		}
		return fmt.Errorf("no parent status of %s: %+v", controller, r.Status.Parents)
	}
}
