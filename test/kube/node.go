package kube

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
)

// Node stands in for a kubelet on this machine, for tests that need pods to run without a
// container runtime (the Gateway API conformance suite). It registers a Node and keeps it
// Ready, binds every pending pod to it, and runs each pod's containers as local programs
// (NodeOptions.Program says which), every pod in a network namespace of its own with its
// own address on a bridge the Node creates. The bridge's subnet exists only on this
// machine; nothing is routed off it. It writes Secret, ConfigMap and emptyDir volumes to
// disk (a container's environment and arguments that name a path under a mount are
// rewritten to the folder), fills the downward-API environment, reports pod status
// (Running, Ready once the program listens, podIP, hostIP) and serves container logs on
// the kubelet endpoint the API server proxies pods/log to. Needs root.
type Node struct {
	Name string
	// HostIP is the bridge's address: the node's address, and the pods' default route.
	HostIP netip.Addr
	// Subnet is the pods' /24 on the bridge.
	Subnet netip.Prefix

	o      NodeOptions
	cs     kubernetes.Interface
	bridge string
	kubelt *http.Server
	queue  workqueue.TypedRateLimitingInterface[string]
	cancel context.CancelFunc
	wg     sync.WaitGroup
	pods   cache.Indexer

	mu      sync.Mutex
	running map[string]*podRun // by namespace/name
	usedIPs map[netip.Addr]bool
	nextIP  netip.Addr
	stopped bool
}

// NodeOptions configure a Node.
type NodeOptions struct {
	// Name of the Node object; "portico-node" if empty.
	Name string
	// Dir holds the pods' volumes and logs (required).
	Dir string
	// Log receives progress lines; nothing if nil.
	Log func(format string, args ...any)
	// Program says how to run a container of a pod; false leaves the pod Pending with a
	// message (an image the node cannot run).
	Program func(pod *corev1.Pod, c *corev1.Container) (Program, bool)
}

// Program is a local executable that stands in for a container image.
type Program struct {
	Path string
	// Args replace the container's args when set; otherwise the container's own are used.
	Args []string
	// Env is added to the container's environment.
	Env []string
	// ReadyPort is a TCP port the program must accept connections on (at the pod's IP)
	// before the pod is Ready; 0 means Ready once started.
	ReadyPort int
}

// podRun is one running pod.
type podRun struct {
	uid   string
	netns string
	ip    netip.Addr
	dir   string
	procs []*container
	start time.Time
}

// container is one container's process and its captured output.
type container struct {
	name string

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	halt  bool // stop was called: no more restarts
	lines []logLine
}

func (c *container) stopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.halt
}

// stop ends the process group with SIGTERM, then SIGKILL after five seconds.
func (c *container) stop() {
	c.mu.Lock()
	c.halt = true
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

type logLine struct {
	at   time.Time
	text string
}

var errCannotRun = errors.New("this node cannot run image")

var (
	bridgeNamed = regexp.MustCompile(`^pbr(\d+)-\d+$`)
	bridgeSeq   atomic.Uint32
)

// StartNode registers the Node, creates its bridge and kubelet endpoint, and starts
// running pods. Stop undoes all of it.
func StartNode(ctx context.Context, cfg *rest.Config, o NodeOptions) (_ *Node, err error) {
	if o.Name == "" {
		o.Name = "portico-node"
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.Dir == "" || o.Program == nil {
		return nil, errors.New("NodeOptions: Dir and Program are required")
	}
	sweepOnce.Do(sweepNetNS)
	sweepBridges()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{Name: o.Name, o: o, cs: cs, running: map[string]*podRun{}, usedIPs: map[netip.Addr]bool{}}
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	if err := n.makeBridge(); err != nil {
		return nil, err
	}
	port, err := n.serveKubelet()
	if err != nil {
		return nil, err
	}
	if err := n.register(ctx, port); err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.queue = workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 5*time.Second))
	factory := informers.NewSharedInformerFactory(cs, 0)
	inf := factory.Core().V1().Pods().Informer()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			n.queue.Add(key)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return nil, err
	}
	n.pods = inf.GetIndexer()
	factory.Start(runCtx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, errors.New("pod informer did not sync")
	}
	for range 8 {
		n.wg.Go(func() {
			for n.work(runCtx) {
			}
		})
	}
	n.wg.Go(func() { n.heartbeat(runCtx) })
	o.Log("node %s ready: bridge %s on %s, kubelet on %s:%d", n.Name, n.bridge, n.Subnet, n.HostIP, port)
	return n, nil
}

