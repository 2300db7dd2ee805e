package chart

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-gw/portico/test/kube"
)

// controllerRun is the value set the controller runs with: values that differ from the
// defaults (so that a flag the chart failed to pass would show), an address pool on
// loopback (bindable without any network setup) and free ports.
type controllerRun struct {
	valueCase
	pool                   netip.Prefix
	adminPort, gatewayPort int
	controllerName         string
}

func runCase(t *testing.T) controllerRun {
	t.Helper()
	// A /24 of its own in 127.0.0.0/8, so that tests running at the same time do not
	// meet on an address.
	pool := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(100 + rand.IntN(100)), byte(rand.IntN(256)), 0}), 24)
	r := controllerRun{
		pool:           pool,
		adminPort:      freePort(t),
		gatewayPort:    freePort(t),
		controllerName: "chart-test.portico.dev/gateway-controller",
	}
	r.valueCase = valueCase{name: "controller-run", set: []string{
		"image.repository=registry.example.com/portico",
		"gatewayAddresses=" + pool.String(),
		"replicas=1",
		"controllerName=" + r.controllerName,
		"leaderElection.id=chart-test-lease",
		"logLevel=debug",
		"admin.port=" + strconv.Itoa(r.adminPort),
		"drainTimeoutSeconds=3",
		"bindPrivilegedPorts=false",
	}}
	return r
}

// runController runs "portico controller" with the rendered Deployment's arguments and
// environment (POD_NAMESPACE resolved as the downward API would), authenticated with a
// token of the chart's ServiceAccount, and checks that the chart's RBAC lets it do its
// whole job: become ready, take the Lease, accept a GatewayClass, serve a Gateway and
// write the status of it and of its route. No
// "forbidden" may appear in its log; SIGTERM exits 0 within the pod's grace period.
func runController(ctx context.Context, t *testing.T, env *kube.Env, c client.Client, r *rendered, run controllerRun) {
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	sa := r.one(t, "ServiceAccount").GetName()
	expiry := int64(3600)
	tok, err := cs.CoreV1().ServiceAccounts(releaseNS).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a token for the ServiceAccount: %v", err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: env.APIServerURL, InsecureSkipTLSVerify: true}
	kc.AuthInfos["portico"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "portico"}
	kc.CurrentContext = "test"
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}

	d := r.one(t, "Deployment")
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	ctr := containers[0].(map[string]any)
	args, _, _ := unstructured.NestedStringSlice(ctr, "args")
	var procEnv []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "POD_NAMESPACE=") {
			procEnv = append(procEnv, kv)
		}
	}
	procEnv = append(procEnv, "KUBECONFIG="+kubeconfig) // in a pod: the mounted token
	envList, _, _ := unstructured.NestedSlice(ctr, "env")
	for _, e := range envList {
		m := e.(map[string]any)
		switch field, _, _ := unstructured.NestedString(m, "valueFrom", "fieldRef", "fieldPath"); {
		case field == "metadata.namespace":
			procEnv = append(procEnv, fmt.Sprintf("%s=%s", m["name"], releaseNS))
		case m["value"] != nil:
			procEnv = append(procEnv, fmt.Sprintf("%s=%v", m["name"], m["value"]))
		default:
			t.Fatalf("env %v: the test does not know what the kubelet would set", m)
		}
	}
	grace, _, _ := unstructured.NestedInt64(d.Object, "spec", "template", "spec", "terminationGracePeriodSeconds")

	bin := buildPortico(t)
	var logs syncBuffer
	cmd := exec.Command(bin, args...)
	cmd.Env = procEnv
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("portico controller's log:\n%s", logs.String())
		}
	}()

	// The probes the kubelet would run, on the Deployment's paths.
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		path, _, _ := unstructured.NestedString(ctr, probe, "httpGet", "path")
		url := fmt.Sprintf("http://127.0.0.1:%d%s", run.adminPort, path)
		eventually(t, 60*time.Second, probe+" "+url, func() error {
			select {
			case err := <-exited:
				stopped = true
				t.Fatalf("portico controller exited: %v", err)
			default:
			}
			return httpOK(url)
		})
	}

	lease := r.values.str(t, "leaderElection.id")
	eventually(t, 30*time.Second, "the Lease "+lease, func() error {
		l := &coordinationv1.Lease{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: lease}, l); err != nil {
			return err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})
	// What a platform team and an app team apply.
	manifests := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: %s}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public, namespace: apps}
