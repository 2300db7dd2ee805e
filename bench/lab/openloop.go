package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// openLoopResult is a fixed-rate run: latency is measured from when each request was
// due, not from when it was sent, so a stalled proxy cannot hide its queue (the
// "coordinated omission" a closed loop like wrk has).
type openLoopResult struct {
	Rate   float64 `json:"rate"` // requests per second asked for
	Sent   int     `json:"sent"`
	Errors int     `json:"errors"`
	P50    float64 `json:"p50_ms"` // milliseconds
	P99    float64 `json:"p99_ms"`
	P999   float64 `json:"p999_ms"`
	Max    float64 `json:"max_ms"`
}

// runOpenLoop sends rate requests per second for d over conns keep-alive connections to
// addr (each connection's requests evenly spaced), and reports latencies from due times.
func runOpenLoop(addr, path string, rate float64, conns int, d time.Duration) openLoopResult {
	interval := time.Duration(float64(conns) / rate * float64(time.Second))
	start := time.Now().Add(100 * time.Millisecond)
	var mu sync.Mutex
	var lat []float64
	errs := 0
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]float64, 0, int(d/interval)+1)
			bad := 0
			defer func() {
				mu.Lock()
				lat = append(lat, local...)
				errs += bad
				mu.Unlock()
			}()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				bad++
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			req := []byte("GET " + path + " HTTP/1.1\r\nHost: lab\r\n\r\n")
			due := start.Add(time.Duration(i) * interval / time.Duration(conns))
			end := start.Add(d)
			for ; due.Before(end); due = due.Add(interval) {
				time.Sleep(time.Until(due))
				if _, err := c.Write(req); err != nil {
					bad++
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					bad++
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad++
					continue
				}
				local = append(local, float64(time.Since(due).Microseconds())/1000)
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	q := func(f float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(f*float64(len(lat))))]
	}
	return openLoopResult{Rate: rate, Sent: len(lat) + errs, Errors: errs, P50: q(0.5), P99: q(0.99), P999: q(0.999), Max: q(1)}
}

// openLoop runs the generator as a child process pinned to the load CPU (the lab
// itself is not pinned) and returns its result.
func (l *lab) openLoop(t *target, rate float64, d time.Duration) (openLoopResult, error) {
	self, err := os.Executable()
	if err != nil {
		return openLoopResult{}, err
	}
	out, err := exec.Command("taskset", "-c", strconv.Itoa(l.loadCPU), self, "-loadgen",
		fmt.Sprintf("127.0.0.1:%d,%s,%.0f,%s", t.port, t.path, rate, d)).Output()
	if err != nil {
		return openLoopResult{}, fmt.Errorf("load generator: %v", err)
	}
	var r openLoopResult
	if err := json.Unmarshal(out, &r); err != nil {
		return openLoopResult{}, fmt.Errorf("load generator output %q: %v", out, err)
	}
	return r, nil
}

// loadgenMain is the child process: "addr,path,rate,duration" -> JSON on stdout.
func loadgenMain(spec string) {
	f := strings.Split(spec, ",")
	if len(f) != 4 {
		log.Fatalf("-loadgen %q: want addr,path,rate,duration", spec)
	}
	rate, err1 := strconv.ParseFloat(f[2], 64)
	d, err2 := time.ParseDuration(f[3])
	if err1 != nil || err2 != nil || rate <= 0 {
		log.Fatalf("-loadgen %q: bad rate or duration", spec)
	}
	r := runOpenLoop(f[0], f[1], rate, 64, d)
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

// scenarioFixedRate sends each proxy the same fixed rate, half of nginx's closed-loop
// maximum, and reports latency percentiles from due times.
func (l *lab) scenarioFixedRate(targets []*target, nginxMax float64, o options) (map[string][]openLoopResult, float64, error) {
	rate := nginxMax / 2
	out := map[string][]openLoopResult{}
	for run := 1; run <= o.runs; run++ {
		for _, t := range targets {
			if len(t.procs) == 0 || strings.HasPrefix(t.name, "caddy") && rate > 4000 {
				continue // caddy's maximum is below the rate: its queue would only grow
			}
			r, err := l.openLoop(t, rate, o.duration)
			if err != nil {
				return nil, 0, err
			}
			out[t.name] = append(out[t.name], r)
			log.Printf("fixedrate: run %d/%d %-18s %.0f req/s: p50 %.2f ms p99 %.2f ms p99.9 %.2f ms max %.2f ms, %d errors",
				run, o.runs, t.name, rate, r.P50, r.P99, r.P999, r.Max, r.Errors)
		}
	}
	return out, rate, nil
}

func fixedRateMarkdown(b *strings.Builder, res map[string][]openLoopResult, order []string, rate float64) {
	if res == nil {
		return
	}
	fmt.Fprintf(b, "## Fixed rate: %.0f requests per second (half of nginx's closed-loop maximum)\n\n"+
		"An open-loop generator (64 keep-alive connections, each request due at a fixed time; latency from the due\n"+
		"time, so queueing counts), small responses. caddy is left out when the rate is above its maximum.\n\n", rate)
	b.WriteString("| target | p50 | p99 | p99.9 | max | errors |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	med := func(rs []openLoopResult, f func(openLoopResult) float64) float64 {
		xs := make([]float64, 0, len(rs))
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	for _, name := range order {
		rs, ok := res[name]
		if !ok {
			continue
		}
		errs := 0
		for _, r := range rs {
			errs += r.Errors
		}
		fmt.Fprintf(b, "| %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %d |\n", name,
			med(rs, func(r openLoopResult) float64 { return r.P50 }), med(rs, func(r openLoopResult) float64 { return r.P99 }),
			med(rs, func(r openLoopResult) float64 { return r.P999 }), med(rs, func(r openLoopResult) float64 { return r.Max }), errs)
	}
	b.WriteString("\n")
}
