package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// Bins are the control plane's executables.
type Bins struct {
	Etcd, APIServer, ControllerManager string
}

// KubernetesVersion is the k8s.io/kubernetes module the tools module pins.
const KubernetesVersion = "v1.36.3"

// Dir is this package's folder in the source tree.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// RepoRoot is the repository's root folder.
func RepoRoot() string { return filepath.Join(Dir(), "..", "..") }

// Binaries finds etcd and builds kube-apiserver and kube-controller-manager from the
// tools module into test/kube/.bin (or $PORTICO_KUBE_BIN), unless the binaries there were
// built from the same go.mod and go.sum. The first build takes about 15 minutes on two
// cores; later ones only link, from Go's build cache. Concurrent callers (test packages
// run in parallel) wait for one build.
func Binaries(ctx context.Context, logf func(string, ...any)) (Bins, error) {
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		return Bins{}, fmt.Errorf("etcd not found: install Debian's etcd-server (apt-get install etcd-server), as scripts/test.sh does")
	}
	binDir := os.Getenv("PORTICO_KUBE_BIN")
	if binDir == "" {
		binDir = filepath.Join(Dir(), ".bin")
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return Bins{}, err
	}
	b := Bins{
		Etcd:              etcd,
		APIServer:         filepath.Join(binDir, "kube-apiserver"),
		ControllerManager: filepath.Join(binDir, "kube-controller-manager"),
	}
	tools := filepath.Join(Dir(), "tools")
	stamp, err := ToolsStamp(tools)
	if err != nil {
		return Bins{}, err
	}
	lock, err := os.OpenFile(filepath.Join(binDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return Bins{}, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return Bins{}, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	stampFile := filepath.Join(binDir, "stamp")
	if have, err := os.ReadFile(stampFile); err == nil && string(have) == stamp && exists(b.APIServer) && exists(b.ControllerManager) {
		return b, nil
	}
	logf("building kube-apiserver and kube-controller-manager %s into %s (about 15 minutes on a cold build cache)", KubernetesVersion, binDir)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", binDir+string(filepath.Separator),
		"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager")
	cmd.Dir = tools
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Bins{}, fmt.Errorf("building the Kubernetes binaries: %v\n%s", err, out)
	}
	logf("built the Kubernetes binaries in %s", time.Since(start).Round(time.Second))
	return b, os.WriteFile(stampFile, []byte(stamp), 0o644)
}

// ToolsStamp identifies what a tools module (a folder with its own go.mod) builds: its
// go.mod and go.sum, and the Go version building it. A build is redone when it changes.
func ToolsStamp(dir string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	h.Write([]byte(runtime.Version()))
	return hex.EncodeToString(h.Sum(nil)), nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