// makeBridge creates the pods' bridge on a /24 of 10.251.0.0/16 that no link here uses.
func (n *Node) makeBridge() error {
	netnsMu.Lock()
	defer netnsMu.Unlock()
	name := fmt.Sprintf("pbr%d-%d", os.Getpid(), bridgeSeq.Add(1))
	for third := 0; ; third++ {
		if third == 256 {
			return errors.New("no free /24 in 10.251.0.0/16 for the pods' bridge")
		}
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 251, byte(third), 0}), 24)
		out, err := exec.Command("ip", "-4", "addr", "show", "to", p.String()).Output()
		if err == nil && len(strings.TrimSpace(string(out))) == 0 {
			n.Subnet = p
			break
		}
	}
	n.HostIP = n.Subnet.Addr().Next()
	if out, err := exec.Command("ip", "link", "add", name, "type", "bridge").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link add %s type bridge: %v: %s", name, err, out)
	}
	n.bridge = name // Stop removes it from here on
	for _, s := range [][]string{
		{"addr", "add", n.HostIP.String() + "/24", "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return nil
}

// sweepBridges removes the bridges of test processes that no longer exist.
func sweepBridges() {
	out, err := exec.Command("ip", "-o", "link", "show", "type", "bridge").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		m := bridgeNamed.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		_ = exec.Command("ip", "link", "del", name).Run()
	}
}

// serveKubelet serves the kubelet's log endpoint over HTTPS on the bridge address (the
// API server does not verify a kubelet's certificate unless told a CA).
func (n *Node) serveKubelet() (int, error) {
	cert, err := selfSignedCert(n.HostIP)
	if err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(n.HostIP, 0).String())
	if err != nil {
		return 0, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", n.serveLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	n.kubelt = &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = n.kubelt.ServeTLS(ln, "", "") }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// serveLogs answers /containerLogs/NS/POD/CONTAINER with the lines the container wrote
// (stdout and stderr), honouring sinceTime, sinceSeconds, tailLines and timestamps.
func (n *Node) serveLogs(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("ns") + "/" + r.PathValue("pod")
	n.mu.Lock()
	run := n.running[key]
	n.mu.Unlock()
	var c *container
	if run != nil {
		for _, p := range run.procs {
			if p.name == r.PathValue("container") {
				c = p
			}
		}
	}
	if c == nil {
		http.Error(w, "container "+r.PathValue("container")+" of pod "+key+" is not running on this node", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	var since time.Time
	if s := q.Get("sinceTime"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			http.Error(w, "sinceTime: "+err.Error(), http.StatusBadRequest)
			return
		}
		since = t
	}
	if s := q.Get("sinceSeconds"); s != "" {
		secs, err := strconv.Atoi(s)
		if err != nil {
			http.Error(w, "sinceSeconds: "+err.Error(), http.StatusBadRequest)
			return
		}
		since = time.Now().Add(-time.Duration(secs) * time.Second)
	}
	stamps := q.Get("timestamps") == "true"
	c.mu.Lock()
	lines := make([]logLine, 0, len(c.lines))
	for _, l := range c.lines {
		if !l.at.Before(since) {
			lines = append(lines, l)
		}
	}
	c.mu.Unlock()
	if s := q.Get("tailLines"); s != "" {
		if tail, err := strconv.Atoi(s); err == nil && tail >= 0 && tail < len(lines) {
			lines = lines[len(lines)-tail:]
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	bw := bufio.NewWriter(w)
	for _, l := range lines {
		if stamps {
			_, _ = bw.WriteString(l.at.UTC().Format(time.RFC3339Nano) + " ")
		}
		_, _ = bw.WriteString(l.text)
		_ = bw.WriteByte('\n')
	}
	_ = bw.Flush()
}

// register creates (or takes over) the Node object and reports it Ready.
func (n *Node) register(ctx context.Context, kubeletPort int) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{
		"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
	}}}
	if _, err := n.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("registering node: %w", err)
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := n.cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		capacity := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("64"),
			corev1.ResourceMemory: resource.MustParse("64Gi"),
			corev1.ResourcePods:   resource.MustParse("250"),
		}
		cur.Status.Capacity, cur.Status.Allocatable = capacity, capacity
		cur.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.HostIP.String()}, {Type: corev1.NodeHostName, Address: n.HostIP.String()}}
		cur.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(kubeletPort)
		cur.Status.NodeInfo = corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: KubernetesVersion, ContainerRuntimeVersion: "portico-test://1"}
		cur.Status.Conditions = []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "test node agent is posting ready status",
			LastHeartbeatTime: now, LastTransitionTime: now,
		}}
		_, err = n.cs.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// heartbeat refreshes the Ready condition's heartbeat time.
