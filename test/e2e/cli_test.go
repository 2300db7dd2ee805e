package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTranslateExitCodes(t *testing.T) {
	t.Parallel()
	quickstartDir := filepath.Join(repoRoot, "examples", "quickstart")

	t.Run("quickstart is clean: 0", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runPortico(t, "translate", "-f", quickstartDir)
		if code != 0 || errOut != "" {
			t.Fatalf("exit %d, want 0; stderr:\n%s", code, errOut)
		}
		for _, want := range []string{"gatewayClasses:", "name: public", "name: api-canary"} {
			if !strings.Contains(out, want) {
				t.Errorf("status YAML lacks %q:\n%s", want, out)
			}
		}
		code, out, _ = runPortico(t, "translate", "-f", quickstartDir, "-o", "ir")
		if code != 0 || !strings.Contains(out, "backend/shop/api-v2") || !strings.Contains(out, "weight: 80") {
			t.Errorf("-o ir: exit %d, output lacks the canary's clusters:\n%s", code, out)
		}
	})

	t.Run("missing backend: 1, problem on stderr", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		route := `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken, namespace: shop}
spec:
  parentRefs: [{name: public, namespace: infra}]
  rules:
  - backendRefs: [{group: gateway.portico.dev, kind: Backend, name: nowhere}]
`
		if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte(route), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runPortico(t, "translate", "-f", filepath.Join(quickstartDir, "gateway.yaml"), "-f", dir)
		if code != 1 {
			t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
		}
		for _, want := range []string{"1 problem(s):", "HTTPRoute shop/broken", "ResolvedRefs", "BackendNotFound", "nowhere"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
		}
		if !strings.Contains(out, "name: broken") {
			t.Errorf("stdout lacks the route's status:\n%s", out)
		}
	})

	t.Run("malformed input: 2, naming file and document", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		bad := filepath.Join(dir, "bad.yaml")
		content := "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\nkind: [unclosed\n"
		if err := os.WriteFile(bad, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runPortico(t, "translate", "-f", bad)
		if code != 2 || !strings.Contains(errOut, bad+": document 2: malformed YAML") {
			t.Fatalf("exit %d, stderr %q: want 2 naming %s, document 2", code, errOut, bad)
		}
		if out != "" {
			t.Errorf("stdout on bad input: %q", out)
		}
		if code, _, errOut := runPortico(t, "translate", "-f", filepath.Join(dir, "missing.yaml")); code != 2 || !strings.Contains(errOut, "missing.yaml") {
			t.Errorf("missing file: exit %d, stderr %q, want 2 naming the file", code, errOut)
		}
		if code, _, _ := runPortico(t, "translate"); code != 2 {
			t.Errorf("no -f: exit %d, want 2", code)
		}
	})
}

func TestRunJSONLogs(t *testing.T) {
	t.Parallel()
	g := startGateway(t, quickstartPorts{}, "--echo-backends", "--log-format", "json")
	if err := g.stderr.waitFor(5*time.Second, `"msg":"config applied"`); err != nil {
		t.Fatal(err)
	}
	g.q.write(t, "routes.yaml", "kind: [unclosed\n")
	if err := g.stderr.waitFor(reloadBudget, `"msg":"config not loaded; the previous config keeps serving"`); err != nil {
		t.Fatal(err)
	}
	g.signal(t, syscall.SIGTERM)
	if code := g.exitCode(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}

	byMsg := map[string][]map[string]any{}
	lines := strings.Split(strings.TrimSpace(g.stderr.String()), "\n")
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %d is not JSON: %v\n%s", i+1, err, line)
		}
		for _, key := range []string{"time", "level", "msg"} {
			if _, ok := rec[key]; !ok {
				t.Errorf("log line %d lacks %q: %s", i+1, key, line)
			}
		}
		if ts, _ := rec["time"].(string); ts != "" {
			if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
				t.Errorf("log line %d: time %q is not RFC 3339", i+1, ts)
			}
		}
		msg, _ := rec["msg"].(string)
		byMsg[msg] = append(byMsg[msg], rec)
	}
	one := func(msg string) map[string]any {
		t.Helper()
		if len(byMsg[msg]) != 1 {
			t.Fatalf("%d log lines with msg %q, want 1; messages: %v", len(byMsg[msg]), msg, keys(byMsg))
		}
		return byMsg[msg][0]
	}
	if rec := one("admin API listening"); rec["level"] != "INFO" || rec["address"] != g.admin {
		t.Errorf("admin API line: %v, want level INFO and address %s", rec, g.admin)
	}
	if rec := one("config applied"); rec["gateways"] != 1.0 || rec["clusters"] != 3.0 || rec["objects"] != 7.0 {
		t.Errorf("config applied line: %v, want 1 gateway, 3 clusters, 7 objects", rec)
	}
	if rec := one("config not loaded; the previous config keeps serving"); rec["level"] != "ERROR" ||
		!strings.Contains(fmt.Sprint(rec["error"]), filepath.Join(g.q.Dir, "routes.yaml")+": document 1: malformed YAML") {
		t.Errorf("load error line: %v, want level ERROR and an error naming routes.yaml, document 1", rec)
	}
	if n := len(byMsg["echo backend listening"]); n != 3 {
		t.Errorf("%d echo backend lines, want 3", n)
	}
	one("shutting down: draining in-flight requests")
	one("stopped")
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestEchoCommand(t *testing.T) {
	t.Parallel()
	var p *proc
	var addrs []string
	for attempt := 1; ; attempt++ {
		addrs = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))), net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))}
		p = startProc(t, "echo", "--listen", addrs[0], "--listen", addrs[1], "--name", "x")
		err := p.stdout.waitFor(10*time.Second, "listening on")
		if err == nil {
			break
		}
		if p.exited() && strings.Contains(p.stderr.String(), "address already in use") && attempt < 3 {
			continue
		}
		t.Fatalf("portico echo did not start: %v", err)
	}
	if !strings.Contains(p.stdout.String(), `echo "x" listening on [`) {
		t.Errorf("stdout: %q", p.stdout.String())
	}

	c := newClient(t)
	for _, addr := range addrs {
		reply, err := fetchEcho(c, "http://"+addr+"/hello/world?a=1", "X-Probe", "42")
		if err != nil {
			t.Fatalf("GET %s: %v", addr, err)
		}
		if reply.Name != "x" || reply.Method != "GET" || reply.Path != "/hello/world" || reply.Query != "a=1" ||
			reply.Host != addr || fmt.Sprint(reply.Headers["X-Probe"]) != "[42]" {
			t.Errorf("echo on %s answered %+v", addr, reply)
		}
	}
	resp, err := c.Get("http://" + addrs[0] + "/?status=418")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Echo-Name") != "x" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("?status=418: %d, X-Echo-Name %q, Content-Type %q", resp.StatusCode, resp.Header.Get("X-Echo-Name"), resp.Header.Get("Content-Type"))
	}
	resp, err = c.Get("http://" + addrs[0] + "/?delay=forever")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("?delay=forever: %d, want 400", resp.StatusCode)
	}

	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 10*time.Second); code != 0 {
		t.Fatalf("portico echo exited %d after SIGTERM, want 0", code)
	}
}

