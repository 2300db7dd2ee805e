package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// cpResult is what the control-plane scenarios measured.
type cpResult struct {
	routes        int
	propagation   []time.Duration // per added route: file written -> first 200
	probes        int64           // requests to routes that already worked
	probeFailures int64           // of those, answers other than 200 (or errors)
	flips         []time.Duration // per change: file written -> the new variant served
	flipProbes    int64
	flipFailures  int64
}

// cpGateway is the standalone Portico ("portico run") the control-plane scenarios drive
// through its config folder.
type cpGateway struct {
	dir  string // the config folder
	base string // http://127.0.0.1:port
}

// startRun builds cmd/portico and runs it on a config folder with one Gateway on port and
// two Backends ("a" and "b") in front of the lab's backend.
func (l *lab) startRun(port, admin int) (*cpGateway, error) {
	bin := filepath.Join(l.dir, "portico-run") // built when the lab started
	if _, err := os.Stat(bin); err != nil {
		if err := buildPortico(bin); err != nil {
			return nil, err
		}
	}
	cfg := filepath.Join(l.dir, "config")
	if err := os.MkdirAll(filepath.Join(cfg, "routes"), 0o755); err != nil {
		return nil, err
	}
	host, bport, _ := strings.Cut(l.backendAddr, ":")
	base := gatewayYAML(port) + fmt.Sprintf(`---
apiVersion: gateway.portico.dev/v1alpha1
kind: Backend
metadata: {name: a, namespace: apps}
spec: {endpoints: [{address: %s, port: %s}]}
---
apiVersion: gateway.portico.dev/v1alpha1
kind: Backend
metadata: {name: b, namespace: apps}
spec: {endpoints: [{address: %s, port: %s}]}
`, host, bport, host, bport)
	if err := os.WriteFile(filepath.Join(cfg, "base.yaml"), []byte(base), 0o644); err != nil {
		return nil, err
	}
	p, err := l.start("portico-run", l.proxyCPU, []string{"GOMAXPROCS=1"}, bin, "run", "--config", cfg,
		"--access-log", "off", "--admin-address", fmt.Sprintf("127.0.0.1:%d", admin), "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := p.waitPort(fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		return nil, err
	}
	return &cpGateway{dir: cfg, base: fmt.Sprintf("http://127.0.0.1:%d", port)}, nil
}

// routeYAML is an app team's HTTPRoute: path prefix /r-i to Backend variant, which the
// answer names in an X-Variant header.
func routeYAML(i int, variant string) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r-%[1]d, namespace: apps}
spec:
  parentRefs: [{name: public, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /r-%[1]d}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: X-Variant, value: %[2]s}]}
    backendRefs: [{group: gateway.portico.dev, kind: Backend, name: %[2]s}]
