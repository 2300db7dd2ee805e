package kube

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// The node test runs this test binary itself as the containers' program: with
// PORTICO_NODE_CHILD set, TestMain serves as a tiny pod instead of running tests.
func TestMain(m *testing.M) {
	if os.Getenv("PORTICO_NODE_CHILD") == "1" {
		nodeChild()
		return
	}
	os.Exit(m.Run())
}

// nodeChild prints a line for the pod's log and answers every request with its pod
// name, namespace, IP and the file its SECRET_FILE names.
func nodeChild() {
	fmt.Println("child starting as", os.Getenv("POD_NAME"))
	secret, err := os.ReadFile(os.Getenv("SECRET_FILE"))
	if err != nil {
		fmt.Println("reading secret:", err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("request", r.URL.Path)
		fmt.Fprintf(w, "%s %s %s %s", os.Getenv("POD_NAME"), os.Getenv("NAMESPACE"), os.Getenv("POD_IP"), secret)
	})
	fmt.Println(http.ListenAndServe(":8080", nil))
	os.Exit(1)
}

func TestNodeRunsDeploymentPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	env, err := Start(ctx, Options{Log: t.Logf, SkipCRDs: true, ControllerManager: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	node, err := StartNode(ctx, env.Config, NodeOptions{Dir: filepath.Join(env.Dir, "pods"), Log: t.Logf,
		Program: func(_ *corev1.Pod, c *corev1.Container) (Program, bool) {
			if c.Image != "example.com/child:1" {
				return Program{}, false
			}
			return Program{Path: self, Env: []string{"PORTICO_NODE_CHILD=1"}, ReadyPort: 8080}, true
		}})
	if err != nil {
		t.Fatal(err)
	}
	nodeStopped := false
	defer func() {
		if !nodeStopped {
			node.Stop()
		}
	}()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "apps"
	must(t, create(ctx, cs.CoreV1().Namespaces(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, create(ctx, cs.CoreV1().Secrets(ns), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cert"}, Data: map[string][]byte{"tls.crt": []byte("s3cret")}}))
	labels := map[string]string{"app": "child"}
	must(t, create(ctx, cs.CoreV1().Services(ns), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "child"}, Spec: corev1.ServiceSpec{
		Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
	}}))
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	must(t, create(ctx, cs.AppsV1().Deployments(ns), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "child"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: "child", Image: "example.com/child:1",
						Env: []corev1.EnvVar{
							{Name: "POD_NAME", ValueFrom: field("metadata.name")},
							{Name: "NAMESPACE", ValueFrom: field("metadata.namespace")},
							{Name: "POD_IP", ValueFrom: field("status.podIP")},
							{Name: "SECRET_FILE", Value: "/etc/cert/crt"},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "cert", MountPath: "/etc/cert"}},
					}},
					Volumes: []corev1.Volume{{Name: "cert", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
						SecretName: "cert", Items: []corev1.KeyToPath{{Key: "tls.crt", Path: "crt"}},
					}}}},
				},
			},
		},
	}))
	// A pod of an image the node cannot run stays Pending and says why.
	must(t, create(ctx, cs.CoreV1().Pods(ns), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", Image: "example.com/unknown:1"}},
	}}))

	// Both replicas become Ready, each with its own address on the node's bridge.
	var pods []corev1.Pod
	waitFor(t, ctx, 60*time.Second, "2 ready pods", func() bool {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=child"})
		if err != nil {
			return false
		}
		pods = nil
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning && podReady(&p) {
				pods = append(pods, p)
			}
		}
		return len(pods) == 2
	})
	ips := map[string]bool{}
	for _, p := range pods {
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !node.Subnet.Contains(ip) || ip == node.HostIP {
			t.Fatalf("pod %s has IP %q, want one in %s", p.Name, p.Status.PodIP, node.Subnet)
		}
		if p.Spec.NodeName != node.Name || p.Status.HostIP != node.HostIP.String() || len(p.Status.PodIPs) != 1 {
			t.Fatalf("pod %s: node %q hostIP %q podIPs %v", p.Name, p.Spec.NodeName, p.Status.HostIP, p.Status.PodIPs)
		}
		ips[p.Status.PodIP] = true
		// The program runs in the pod's namespace on the pod's address, with the
		// downward-API environment and the Secret at the rewritten mount path.
		resp, err := http.Get("http://" + p.Status.PodIP + ":8080/hello")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := p.Name + " " + ns + " " + p.Status.PodIP + " s3cret"; string(body) != want {
			t.Fatalf("pod %s answered %q, want %q", p.Name, body, want)
		}
	}
	if len(ips) != 2 {
		t.Fatalf("pods share an address: %v", ips)
	}

	// The controller manager makes an EndpointSlice of both (pods on a registered node).
	waitFor(t, ctx, 30*time.Second, "an EndpointSlice with both pods", func() bool {
		slices, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=child"})
		if err != nil {
			return false
		}
		n := 0
		for _, s := range slices.Items {
			for _, ep := range s.Endpoints {
				if ips[ep.Addresses[0]] && ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					n++
				}
			}
		}
		return n == 2
	})

	// pods/log, proxied by the API server to the node's kubelet endpoint, has the lines
	// the program wrote; sinceTime leaves out older ones.
	var logs string
	waitFor(t, ctx, 10*time.Second, "the request in the pod's log", func() bool {
		b, err := cs.CoreV1().Pods(ns).GetLogs(pods[0].Name, &corev1.PodLogOptions{Container: "child"}).DoRaw(ctx)
		logs = string(b)
		return err == nil && strings.Contains(logs, "request /hello")
	})
	if !strings.Contains(logs, "child starting as "+pods[0].Name) {
		t.Fatalf("log of %s lacks its first line:\n%s", pods[0].Name, logs)
	}
	later := metav1.NewTime(time.Now().Add(time.Second))
	b, err := cs.CoreV1().Pods(ns).GetLogs(pods[0].Name, &corev1.PodLogOptions{Container: "child", SinceTime: &later}).DoRaw(ctx)
	if err != nil || strings.Contains(string(b), "child starting") {
		t.Fatalf("log since a later time = %q, %v; want no earlier lines", b, err)
	}

	other, err := cs.CoreV1().Pods(ns).Get(ctx, "other", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if other.Status.Phase != corev1.PodPending || !strings.Contains(other.Status.Message, "example.com/unknown:1") {
		t.Fatalf("pod of an unknown image: phase %s, message %q", other.Status.Phase, other.Status.Message)
	}

	// Deleting the Deployment ends its pods: the objects go, and so do their programs
	// and network namespaces.
	nsBefore := netnsOf(t)
	if len(nsBefore) < 2 {
		t.Fatalf("want the pods' network namespaces, have %v", nsBefore)
	}
	bg := metav1.DeletePropagationForeground
	must(t, cs.AppsV1().Deployments(ns).Delete(ctx, "child", metav1.DeleteOptions{PropagationPolicy: &bg}))
	waitFor(t, ctx, 60*time.Second, "the pods to be deleted", func() bool {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=child"})
		return err == nil && len(list.Items) == 0
	})
	if left := netnsOf(t); len(left) != 0 {
		t.Fatalf("network namespaces left after the pods went: %v", left)
	}
	for ip := range ips {
		if resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + ip + ":8080/"); err == nil {
			resp.Body.Close()
			t.Fatalf("%s still answers after its pod was deleted", ip)
		}
	}

	bridge := node.bridge
	node.Stop()
	nodeStopped = true
	if out, _ := exec.Command("ip", "link", "show", bridge).CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Fatalf("bridge still there after Stop: %s", out)
	}
}

// netnsOf lists this process's network namespaces.
func netnsOf(t *testing.T) []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	prefix := fmt.Sprintf("portico-%d-", os.Getpid())
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			mine = append(mine, f[0])
		}
	}
	return mine
}

type creator[T any] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
}

func create[T any](ctx context.Context, c creator[T], obj T) error {
	_, err := c.Create(ctx, obj, metav1.CreateOptions{})
	return err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, ctx context.Context, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