// TestRunStartsWithBrokenConfig: a config that does not load at startup leaves portico
// running but not ready, saying why; fixing the file makes it ready.
func TestRunStartsWithBrokenConfig(t *testing.T) {
	t.Parallel()
	q := newQuickstart(t, quickstartPorts{})
	original := q.read(t, "routes.yaml")
	q.write(t, "routes.yaml", original+"---\nkind: HTTPRoute\n")
	g := launchGateway(t, q)
	wantErr := q.path("routes.yaml") + ": document 3: field apiVersion: missing"
	// The log line comes just before /status has the error, so wait for /status.
	if _, err := eventually(20*time.Second, func() error {
		if g.exited() {
			return fmt.Errorf("portico exited %d", g.cmd.ProcessState.ExitCode())
		}
		code, body, err := g.adminGet("/status")
		if err == nil && (code != http.StatusOK || !strings.Contains(string(body), `"stage": "load"`)) {
			err = fmt.Errorf("/status: %d %s", code, body)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	doc := g.status(t)
	if doc.Ready || doc.AppliedAt != nil || len(doc.Errors) != 1 || !strings.Contains(doc.Errors[0].Message, wantErr) {
		t.Errorf("/status: ready=%v appliedAt=%v errors=%+v, want not ready with %q", doc.Ready, doc.AppliedAt, doc.Errors, wantErr)
	}
	if err := g.stderr.waitFor(5*time.Second, `level=ERROR msg="config not loaded; the previous config keeps serving"`, wantErr); err != nil {
		t.Errorf("log: %v", err)
	}
	if code, body, _ := g.adminGet("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz: %d %q, want 503", code, body)
	}
	if code, _, _ := g.adminGet("/config"); code != http.StatusServiceUnavailable {
		t.Errorf("/config: %d, want 503", code)
	}
	if code, _, _ := g.adminGet("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200 (alive, just not ready)", code)
	}
	code, out, _ := runPortico(t, "status", "--admin-address", g.admin)
	if code != 1 || !strings.Contains(out, "No config applied yet") || !strings.Contains(out, "document 3") {
		t.Errorf("portico status: exit %d, want 1 with the error:\n%s", code, out)
	}
	if strings.Contains(g.stdout.String(), "serving") {
		t.Errorf("stdout announces a gateway that is not serving: %q", g.stdout.String())
	}

	q.write(t, "routes.yaml", original)
	if err := g.waitReady(reloadBudget); err != nil {
		t.Fatal(err)
	}
	if err := g.stdout.waitFor(5*time.Second, "Gateway infra/public serving "+g.url); err != nil {
		t.Error(err)
	}
	if code, out, _ := runPortico(t, "status", "--admin-address", g.admin); code != 0 {
		t.Errorf("portico status after the fix: exit %d, want 0:\n%s", code, out)
	}
}

func TestRunUsageErrors(t *testing.T) {
	t.Parallel()
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no config", []string{"run", "--admin-address", admin}, "--config is required"},
		{"missing config", []string{"run", "--config", filepath.Join(t.TempDir(), "nowhere"), "--admin-address", admin}, "nowhere"},
		{"bad log format", []string{"run", "--config", t.TempDir(), "--admin-address", admin, "--log-format", "xml"}, "--log-format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runPortico(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q: want 2 and %q", code, errOut, tc.want)
			}
		})
	}
}

func TestConfigFolderThroughSymlink(t *testing.T) {
	t.Parallel()
	link := filepath.Join(t.TempDir(), "config")
	if err := os.Symlink(filepath.Join(repoRoot, "examples", "quickstart"), link); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runPortico(t, "translate", "-f", link, "-o", "ir")
	if code == 0 && strings.Contains(out, "backend/shop/api-v2") {
		return
	}
	msg := fmt.Sprintf("translate -f LINK-TO-FOLDER: exit %d, stdout %q, stderr %q; want exit 0 and the quickstart's config", code, out, errOut)
	t.Fatal(msg)
}
