package kubernetes

import (
	"context"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/translate"
	"github.com/portico-gw/portico/test/kube"
)

// TestMissingCRDsDoNotStopTheController: on an API server without the Gateway API CRDs
// (not installed yet, or an older release missing some kinds) the provider keeps
// running, serving what exists, instead of exiting and taking its data plane down.
func TestMissingCRDsDoNotStopTheController(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env, err := kube.Start(ctx, kube.Options{Log: t.Logf, SkipCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	p := startProvider(t, env.Config, Options{
		Translate:   translate.Options{ControllerName: "portico.dev/test-crdless"},
		AddressPool: pool("127.0.27.0/28"),
	})
	eventually(t, 20*time.Second, "a translation of what exists", func() error {
		if p.Translations() == 0 {
			return context.DeadlineExceeded
		}
		return nil
	})
	if len(p.kinds) != 5 {
		t.Errorf("watching %d kinds, want the 5 core ones", len(p.kinds))
	}
}
