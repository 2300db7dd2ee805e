package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// target is something the load is sent to: the backend itself ("direct") or a proxy in
// front of it.
type target struct {
	name  string
	port  int
	procs []*proc // the proxy's processes (none for direct)
	path  string  // what the small-response load asks for ("/" unless the table has many routes)
	tls   bool    // HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with the lab's certificate
}

func (t *target) pids() []int {
	var out []int
	for _, p := range t.procs {
		out = append(out, p.pid())
	}
	return out
}

func (t *target) base() string {
	if t.tls {
		return "https://127.0.0.1:" + strconv.Itoa(t.port)
	}
	return "http://127.0.0.1:" + strconv.Itoa(t.port)
}

// lab holds what every scenario shares: the work directory, the CPUs, the binaries.
type lab struct {
	dir               string
	proxyCPU, loadCPU int
	backendAddr       string
	portico           string // the bench/portico binary
	// The TLS key pair every HTTPS target serves (self-signed, for 127.0.0.1), as
	// separate PEM files and as one file of both (haproxy's form).
	certFile, keyFile, pemFile string
	backend                    string // the bench/backend binary
	started                    []*proc
}

func (l *lab) start(name string, cpu int, env []string, argv ...string) (*proc, error) {
	p, err := startProc(l.dir, name, cpu, env, argv...)
	if err != nil {
		return nil, err
	}
	l.started = append(l.started, p)
	return p, nil
}

func (l *lab) stopAll() {
	for i := len(l.started) - 1; i >= 0; i-- {
		l.started[i].stop()
	}
	l.started = nil
}

// startNginx runs nginx with one worker, upstream keep-alive and no access log, as
// tuned as the issue asks: connections are kept for the whole run on both sides.
func (l *lab) startNginx(port, routes int, tls bool) (*target, error) {
	name := named("nginx", routes)
	dir := filepath.Join(l.dir, withTLS(name, tls))
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return nil, err
	}
	// nginx's worker drops root privileges: let it reach its temp directories.
	_ = os.Chmod(l.dir, 0o755)
	_ = os.Chmod(dir, 0o755)
	_ = os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 32768; }
http {
    access_log off;
    keepalive_requests 10000000;
    # Bodies stream through in memory, as through the other proxies: no request
    # buffering, no temp files, 64 KiB reads.
    client_max_body_size 0;
    client_body_buffer_size 128k;
    proxy_request_buffering off;
    proxy_buffer_size 64k;
    proxy_buffers 8 64k;
    proxy_busy_buffers_size 128k;
    proxy_max_temp_file_size 0;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    upstream backend {
        server %[2]s;
        keepalive 256;
        keepalive_requests 10000000;
    }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    server {
        listen 127.0.0.1:%[3]d%[5]s;
%[4]s    }
}
`, dir, l.backendAddr, port, nginxLocations(routes), nginxTLS(tls, l.certFile, l.keyFile))
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := l.start(withTLS(name, tls), l.proxyCPU, nil, "nginx", "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", path)
	if err != nil {
		return nil, err
	}
	return &target{name: name, port: port, procs: []*proc{p}, path: routePath(routes), tls: tls}, nil
}

// startHAProxy runs haproxy with one thread, keep-alive both ways and connection reuse.
func (l *lab) startHAProxy(port, routes int, tls bool) (*target, error) {
	name := named("haproxy", routes)
	bind := ""
	if tls {
		bind = " ssl crt " + l.pemFile + " alpn h2,http/1.1"
	}
	route := "    default_backend be\n"
	if routes > 1 {
		// A map of path prefixes: haproxy's efficient form for many routes.
		var m strings.Builder
		for i := range routes {
			fmt.Fprintf(&m, "/svc-%d/ be\n", i)
		}
		mapPath := filepath.Join(l.dir, name+".map")
		if err := os.WriteFile(mapPath, []byte(m.String()), 0o644); err != nil {
			return nil, err
		}
		route = "    use_backend %[path,map_beg(" + mapPath + ")]\n"
	}
	conf := fmt.Sprintf(`global
    nbthread 1
    maxconn 9900
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:%d%s
%sbackend be
    server s1 %s
