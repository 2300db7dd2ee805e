// Command lab is Portico's side-by-side performance lab: it runs Portico, nginx,
// haproxy and caddy in front of the same backend (and the backend directly), each proxy
// alone on one pinned core with one worker, under the same load on the other core, and
// writes a markdown report of medians and ratios to bench/results/latest.md.
//
//	go run ./bench/lab                  every scenario (make bench)
//	go run ./bench/lab -scenarios h1    one
//	go run ./bench/lab -scenarios profile
//	                                    a CPU profile of Portico under the h1 load
//
// It installs what is missing from Debian (wrk, nginx, haproxy, caddy, h2load), builds
// bench/backend and bench/portico, and stops every process it started when it ends.
// Requests per proxy CPU-second (the proxy's utime+stime over the run, from /proc) is the
// figure to compare: on two cores the load generator and the backend compete with each
// other, and that figure does not depend on who limits the run.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type options struct {
	runs               int
	duration, warmup   time.Duration
	conns              int
	proxyCPU, loadCPU  int
	basePort           int
	scenarios          string
	idleConns          int
	routes             int
	cpRoutes           int
	scaleRoutes        int
	h2Conns, h2Streams int
	out                string
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 5, "runs per target and scenario (medians are reported)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of one run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up per target before the runs")
	flag.IntVar(&o.conns, "conns", 64, "connections of the closed-loop load")
	flag.IntVar(&o.proxyCPU, "proxy-cpu", 0, "the CPU every proxy is pinned to")
	flag.IntVar(&o.loadCPU, "load-cpu", 1, "the CPU of the backend and the load generator")
	flag.IntVar(&o.basePort, "base-port", 18080, "first of the loopback ports the lab uses")
	flag.StringVar(&o.scenarios, "scenarios", "h1,fixedrate,h2,routes,download,upload,idle,controlplane,scale", "comma-separated scenarios to run: h1, h2, routes, download, upload, fixedrate, idle, controlplane, scale; profile (a CPU profile of Portico under the h1 load) only when named")
	flag.IntVar(&o.idleConns, "idle-conns", 9000, "connections of the idle scenario (each process here may open 20,000 files)")
	flag.IntVar(&o.routes, "routes", 5000, "routes in the many-routes scenario's tables")
	flag.IntVar(&o.cpRoutes, "cp-routes", 1000, "HTTPRoutes the control-plane scenario adds one after another")
	flag.IntVar(&o.scaleRoutes, "scale-routes", 5000, "HTTPRoutes (over 50 namespaces) of the scale scenario")
	flag.IntVar(&o.h2Conns, "h2-conns", 4, "connections of the HTTP/2 scenario")
	flag.IntVar(&o.h2Streams, "h2-streams", 32, "concurrent streams per connection in the HTTP/2 scenario")
	flag.StringVar(&o.out, "out", "bench/results/latest.md", "where the report is written")
	loadgen := flag.String("loadgen", "", "internal: run as the open-loop load generator (addr,path,rate,duration)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	if *loadgen != "" {
		loadgenMain(*loadgen)
		return
	}
	if err := run(o); err != nil {
		log.Fatalf("lab: %v", err)
	}
}

