package kubernetes

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/dataplane"
	"github.com/portico-gw/portico/test/kube"
)

// One API server for the package's tests; each test works in namespaces and a
// GatewayClass (with a controllerName) of its own.
var testEnv *kube.Env

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	env, err := kube.Start(ctx, kube.Options{Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test API server:", err)
		os.Exit(1)
	}
	testEnv = env
	code := m.Run()
	env.Stop()
	os.Exit(code)
}

func newClient(t *testing.T) client.Client {
	t.Helper()
	s, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(testEnv.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// started is a Provider running with a real data plane until the test ends (or stop).
type started struct {
	*Provider
	dp   *dataplane.Server
	stop func()
}

func startProvider(t *testing.T, cfg *rest.Config, o Options) *started {
	t.Helper()
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
	}
	dp := dataplane.New(dataplane.Options{Logger: o.Log, DrainTimeout: time.Second})
	p, err := New(cfg, dp, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	s := &started{Provider: p, dp: dp}
	var stopped bool
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("provider stopped with %v", err)
		}
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = dp.Shutdown(sctx)
	}
	t.Cleanup(s.stop)
	return s
}

// eventually retries check until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = check(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// podNetwork is a network namespace standing in for a pod: the API server refuses
// loopback addresses in EndpointSlices, so backends listen on its address.
func podNetwork(t *testing.T) *kube.NetNS {
	t.Helper()
	ns, err := kube.NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	return ns
}

// backend is an HTTP server in pod answering with its name; it returns its port.
func backend(t *testing.T, pod *kube.NetNS, name string) int {
	t.Helper()
	ln, err := pod.Listen("tcp", net.JoinHostPort(pod.IP.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// get sends GET url and returns the status and body ("" and the error when it fails).
func get(url string) (int, string, error) { return getHost(url, "") }

// getHost is get with the Host header set to host (the URL's host if empty).
func getHost(url, host string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func wantBody(url string, code int, body string) func() error {
	return func() error {
		c, b, err := get(url)
		if err != nil {
			return err
		}
		if c != code || (body != "" && b != body) {
			return fmt.Errorf("GET %s = %d %q, want %d %q", url, c, b, code, body)
		}
		return nil
	}
}

func create(t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.Create(context.Background(), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// service is a Service with port 80 ("http") and an EndpointSlice of one endpoint: the
// pod's address on port.
func service(ns, name string, pod *kube.NetNS, port int) (*corev1.Service, *discoveryv1.EndpointSlice) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	return svc, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(port))}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{pod.IP.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	}
}

func gatewayClass(name, controller string) *gwv1.GatewayClass {
	return &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: gwv1.GatewayClassSpec{ControllerName: gwv1.GatewayController(controller)}}
}

func gateway(ns, name, class string, port int) *gwv1.Gateway {
	all := gwv1.NamespacesFromAll
	return &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: gwv1.GatewaySpec{GatewayClassName: gwv1.ObjectName(class), Listeners: []gwv1.Listener{{
			Name: "http", Port: gwv1.PortNumber(port), Protocol: gwv1.HTTPProtocolType,
			AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &all}},
		}}},
	}
}

// httpRoute sends path prefix to Service svcNS/svc port 80, attached to gwNS/gw.
func httpRoute(ns, name, gwNS, gw, prefix, svcNS, svc string) *gwv1.HTTPRoute {
	pp := gwv1.PathMatchPathPrefix
	ref := gwv1.BackendObjectReference{Name: gwv1.ObjectName(svc), Port: ptr.To(gwv1.PortNumber(80))}
	if svcNS != ns {
		ref.Namespace = ptr.To(gwv1.Namespace(svcNS))
	}
	return &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: gwv1.HTTPRouteSpec{
			// With a sectionName: status echoes parentRefs, pointers included, and must
			// never share them with the cached route.
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{
				Name: gwv1.ObjectName(gw), Namespace: ptr.To(gwv1.Namespace(gwNS)), SectionName: ptr.To(gwv1.SectionName("http")),
			}}},
			Rules: []gwv1.HTTPRouteRule{{
				Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &pp, Value: ptr.To(prefix)}}},
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: ref}}},
			}},
		},
	}
}

// condition finds a condition by type ("" when missing, with a note of what exists).
func condition(conds []metav1.Condition, typ string) (metav1.Condition, error) {
	var have []string
	for _, c := range conds {
		if c.Type == typ {
			return c, nil
		}
		have = append(have, c.Type)
	}
	return metav1.Condition{}, fmt.Errorf("no %s condition (have %s)", typ, strings.Join(have, ", "))
}

func wantCondition(conds []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) error {
	c, err := condition(conds, typ)
	if err != nil {
		return err
	}
	if c.Status != status || (reason != "" && c.Reason != reason) {
		return fmt.Errorf("%s = %s/%s (%q), want %s/%s", typ, c.Status, c.Reason, c.Message, status, reason)
	}
	if c.LastTransitionTime.IsZero() {
		return fmt.Errorf("%s has no lastTransitionTime", typ)
	}
	return nil
}

func pool(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func url(addr string, port int, path string) string {
	return "http://" + net.JoinHostPort(addr, strconv.Itoa(port)) + path
}
