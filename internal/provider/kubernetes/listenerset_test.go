package kubernetes

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/translate"
)

// TestListenerSetStatusAndTraffic: an app team's ListenerSet adds a listener to the
// platform's Gateway once the Gateway allows its namespace. The provider watches
// ListenerSets, writes their status (and the Gateway's attachedListenerSets), serves
// the set's port to routes that name the set, unbinds it when the Gateway stops
// allowing the namespace, and leaves the set Pending when the Gateway goes.
func TestListenerSetStatusAndTraffic(t *testing.T) {
	const controller = "portico.dev/test-listenerset"
	ctx := context.Background()
	c := newClient(t)
	startProvider(t, testEnv.Config, Options{
		Translate:   translate.Options{ControllerName: controller},
		AddressPool: pool("127.0.28.0/28"),
	})
	pod := podNetwork(t)
	svc, slice := service("ls-apps", "echo", pod, backend(t, pod, "team-a"))
	gw := gateway("ls-infra", "shared", "ls", 8080)
	gw.Spec.AllowedListeners = &gwv1.AllowedListeners{Namespaces: &gwv1.ListenerNamespaces{From: ptr.To(gwv1.NamespacesFromAll)}}
	set := &gwv1.ListenerSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ls-apps", Name: "team-a"},
		Spec: gwv1.ListenerSetSpec{
			ParentRef: gwv1.ParentGatewayReference{Name: "shared", Namespace: ptr.To(gwv1.Namespace("ls-infra"))},
			Listeners: []gwv1.ListenerEntry{{Name: "http", Port: 8081, Protocol: gwv1.HTTPProtocolType, Hostname: ptr.To(gwv1.Hostname("a.example.com"))}},
		},
	}
	route := httpRoute("ls-apps", "web", "ls-apps", "team-a", "/", "ls-apps", "echo")
	route.Spec.ParentRefs[0].Group = ptr.To(gwv1.Group(gwv1.GroupName))
	route.Spec.ParentRefs[0].Kind = ptr.To(gwv1.Kind("ListenerSet"))
	create(t, c, namespace("ls-infra"), namespace("ls-apps"), gatewayClass("ls", controller), gw, set, svc, slice, route)

	setStatus := func(accepted metav1.ConditionStatus, reason string, attachedRoutes int32) func() error {
		return func() error {
			var got gwv1.ListenerSet
			if err := c.Get(ctx, client.ObjectKeyFromObject(set), &got); err != nil {
				return err
			}
			for _, cond := range got.Status.Conditions {
				if cond.ObservedGeneration != got.Generation || cond.LastTransitionTime.IsZero() {
					return fmt.Errorf("condition %s: observedGeneration %d (generation %d), lastTransitionTime %v", cond.Type, cond.ObservedGeneration, got.Generation, cond.LastTransitionTime)
				}
			}
			if err := wantCondition(got.Status.Conditions, "Accepted", accepted, reason); err != nil {
				return err
			}
			if accepted == metav1.ConditionFalse {
				return nil
			}
			if len(got.Status.Listeners) != 1 || got.Status.Listeners[0].AttachedRoutes != attachedRoutes {
				return fmt.Errorf("listeners = %+v, want one with %d attached routes", got.Status.Listeners, attachedRoutes)
			}
			return wantCondition(got.Status.Listeners[0].Conditions, "Programmed", metav1.ConditionTrue, "Programmed")
		}
	}
	gatewaySets := func(want *int32) func() error {
		return func() error {
			var got gwv1.Gateway
			if err := c.Get(ctx, client.ObjectKeyFromObject(gw), &got); err != nil {
				return err
			}
			if !ptr.Equal(got.Status.AttachedListenerSets, want) {
				return fmt.Errorf("attachedListenerSets = %v, want %v", ptr.Deref(got.Status.AttachedListenerSets, -1), ptr.Deref(want, -1))
			}
			if len(got.Status.Listeners) != 1 {
				return fmt.Errorf("the Gateway reports %d listeners, want only its own", len(got.Status.Listeners))
			}
			return nil
		}
	}
	eventually(t, 20*time.Second, "ListenerSet status", setStatus(metav1.ConditionTrue, "Accepted", 1))
	eventually(t, 20*time.Second, "Gateway attachedListenerSets", gatewaySets(ptr.To(int32(1))))
	eventually(t, 20*time.Second, "route status", func() error {
		var r gwv1.HTTPRoute
		if err := c.Get(ctx, client.ObjectKeyFromObject(route), &r); err != nil {
			return err
		}
		if len(r.Status.Parents) != 1 || ptr.Deref(r.Status.Parents[0].ParentRef.Kind, "") != "ListenerSet" {
			return fmt.Errorf("parents = %+v, want the ListenerSet only", r.Status.Parents)
		}
		return wantCondition(r.Status.Parents[0].Conditions, "Accepted", metav1.ConditionTrue, "Accepted")
	})
	hostGet := func(host string, code int, body string) func() error {
		return func() error {
			got, b, err := getHost(url("127.0.28.1", 8081, "/"), host)
			if err != nil {
				return err
			}
			if got != code || body != "" && b != body {
				return fmt.Errorf("GET %s on :8081 = %d %q, want %d %q", host, got, b, code, body)
			}
			return nil
		}
	}
	eventually(t, 10*time.Second, "traffic on the set's listener", hostGet("a.example.com", 200, "team-a"))
	eventually(t, 10*time.Second, "another hostname on the set's port", hostGet("b.example.com", 404, ""))

	// The platform closes the Gateway to ListenerSets: the set is refused and its port
	// goes away.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKeyFromObject(gw), &cur); err != nil {
			return err
		}
		cur.Spec.AllowedListeners = nil
		return c.Update(ctx, &cur)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "ListenerSet refused", setStatus(metav1.ConditionFalse, "NotAllowed", 0))
	eventually(t, 20*time.Second, "Gateway without attachedListenerSets", gatewaySets(nil))
	eventually(t, 10*time.Second, "the set's port unbound", func() error {
		if _, _, err := getHost(url("127.0.28.1", 8081, "/"), "a.example.com"); err == nil {
			return fmt.Errorf("port 8081 still answers")
		}
		return nil
	})

	// The Gateway goes: the set's status no longer claims anything of ours.
	if err := c.Delete(ctx, gw); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "ListenerSet status released", func() error {
		var got gwv1.ListenerSet
		if err := c.Get(ctx, client.ObjectKeyFromObject(set), &got); err != nil {
			return err
		}
		if len(got.Status.Listeners) != 0 {
			return fmt.Errorf("listeners = %+v, want none", got.Status.Listeners)
		}
		return wantCondition(got.Status.Conditions, "Accepted", metav1.ConditionUnknown, "Pending")
	})
}