func run(o options) error {
	if runtime.NumCPU() < 2 {
		log.Printf("warning: fewer than 2 CPUs; proxy and load share a core")
	}
	if err := installMissing(); err != nil {
		return err
	}
	raiseFileLimit()
	dir, err := os.MkdirTemp("", "portico-lab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	l := &lab{dir: dir, proxyCPU: o.proxyCPU, loadCPU: o.loadCPU, backendAddr: fmt.Sprintf("127.0.0.1:%d", o.basePort)}
	defer l.stopAll()
	stopOnSignal(l)

	// Every binary is built now, so that a run measures the tree as it was when it
	// started, whatever is edited meanwhile.
	log.Printf("building bench/backend, bench/portico and cmd/portico")
	l.backend, l.portico = filepath.Join(dir, "backend"), filepath.Join(dir, "portico")
	for bin, pkg := range map[string]string{l.backend: "./bench/backend", l.portico: "./bench/portico", filepath.Join(dir, "portico-run"): "./cmd/portico"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v: %s", pkg, err, out)
		}
	}
	backend, err := l.start("backend", l.loadCPU, []string{"GOMAXPROCS=1"}, l.backend, "-addr", l.backendAddr)
	if err != nil {
		return err
	}
	if err := backend.waitPort(l.backendAddr); err != nil {
		return err
	}

	if err := l.writeKeyPair(dir); err != nil {
		return err
	}
	targets, err := l.startProxies(o.basePort+1, 1, true, false)
	if err != nil {
		return err
	}
	targets = append([]*target{{name: "direct", port: o.basePort, path: "/"}}, targets...)
	upload := filepath.Join(dir, "upload.lua")
	if err := os.WriteFile(upload, []byte(uploadScript), 0o644); err != nil {
		return err
	}

	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	rep := &report{when: time.Now().UTC(), o: o}
	for i, sc := range strings.Split(o.scenarios, ",") {
		if i > 0 {
			// What is measured so far is kept, should a later scenario fail.
			if err := rep.write(o.out); err != nil {
				return err
			}
		}
		var res *result
		switch strings.TrimSpace(sc) {
		case "h1":
			res = &result{title: "HTTP/1.1 keep-alive, small response",
				spec: loadSpec{conns: o.conns, d: o.duration}}
		case "routes":
			many, err := l.startProxies(o.basePort+20, o.routes, false, false)
			if err != nil {
				return err
			}
			var both []*target
			for i, t := range many {
				both = append(both, targets[i+1], t) // the 1-route twin first
			}
			res = &result{title: fmt.Sprintf("%d routes against 1, small responses", o.routes),
				spec: loadSpec{conns: o.conns, d: o.duration}}
			res.samples, err = l.closedLoop(sc, both, backend, res.spec, o)
			if err != nil {
				return err
			}
			res.order = names(both)
			rep.results = append(rep.results, res)
			continue
		case "h2":
			// Started here, not with the others, so that runs without this scenario do
			// not pay for their memory and handshakes.
			h2, err := l.startProxies(o.basePort+30, 1, false, true)
			if err != nil {
				return err
			}
			res = &result{title: "HTTP/2 over TLS, many streams, small responses",
				spec: loadSpec{conns: o.h2Conns, streams: o.h2Streams, d: o.duration, path: "/"}}
			res.samples, err = l.closedLoop(sc, h2, backend, res.spec, o)
			if err != nil {
				return err
			}
			res.order = names(h2)
			rep.results = append(rep.results, res)
			continue
		case "download":
			res = &result{title: "1 MiB responses", mibPerRequest: 1,
				spec: loadSpec{conns: 8, d: o.duration, path: "/?size=1048576"}}
		case "profile":
			if err := l.scenarioProfile(o.basePort+50, backend, o); err != nil {
				return err
			}
			continue
		case "controlplane":
			r, err := l.scenarioControlPlane(o.basePort+60, o.basePort+61, o.cpRoutes)
			if err != nil {
				return err
			}
			rep.cp = r
			continue
		case "fixedrate":
			nginxMax := 0.0
			for _, r := range rep.results {
				if ss, ok := r.samples["nginx"]; ok && r.spec.path == "" && r.mibPerRequest == 0 && len(r.order) > 0 && r.order[0] == "direct" {
					nginxMax = medianOf(ss, func(s sample) float64 { return s.rps })
				}
			}
			if nginxMax == 0 {
				// No h1 run before: measure nginx's maximum now.
				var ng *target
				for _, t := range targets {
					if t.name == "nginx" {
						ng = t
					}
				}
				s, err := l.measure(ng, backend, loadSpec{conns: o.conns, d: o.duration})
				if err != nil {
					return err
				}
				nginxMax = s.rps
			}
			res, rate, err := l.scenarioFixedRate(targets, nginxMax, o)
			if err != nil {
				return err
			}
			rep.fixed, rep.fixedRate, rep.fixedOrder = res, rate, names(targets)
			continue
		case "scale":
			r, err := l.scenarioScale(o.basePort+70, o.basePort+71, o.scaleRoutes, 50)
			if err != nil {
				return err
			}
			rep.scale = r
			continue
		case "idle":
			rs, err := l.scenarioIdle(targets, o.idleConns)
			if err != nil {
				return err
			}
			rep.idle = rs
			continue
		case "upload":
			res = &result{title: "10 MiB uploads", mibPerRequest: 10,
				spec: loadSpec{conns: 8, d: o.duration, path: "/", script: upload}}
		default:
			return fmt.Errorf("unknown scenario %q", sc)
		}
		res.samples, err = l.closedLoop(sc, targets, backend, res.spec, o)
		if err != nil {
			return err
		}
		res.order = names(targets)
		rep.results = append(rep.results, res)
	}
	if rep.empty() {
		return nil // only a profile was asked for
	}
	if err := rep.write(o.out); err != nil {
		return err
	}
	fmt.Print(rep.markdown())
	log.Printf("wrote %s", o.out)
	return nil
}

