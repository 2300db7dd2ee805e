package main

import (
	"bufio"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// scaleResult is what Portico costs with a large config.
type scaleResult struct {
	routes, namespaces int
	startToServing     time.Duration // process start -> the last route answers
	translate          float64       // seconds, the first translation (from /metrics)
	reload             time.Duration // one route changed -> the change served
	reloadTranslate    float64       // seconds, the reload's translation
	rssKB              int64
}

// scenarioScale starts `portico run` on a folder that already holds n HTTPRoutes spread
// over ns namespaces (each route with its own Backend), then changes one route.
func (l *lab) scenarioScale(port, admin, n, ns int) (*scaleResult, error) {
	cfg := filepath.Join(l.dir, "scale")
	if err := os.MkdirAll(cfg, 0o755); err != nil {
		return nil, err
	}
	host, bport, _ := strings.Cut(l.backendAddr, ":")
	base := gatewayYAML(port)
	if err := os.WriteFile(filepath.Join(cfg, "base.yaml"), []byte(base), 0o644); err != nil {
		return nil, err
	}
	for j := range ns {
		var b strings.Builder
		for k := j; k < n; k += ns {
			fmt.Fprintf(&b, "---\n%s---\n%s", scaleBackend(k, j, host, bport), scaleRoute(k, j, ""))
		}
		if err := os.WriteFile(filepath.Join(cfg, fmt.Sprintf("team-%d.yaml", j)), []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
	}
	bin := filepath.Join(l.dir, "portico-run")
	if _, err := os.Stat(bin); err != nil {
		if err := buildPortico(bin); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	p, err := l.start("portico-scale", l.proxyCPU, []string{"GOMAXPROCS=1"}, bin, "run", "--config", cfg,
		"--access-log", "off", "--admin-address", fmt.Sprintf("127.0.0.1:%d", admin), "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := p.waitPort(fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	gw := fmt.Sprintf("http://127.0.0.1:%d", port)
	last := n - 1
	if _, err := waitFor(client, fmt.Sprintf("%s/team-%d/app-%d/x", gw, last%ns, last), "", start, 2*time.Minute); err != nil {
		return nil, err
	}
	res := &scaleResult{routes: n, namespaces: ns, startToServing: time.Since(start)}
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", admin)
	sum0, _, err := translateSeconds(metrics)
	if err != nil {
		return nil, err
	}
	res.translate = sum0
	time.Sleep(2 * time.Second)
	res.rssKB = rssKB(treePIDs(p.pid()))

	// One app team changes its route: the whole folder is reloaded and translated again.
	changed := time.Now()
	var b strings.Builder
	for k := 0; k < n; k += ns {
		variant := ""
		if k == 0 {
			variant = "b"
		}
		fmt.Fprintf(&b, "---\n%s---\n%s", scaleBackend(k, 0, host, bport), scaleRoute(k, 0, variant))
	}
	if err := writeAtomically(filepath.Join(cfg, "team-0.yaml"), b.String()); err != nil {
		return nil, err
	}
	if res.reload, err = waitFor(client, gw+"/team-0/app-0/x", "b", changed, time.Minute); err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond)
	sum1, _, err := translateSeconds(metrics)
	if err != nil {
		return nil, err
	}
	res.reloadTranslate = sum1 - sum0
	log.Printf("scale: %d routes in %d namespaces: serving %s after start, translation %.0f ms, change served in %s (translation %.0f ms), RSS %d KiB",
		n, ns, res.startToServing.Round(time.Millisecond), 1000*res.translate, res.reload.Round(time.Millisecond), 1000*res.reloadTranslate, res.rssKB)
	p.stop()
	return res, nil
}

func scaleBackend(k, j int, host, port string) string {
	return fmt.Sprintf("apiVersion: gateway.portico.dev/v1alpha1\nkind: Backend\nmetadata: {name: app-%d, namespace: team-%d}\nspec: {endpoints: [{address: %s, port: %s}]}\n", k, j, host, port)
}

// scaleRoute is app k's HTTPRoute in namespace team-j; a variant sets an X-Variant
// answer header, so that a change can be seen.
func scaleRoute(k, j int, variant string) string {
	filters := ""
	if variant != "" {
		filters = fmt.Sprintf("    filters:\n    - type: ResponseHeaderModifier\n      responseHeaderModifier: {set: [{name: X-Variant, value: %s}]}\n", variant)
	}
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app-%[1]d, namespace: team-%[2]d}
spec:
  parentRefs: [{name: public, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /team-%[2]d/app-%[1]d}}]
%[3]s    backendRefs: [{group: gateway.portico.dev, kind: Backend, name: app-%[1]d}]
`, k, j, filters)
}

// translateSeconds reads portico_translate_duration_seconds' sum and count.
func translateSeconds(url string) (sum float64, count int64, err error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "portico_translate_duration_seconds_sum "); ok {
			sum, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, "portico_translate_duration_seconds_count "); ok {
			count, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if count == 0 {
		return 0, 0, fmt.Errorf("no portico_translate_duration_seconds in %s", url)
	}
	return sum, count, sc.Err()
}

func scaleMarkdown(b *strings.Builder, r *scaleResult) {
	if r == nil {
		return
	}
	fmt.Fprintf(b, "## Control plane: %d HTTPRoutes over %d namespaces\n\n"+
		"`portico run` (control plane and data plane in one process) started on a folder with %d HTTPRoutes and\n"+
		"%d Backends (one per route) in %d namespaces, one file per namespace; then one namespace's file rewritten\n"+
		"with one route changed.\n\n", r.routes, r.namespaces, r.routes, r.routes, r.namespaces)
	b.WriteString("| measure | value |\n| --- | ---: |\n")
	fmt.Fprintf(b, "| translation (first load) | %.0f ms |\n", 1000*r.translate)
	fmt.Fprintf(b, "| process start to the last route answering | %.0f ms |\n", float64(r.startToServing.Milliseconds()))
	fmt.Fprintf(b, "| resident memory, serving (control and data plane) | %.1f MiB |\n", float64(r.rssKB)/1024)
	fmt.Fprintf(b, "| one route changed: write to the change served | %.0f ms |\n", float64(r.reload.Milliseconds()))
	fmt.Fprintf(b, "| that reload's translation | %.0f ms |\n\n", 1000*r.reloadTranslate)
}
