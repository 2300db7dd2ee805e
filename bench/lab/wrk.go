package main

import (
	"bufio"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	rps      float64
	p50, p99 float64 // milliseconds
	requests int64
	errors   int64 // socket errors and non-2xx/3xx answers
	seconds  float64
	cpu      float64 // wrk's own CPU seconds
}

// loadSpec is one closed-loop wrk load.
type loadSpec struct {
	conns  int
	d      time.Duration
	path   string // with the query, from "/"; empty: the target's own (see target.path)
	script string // a wrk Lua script, or ""
	// streams > 0 makes the load HTTP/2 over TLS with h2load: streams concurrent
	// requests on each of conns connections.
	streams int
}

// runWrk runs wrk pinned to cpu against base (scheme and authority) as spec says.
func runWrk(cpu int, spec loadSpec, base string) (wrkResult, error) {
	if spec.path == "" {
		return wrkResult{}, fmt.Errorf("no path for %s", base)
	}
	args := []string{"-c", strconv.Itoa(cpu), "wrk", "-t1", "-c" + strconv.Itoa(spec.conns),
		"-d" + strconv.Itoa(int(spec.d.Seconds())) + "s", "--latency"}
	if spec.script != "" {
		args = append(args, "-s", spec.script)
	}
	url := base + spec.path
	cmd := exec.Command("taskset", append(args, url)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v: %s", url, err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v: %s", url, err, out)
	}
	r.cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return r, nil
}

// parseWrk reads wrk's --latency report.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, haveReqs bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rps, _ = strconv.ParseFloat(f[1], 64)
			haveRPS = true
		case len(f) >= 5 && f[1] == "requests" && f[2] == "in":
			r.requests, _ = strconv.ParseInt(f[0], 10, 64)
			d, err := time.ParseDuration(strings.TrimSuffix(f[3], ","))
			if err == nil {
				r.seconds = d.Seconds()
			}
			haveReqs = true
		case len(f) == 2 && f[0] == "50%":
			r.p50 = wrkMillis(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.p99 = wrkMillis(f[1])
		case len(f) >= 2 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 3; i < len(f); i += 2 {
				n, _ := strconv.ParseInt(strings.TrimSuffix(f[i], ","), 10, 64)
				r.errors += n
			}
		case len(f) == 5 && f[0] == "Non-2xx":
			n, _ := strconv.ParseInt(f[4], 10, 64)
			r.errors += n
		}
	}
	if !haveRPS || !haveReqs {
		return r, fmt.Errorf("no Requests/sec or request count in wrk's output")
	}
	return r, nil
}

// wrkMillis converts a wrk duration ("812.00us", "1.23ms", "1.02s", "1.50m") to ms.
func wrkMillis(v string) float64 {
	unit := 1.0
	switch {
	case strings.HasSuffix(v, "us"):
		v, unit = strings.TrimSuffix(v, "us"), 0.001
	case strings.HasSuffix(v, "ms"):
		v = strings.TrimSuffix(v, "ms")
	case strings.HasSuffix(v, "s"):
		v, unit = strings.TrimSuffix(v, "s"), 1000
	case strings.HasSuffix(v, "m"):
		v, unit = strings.TrimSuffix(v, "m"), 60000
	}
	n, _ := strconv.ParseFloat(v, 64)
	return n * unit
}