func (n *Node) heartbeat(ctx context.Context) {
	t := time.NewTicker(20 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := n.cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for i := range cur.Status.Conditions {
				if cur.Status.Conditions[i].Type == corev1.NodeReady {
					cur.Status.Conditions[i].LastHeartbeatTime = metav1.Now()
				}
			}
			_, err = n.cs.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
	}
}

// work handles one pod key; false once the queue shuts down.
func (n *Node) work(ctx context.Context) bool {
	key, quit := n.queue.Get()
	if quit {
		return false
	}
	defer n.queue.Done(key)
	if err := n.sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			n.o.Log("node: pod %s: %v", key, err)
			n.queue.AddRateLimited(key)
		}
		return true
	}
	n.queue.Forget(key)
	return true
}

// sync brings one pod to what its object asks: bound, running, stopped or gone.
func (n *Node) sync(ctx context.Context, key string) error {
	obj, exists, err := n.pods.GetByKey(key)
	if err != nil {
		return err
	}
	if !exists {
		n.stopPod(key)
		return nil
	}
	pod := obj.(*corev1.Pod)
	switch {
	case pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil:
		err := n.cs.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: n.Name},
		}, metav1.CreateOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // gone, or bound meanwhile: a later event says which
		}
		return err
	case pod.Spec.NodeName != n.Name:
		return nil
	case pod.DeletionTimestamp != nil:
		n.stopPod(key)
		uid := pod.UID
		err := n.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	n.mu.Lock()
	run := n.running[key]
	n.mu.Unlock()
	if run != nil && run.uid != string(pod.UID) {
		n.stopPod(key) // a new pod of the same name
		run = nil
	}
	if run == nil {
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			return nil
		}
		if run, err = n.startPod(ctx, pod); err != nil {
			if perr := n.reportPending(ctx, pod, err.Error()); perr == nil && errors.Is(err, errCannotRun) {
				return nil // nothing to retry until the pod changes
			}
			return err
		}
	}
	return n.reportRunning(ctx, pod, run)
}