`, port, bind, route, l.backendAddr)
	path := filepath.Join(l.dir, withTLS(name, tls)+".cfg")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := l.start(withTLS(name, tls), l.proxyCPU, nil, "haproxy", "-db", "-f", path)
	if err != nil {
		return nil, err
	}
	return &target{name: name, port: port, procs: []*proc{p}, path: routePath(routes), tls: tls}, nil
}

// startCaddy runs caddy's reverse proxy with one OS thread for Go code (GOMAXPROCS=1),
// no admin endpoint and no automatic HTTPS.
func (l *lab) startCaddy(port, routes int, tls bool) (*target, error) {
	name := named("caddy", routes)
	// Idle upstream connections kept as many as the other proxies keep (caddy's default
	// is 32), so that the HTTP/2 scenario's concurrent streams do not churn connections.
	proxy := "reverse_proxy " + l.backendAddr + " {\n\t\ttransport http {\n\t\t\tkeepalive_idle_conns_per_host 256\n\t\t}\n\t}"
	route := "\t" + proxy + "\n"
	if routes > 1 {
		var b strings.Builder
		for i := range routes {
			fmt.Fprintf(&b, "\thandle /svc-%d/* {\n\t\treverse_proxy %s\n\t}\n", i, l.backendAddr)
		}
		route = b.String()
	}
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	if tls {
		site = fmt.Sprintf("https://127.0.0.1:%d", port)
		route = fmt.Sprintf("\ttls %s %s\n", l.certFile, l.keyFile) + route
	}
	conf := fmt.Sprintf(`{
	admin off
	auto_https off
}
%s {
	bind 127.0.0.1
%s}
`, site, route)
	path := filepath.Join(l.dir, withTLS(name, tls)+".Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	env := []string{"GOMAXPROCS=1", "HOME=" + l.dir, "XDG_DATA_HOME=" + l.dir, "XDG_CONFIG_HOME=" + l.dir}
	p, err := l.start(withTLS(name, tls), l.proxyCPU, env, "caddy", "run", "--config", path, "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	return &target{name: name, port: port, procs: []*proc{p}, path: routePath(routes), tls: tls}, nil
}

// startPortico runs the bench data plane (bench/portico) with GOMAXPROCS=1 and extra
// flags.
func (l *lab) startPortico(name string, port, routes int, tls bool, flags ...string) (*target, error) {
	name = named(name, routes)
	argv := append([]string{l.portico, "-listen", "127.0.0.1:" + strconv.Itoa(port), "-backend", l.backendAddr,
		"-routes", strconv.Itoa(routes)}, flags...)
	if tls {
		argv = append(argv, "-tls-cert", l.certFile, "-tls-key", l.keyFile)
	}
	p, err := l.start(withTLS(name, tls), l.proxyCPU, []string{"GOMAXPROCS=1"}, argv...)
	if err != nil {
		return nil, err
	}
	return &target{name: name, port: port, procs: []*proc{p}, path: routePath(routes), tls: tls}, nil
}

// named is a target's name: "nginx", or "nginx-5000r" for a table of 5,000 routes.
func named(name string, routes int) string {
	if routes > 1 {
		return fmt.Sprintf("%s-%dr", name, routes)
	}
	return name
}

// withTLS is the name of a TLS instance's processes and files: "nginx-tls" beside
// "nginx". Its target keeps the plain name, so that ratios against nginx read alike.
func withTLS(name string, tls bool) string {
	if tls {
		return name + "-tls"
	}
	return name
}

// nginxTLS is the listen directive's TLS and HTTP/2 part (nginx 1.22's form) and the
// server block's key pair.
func nginxTLS(tls bool, cert, key string) string {
	if !tls {
		return ""
	}
	return fmt.Sprintf(" ssl http2;\n        ssl_certificate %s;\n        ssl_certificate_key %s", cert, key)
}

// routePath is the path the load asks for: the last route of a many-route table (the
// one a linear search would reach last), or "/".
func routePath(routes int) string {
	if routes > 1 {
		return fmt.Sprintf("/svc-%d/x", routes-1)
	}
	return "/"
}

// nginxLocations is the server block's routing: one location per route.
func nginxLocations(routes int) string {
	if routes <= 1 {
		return "        location / { proxy_pass http://backend; }\n"
	}
	var b strings.Builder
	for i := range routes {
		fmt.Fprintf(&b, "        location /svc-%d/ { proxy_pass http://backend; }\n", i)
	}
	return b.String()
}

// versions names the peers' versions for the report.
func versions() string {
	get := func(args ...string) string {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return args[0] + " (unknown version)"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return strings.Join([]string{
		get("nginx", "-v"),
		get("haproxy", "-v"),
		"caddy " + get("caddy", "version"),
		get("wrk", "-v"),
		get("h2load", "--version"),
	}, "; ")
}
