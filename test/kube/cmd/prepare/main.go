// Command prepare builds what the Kubernetes tests need before they run (scripts/test.sh
// calls it, so that a cold build of kube-apiserver does not count against go test's
// timeout): kube-apiserver and kube-controller-manager into test/kube/.bin.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/portico-gw/portico/test/kube"
)

func main() {
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	b, err := kube.Binaries(context.Background(), logf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "prepare:", err)
		os.Exit(1)
	}
	fmt.Printf("etcd %s\nkube-apiserver %s\nkube-controller-manager %s\n", b.Etcd, b.APIServer, b.ControllerManager)
}
