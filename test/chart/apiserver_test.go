package chart

import (
	"context"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-gw/portico/test/kube"
)

// TestChartOnAPIServer validates every rendered manifest against a real kube-apiserver:
// the CRDs are created for real (the chart's own, Gateway API's included, on an API
// server started without any), the rest is applied server-side in dry-run mode, which
// runs the API server's defaulting, schema and admission validation without storing
// anything. The RBAC objects are then created for real, and the API server's
// authorizer is asked what the ServiceAccount may do; finally "portico controller"
// runs with the Deployment's arguments and environment as that ServiceAccount (see
// run_test.go).
func TestChartOnAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	env, err := kube.Start(ctx, kube.Options{Log: t.Logf, SkipCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}

	// The chart's CRDs, for real: what a cluster gets from helm install with
	// gatewayAPI.installCRDs=true.
	withCRDs := render(t, valueCase{"gateway-api-crds", append(append([]string{}, required...), "gatewayAPI.installCRDs=true")})
	crds := withCRDs.all("CustomResourceDefinition")
	if len(crds) < 2 {
		t.Fatalf("only %d CRDs rendered", len(crds))
	}
	for _, crd := range crds {
		if err := c.Create(ctx, crd.DeepCopy()); err != nil {
			t.Fatalf("creating CRD %s: %v", crd.GetName(), err)
		}
	}
	waitEstablished(ctx, t, c, crds)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNS}}); err != nil {
		t.Fatal(err)
	}

	run := runCase(t)
	for _, vc := range append(standardCases(), run.valueCase) {
		r := render(t, vc)
		for _, o := range r.objs {
			applied, err := dryRunApply(ctx, c, o)
			if err != nil {
				t.Errorf("%s: the API server refuses %s %s: %v", vc.name, o.GetKind(), o.GetName(), err)
				continue
			}
			if o.GetKind() == "Deployment" {
				checkHostPort(t, r, applied)
			}
		}
	}

	t.Run("dry run validates", func(t *testing.T) {
		// Not vacuous: a field the schema does not have is refused, and nothing the
		// dry runs applied was stored.
		d := render(t, valueCase{"defaults", required}).one(t, "Deployment").DeepCopy()
		containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		containers[0].(map[string]any)["livenessProbes"] = map[string]any{}
		_ = unstructured.SetNestedSlice(d.Object, containers, "spec", "template", "spec", "containers")
		_, err := dryRunApply(ctx, c, d)
		if err == nil || !strings.Contains(err.Error(), "livenessProbes") {
			t.Errorf("a Deployment with an unknown field: %v, want it refused", err)
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(d.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(d), got); !apierrors.IsNotFound(err) {
			t.Errorf("after dry runs, getting the Deployment: %v, want not found", err)
		}
	})

	// The RBAC, for real, and what the API server's authorizer says it allows.
	r := render(t, run.valueCase)
	sa := r.one(t, "ServiceAccount")
	for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
		for _, o := range r.all(kind) {
			if err := c.Create(ctx, o.DeepCopy()); err != nil {
				t.Fatalf("creating %s %s: %v", kind, o.GetName(), err)
			}
		}
	}
	lease := r.values.str(t, "leaderElection.id")
	t.Run("authorizer", func(t *testing.T) {
		user := "system:serviceaccount:" + releaseNS + ":" + sa.GetName()
		for _, a := range []struct {
			verb, group, resource, subresource, namespace, name string
			allowed                                             bool
		}{
			{"list", "gateway.networking.k8s.io", "httproutes", "", "", "", true},
			{"watch", "", "secrets", "", "", "", true},
			{"list", "discovery.k8s.io", "endpointslices", "", "", "", true},
			{"watch", "gateway.portico.dev", "backends", "", "", "", true},
			{"update", "gateway.networking.k8s.io", "gateways", "status", "apps", "public", true},
			{"update", "gateway.networking.k8s.io", "gatewayclasses", "status", "", "portico", true},
			{"create", "coordination.k8s.io", "leases", "", releaseNS, "", true},
			{"update", "coordination.k8s.io", "leases", "", releaseNS, lease, true},

			{"delete", "gateway.networking.k8s.io", "httproutes", "", "apps", "web", false},
			{"create", "", "pods", "", releaseNS, "", false},
			{"update", "gateway.networking.k8s.io", "gateways", "", "apps", "public", false},
			{"patch", "gateway.networking.k8s.io", "gateways", "status", "apps", "public", false},
			{"update", "", "secrets", "", "apps", "tls", false},
			{"create", "coordination.k8s.io", "leases", "", "default", "", false},
			{"update", "coordination.k8s.io", "leases", "", releaseNS, "kube-scheduler", false},
			{"create", "", "events", "", "default", "", false},
			{"create", "", "events", "", releaseNS, "", false},
		} {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   user,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNS, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource,
					Namespace: a.namespace, Name: a.name,
				},
			}}
			if err := c.Create(ctx, sar); err != nil {
				t.Fatal(err)
			}
			if sar.Status.Allowed != a.allowed {
				t.Errorf("%s %s %s/%s (group %q) in namespace %q: allowed %v, want %v (%s)", a.verb, a.name, a.resource, a.subresource,
					a.group, a.namespace, sar.Status.Allowed, a.allowed, sar.Status.Reason)
			}
		}
	})

	t.Run("controller runs as the ServiceAccount", func(t *testing.T) {
		runController(ctx, t, env, c, r, run)
	})
}

// dryRunApply applies o server-side without storing it, and returns the object as the
// API server would have stored it (defaulted).
func dryRunApply(ctx context.Context, c client.Client, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	out := o.DeepCopy()
	err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(out),
		client.DryRunAll, client.FieldOwner("chart-test"), client.ForceOwnership)
	return out, err
}

// checkHostPort: with hostNetwork, the admin port is a host port once the API server
// has the Deployment, which is what keeps two replicas off one node (the chart relies
// on it instead of a required anti-affinity); without, no host port is taken.
func checkHostPort(t *testing.T, r *rendered, d *unstructured.Unstructured) {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if len(containers) == 0 {
		t.Errorf("%s: the API server's Deployment has no containers", r.name)
		return
	}
	ports, _, _ := unstructured.NestedSlice(containers[0].(map[string]any), "ports")
	for _, p := range ports {
		m := p.(map[string]any)
		host, _, _ := unstructured.NestedInt64(m, "hostPort")
		want := int64(0)
		if r.values.flag(t, "hostNetwork") {
			want = r.values.num(t, "admin.port")
		}
		if m["name"] == "admin" && host != want {
			t.Errorf("%s: the admin port's hostPort as defaulted by the API server is %d, want %d", r.name, host, want)
		}
	}
}

func waitEstablished(ctx context.Context, t *testing.T, c client.Client, crds []*unstructured.Unstructured) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, crd := range crds {
		for {
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(crd.GroupVersionKind())
			if err := c.Get(ctx, client.ObjectKey{Name: crd.GetName()}, got); err != nil {
				t.Fatal(err)
			}
			if condition(got, "Established") == "True" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established after 60s", crd.GetName())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// condition is the status of o's condition of type typ ("" if it has none).
func condition(o *unstructured.Unstructured, typ string, path ...string) string {
	if len(path) == 0 {
		path = []string{"status", "conditions"}
	}
	conds, _, _ := unstructured.NestedSlice(o.Object, path...)
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] == typ {
			s, _ := m["status"].(string)
			return s
		}
	}
	return ""
}

// eventually retries check until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