spec:
  gatewayClassName: portico
  listeners:
  - {name: http, port: %d, protocol: HTTP}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: apps}
spec:
  parentRefs: [{name: public}]
  rules:
  - backendRefs: [{name: web, port: 80}]
`, run.controllerName, run.gatewayPort)
	objs, err := kube.ParseManifests([]byte(manifests))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	get := func(kind, ns, name string) (*unstructured.Unstructured, error) {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion("gateway.networking.k8s.io/v1")
		o.SetKind(kind)
		return o, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, o)
	}
	eventually(t, 30*time.Second, "GatewayClass accepted", func() error {
		gc, err := get("GatewayClass", "", "portico")
		if err != nil {
			return err
		}
		if s := condition(gc, "Accepted"); s != "True" {
			return fmt.Errorf("Accepted %q", s)
		}
		return nil
	})
	var addr netip.Addr
	eventually(t, 30*time.Second, "Gateway programmed on an address of the pool", func() error {
		gw, err := get("Gateway", "apps", "public")
		if err != nil {
			return err
		}
		addrs, _, _ := unstructured.NestedSlice(gw.Object, "status", "addresses")
		if s := condition(gw, "Programmed"); s != "True" || len(addrs) != 1 {
			return fmt.Errorf("Programmed %q, addresses %v", s, addrs)
		}
		a, err := netip.ParseAddr(fmt.Sprint(addrs[0].(map[string]any)["value"]))
		if err != nil || !run.pool.Contains(a) {
			return fmt.Errorf("address %v not in the pool %s", addrs[0], run.pool)
		}
		addr = a
		return nil
	})
	eventually(t, 30*time.Second, "HTTPRoute accepted", func() error {
		route, err := get("HTTPRoute", "apps", "web")
		if err != nil {
			return err
		}
		parents, _, _ := unstructured.NestedSlice(route.Object, "status", "parents")
		if len(parents) != 1 {
			return fmt.Errorf("status.parents %v", parents)
		}
		p := &unstructured.Unstructured{Object: parents[0].(map[string]any)}
		if p.Object["controllerName"] != run.controllerName || condition(p, "Accepted", "conditions") != "True" {
			return fmt.Errorf("status.parents[0] %v", p.Object)
		}
		return nil
	})
	// The Gateway is served on its address (the Service has no endpoints: any HTTP
	// answer will do).
	eventually(t, 10*time.Second, "an HTTP answer from the Gateway", func() error {
		resp, err := http.Get("http://" + net.JoinHostPort(addr.String(), strconv.Itoa(run.gatewayPort)) + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(time.Duration(grace) * time.Second):
		t.Errorf("still running %ds after SIGTERM (terminationGracePeriodSeconds): the kubelet would kill it", grace)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(strings.ToLower(line), "forbidden") {
			t.Errorf("the ServiceAccount lacks a permission: %s", line)
		}
	}
}

// buildPortico builds cmd/portico (with the race detector when the test has it, so that
// a data race in the controller fails this test too).
func buildPortico(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "portico")
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-o", bin, "./cmd/portico")
	start := time.Now()
	cmd := exec.Command("go", args...)
	cmd.Dir = kube.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("built portico (race=%v) in %s", raceEnabled, time.Since(start).Round(time.Millisecond))
	return bin
}

func httpOK(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for a process's stdout and stderr at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
