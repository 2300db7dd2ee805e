package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The shop route's /api rule, as the quickstart writes it, and pointed at api-v2.
const (
	apiRuleV1 = "- {group: gateway.portico.dev, kind: Backend, name: api-v1}\n"
	apiRuleV2 = "- {group: gateway.portico.dev, kind: Backend, name: api-v2}\n"
)

// reloadBudget bounds how long a saved edit may take to show in traffic or in /status.
const reloadBudget = 5 * time.Second

// trafficLoop sends GET path through the gateway from several clients, back to back,
// until stopped, recording every answer.
type trafficLoop struct {
	workers []*loopWorker
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	failed   atomic.Int64
	mu       sync.Mutex
	failures []string // the first few
}

type loopWorker struct {
	names []string // backends that answered, in order; read only after stop
	last  atomic.Value
	n     atomic.Int64
}

func startTrafficLoop(t *testing.T, g *gateway, workers int, path string) *trafficLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &trafficLoop{cancel: cancel}
	for range workers {
		w := &loopWorker{}
		l.workers = append(l.workers, w)
		c := newClient(t) // one keep-alive client per worker
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				name, err := g.try(c, path)
				if err != nil {
					if l.failed.Add(1) <= 5 {
						l.mu.Lock()
						l.failures = append(l.failures, err.Error())
						l.mu.Unlock()
					}
					continue
				}
				w.names = append(w.names, name)
				w.last.Store(name)
				w.n.Add(1)
			}
		}()
	}
	t.Cleanup(l.stop)
	return l
}

func (l *trafficLoop) stop() {
	l.cancel()
	l.wg.Wait()
}

// waitAll waits until every worker has sent at least min more requests and its last
// answer came from want.
func (l *trafficLoop) waitAll(want string, min int64) error {
	start := make([]int64, len(l.workers))
	for i, w := range l.workers {
		start[i] = w.n.Load()
	}
	_, err := eventually(reloadBudget, func() error {
		for i, w := range l.workers {
			last, _ := w.last.Load().(string)
			if n := w.n.Load() - start[i]; n < min || last != want {
				return fmt.Errorf("worker %d: %d more requests, last answer from %q, want %q", i, n, last, want)
			}
		}
		return nil
	})
	return err
}