// startPod creates the pod's network namespace and volumes and starts its containers.
func (n *Node) startPod(ctx context.Context, pod *corev1.Pod) (_ *podRun, err error) {
	key := pod.Namespace + "/" + pod.Name
	progs := make([]Program, len(pod.Spec.Containers))
	for i := range pod.Spec.Containers {
		p, ok := n.o.Program(pod, &pod.Spec.Containers[i])
		if !ok {
			return nil, fmt.Errorf("%w %q", errCannotRun, pod.Spec.Containers[i].Image)
		}
		progs[i] = p
	}
	run := &podRun{uid: string(pod.UID), dir: filepath.Join(n.o.Dir, pod.Namespace, pod.Name+"-"+string(pod.UID)[:8]), start: time.Now()}
	defer func() {
		if err != nil {
			n.cleanup(run)
		}
	}()
	if run.ip, err = n.allocIP(); err != nil {
		return nil, err
	}
	if err := n.makePodNetwork(run); err != nil {
		return nil, err
	}
	mounts, err := n.writeVolumes(ctx, pod, run.dir)
	if err != nil {
		return nil, err
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		env, err := n.containerEnv(ctx, pod, c, run)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
		args := slices.Clone(progs[i].Args) // never write into the informer's pod
		if args == nil {
			args = slices.Clone(c.Args)
		}
		rewrite := pathRewriter(c, mounts)
		for j := range env {
			k, v, _ := strings.Cut(env[j], "=")
			env[j] = k + "=" + rewrite(v)
		}
		for j := range args {
			args[j] = rewrite(args[j])
		}
		env = append(env, progs[i].Env...)
		proc, err := n.startContainer(run, c.Name, progs[i].Path, args, env)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
		run.procs = append(run.procs, proc)
	}
	for _, p := range progs {
		if p.ReadyPort != 0 {
			if err := waitTCP(ctx, netip.AddrPortFrom(run.ip, uint16(p.ReadyPort)), run, 30*time.Second); err != nil {
				return nil, err
			}
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return nil, errors.New("node stopped")
	}
	n.running[key] = run
	n.o.Log("node: pod %s running at %s", key, run.ip)
	return run, nil
}

// allocIP hands out the bridge's addresses round robin, so that an address just freed
// is the last to be reused (the host's neighbour entry for it may still name the old
// pod's link).
func (n *Node) allocIP() (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	first, last := n.HostIP.Next(), n.Subnet.Addr().As4()
	last[3] = 254
	size := int(netip.AddrFrom4(last).As4()[3]) - int(first.As4()[3]) + 1
	for range size {
		a := n.nextIP
		if !a.IsValid() || !n.Subnet.Contains(a) || a.As4()[3] > 254 {
			a = first
		}
		n.nextIP = a.Next()
		if !n.usedIPs[a] {
			n.usedIPs[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, errors.New("no free pod address on the bridge")
}

// makePodNetwork creates the pod's namespace with one end of a veth pair (its address,
// and a default route to the bridge) and puts the other end on the bridge.
func (n *Node) makePodNetwork(run *podRun) error {
	id := make([]byte, 3)
	_, _ = rand.Read(id)
	tag := hex.EncodeToString(id)
	name := fmt.Sprintf("portico-%d-%s", os.Getpid(), tag)
	host, peer := "pvh"+tag, "pvp"+tag
	ip := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := ip("netns", "add", name); err != nil {
		return err
	}
	run.netns = name // cleanup removes it from here on (and the veth end inside it)
	if err := ip("link", "add", host, "type", "veth", "peer", "name", peer); err != nil {
		return err
	}
	for _, s := range [][]string{
		{"link", "set", peer, "netns", name},
		{"link", "set", host, "master", n.bridge},
		{"link", "set", host, "up"},
		{"-n", name, "link", "set", peer, "name", "eth0"},
		{"-n", name, "addr", "add", run.ip.String() + "/24", "dev", "eth0"},
		{"-n", name, "link", "set", "eth0", "up"},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "route", "add", "default", "via", n.HostIP.String()},
	} {
		if err := ip(s...); err != nil {
			_ = exec.Command("ip", "link", "del", host).Run() // the pair, wherever its peer is
			return err
		}
	}
	return nil
}

// writeVolumes writes the pod's Secret, ConfigMap, projected (Secret, ConfigMap,
// downward-API and service account token sources) and emptyDir volumes under dir and
// returns each volume's folder by name.
func (n *Node) writeVolumes(ctx context.Context, pod *corev1.Pod, dir string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		vdir := filepath.Join(dir, "volumes", v.Name)
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return nil, err
		}
		out[v.Name] = vdir
		var err error
		switch {
		case v.Secret != nil:
			err = n.writeSecret(ctx, pod.Namespace, vdir, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional)
		case v.ConfigMap != nil:
			err = n.writeConfigMap(ctx, pod.Namespace, vdir, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				switch {
				case src.Secret != nil:
					err = n.writeSecret(ctx, pod.Namespace, vdir, src.Secret.Name, src.Secret.Items, src.Secret.Optional)
				case src.ConfigMap != nil:
					err = n.writeConfigMap(ctx, pod.Namespace, vdir, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional)
				case src.DownwardAPI != nil:
					for _, it := range src.DownwardAPI.Items {
						if it.FieldRef == nil {
							continue
						}
						var val string
						if val, err = n.podField(pod, it.FieldRef.FieldPath, netip.Addr{}); err == nil {
							err = writeKeys(vdir, map[string][]byte{it.Path: []byte(val)}, nil, false)
						}
						if err != nil {
							break // an error of an earlier item must not be overwritten
						}
					}
				case src.ServiceAccountToken != nil:
					err = n.writeToken(ctx, pod, vdir, src.ServiceAccountToken)
				}
				if err != nil {
					break
				}
			}
		case v.EmptyDir != nil:
		default:
			err = errors.New("only secret, configMap, projected and emptyDir volumes are supported")
		}
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
	}
	return out, nil
}

func (n *Node) writeSecret(ctx context.Context, ns, dir, name string, items []corev1.KeyToPath, optional *bool) error {
	s, err := n.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && optional != nil && *optional {
			return nil
		}
		return err
	}
	return writeKeys(dir, s.Data, items, optional != nil && *optional)
}