func (r *report) empty() bool {
	return len(r.results) == 0 && len(r.idle) == 0 && r.cp == nil && r.scale == nil && r.fixed == nil
}

// write saves the report so far (nothing when there is nothing to report).
func (r *report) write(path string) error {
	if r.empty() {
		return nil
	}
	return os.WriteFile(path, []byte(r.markdown()), 0o644)
}

// startProxies starts every proxy on consecutive ports from port and waits for them.
// With tls they serve HTTPS (HTTP/2 by ALPN) with the lab's certificate.
func (l *lab) startProxies(port, routes int, variants, tls bool) ([]*target, error) {
	starts := []func(int, int, bool) (*target, error){
		l.startNginx,
		l.startHAProxy,
		l.startCaddy,
		func(p, r int, tls bool) (*target, error) { return l.startPortico("portico", p, r, tls) },
	}
	if variants {
		starts = append(starts, func(p, r int, tls bool) (*target, error) {
			return l.startPortico("portico-telemetry", p, r, tls, "-access-log", "/dev/null")
		})
	}
	var out []*target
	for i, start := range starts {
		t, err := start(port+i, routes, tls)
		if err != nil {
			return nil, err
		}
		if err := t.procs[0].waitPort(fmt.Sprintf("127.0.0.1:%d", t.port)); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func names(ts []*target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.name)
	}
	return out
}

// stopOnSignal stops the lab's processes when it is interrupted.
func stopOnSignal(l *lab) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ch
		l.stopAll()
		os.Exit(130)
	}()
}

// installMissing installs the Debian packages whose commands are missing (apt-get update
// first, once).
func installMissing() error {
	if !strings.Contains(os.Getenv("PATH"), "/usr/sbin") {
		os.Setenv("PATH", os.Getenv("PATH")+":/usr/sbin:/sbin")
	}
	var missing []string
	for _, c := range [][2]string{{"wrk", "wrk"}, {"nginx", "nginx"}, {"haproxy", "haproxy"}, {"caddy", "caddy"}, {"h2load", "nghttp2-client"}, {"taskset", "util-linux"}} {
		if _, err := exec.LookPath(c[0]); err != nil {
			missing = append(missing, c[1])
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing %s: install them (apt-get install %s) or run as root", strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	log.Printf("installing %s", strings.Join(missing, " "))
	if out, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %v: %s", err, out)
	}
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install: %v: %s", err, out)
	}
	return nil
}

// raiseFileLimit lifts the open-file limit the lab and its processes inherit (thousands
// of connections per proxy), as far as it is allowed to.
func raiseFileLimit() {
	want := syscall.Rlimit{Cur: 1 << 17, Max: 1 << 17}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
		return
	}
	var cur syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur) == nil {
		cur.Cur = cur.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &cur)
	}
}

// uploadScript makes wrk POST a 10 MiB body.
const uploadScript = `wrk.method = "POST"
wrk.body = string.rep("x", 10 * 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
`
