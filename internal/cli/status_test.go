package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/admin"
	"github.com/portico-gw/portico/internal/resource"
	"github.com/portico-gw/portico/internal/translate"
)

// TestPrintStatusListenerSetsAndPolicies: `portico status` lists ListenerSets with their
// listeners and every policy per Gateway, and a refused one makes it report a problem.
func TestPrintStatusListenerSetsAndPolicies(t *testing.T) {
	snap, err := resource.Load("status.yaml", []byte(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public, namespace: infra}
spec:
  gatewayClassName: portico
  allowedListeners: {namespaces: {from: All}}
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: team, namespace: apps}
spec:
  parentRef: {name: public, namespace: infra}
  listeners: [{name: web, port: 80, protocol: HTTP, hostname: team.example.com}]
---
apiVersion: gateway.portico.dev/v1alpha1
kind: ListenerPolicy
metadata: {name: defaults, namespace: infra}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: public}]
  rateLimit: {requestsPerSecond: 10}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, st := translate.Translate(snap)
	now := time.Now()
	var out bytes.Buffer
	if bad := printStatus(&out, &admin.StatusDocument{Ready: true, AppliedAt: &now, Status: st}); bad {
		t.Errorf("a clean config was reported with problems:\n%s", out.String())
	}
	text := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{
		"ListenerSet apps/team - True True - - ",
		"ListenerSet apps/team web True True True 0",
		"ListenerPolicy infra/defaults infra/public True",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}

	// The Gateway stops taking ListenerSets: the set's row says NotAllowed, and that
	// is a problem.
	snap.Gateways[resource.Key{Namespace: "infra", Name: "public"}].Spec.AllowedListeners = nil
	_, st = translate.Translate(snap)
	out.Reset()
	if bad := printStatus(&out, &admin.StatusDocument{Ready: true, AppliedAt: &now, Status: st}); !bad {
		t.Errorf("a refused ListenerSet was not reported as a problem:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "Accepted: NotAllowed") {
		t.Errorf("the refused ListenerSet's reason is missing:\n%s", out.String())
	}
}