func (n *Node) writeConfigMap(ctx context.Context, ns, dir, name string, items []corev1.KeyToPath, optional *bool) error {
	cm, err := n.cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && optional != nil && *optional {
			return nil
		}
		return err
	}
	data := map[string][]byte{}
	for k, s := range cm.Data {
		data[k] = []byte(s)
	}
	for k, b := range cm.BinaryData {
		data[k] = b
	}
	return writeKeys(dir, data, items, optional != nil && *optional)
}

// writeToken writes a token of the pod's service account, bound to the pod.
func (n *Node) writeToken(ctx context.Context, pod *corev1.Pod, dir string, src *corev1.ServiceAccountTokenProjection) error {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tok, err := n.cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	return writeKeys(dir, map[string][]byte{src.Path: []byte(tok.Status.Token)}, nil, false)
}

// writeKeys writes the chosen keys (all of them if items is empty) as files under dir.
func writeKeys(dir string, data map[string][]byte, items []corev1.KeyToPath, optional bool) error {
	if len(items) == 0 {
		for k := range data {
			items = append(items, corev1.KeyToPath{Key: k, Path: k})
		}
	}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("no key %q", it.Key)
		}
		p := filepath.Join(dir, filepath.Clean("/"+it.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// pathRewriter maps a path under one of the container's mounts to the volume's folder.
func pathRewriter(c *corev1.Container, volumes map[string]string) func(string) string {
	return func(s string) string {
		for _, m := range c.VolumeMounts {
			dir, ok := volumes[m.Name]
			if !ok {
				continue
			}
			mp := strings.TrimSuffix(m.MountPath, "/")
			if s == mp {
				return dir
			}
			if rest, ok := strings.CutPrefix(s, mp+"/"); ok {
				return filepath.Join(dir, m.SubPath, rest)
			}
		}
		return s
	}
}

// containerEnv is the container's environment: its env (values, downward-API fields,
// Secret and ConfigMap keys) and envFrom, as KEY=VALUE.
func (n *Node) containerEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, run *podRun) ([]string, error) {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + run.dir, "HOSTNAME=" + pod.Name}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, err := n.cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			for k, v := range cm.Data {
				env = append(env, from.Prefix+k+"="+v)
			}
		case from.SecretRef != nil:
			s, err := n.cs.CoreV1().Secrets(pod.Namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			for k, v := range s.Data {
				env = append(env, from.Prefix+k+"="+string(v))
			}
		}
	}
	for _, e := range c.Env {
		v := e.Value
		if f := e.ValueFrom; f != nil {
			switch {
			case f.FieldRef != nil:
				var err error
				if v, err = n.podField(pod, f.FieldRef.FieldPath, run.ip); err != nil {
					return nil, fmt.Errorf("env %s: %w", e.Name, err)
				}
			case f.SecretKeyRef != nil:
				s, err := n.cs.CoreV1().Secrets(pod.Namespace).Get(ctx, f.SecretKeyRef.Name, metav1.GetOptions{})
				if err != nil {
					return nil, fmt.Errorf("env %s: %w", e.Name, err)
				}
				v = string(s.Data[f.SecretKeyRef.Key])
			case f.ConfigMapKeyRef != nil:
				cm, err := n.cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, f.ConfigMapKeyRef.Name, metav1.GetOptions{})
				if err != nil {
					return nil, fmt.Errorf("env %s: %w", e.Name, err)
				}
				v = cm.Data[f.ConfigMapKeyRef.Key]
			default:
				return nil, fmt.Errorf("env %s: only fieldRef, secretKeyRef and configMapKeyRef are supported", e.Name)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

// podField is the value of a downward-API field of the pod.
func (n *Node) podField(pod *corev1.Pod, path string, ip netip.Addr) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return n.Name, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return ip.String(), nil
	case "status.hostIP":
		return n.HostIP.String(), nil
	}
	return "", fmt.Errorf("field %s is not supported", path)
}

