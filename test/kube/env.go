// Package kube runs a real Kubernetes control plane for tests: etcd (Debian's
// etcd-server) and kube-apiserver built from the pinned k8s.io/kubernetes module (the
// separate module in ./tools), with the Gateway API CRDs (experimental channel, from the
// gateway-api module this repository pins) and Portico's own CRDs installed.
//
// Tests get a rest.Config of an admin user. Stop ends every process the Env started; a
// process whose test binary dies is ended by the kernel (parent-death signal).
package kube

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Env is a running etcd and kube-apiserver.
type Env struct {
	// Config reaches the API server as a member of system:masters.
	Config *rest.Config
	// Dir holds the processes' data, certificates and logs (removed by Stop).
	Dir string
	// Token is the admin's bearer token (also in Config).
	Token string
	// APIServerURL is https://127.0.0.1:port.
	APIServerURL string

	etcdURL string
	procs   []*process
}

// Options change how Start runs the control plane.
type Options struct {
	// Dir is where the Env keeps its files; a new temporary folder if empty.
	Dir string
	// Log receives progress lines (testing.T.Logf); nothing if nil.
	Log func(format string, args ...any)
	// SkipCRDs leaves the API server without the Gateway API and Portico CRDs.
	SkipCRDs bool
	// ControllerManager also runs kube-controller-manager (Deployments, ReplicaSets,
	// EndpointSlices, ServiceAccounts, garbage collection). Start returns once it has
	// made the default namespace's ServiceAccount.
	ControllerManager bool
}

// Start builds the binaries if needed, starts etcd and kube-apiserver on free loopback
// ports, waits until the API server is ready and installs the CRDs.
func Start(ctx context.Context, o Options) (_ *Env, err error) {
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bins, err := Binaries(ctx, logf)
	if err != nil {
		return nil, err
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "portico-kube-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	e := &Env{Dir: dir}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	if err := e.startEtcd(ctx, bins.Etcd, logf); err != nil {
		return nil, err
	}
	if err := e.startAPIServer(ctx, bins.APIServer, logf); err != nil {
		return nil, err
	}
	if !o.SkipCRDs {
		if err := InstallCRDs(ctx, e.Config); err != nil {
			return nil, err
		}
	}
	if o.ControllerManager {
		if err := e.startControllerManager(ctx, bins.ControllerManager, logf); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Stop ends every process, last started first, and removes Dir.
func (e *Env) Stop() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].stop()
	}
	e.procs = nil
	if e.Dir != "" {
		_ = os.RemoveAll(e.Dir)
	}
}

// PIDs are the processes the Env runs (for tests that check nothing is left behind).
func (e *Env) PIDs() []int {
	var out []int
	for _, p := range e.procs {
		out = append(out, p.cmd.Process.Pid)
	}
	return out
}

func (e *Env) startEtcd(ctx context.Context, bin string, logf func(string, ...any)) error {
	for attempt := 0; ; attempt++ {
		client, peer, err := freePort(), freePort(), error(nil)
		if client == 0 || peer == 0 {
			return errors.New("no free loopback port")
		}
		e.etcdURL = "http://127.0.0.1:" + strconv.Itoa(client)
		peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
		data := filepath.Join(e.Dir, "etcd")
		_ = os.RemoveAll(data)
		p, err := startProcess(e.Dir, "etcd", nil, bin,
			"--name", "default", "--data-dir", data,
			"--listen-client-urls", e.etcdURL, "--advertise-client-urls", e.etcdURL,
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", "default="+peerURL,
			"--unsafe-no-fsync", "--log-level", "warn")
		if err != nil {
			return err
		}
		err = waitHTTP(ctx, p, e.etcdURL+"/health", "", 30*time.Second)
		if err == nil && !stillRunning(p) {
			// Something else answered on the port we picked, and ours could not bind it.
			err = errors.New("another process answers on its port")
		}
		if err == nil {
			e.procs = append(e.procs, p)
			logf("etcd ready at %s", e.etcdURL)
			return nil
		}
		p.stop()
		if attempt == 2 {
			return fmt.Errorf("etcd: %w\n%s", err, p.tail())
		}
	}
}

