//go:build conformance

package conformance

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/portico-gw/portico/test/kube"
)

type programPaths struct {
	echo, dns, portico string
}

// buildPrograms builds the conformance module's echo server, the DNS responder and
// Portico into dir.
func buildPrograms(t *testing.T, dir string) programPaths {
	t.Helper()
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"sigs.k8s.io/gateway-api/conformance/echo-basic",
		"./test/conformance/dnsresponder",
		"./cmd/portico")
	cmd.Dir = kube.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built echo-basic, dnsresponder and portico in %s", time.Since(start).Round(time.Millisecond))
	return programPaths{
		echo:    filepath.Join(dir, "echo-basic"),
		dns:     filepath.Join(dir, "dnsresponder"),
		portico: filepath.Join(dir, "portico"),
	}
}

// programs maps the suite's container images to local programs: every echo-basic image
// (whatever its tag) to the echo server built from the pinned conformance module, and
// the coredns image to the DNS responder.
func programs(p programPaths) func(*corev1.Pod, *corev1.Container) (kube.Program, bool) {
	return func(_ *corev1.Pod, c *corev1.Container) (kube.Program, bool) {
		repo, _, _ := strings.Cut(c.Image, "@")
		if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
			repo = repo[:i]
		}
		switch {
		case strings.HasSuffix(repo, "/echo-basic"), strings.HasSuffix(repo, "/echo-advanced"):
			for _, e := range c.Env {
				if e.Name == "UDP_ECHO_SERVER" && e.Value != "" {
					return kube.Program{Path: p.echo}, true // UDP only: nothing to connect to
				}
			}
			return kube.Program{Path: p.echo, ReadyPort: 3000}, true
		case strings.HasSuffix(repo, "/coredns"):
			return kube.Program{Path: p.dns, Args: []string{"-addr", ":53"}}, true
		}
		return kube.Program{}, false
	}
}

// startController runs "portico controller" against the API server and waits until it
// is ready; it is stopped (SIGTERM) when the test ends.
func startController(t *testing.T, env *kube.Env, bin, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := ln.Addr().String()
	ln.Close()
	logPath := filepath.Join(dir, "portico.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "controller",
		"--kubeconfig", kubeconfig,
		"--gateway-addresses", gatewayPool,
		"--admin-address", admin,
		"--leader-election-namespace", "default",
		"--access-log", "off",
		"--batch", "20ms",
		"--kube-api-qps", "200", "--kube-api-burst", "400")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() || os.Getenv("PORTICO_CONFORMANCE_DEBUG") == "1" {
			if b, err := os.ReadFile(logPath); err == nil {
				lines := strings.Split(string(b), "\n")
				if len(lines) > 200 {
					lines = lines[len(lines)-200:]
				}
				t.Logf("portico controller log (last lines):\n%s", strings.Join(lines, "\n"))
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Logf("portico controller up (admin %s, pool %s, log %s)", admin, gatewayPool, logPath)
				return
			}
		}
		select {
		case err := <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("portico controller exited: %v\n%s", err, b)
		case <-ctx.Done():
			t.Fatal("portico controller not healthy after 60s")
		case <-time.After(100 * time.Millisecond):
		}
	}
}
