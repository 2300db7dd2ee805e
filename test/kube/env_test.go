package kube

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/api/v1alpha1"
)

func TestEnvServesGatewayAPIAndStopsEverything(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	env, err := Start(ctx, Options{Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	pids := env.PIDs()
	dir := env.Dir
	stopped := false
	defer func() {
		if !stopped {
			env.Stop()
		}
	}()

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, gwv1.Install, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}); err != nil {
		t.Fatal(err)
	}
	// Every route kind of the experimental channel is served at v1, and Portico's Backend.
	for _, list := range []client.ObjectList{&gwv1.HTTPRouteList{}, &gwv1.GRPCRouteList{}, &gwv1.TLSRouteList{},
		&gwv1.TCPRouteList{}, &gwv1.UDPRouteList{}, &gwv1.ReferenceGrantList{}, &gwv1.BackendTLSPolicyList{}, &v1alpha1.BackendList{}} {
		if err := c.List(ctx, list); err != nil {
			t.Fatalf("listing %T: %v", list, err)
		}
	}
	route := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "apps"},
		Spec:       gwv1.HTTPRouteSpec{CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "public"}}}},
	}
	if err := c.Create(ctx, route); err != nil {
		t.Fatal(err)
	}
	// The CRD's own validation runs: a path match without a leading slash is refused.
	bad := route.DeepCopy()
	bad.ResourceVersion, bad.Name = "", "bad"
	pp := gwv1.PathMatchPathPrefix
	bad.Spec.Rules = []gwv1.HTTPRouteRule{{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &pp, Value: ptr("no-slash")}}}}}
	if err := c.Create(ctx, bad); err == nil {
		t.Fatal("an HTTPRoute with an invalid path was accepted: CRD validation is not running")
	}

	env.Stop()
	stopped = true
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop", dir)
	}
}

func ptr[T any](v T) *T { return &v }
