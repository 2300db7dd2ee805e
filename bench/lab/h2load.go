package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// runH2load runs h2load (HTTP/2 over TLS, spec.streams concurrent streams on each of
// spec.conns connections) pinned to cpu against base. h2load prints no percentiles: they
// come from its per-request log, written to a file in dir.
func runH2load(cpu int, spec loadSpec, base, dir string) (wrkResult, error) {
	if spec.path == "" {
		return wrkResult{}, fmt.Errorf("no path for %s", base)
	}
	logFile := filepath.Join(dir, "h2load-requests.log")
	defer os.Remove(logFile)
	url := base + spec.path
	cmd := exec.Command("taskset", "-c", strconv.Itoa(cpu), "h2load", "-t1",
		"-c", strconv.Itoa(spec.conns), "-m", strconv.Itoa(spec.streams),
		"-D", strconv.Itoa(int(spec.d.Seconds())), "--log-file", logFile, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("h2load %s: %v: %s", url, err, out)
	}
	r, err := parseH2load(string(out))
	if err != nil {
		return wrkResult{}, fmt.Errorf("h2load %s: %v: %s", url, err, out)
	}
	f, err := os.Open(logFile)
	if err != nil {
		return wrkResult{}, err
	}
	defer f.Close()
	r.p50, r.p99, err = requestLogPercentiles(f)
	if err != nil {
		return wrkResult{}, fmt.Errorf("h2load log: %v", err)
	}
	r.cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return r, nil
}

// parseH2load reads h2load's summary:
//
//	finished in 10.00s, 30123.40 req/s, 2.01MB/s
//	requests: 301234 total, 301300 started, 301234 done, 301234 succeeded, 0 failed, 0 errored, 0 timeout
func parseH2load(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, haveReqs bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(strings.ReplaceAll(sc.Text(), ",", ""))
		switch {
		case len(f) >= 5 && f[0] == "finished" && f[1] == "in" && f[4] == "req/s":
			if d, err := time.ParseDuration(f[2]); err == nil {
				r.seconds = d.Seconds()
			}
			r.rps, _ = strconv.ParseFloat(f[3], 64)
			haveRPS = true
		case len(f) >= 15 && f[0] == "requests:":
			done, _ := strconv.ParseInt(f[5], 10, 64)
			succeeded, _ := strconv.ParseInt(f[7], 10, 64)
			errored, _ := strconv.ParseInt(f[11], 10, 64)
			timeout, _ := strconv.ParseInt(f[13], 10, 64)
			// "failed" counts answers that are not 2xx/3xx and is included in done.
			r.requests = done
			r.errors = done - succeeded + errored + timeout
			haveReqs = true
		}
	}
	if !haveRPS || !haveReqs {
		return r, fmt.Errorf("no req/s or request count in h2load's output")
	}
	return r, nil
}

// requestLogPercentiles reads h2load's --log-file (start time, status, microseconds to
// the end of the response, tab-separated) and returns p50 and p99 in milliseconds.
func requestLogPercentiles(f io.Reader) (p50, p99 float64, err error) {
	var us []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 3 {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(cols[2]), 64)
		if err != nil {
			continue
		}
		us = append(us, v)
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if len(us) == 0 {
		return 0, 0, fmt.Errorf("no requests logged")
	}
	slices.Sort(us)
	at := func(q float64) float64 { return us[min(len(us)-1, int(q*float64(len(us))))] / 1000 }
	return at(0.50), at(0.99), nil
}