`, i, variant)
}

// writeAtomically writes a file the way deployment tools do: a temporary file renamed
// into place, so that a reader never sees half of it.
func writeAtomically(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// prober sends requests to the routes that already work, round robin, and counts the
// answers that are not 200.
type prober struct {
	client   *http.Client
	base     string
	mu       sync.Mutex
	routes   []int
	total    atomic.Int64
	failures atomic.Int64
	firstBad atomic.Value // string
}

func (p *prober) add(i int) {
	p.mu.Lock()
	p.routes = append(p.routes, i)
	p.mu.Unlock()
}

func (p *prober) run(ctx context.Context) {
	for n := 0; ctx.Err() == nil; n++ {
		p.mu.Lock()
		if len(p.routes) == 0 {
			p.mu.Unlock()
			time.Sleep(time.Millisecond)
			continue
		}
		i := p.routes[n%len(p.routes)]
		p.mu.Unlock()
		code, _, err := get(ctx, p.client, fmt.Sprintf("%s/r-%d/probe", p.base, i))
		if ctx.Err() != nil {
			return
		}
		p.total.Add(1)
		if err != nil || code != http.StatusOK {
			p.failures.Add(1)
			p.firstBad.CompareAndSwap(nil, fmt.Sprintf("route r-%d: status %d, %v", i, code, err))
		}
	}
}

func get(ctx context.Context, c *http.Client, url string) (int, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Variant"), nil
}

// waitFor polls url every millisecond until it answers 200 (with the variant, if set),
// and returns how long that took from start.
func waitFor(c *http.Client, url, variant string, start time.Time, limit time.Duration) (time.Duration, error) {
	for {
		code, v, err := get(context.Background(), c, url)
		if err == nil && code == http.StatusOK && (variant == "" || v == variant) {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("%s still answers %d (variant %q, %v) after %s", url, code, v, err, limit)
		}
		time.Sleep(time.Millisecond)
	}
}

// scenarioControlPlane adds n HTTPRoutes one after another to a running Portico (file
// provider) while probing the routes that already work, then flips one route between
// two backends 20 times while probing it continuously.
func (l *lab) scenarioControlPlane(port, admin, n int) (*cpResult, error) {
	g, err := l.startRun(port, admin)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 5 * time.Second}
	probe := client
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{client: probe, base: g.base}
	done := make(chan struct{})
	go func() { p.run(ctx); close(done) }()

	res := &cpResult{routes: n}
	for i := range n {
		start := time.Now()
		if err := writeAtomically(filepath.Join(g.dir, "routes", fmt.Sprintf("r-%d.yaml", i)), routeYAML(i, "a")); err != nil {
			cancel()
			return nil, err
		}
		d, err := waitFor(client, fmt.Sprintf("%s/r-%d/x", g.base, i), "", start, 30*time.Second)
		if err != nil {
			cancel()
			return nil, err
		}
		res.propagation = append(res.propagation, d)
		p.add(i)
		if (i+1)%100 == 0 {
			log.Printf("controlplane: %d routes, last propagation %s, %d probes, %d not 200", i+1, d.Round(time.Millisecond), p.total.Load(), p.failures.Load())
		}
	}
	cancel()
	<-done
	res.probes, res.probeFailures = p.total.Load(), p.failures.Load()
	if bad, ok := p.firstBad.Load().(string); ok {
		log.Printf("controlplane: first failed probe: %s", bad)
	}

	// Route change under load: r-0 flips between backends a and b (and their header).
	flip := &prober{client: probe, base: g.base, routes: []int{0}}
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { flip.run(ctx); close(done) }()
	for k := range 20 {
		variant := "b"
		if k%2 == 1 {
			variant = "a"
		}
		start := time.Now()
		if err := writeAtomically(filepath.Join(g.dir, "routes", "r-0.yaml"), routeYAML(0, variant)); err != nil {
			cancel()
			return nil, err
		}
		d, err := waitFor(client, g.base+"/r-0/x", variant, start, 30*time.Second)
		if err != nil {
			cancel()
			return nil, err
		}
		res.flips = append(res.flips, d)
	}
	cancel()
	<-done
	res.flipProbes, res.flipFailures = flip.total.Load(), flip.failures.Load()
	return res, nil
}

func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func cpMarkdown(b *strings.Builder, r *cpResult) {
	if r == nil {
		return
	}
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
	}
	fmt.Fprintf(b, "## Control plane: route propagation and changes under load\n\n"+
		"`portico run` on a folder (file provider) with one Gateway; %d HTTPRoutes added one after another (each\n"+
		"file written atomically, then polled every millisecond until it answers 200) while a prober sends requests\n"+
		"round robin to the routes that already work; then one route flipped 20 times between two backends (each\n"+
		"with its own response header) while the prober hammers it.\n\n", r.routes)
	b.WriteString("| measure | value |\n| --- | ---: |\n")
	fmt.Fprintf(b, "| propagation p50 (write to first 200) | %s |\n", ms(percentile(r.propagation, 0.5)))
	fmt.Fprintf(b, "| propagation p99 | %s |\n", ms(percentile(r.propagation, 0.99)))
	fmt.Fprintf(b, "| propagation max | %s |\n", ms(percentile(r.propagation, 1)))
	fmt.Fprintf(b, "| requests to working routes meanwhile | %d |\n", r.probes)
	fmt.Fprintf(b, "| of those, not 200 | %d |\n", r.probeFailures)
	fmt.Fprintf(b, "| change p50 (write to the new backend answering) | %s |\n", ms(percentile(r.flips, 0.5)))
	fmt.Fprintf(b, "| change max | %s |\n", ms(percentile(r.flips, 1)))
	fmt.Fprintf(b, "| requests during the 20 changes | %d |\n", r.flipProbes)
	fmt.Fprintf(b, "| of those, not 200 | %d |\n\n", r.flipFailures)
}

// buildPortico builds cmd/portico (the real binary) to bin.
func buildPortico(bin string) error {
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/portico").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/portico: %v: %s", err, out)
	}
	return nil
}

// gatewayYAML is the platform team's part of a config folder: the GatewayClass and one
// shared Gateway on 127.0.0.1:port that accepts routes from every namespace.
func gatewayYAML(port int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public, namespace: infra}
spec:
  gatewayClassName: portico
  addresses: [{type: IPAddress, value: 127.0.0.1}]
  listeners:
  - {name: http, port: %d, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
`, port)
}