func (e *Env) startAPIServer(ctx context.Context, bin string, logf func(string, ...any)) error {
	certDir := filepath.Join(e.Dir, "apiserver-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	saKey := filepath.Join(e.Dir, "sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return err
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	e.Token = hex.EncodeToString(tok)
	tokens := filepath.Join(e.Dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(e.Token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		port := freePort()
		if port == 0 {
			return errors.New("no free loopback port")
		}
		e.APIServerURL = "https://127.0.0.1:" + strconv.Itoa(port)
		p, err := startProcess(e.Dir, "kube-apiserver", nil, bin,
			"--etcd-servers", e.etcdURL,
			"--secure-port", strconv.Itoa(port), "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
			"--cert-dir", certDir,
			"--service-account-issuer", "https://kubernetes.default.svc",
			"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
			"--token-auth-file", tokens, "--authorization-mode", "RBAC",
			"--service-cluster-ip-range", "10.96.0.0/16",
			"--v", "1")
		if err != nil {
			return err
		}
		err = waitHTTP(ctx, p, e.APIServerURL+"/readyz", e.Token, 90*time.Second)
		if err == nil && !stillRunning(p) {
			err = errors.New("another process answers on its port")
		}
		if err == nil {
			e.procs = append(e.procs, p)
			e.Config = &rest.Config{
				Host:            e.APIServerURL,
				BearerToken:     e.Token,
				TLSClientConfig: rest.TLSClientConfig{Insecure: true},
				QPS:             200,
				Burst:           400,
			}
			logf("kube-apiserver ready at %s", e.APIServerURL)
			return nil
		}
		p.stop()
		if attempt == 2 {
			return fmt.Errorf("kube-apiserver: %w\n%s", err, p.tail())
		}
	}
}

// startControllerManager runs kube-controller-manager with every controller but node
// lifecycle (the test's node agent keeps its Node Ready itself) and waits for it to make
// the default ServiceAccount.
func (e *Env) startControllerManager(ctx context.Context, bin string, logf func(string, ...any)) error {
	kubeconfig := filepath.Join(e.Dir, "controller-manager.kubeconfig")
	if err := e.WriteKubeconfig(kubeconfig); err != nil {
		return err
	}
	port := freePort()
	if port == 0 {
		return errors.New("no free loopback port")
	}
	p, err := startProcess(e.Dir, "kube-controller-manager", nil, bin,
		"--kubeconfig", kubeconfig,
		"--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
		"--service-account-private-key-file", filepath.Join(e.Dir, "sa.key"),
		"--root-ca-file", filepath.Join(e.Dir, "apiserver-certs", "apiserver.crt"),
		"--use-service-account-credentials=false",
		"--controllers", "*,-nodelifecycle",
		"--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(port),
		"--concurrent-deployment-syncs", "10", "--concurrent-replicaset-syncs", "10",
		"--kube-api-qps", "200", "--kube-api-burst", "400",
		"--v", "1")
	if err != nil {
		return err
	}
	e.procs = append(e.procs, p)
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			logf("kube-controller-manager ready")
			return nil
		}
		if p.exited() {
			return fmt.Errorf("kube-controller-manager exited\n%s", p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-controller-manager made no default ServiceAccount in 90s (last: %v)\n%s", err, p.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitHTTP polls url until it answers 200, the process exits, or limit passes.
func waitHTTP(ctx context.Context, p *process, url, token string, limit time.Duration) error {
	c := insecureClient()
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("exited before %s answered", url)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (last: %v)", url, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stillRunning reports whether p is still up a moment after it answered: a process that
// lost its port to another exits at once, while the other answers for it.
func stillRunning(p *process) bool {
	time.Sleep(200 * time.Millisecond)
	return !p.exited()
}

// freePort returns a loopback TCP port that was free a moment ago (0 if none).
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeRSAKey writes a new RSA private key (PKCS#1 PEM): the API server signs service
// account tokens with it and verifies them with its public half.
func writeRSAKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
}

func insecureClient() *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// WriteKubeconfig writes a kubeconfig file for the admin user (for processes under
// test, such as "portico controller --kubeconfig").
func (e *Env) WriteKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: e.APIServerURL, InsecureSkipTLSVerify: true}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: e.Token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin"}
	cfg.CurrentContext = "test"
	return clientcmd.WriteToFile(*cfg, path)
}