// startContainer runs a program inside the pod's network namespace, capturing its
// output line by line, and restarts it (after a second) if it exits while the pod runs.
func (n *Node) startContainer(run *podRun, name, path string, args, env []string) (*container, error) {
	if err := os.MkdirAll(run.dir, 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(run.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	c := &container{name: name}
	var logMu sync.Mutex // the log file, written by each launch's reader
	var launch func() error
	launch = func() error {
		cmd := exec.Command("ip", append([]string{"netns", "exec", run.netns, path}, args...)...)
		cmd.Env = env
		cmd.Dir = run.dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		// A descendant that keeps the output open must not keep Wait (and so stop) waiting.
		cmd.WaitDelay = 2 * time.Second
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		if err := cmd.Start(); err != nil {
			pw.Close()
			return err
		}
		done := make(chan struct{})
		c.mu.Lock()
		c.cmd, c.done = cmd, done
		halted := c.halt
		c.mu.Unlock()
		if halted { // stopped while restarting
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		read := make(chan struct{})
		go func() {
			defer close(read)
			br := bufio.NewReaderSize(pr, 64<<10)
			for {
				text, err := br.ReadString('\n')
				if text != "" {
					text = strings.TrimSuffix(text, "\n")
					if len(text) > 1<<20 {
						text = text[:1<<20] + " [line truncated]"
					}
					line := logLine{at: time.Now(), text: text}
					logMu.Lock()
					_, _ = fmt.Fprintf(logFile, "%s %s\n", line.at.UTC().Format(time.RFC3339Nano), line.text)
					logMu.Unlock()
					c.mu.Lock()
					if len(c.lines) >= 100000 {
						c.lines = append(c.lines[:0], c.lines[50000:]...)
					}
					c.lines = append(c.lines, line)
					c.mu.Unlock()
				}
				if err != nil {
					return
				}
			}
		}()
		go func() {
			err := cmd.Wait()
			pw.Close()
			<-read
			close(done)
			// Restart while the pod runs, with a growing pause; the log file closes
			// once the container is stopped for good.
			for pause := time.Second; ; pause = min(2*pause, 30*time.Second) {
				n.mu.Lock()
				alive := !n.stopped && !c.stopping()
				n.mu.Unlock()
				if !alive {
					logMu.Lock()
					logFile.Close()
					logMu.Unlock()
					return
				}
				n.o.Log("node: container %s of %s ended (%v); restarting in %s", name, run.netns, err, pause)
				time.Sleep(pause)
				if c.stopping() {
					continue
				}
				if err = launch(); err == nil {
					return
				}
			}
		}()
		return nil
	}
	if err := launch(); err != nil {
		logFile.Close()
		return nil, err
	}
	return c, nil
}

// waitTCP waits until addr accepts a connection.
func waitTCP(ctx context.Context, addr netip.AddrPort, run *podRun, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		conn, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s", addr, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// reportRunning writes Running/Ready status, unless the pod already says so.
func (n *Node) reportRunning(ctx context.Context, pod *corev1.Pod, run *podRun) error {
	if pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP == run.ip.String() && podReady(pod) {
		return nil
	}
	return n.updateStatus(ctx, pod, func(st *corev1.PodStatus) {
		start := metav1.NewTime(run.start)
		now := metav1.Now()
		st.Phase = corev1.PodRunning
		st.Reason, st.Message = "", ""
		st.HostIP = n.HostIP.String()
		st.HostIPs = []corev1.HostIP{{IP: n.HostIP.String()}}
		st.PodIP = run.ip.String()
		st.PodIPs = []corev1.PodIP{{IP: run.ip.String()}}
		st.StartTime = &start
		st.Conditions = nil
		for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
		}
		st.ContainerStatuses = nil
		for i, c := range pod.Spec.Containers {
			st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: fmt.Sprintf("portico-test://%s-%d", run.netns, i),
				Ready: true, Started: new(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: start}},
			})
		}
	})
}

