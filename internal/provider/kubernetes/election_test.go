package kubernetes

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/translate"
)

// TestBurstOfRoutesIsBatched applies 300 HTTPRoutes at once: they all get status and
// serve, after a few translations rather than one per route.
func TestBurstOfRoutesIsBatched(t *testing.T) {
	const controller, n = "portico.dev/test-burst", 300
	ctx := context.Background()
	c := newClient(t)
	pod := podNetwork(t)
	port := backend(t, pod, "burst")
	svc, slice := service("burst", "echo", pod, port)
	create(t, c, namespace("burst"), gatewayClass("burst", controller), gateway("burst", "gw", "burst", 8080), svc, slice)
	p := startProvider(t, testEnv.Config, Options{
		Translate:   translate.Options{ControllerName: controller},
		AddressPool: pool("127.0.22.0/28"),
	})
	eventually(t, 20*time.Second, "gateway serving", wantBody(url("127.0.22.1", 8080, "/"), 404, ""))
	before := p.Translations()

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 10 {
				r := httpRoute("burst", fmt.Sprintf("r-%d", i), "burst", "gw", fmt.Sprintf("/r-%d/", i), "burst", "echo")
				if err := c.Create(ctx, r); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "every route accepted", func() error {
		var l gwv1.HTTPRouteList
		if err := c.List(ctx, &l, client.InNamespace("burst")); err != nil {
			return err
		}
		done := 0
		for _, r := range l.Items {
			for _, ps := range r.Status.Parents {
				if string(ps.ControllerName) == controller && len(ps.Conditions) > 0 && ps.Conditions[0].Status == metav1.ConditionTrue {
					done++
				}
			}
		}
		if done != n {
			return fmt.Errorf("%d of %d routes accepted", done, n)
		}
		return nil
	})
	eventually(t, 10*time.Second, "the last route serves", wantBody(url("127.0.22.1", 8080, fmt.Sprintf("/r-%d/x", n-1)), 200, "burst"))
	got := p.Translations() - before
	t.Logf("%d routes created: %d translations, %d status writes", n, got, p.StatusWrites())
	if got > n/10 {
		t.Errorf("%d routes caused %d translations; batching should make it a few", n, got)
	}
}

// TestLeaderElection runs two replicas: both serve traffic, only the leader writes
// status, and when the leader stops the standby takes over and writes status.
func TestLeaderElection(t *testing.T) {
	const controller = "portico.dev/test-election"
	ctx := context.Background()
	c := newClient(t)
	pod := podNetwork(t)
	port := backend(t, pod, "elect")
	svc, slice := service("elect", "echo", pod, port)
	create(t, c, namespace("elect"), gatewayClass("elect", controller), gateway("elect", "gw", "elect", 8080), svc, slice,
		httpRoute("elect", "first", "elect", "gw", "/", "elect", "echo"))
	opts := func(prefix string) Options {
		return Options{
			Translate:      translate.Options{ControllerName: controller},
			AddressPool:    pool(prefix),
			LeaderElection: true,
			LeaseNamespace: "elect",
			LeaseName:      "portico-test",
			LeaseDuration:  3 * time.Second,
			RenewDeadline:  2 * time.Second,
			RetryPeriod:    250 * time.Millisecond,
		}
	}
	// Two replicas in one process cannot bind the same address: each has its own pool
	// (in a cluster each replica is its own host and binds the same addresses).
	a := startProvider(t, testEnv.Config, opts("127.0.23.0/28"))
	select {
	case <-a.Elected():
	case <-time.After(20 * time.Second):
		t.Fatal("the first replica was not elected")
	}
	b := startProvider(t, testEnv.Config, opts("127.0.24.0/28"))
	eventually(t, 20*time.Second, "the leader writes route status",
		routeCondition(c, "elect", "first", controller, "Accepted", metav1.ConditionTrue, "Accepted"))
	// Both serve traffic.
	eventually(t, 10*time.Second, "leader serves", wantBody(url("127.0.23.1", 8080, "/"), 200, "elect"))
	eventually(t, 10*time.Second, "standby serves", wantBody(url("127.0.24.1", 8080, "/"), 200, "elect"))
	select {
	case <-b.Elected():
		t.Fatal("the standby was elected while the leader runs")
	default:
	}
	if b.StatusWrites() != 0 {
		t.Errorf("the standby wrote status %d times", b.StatusWrites())
	}
	var lease coordinationv1.Lease
	if err := c.Get(ctx, client.ObjectKey{Namespace: "elect", Name: "portico-test"}, &lease); err != nil {
		t.Fatal(err)
	}
	holder := *lease.Spec.HolderIdentity

	// The leader stops (and releases the Lease): the standby takes over.
	a.stop()
	select {
	case <-b.Elected():
	case <-time.After(20 * time.Second):
		t.Fatal("the standby did not take over")
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "elect", Name: "portico-test"}, &lease); err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == holder {
		t.Errorf("Lease holder %v, want a new one (was %s)", lease.Spec.HolderIdentity, holder)
	}
	create(t, c, httpRoute("elect", "second", "elect", "gw", "/second", "elect", "echo"))
	eventually(t, 20*time.Second, "the new leader writes status",
		routeCondition(c, "elect", "second", controller, "Accepted", metav1.ConditionTrue, "Accepted"))
	if b.StatusWrites() == 0 {
		t.Error("the new leader wrote no status")
	}
	// The new leader also reports its own address for the Gateway.
	eventually(t, 20*time.Second, "Gateway address of the new leader", func() error {
		var gw gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKey{Namespace: "elect", Name: "gw"}, &gw); err != nil {
			return err
		}
		if len(gw.Status.Addresses) != 1 || gw.Status.Addresses[0].Value != "127.0.24.1" {
			return fmt.Errorf("addresses %+v, want 127.0.24.1", gw.Status.Addresses)
		}
		return nil
	})

	// The Lease is lost without the process stopping (here another holder takes it, as
	// after an API server outage longer than the renew deadline): status writing stops,
	// traffic goes on, and the replica stands again and wins once the Lease expires.
	if err := c.Get(ctx, client.ObjectKey{Namespace: "elect", Name: "portico-test"}, &lease); err != nil {
		t.Fatal(err)
	}
	intruder := "intruder"
	lease.Spec.HolderIdentity = &intruder
	lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	if err := c.Update(ctx, &lease); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the replica notices it lost the Lease", func() error {
		if b.Leading() {
			return fmt.Errorf("still leading")
		}
		return nil
	})
	if err := wantBody(url("127.0.24.1", 8080, "/"), 200, "elect")(); err != nil {
		t.Fatalf("traffic stopped with the Lease: %v", err)
	}
	eventually(t, 20*time.Second, "the replica leads again once the intruder's Lease expires", func() error {
		if !b.Leading() {
			return fmt.Errorf("not leading")
		}
		return nil
	})
}
