package chart

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/portico-gw/portico/test/kube"
)

// Dir is this package's folder in the source tree.
func Dir() string { return filepath.Join(kube.RepoRoot(), "test", "chart") }

// HelmBinary builds helm from the tools module (./tools, which pins helm.sh/helm/v3)
// into test/chart/.bin, unless the binary there was built from the same go.mod, go.sum
// and Go version. The first build takes a few minutes on two cores; concurrent callers
// wait for one build. Helm is not a dependency of the product's go.mod.
func HelmBinary(ctx context.Context, logf func(string, ...any)) (string, error) {
	binDir := filepath.Join(Dir(), ".bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", err
	}
	helm := filepath.Join(binDir, "helm")
	tools := filepath.Join(Dir(), "tools")
	stamp, err := kube.ToolsStamp(tools)
	if err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(binDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	stampFile := filepath.Join(binDir, "stamp")
	if have, err := os.ReadFile(stampFile); err == nil && string(have) == stamp && exists(helm) {
		return helm, nil
	}
	logf("building helm from %s into %s (a few minutes on a cold build cache)", tools, binDir)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", helm, "helm.sh/helm/v3/cmd/helm")
	cmd.Dir = tools
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building helm: %v\n%s", err, out)
	}
	logf("built helm in %s", time.Since(start).Round(time.Second))
	return helm, os.WriteFile(stampFile, []byte(stamp), 0o644)
}

// Template runs "helm template" on the chart as release name in namespace, with the
// CRDs of crds/ included and each of set as a --set argument. Helm's own config and
// cache go to a temporary folder, so that nothing on the machine changes its output.
func Template(ctx context.Context, helm, name, namespace, kubeVersion string, set ...string) ([]byte, error) {
	args := []string{"template", name, ChartDir(), "--namespace", namespace, "--include-crds", "--kube-version", kubeVersion}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return runHelm(ctx, helm, args...)
}

// Lint runs "helm lint --strict" on the chart with the --set arguments set.
func Lint(ctx context.Context, helm string, set ...string) ([]byte, error) {
	args := []string{"lint", "--strict", ChartDir()}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return runHelm(ctx, helm, args...)
}

func runHelm(ctx context.Context, helm string, args ...string) ([]byte, error) {
	home, err := os.MkdirTemp("", "portico-helm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	cmd := exec.CommandContext(ctx, helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %v: %s", args[0], err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
