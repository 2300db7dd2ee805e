package main

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

const wrkSample = `Running 10s test @ http://127.0.0.1:18081/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.21ms    2.02ms  35.55ms   85.03%
    Req/Sec    15.32k     1.20k   17.90k    71.00%
  Latency Distribution
     50%    3.69ms
     75%    4.80ms
     90%    6.41ms
     99%   10.74ms
  152400 requests in 10.02s, 22.97MB read
  Socket errors: connect 0, read 2, write 1, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:  15209.58
Transfer/sec:      2.29MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{rps: 15209.58, p50: 3.69, p99: 10.74, requests: 152400, errors: 10, seconds: 10.02}
	if r != want {
		t.Fatalf("parseWrk = %+v, want %+v", r, want)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Fatal("a failed run parsed")
	}
}

func TestWrkMillis(t *testing.T) {
	for in, want := range map[string]float64{"812.00us": 0.812, "1.23ms": 1.23, "1.02s": 1020, "1.50m": 90000} {
		if got := wrkMillis(in); math.Abs(got-want) > 1e-9 {
			t.Errorf("wrkMillis(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "1234 (nginx: worker (x)) S 1200 1234 1234 0 -1 4194624 100 0 0 0 731 142 0 0 20 0 1 0 100 1000 10 18446744073709551615"
	st, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st != (procStat{pid: 1234, ppid: 1200, utime: 731, stime: 142}) {
		t.Fatalf("parseStat = %+v", st)
	}
	if _, err := parseStat("garbage"); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestParseBusy(t *testing.T) {
	// user nice system idle iowait irq softirq steal
	if got := parseBusy("cpu  100 5 50 9000 40 3 7 11 0 0"); got != 100+5+50+3+7+11 {
		t.Fatalf("parseBusy = %d", got)
	}
}

func TestMedian(t *testing.T) {
	if median(nil) != 0 || median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 3, 2}) != 2.5 {
		t.Fatal("median")
	}
}

// The lab's own CPU accounting reads this process correctly.
func TestTreeTicksAndRSS(t *testing.T) {
	pid := selfPID()
	if rssKB(treePIDs(pid)) <= 0 {
		t.Fatal("no RSS for this process")
	}
	before := treeTicks(pid)
	x := 0.0
	for i := 0; i < 30_000_000; i++ {
		x += math.Sqrt(float64(i))
	}
	if x == 0 || treeTicks(pid) <= before {
		t.Fatalf("CPU ticks did not grow: %d", before)
	}
}

// The open-loop generator sends the rate it is asked for and measures every answer.
func TestRunOpenLoop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/p" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	r := runOpenLoop(addr, "/p", 640, 64, time.Second)
	if r.Errors != 0 || r.Sent < 600 || r.Sent > 680 {
		t.Fatalf("sent %d with %d errors, want about 640 and none", r.Sent, r.Errors)
	}
	if !(r.P50 > 0 && r.P50 <= r.P99 && r.P99 <= r.P999 && r.P999 <= r.Max) {
		t.Fatalf("percentiles out of order: %+v", r)
	}
	if bad := runOpenLoop(addr, "/missing", 64, 64, time.Second); bad.Errors == 0 {
		t.Fatalf("404 answers were not counted as errors: %+v", bad)
	}
}

const h2loadSample = `starting benchmark...
spawning thread #0: 4 total client(s). 0 total requests
TLS Protocol: TLSv1.3
Application protocol: h2

finished in 10.00s, 30123.40 req/s, 2.01MB/s
requests: 301234 total, 301300 started, 301234 done, 301230 succeeded, 4 failed, 1 errored, 2 timeout
status codes: 301230 2xx, 0 3xx, 0 4xx, 4 5xx
traffic: 10.73MB (10990) total, 868B (868) headers (space savings 94.64%), 6.25MB (6400) data
                     min         max         mean         sd        +/- sd
time for request:      597us      9.25ms      3.12ms      2.43ms    87.00%
`

func TestParseH2load(t *testing.T) {
	r, err := parseH2load(h2loadSample)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{rps: 30123.40, requests: 301234, errors: 4 + 1 + 2, seconds: 10}
	if r != want {
		t.Fatalf("parseH2load = %+v, want %+v", r, want)
	}
	if _, err := parseH2load("starting benchmark...\nNo protocol negotiated. Aborted\n"); err == nil {
		t.Fatal("a failed run parsed")
	}
}

func TestRequestLogPercentiles(t *testing.T) {
	// 200 requests taking 1..200 ms, shuffled, and a line that is not a request.
	var b strings.Builder
	b.WriteString("garbage\n")
	for i := range 200 {
		ms := (i*37)%200 + 1
		b.WriteString("1795975462016694\t200\t" + strconv.Itoa(ms*1000) + "\n")
	}
	p50, p99, err := requestLogPercentiles(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if p50 != 101 || p99 != 199 {
		t.Fatalf("p50, p99 = %v, %v; want 101, 199", p50, p99)
	}
	if _, _, err := requestLogPercentiles(strings.NewReader("")); err == nil {
		t.Fatal("an empty log gave percentiles")
	}
}
