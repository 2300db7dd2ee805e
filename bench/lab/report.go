package main

import (
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report collects every scenario's samples and renders them as markdown.
type report struct {
	when    time.Time
	o       options
	results []*result
	idle    []idleResult
	cp      *cpResult
	scale   *scaleResult

	fixed      map[string][]openLoopResult
	fixedRate  float64
	fixedOrder []string
}

// result is one closed-loop scenario's samples per target.
type result struct {
	title         string
	spec          loadSpec
	mibPerRequest float64 // for throughput scenarios: MiB moved per request
	order         []string
	samples       map[string][]sample
}

// median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianOf(samples []sample, f func(sample) float64) float64 {
	xs := make([]float64, 0, len(samples))
	for _, s := range samples {
		xs = append(xs, f(s))
	}
	return median(xs)
}

func (r *report) markdown() string {
	var b strings.Builder
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	dirty, _ := exec.Command("git", "status", "--porcelain", "--", "internal", "bench", "go.mod", "go.sum").Output()
	c := strings.TrimSpace(string(commit))
	if len(strings.TrimSpace(string(dirty))) > 0 {
		c += " (with uncommitted changes)"
	}
	fmt.Fprintf(&b, "# Portico performance lab\n\n%s, commit %s, %s, %d CPUs.\n%s.\n\n",
		r.when.Format("2006-01-02 15:04 UTC"), c, runtime.Version(), runtime.NumCPU(), versions())
	fmt.Fprintf(&b, "Each proxy alone on CPU %d with one worker (nginx worker_processes 1, haproxy nbthread 1, caddy and\n"+
		"Portico GOMAXPROCS=1); the backend (Go net/http, 32-byte body) and the load on CPU %d. %d runs per\n"+
		"target, interleaved, after a %s warm-up each; medians.\n\n", r.o.proxyCPU, r.o.loadCPU, r.o.runs, r.o.warmup)
	for _, res := range r.results {
		res.markdown(&b)
	}
	fixedRateMarkdown(&b, r.fixed, r.fixedOrder, r.fixedRate)
	idleMarkdown(&b, r.idle)
	cpMarkdown(&b, r.cp)
	scaleMarkdown(&b, r.scale)
	b.WriteString("\"other load\" is CPU time used during a run by anything but the proxy, the backend and wrk, in % of\n" +
		"one core: above a few % the run was contended. \"proxy RSS\" is the peak resident memory seen during\n" +
		"the runs (sampled every 200 ms; nginx's master and worker together).\n")
	return b.String()
}

func (res *result) markdown(b *strings.Builder) {
	script := ""
	if res.spec.script != "" {
		script = " -s upload.lua"
	}
	path := res.spec.path
	if path == "" {
		path = "/ (with many routes: the last route's, /svc-N/x)"
	}
	if res.spec.streams > 0 {
		fmt.Fprintf(b, "## %s\n\nh2load -t1 -c%d -m%d -D%d (HTTPS, HTTP/2 by ALPN; the same self-signed ECDSA P-256 certificate everywhere; "+
			"percentiles from its per-request log), path %s. No direct row: the backend speaks plain HTTP/1.1.\n\n",
			res.title, res.spec.conns, res.spec.streams, int(res.spec.d.Seconds()), path)
	} else {
		fmt.Fprintf(b, "## %s\n\nwrk -t1 -c%d -d%s --latency%s, path %s.\n\n", res.title, res.spec.conns, res.spec.d, script, path)
	}
	b.WriteString("| target | req/s | MiB/s | p50 | p99 | requests per proxy CPU-second | proxy CPU busy | proxy RSS | errors | other load |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	med := func(name string, f func(sample) float64) float64 { return medianOf(res.samples[name], f) }
	rps := func(s sample) float64 { return s.rps }
	p99 := func(s sample) float64 { return s.p99 }
	for _, name := range res.order {
		ss := res.samples[name]
		var errs int64
		for _, s := range ss {
			errs += s.errors
		}
		mibs := "–"
		if res.mibPerRequest > 0 {
			mibs = fmt.Sprintf("%.0f", med(name, rps)*res.mibPerRequest)
		}
		other := med(name, func(s sample) float64 { return 100 * s.otherCPU / s.seconds })
		p50 := med(name, func(s sample) float64 { return s.p50 })
		if name == "direct" {
			fmt.Fprintf(b, "| %s | %.0f | %s | %.2f ms | %.2f ms | – | – | – | %d | %.0f %% |\n", name, med(name, rps), mibs, p50, med(name, p99), errs, other)
			continue
		}
		busy := med(name, func(s sample) float64 { return 100 * s.proxyCPU / s.seconds })
		var peak int64
		for _, s := range ss {
			peak = max(peak, s.rssKB)
		}
		fmt.Fprintf(b, "| %s | %.0f | %s | %.2f ms | %.2f ms | %.0f | %.0f %% | %.0f MiB | %d | %.0f %% |\n", name, med(name, rps), mibs, p50,
			med(name, p99), med(name, sample.perCPUSecond), busy, float64(peak)/1024, errs, other)
	}
	if _, ok := res.samples["nginx"]; ok {
		var parts []string
		for _, name := range res.order {
			if name == "direct" || name == "nginx" {
				continue
			}
			parts = append(parts, fmt.Sprintf("%s: req/s %.2f, per CPU-second %.2f, p99 %+.2f ms", name,
				med(name, rps)/med("nginx", rps), med(name, sample.perCPUSecond)/med("nginx", sample.perCPUSecond),
				med(name, p99)-med("nginx", p99)))
		}
		b.WriteString("\nAgainst nginx (ratios of medians): " + strings.Join(parts, "; ") + ".\n")
	}
	b.WriteString("\n<details><summary>Every run</summary>\n\n(req/s, p50 ms, p99 ms, requests, errors, seconds, proxy CPU-s, other CPU-s, proxy peak RSS KiB)\n\n```\n")
	for _, name := range res.order {
		for _, s := range res.samples[name] {
			fmt.Fprintf(b, "%-18s %s\n", name, describeSample(s))
		}
	}
	b.WriteString("```\n\n</details>\n\n")
}