// reportPending says why a pod does not run.
func (n *Node) reportPending(ctx context.Context, pod *corev1.Pod, msg string) error {
	return n.updateStatus(ctx, pod, func(st *corev1.PodStatus) {
		st.Phase = corev1.PodPending
		st.Reason, st.Message = "NodeCannotRun", msg
	})
}

func (n *Node) updateStatus(ctx context.Context, pod *corev1.Pod, set func(*corev1.PodStatus)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := n.cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID {
			return nil
		}
		set(&cur.Status)
		_, err = n.cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// stopPod ends a pod's processes and removes its namespace and files.
func (n *Node) stopPod(key string) {
	n.mu.Lock()
	run := n.running[key]
	delete(n.running, key)
	n.mu.Unlock()
	if run != nil {
		n.cleanup(run)
	}
}

func (n *Node) cleanup(run *podRun) {
	for _, c := range run.procs {
		c.stop()
	}
	if run.netns != "" {
		_ = exec.Command("ip", "netns", "del", run.netns).Run()
	}
	if run.ip.IsValid() {
		_ = exec.Command("ip", "neigh", "del", run.ip.String(), "dev", n.bridge).Run()
		n.mu.Lock()
		delete(n.usedIPs, run.ip)
		n.mu.Unlock()
	}
	_ = os.RemoveAll(run.dir)
}

// Stop ends every pod, the kubelet endpoint and the bridge.
func (n *Node) Stop() {
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	if n.cancel != nil {
		n.cancel()
	}
	if n.queue != nil {
		n.queue.ShutDown()
	}
	n.wg.Wait()
	n.mu.Lock()
	runs := n.running
	n.running = map[string]*podRun{}
	n.mu.Unlock()
	for _, run := range runs {
		n.cleanup(run)
	}
	if n.kubelt != nil {
		_ = n.kubelt.Close()
	}
	if n.bridge != "" {
		_ = exec.Command("ip", "link", "del", n.bridge).Run()
	}
}

// selfSignedCert makes a serving certificate for ip.
func selfSignedCert(ip netip.Addr) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "portico-test-kubelet"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{ip.AsSlice()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
