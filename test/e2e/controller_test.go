package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-gw/portico/test/kube"
)

// TestControllerOnAPIServer runs "portico controller" against a real kube-apiserver:
// the objects a platform team and an app team apply give a Gateway its own address
// from the pool, status on every object, and traffic to a backend listed in an
// EndpointSlice (in a network namespace standing in for a pod); SIGTERM exits 0.
func TestControllerOnAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	env, err := kube.Start(ctx, kube.Options{Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	pod, err := kube.NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	defer pod.Close()
	ln, err := pod.Listen("tcp", net.JoinHostPort(pod.IP.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the pod: "+r.URL.Path)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	manifests := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: infra}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public, namespace: infra}
spec:
  gatewayClassName: portico
  listeners:
  - {name: http, port: 8080, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: cart-1
  namespace: shop
  labels: {kubernetes.io/service-name: cart}
addressType: IPv4
ports: [{name: http, port: %d}]
endpoints: [{addresses: [%s], conditions: {ready: true}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cart, namespace: shop}
spec:
  parentRefs: [{name: public, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /cart}}]
    backendRefs: [{name: cart, port: 80}]
`, port, pod.IP)
	objs, err := kube.ParseManifests([]byte(manifests))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}

	admin := freePort(t)
	p := startProc(t, "controller", "--kubeconfig", kubeconfig, "--gateway-addresses", "127.0.26.0/28",
		"--leader-elect=false", "--admin-address", "127.0.0.1:"+strconv.Itoa(admin), "--access-log", "off")
	if _, err := eventually(30*time.Second, func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := eventually(20*time.Second, func() error {
		resp, err := http.Get("http://127.0.26.1:8080/cart/items")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "hello from the pod: /cart/items" {
			return fmt.Errorf("GET /cart/items = %d %q", resp.StatusCode, b)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := eventually(20*time.Second, func() error {
		gw := &unstructured.Unstructured{}
		gw.SetAPIVersion("gateway.networking.k8s.io/v1")
		gw.SetKind("Gateway")
		if err := c.Get(ctx, client.ObjectKey{Namespace: "infra", Name: "public"}, gw); err != nil {
			return err
		}
		addrs, _, _ := unstructured.NestedSlice(gw.Object, "status", "addresses")
		conds, _, _ := unstructured.NestedSlice(gw.Object, "status", "conditions")
		var programmed string
		for _, c := range conds {
			if m, _ := c.(map[string]any); m["type"] == "Programmed" {
				programmed, _ = m["status"].(string)
			}
		}
		if len(addrs) != 1 || !strings.Contains(fmt.Sprint(addrs[0]), "127.0.26.1") || programmed != "True" {
			return fmt.Errorf("Gateway status: addresses %v, Programmed %q", addrs, programmed)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}