// TestRouteEditChangesTraffic edits routes.yaml twice under continuous traffic: once
// by renaming a new file over it, once by rewriting it in place. Traffic must follow
// each edit within reloadBudget, without a single failed request, and without
// flapping back once a client has seen the new backend.
func TestRouteEditChangesTraffic(t *testing.T) {
	t.Parallel()
	g := startGateway(t, quickstartPorts{}, "--echo-backends")
	if got := g.backendOf(t, "/api"); got != "shop/api-v1" {
		t.Fatalf("/api went to %s before the edit, want shop/api-v1", got)
	}
	original := g.q.read(t, "routes.yaml")
	toV2 := replaceOnce(t, original, apiRuleV1, apiRuleV2)

	loop := startTrafficLoop(t, g, 4, "/api")
	if err := loop.waitAll("shop/api-v1", 20); err != nil {
		t.Fatalf("traffic loop did not get going: %v", err)
	}

	edit := func(t *testing.T, how string, write func(), want string) {
		before := g.status(t).AppliedAt
		probe := newClient(t)
		start := time.Now()
		write()
		_, err := eventually(reloadBudget, func() error {
			name, err := g.try(probe, "/api")
			if err == nil && name != want {
				err = fmt.Errorf("/api went to %s", name)
			}
			return err
		})
		if err != nil {
			t.Fatalf("after %s routes.yaml: %v", how, err)
		}
		t.Logf("%s routes.yaml: /api followed to %s %s after the write began", how, want, time.Since(start).Round(time.Millisecond))
		if err := loop.waitAll(want, 20); err != nil {
			t.Fatalf("after %s routes.yaml: %v", how, err)
		}
		// The data plane takes the config just before /status records it.
		if _, err := eventually(reloadBudget, func() error {
			doc := g.status(t)
			if len(doc.Errors) != 0 || doc.AppliedAt == nil || !doc.AppliedAt.After(*before) {
				return fmt.Errorf("/status after the edit: errors %+v, appliedAt %v (was %v)", doc.Errors, doc.AppliedAt, before)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	t.Run("rename over", func(t *testing.T) {
		edit(t, "renaming a new file over", func() { g.q.writeAtomic(t, "routes.yaml", toV2) }, "shop/api-v2")
	})
	t.Run("rewrite in place", func(t *testing.T) {
		edit(t, "rewriting in place", func() { g.q.write(t, "routes.yaml", original) }, "shop/api-v1")
	})
	loop.stop()

	total := 0
	for i, w := range loop.workers {
		total += len(w.names)
		// v1 until the first edit, v2 until the second, then v1: exactly two switches.
		var switches []string
		for j := 1; j < len(w.names); j++ {
			if w.names[j] != w.names[j-1] {
				switches = append(switches, fmt.Sprintf("#%d %s->%s", j, w.names[j-1], w.names[j]))
			}
		}
		if len(switches) != 2 || w.names[0] != "shop/api-v1" {
			t.Errorf("worker %d (%d requests) switched backends %d times, want 2 (v1->v2->v1): %v", i, len(w.names), len(switches), switches)
		}
	}
	failed := loop.failed.Load()
	if failed > 0 {
		t.Errorf("%d of %d requests failed during the edits; the first: %q", failed, int64(total)+failed, loop.failures)
	}
	t.Logf("%d requests from %d clients during two edits, %d failed", int64(total)+failed, len(loop.workers), failed)
}

// TestInvalidEditKeepsLastGoodConfig saves edits that do not load. Each must leave the
// last good config serving, and be reported in /status, by `portico status` (exit 1)
// and in the log, naming file, document and (when there is one) field. Fixing the file
// clears the error.
func TestInvalidEditKeepsLastGoodConfig(t *testing.T) {
	t.Parallel()
	g := startGateway(t, quickstartPorts{}, "--echo-backends")
	original := g.q.read(t, "routes.yaml")
	routesFile := filepath.Join(g.q.Dir, "routes.yaml")
	// Every broken edit also sends /api to api-v2, so that serving any part of it shows.
	toV2 := replaceOnce(t, original, apiRuleV1, apiRuleV2)

	servesAsBefore := func(t *testing.T) {
		t.Helper()
		for path, want := range map[string]string{"/": "shop/web", "/api": "shop/api-v1", "/api/x": "shop/api-v1"} {
			if got := g.backendOf(t, path); got != want {
				t.Errorf("GET %s went to %s, want %s (the last good config)", path, got, want)
			}
		}
		if got := g.backendOf(t, "/api", "x-canary", "true"); got != "shop/api-v1" && got != "shop/api-v2" {
			t.Errorf("canary request went to %s", got)
		}
		if code, _, err := g.adminGet("/readyz"); err != nil || code != 200 {
			t.Errorf("/readyz: %d %v, want 200: a bad edit must not make a serving gateway unready", code, err)
		}
	}

	for _, tc := range []struct {
		name    string
		content string
		want    []string // in the error, after the file name
	}{
		{
			name:    "malformed YAML",
			content: replaceOnce(t, toV2, "  name: shop\n", "  name: shop\n   labels: [unclosed\n"),
			want:    []string{": document 1: ", "malformed YAML"},
		},
		{
			name:    "unknown field",
			content: replaceOnce(t, toV2, "  - matches:\n    - path: {type: PathPrefix, value: /api}\n      headers:", "  - matchez:\n    - path: {type: PathPrefix, value: /api}\n      headers:"),
			want:    []string{": document 2: ", "HTTPRoute api-canary", `unknown field "spec.rules[0].matchez"`},
		},
		{
			name:    "unknown kind",
			content: toV2 + "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRouet\nmetadata: {name: typo, namespace: shop}\n",
			want:    []string{": document 3: ", `field kind: unknown kind "HTTPRouet"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := append([]string{routesFile}, tc.want...)
			g.q.write(t, "routes.yaml", tc.content)
			var msg string
			took, err := eventually(reloadBudget, func() error {
				doc := g.status(t)
				if len(doc.Errors) != 1 {
					return fmt.Errorf("/status errors: %+v", doc.Errors)
				}
				msg = doc.Errors[0].Message
				if doc.Errors[0].Stage != "load" {
					return fmt.Errorf("/status error stage %q, want load", doc.Errors[0].Stage)
				}
				for _, w := range want {
					if !strings.Contains(msg, w) {
						return fmt.Errorf("/status error %q lacks %q", msg, w)
					}
				}
				if !doc.Ready || doc.AppliedAt == nil {
					return fmt.Errorf("/status ready=%v appliedAt=%v after a bad edit", doc.Ready, doc.AppliedAt)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("error in /status %s after the save: %s", took.Round(time.Millisecond), msg)
			servesAsBefore(t)

			code, out, errOut := runPortico(t, "status", "--admin-address", g.admin)
			if code != 1 {
				t.Errorf("portico status: exit %d, want 1; stderr: %s", code, errOut)
			}
			if !strings.Contains(out, "ERROR (load, ") || !strings.Contains(out, msg) {
				t.Errorf("portico status output lacks the load error %q:\n%s", msg, out)
			}

			// The text log quotes the error, escaping its quotes.
			logged := []string{`level=ERROR msg="config not loaded; the previous config keeps serving"`}
			for _, w := range want {
				logged = append(logged, strings.ReplaceAll(w, `"`, `\"`))
			}
			if err := g.stderr.waitFor(reloadBudget, logged...); err != nil {
				t.Errorf("log: %v", err)
			}
		})
	}

	t.Run("fixing the file clears the error", func(t *testing.T) {
		applied := strings.Count(g.stderr.String(), `msg="config applied"`)
		g.q.write(t, "routes.yaml", original)
		_, err := eventually(reloadBudget, func() error {
			if doc := g.status(t); len(doc.Errors) != 0 {
				return fmt.Errorf("/status still has errors: %+v", doc.Errors)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eventually(reloadBudget, func() error {
			if n := strings.Count(g.stderr.String(), `msg="config applied"`); n <= applied {
				return fmt.Errorf("no new \"config applied\" log line after the fix")
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		servesAsBefore(t)
		if code, out, _ := runPortico(t, "status", "--admin-address", g.admin); code != 0 {
			t.Errorf("portico status after the fix: exit %d, want 0:\n%s", code, out)
		}
	})
}

// TestConfigMapStyleSwap serves a folder laid out as Kubernetes mounts a ConfigMap:
// each file is a symlink through ..data to a hidden timestamped folder, and an update
// writes a new folder and renames a new ..data symlink over the old one. Only hidden
// names change on disk, yet traffic must follow.
func TestConfigMapStyleSwap(t *testing.T) {
	t.Parallel()
	q := newQuickstart(t, quickstartPorts{})
	files := map[string]string{}
	for _, name := range []string{"backends.yaml", "gateway.yaml", "routes.yaml"} {
		files[name] = q.read(t, name)
	}
	mount := t.TempDir()
	writeVersion := func(version string) {
		dir := filepath.Join(mount, version)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeVersion("..2026_01_01_00_00_00.1")
	if err := os.Symlink("..2026_01_01_00_00_00.1", filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(mount, name)); err != nil {
			t.Fatal(err)
		}
	}
	q.Dir = mount
	g := launchGateway(t, q, "--echo-backends")
	if err := g.waitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := g.backendOf(t, "/api"); got != "shop/api-v1" {
		t.Fatalf("/api went to %s, want shop/api-v1", got)
	}

	// The kubelet's AtomicWriter: new folder, new symlink, rename over ..data, remove the old folder.
	files["routes.yaml"] = replaceOnce(t, files["routes.yaml"], apiRuleV1, apiRuleV2)
	writeVersion("..2026_01_01_00_01_00.2")
	if err := os.Symlink("..2026_01_01_00_01_00.2", filepath.Join(mount, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := os.Rename(filepath.Join(mount, "..data_tmp"), filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(mount, "..2026_01_01_00_00_00.1")); err != nil {
		t.Fatal(err)
	}
	if _, err := eventually(reloadBudget, func() error {
		name, err := g.try(g.client, "/api")
		if err == nil && name != "shop/api-v2" {
			err = fmt.Errorf("/api went to %s", name)
		}
		return err
	}); err != nil {
		t.Fatalf("after the ..data swap: %v", err)
	}
	t.Logf("/api followed the ..data swap in %s", time.Since(start).Round(time.Millisecond))
}

// TestApplyErrorKeepsLastGoodConfig moves the Gateway to a port another process holds:
// the config loads and translates but the data plane cannot bind it, so the old port
// keeps serving, /status reports the apply error and a Gateway that is not Programmed,
// and `portico status` exits 1. Freeing the port and saving again recovers.
func TestApplyErrorKeepsLastGoodConfig(t *testing.T) {
	t.Parallel()
	g := startGateway(t, quickstartPorts{}, "--echo-backends")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	original := g.q.read(t, "gateway.yaml")
	moved := replaceOnce(t, original, fmt.Sprintf("port: %d\n", g.q.Gateway), fmt.Sprintf("port: %d\n", takenPort))
	g.q.write(t, "gateway.yaml", moved)

	var msg string
	if _, err := eventually(reloadBudget, func() error {
		doc := g.status(t)
		if len(doc.Errors) != 1 || doc.Errors[0].Stage != "apply" {
			return fmt.Errorf("/status errors: %+v", doc.Errors)
		}
		msg = doc.Errors[0].Message
		if !strings.Contains(msg, fmt.Sprintf("127.0.0.1:%d", takenPort)) || !strings.Contains(msg, "address already in use") {
			return fmt.Errorf("/status error %q does not name the port and the cause", msg)
		}
		if gws := doc.Status.Gateways; len(gws) != 1 || conditionStatus(gws[0].Status.Conditions, "Programmed") != "False" {
			return fmt.Errorf("gateway conditions %+v, want Programmed False", gws)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := g.backendOf(t, "/api"); got != "shop/api-v1" {
		t.Errorf("/api on the old port went to %s, want shop/api-v1", got)
	}
	code, out, _ := runPortico(t, "status", "--admin-address", g.admin)
	if code != 1 || !strings.Contains(out, "ERROR (apply, ") || !strings.Contains(out, "address already in use") {
		t.Errorf("portico status: exit %d, want 1 with the apply error:\n%s", code, out)
	}

	taken.Close()
	g.q.write(t, "gateway.yaml", moved+"\n") // a save, with the port now free
	movedURL := fmt.Sprintf("http://127.0.0.1:%d", takenPort)
	if _, err := eventually(reloadBudget, func() error {
		if doc := g.status(t); len(doc.Errors) != 0 {
			return fmt.Errorf("/status errors: %+v", doc.Errors)
		}
		_, err := fetchEcho(g.client, movedURL+"/api")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := waitRefused(g); err != nil {
		t.Errorf("the old port after the move: %v", err)
	}
}

// TestWatchedLayouts covers the other layouts `run --config` accepts: a single file
// (edited by rename; its folder also holds files portico must ignore), and a folder
// that gains a subfolder of routes, which must itself be watched from then on.
func TestWatchedLayouts(t *testing.T) {
	t.Parallel()
	followsTo := func(t *testing.T, g *gateway, path, want string) {
		t.Helper()
		if _, err := eventually(reloadBudget, func() error {
			name, err := g.try(g.client, path)
			if err == nil && name != want {
				err = fmt.Errorf("%s went to %s", path, name)
			}
			return err
		}); err != nil {
			t.Fatalf("want %s served by %s: %v", path, want, err)
		}
	}

	t.Run("single file", func(t *testing.T) {
		t.Parallel()
		q := newQuickstart(t, quickstartPorts{})
		all := q.read(t, "gateway.yaml") + "---\n" + q.read(t, "backends.yaml") + "---\n" + q.read(t, "routes.yaml")
		dir := t.TempDir()
		file := filepath.Join(dir, "portico.yaml")
		if err := os.WriteFile(file, []byte(all), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "notes.yaml"), []byte("not: [portico config\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		q.Dir = file // launchGateway passes q.Dir to --config
		g := launchGateway(t, q, "--echo-backends")
		if err := g.waitReady(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		followsTo(t, g, "/api", "shop/api-v1")
		tmp := filepath.Join(dir, ".portico.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(replaceOnce(t, all, apiRuleV1, apiRuleV2)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
		followsTo(t, g, "/api", "shop/api-v2")
		if doc := g.status(t); len(doc.Errors) != 0 {
			t.Errorf("/status errors %+v: a sibling file of --config FILE was read", doc.Errors)
		}
	})

	t.Run("new subfolder", func(t *testing.T) {
		t.Parallel()
		g := startGateway(t, quickstartPorts{}, "--echo-backends")
		followsTo(t, g, "/extra", "shop/web")
		route := func(backend string) string {
			return "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: extra, namespace: shop}\n" +
				"spec:\n  parentRefs: [{name: public, namespace: infra}]\n  rules:\n" +
				"  - matches: [{path: {type: PathPrefix, value: /extra}}]\n" +
				"    backendRefs: [{group: gateway.portico.dev, kind: Backend, name: " + backend + "}]\n"
		}
		sub := filepath.Join(g.q.Dir, "team-a")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "extra.yaml"), []byte(route("api-v2")), 0o644); err != nil {
			t.Fatal(err)
		}
		followsTo(t, g, "/extra", "shop/api-v2")
		// Only a watch on the new subfolder sees this edit.
		if err := os.WriteFile(filepath.Join(sub, "extra.yaml"), []byte(route("api-v1")), 0o644); err != nil {
			t.Fatal(err)
		}
		followsTo(t, g, "/extra", "shop/api-v1")
	})
}
