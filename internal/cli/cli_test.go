package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/portico-gw/portico/internal/translate"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestTranslateQuickstartIsClean(t *testing.T) {
	code, out, errOut := run(t, "translate", "-f", "../../examples/quickstart")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	var st translate.Status
	if err := yaml.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("stdout is not status YAML: %v\n%s", err, out)
	}
	if len(st.Gateways) != 1 || len(st.Routes) != 2 {
		t.Fatalf("want 1 gateway and 2 routes in status, got %d and %d", len(st.Gateways), len(st.Routes))
	}
}

func TestTranslateProblemsExitOne(t *testing.T) {
	dir := t.TempDir()
	route := `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken, namespace: shop}
spec:
  parentRefs: [{name: public, namespace: infra}]
  rules:
  - backendRefs: [{name: nowhere, port: 80}]
`
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte(route), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "translate", "-f", "../../examples/quickstart/gateway.yaml", "-f", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut, "HTTPRoute shop/broken") || !strings.Contains(errOut, "BackendNotFound") {
		t.Fatalf("stderr does not name the route and reason:\n%s", errOut)
	}
	if code, _, _ := run(t, "translate", "--exit-zero", "-f", "../../examples/quickstart/gateway.yaml", "-f", dir); code != 0 {
		t.Fatalf("--exit-zero: exit %d", code)
	}
}

func TestTranslateBadInputExitTwo(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {portz: []}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "translate", "-f", bad)
	if code != 2 || !strings.Contains(errOut, "bad.yaml: document 1") || !strings.Contains(errOut, "portz") {
		t.Fatalf("exit %d, stderr %q: want 2 naming file, document and field", code, errOut)
	}
	if code, _, _ := run(t, "translate"); code != 2 {
		t.Fatalf("no -f: exit %d, want 2", code)
	}
	if code, _, _ := run(t, "translate", "-f", "../../examples/quickstart", "-o", "xml"); code != 2 {
		t.Fatalf("-o xml: exit %d, want 2", code)
	}
}

func TestTranslateOutputIR(t *testing.T) {
	code, out, _ := run(t, "translate", "-f", "../../examples/quickstart", "-o", "ir")
	if code != 0 || !strings.Contains(out, "httproute/shop/api-canary/rule/0/match/0") || !strings.Contains(out, "backend/shop/api-v2") {
		t.Fatalf("exit %d, IR output lacks the canary route or cluster:\n%s", code, out)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != 0 || !strings.Contains(out, "gateway-api: "+translate.BundleVersion) || !strings.Contains(out, "go: go1.") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}
