package main

import (
	"fmt"
	"log"
	"time"
)

// sample is one measured run of one target.
type sample struct {
	wrkResult
	proxyCPU float64 // the proxy's CPU seconds over the run
	otherCPU float64 // CPU seconds of everything but the proxy, backend and load generator
	rssKB    int64   // the proxy's resident memory at the end of the run
}

// perCPUSecond is requests per proxy CPU-second (0 for direct).
func (s sample) perCPUSecond() float64 {
	if s.proxyCPU <= 0 {
		return 0
	}
	return float64(s.requests) / s.proxyCPU
}

// measure runs the load against t and accounts for the CPU time around it, sampling
// the proxy's resident memory as it goes.
func (l *lab) measure(t *target, backend *proc, spec loadSpec) (sample, error) {
	pids := t.pids()
	tree := treePIDs(pids...) // looked up once: sampling reads only their status files
	stop := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var m int64
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if len(pids) > 0 {
				m = max(m, rssKB(tree))
			}
			select {
			case <-stop:
				peak <- m
				return
			case <-tick.C:
			}
		}
	}()
	proxy0, back0, busy0 := treeTicks(pids...), treeTicks(backend.pid()), busyTicks()
	if spec.path == "" {
		spec.path = t.path
	}
	var r wrkResult
	var err error
	if spec.streams > 0 {
		r, err = runH2load(l.loadCPU, spec, t.base(), l.dir)
	} else {
		r, err = runWrk(l.loadCPU, spec, t.base())
	}
	proxy1, back1, busy1 := treeTicks(pids...), treeTicks(backend.pid()), busyTicks()
	close(stop)
	rss := <-peak
	if err != nil {
		return sample{}, err
	}
	s := sample{wrkResult: r, rssKB: rss}
	if len(pids) > 0 {
		s.proxyCPU = float64(proxy1-proxy0) / clockTick
	}
	s.otherCPU = max(0, float64((busy1-busy0)-(proxy1-proxy0)-(back1-back0))/clockTick-r.cpu)
	return s, nil
}

// closedLoop runs spec against every target: a warm-up each, then o.runs rounds
// interleaved so that slow drifts of the machine hit all targets alike.
func (l *lab) closedLoop(name string, targets []*target, backend *proc, spec loadSpec, o options) (map[string][]sample, error) {
	warm := spec
	warm.d = o.warmup
	for _, t := range targets {
		log.Printf("%s: warm-up %s (%s)", name, t.name, o.warmup)
		if _, err := l.measure(t, backend, warm); err != nil {
			return nil, err
		}
	}
	out := map[string][]sample{}
	for run := 1; run <= o.runs; run++ {
		for _, t := range targets {
			s, err := l.measure(t, backend, spec)
			if err != nil {
				return nil, err
			}
			out[t.name] = append(out[t.name], s)
			log.Printf("%s: run %d/%d %-18s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  %6.0f req/CPU-s  peak RSS %d KiB  other %.2f CPU-s",
				name, run, o.runs, t.name, s.rps, s.p50, s.p99, s.perCPUSecond(), s.rssKB, s.otherCPU)
		}
	}
	return out, nil
}

func describeSample(s sample) string {
	return fmt.Sprintf("%.0f %.3f %.3f %d %d %.2f %.2f %.2f %d", s.rps, s.p50, s.p99, s.requests, s.errors, s.seconds, s.proxyCPU, s.otherCPU, s.rssKB)
}
