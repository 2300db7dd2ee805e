package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pollInterval is how often bounded waits re-check their condition.
const pollInterval = 10 * time.Millisecond

// eventually calls check until it returns nil or timeout passes, and returns how long
// that took and check's last error.
func eventually(timeout time.Duration, check func() error) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := check()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("still failing after %s: %w", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// ---- ports ----

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freePort returns a port that was free on 127.0.0.1 a moment ago and that no other
// test of this binary has been given.
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("picking a free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		portsMu.Lock()
		fresh := !portsUsed[port]
		portsUsed[port] = true
		portsMu.Unlock()
		if fresh {
			return port
		}
	}
	t.Fatal("no fresh free port after 100 tries")
	return 0
}

// ---- the quickstart fixture ----

// quickstartPorts are the ports rewritten into a copy of examples/quickstart. Zero
// values are replaced by free ports.
type quickstartPorts struct {
	Gateway int // the Gateway's HTTP listener (8080 in the example)
	Web     int // Backend shop/web (9001)
	APIv1   int // Backend shop/api-v1 (9002)
	APIv2   int // Backend shop/api-v2 (9003)
}

// quickstart is a private copy of examples/quickstart.
type quickstart struct {
	Dir string
	quickstartPorts
}

func newQuickstart(t *testing.T, ports quickstartPorts) *quickstart {
	t.Helper()
	for _, p := range []*int{&ports.Gateway, &ports.Web, &ports.APIv1, &ports.APIv2} {
		if *p == 0 {
			*p = freePort(t)
		}
	}
	q := &quickstart{Dir: t.TempDir(), quickstartPorts: ports}
	src := filepath.Join(repoRoot, "examples", "quickstart")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		q.write(t, e.Name(), string(data))
	}
	q.replace(t, "gateway.yaml", "port: 8080\n", fmt.Sprintf("port: %d\n", ports.Gateway))
	q.replace(t, "backends.yaml", "port: 9001}", fmt.Sprintf("port: %d}", ports.Web))
	q.replace(t, "backends.yaml", "port: 9002}", fmt.Sprintf("port: %d}", ports.APIv1))
	q.replace(t, "backends.yaml", "port: 9003}", fmt.Sprintf("port: %d}", ports.APIv2))
	return q
}

func (q *quickstart) path(name string) string { return filepath.Join(q.Dir, name) }

func (q *quickstart) read(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(q.path(name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// write rewrites a file in place (truncate, then write), as many editors do.
func (q *quickstart) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(q.path(name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeAtomic replaces a file by renaming a hidden temporary file over it, as other
// editors and config-management tools do.
func (q *quickstart) writeAtomic(t *testing.T, name, content string) {
	t.Helper()
	tmp := q.path("." + name + ".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, q.path(name)); err != nil {
		t.Fatal(err)
	}
}

// replace rewrites old to new in a file; old must occur exactly once, so that a change
// to the example fails here rather than silently testing something else.
func (q *quickstart) replace(t *testing.T, name, old, new string) {
	t.Helper()
	q.write(t, name, replaceOnce(t, q.read(t, name), old, new))
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("want exactly one %q in the quickstart, found %d", old, n)
	}
	return strings.Replace(s, old, new, 1)
}

// ---- processes ----

// syncBuffer collects a subprocess's output while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until every one of subs has been written.
func (b *syncBuffer) waitFor(timeout time.Duration, subs ...string) error {
	_, err := eventually(timeout, func() error {
		out := b.String()
		for _, s := range subs {
			if !strings.Contains(out, s) {
				return fmt.Errorf("output lacks %q", s)
			}
		}
		return nil
	})
	return err
}

// proc is a running portico subprocess. It is stopped (SIGTERM, then SIGKILL) when the
// test ends, and its output is logged if the test failed.
type proc struct {
	args   []string
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	err    error // Wait's result, once done is closed
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{args: args, done: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting portico %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// exitCode waits, at most timeout, for the process to exit and returns its exit code.
func (p *proc) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("portico %s still running after %s", strings.Join(p.args, " "), timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// stop ends the process: SIGTERM, then SIGKILL if it has not exited within 10s.
func (p *proc) stop(t *testing.T) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("portico %s ignored SIGTERM for 10s; killing it", strings.Join(p.args, " "))
			_ = p.cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("portico %s survived SIGKILL", strings.Join(p.args, " "))
			}
		}
	}
	if strings.Contains(p.stderr.String(), "DATA RACE") {
		t.Errorf("the race detector found a data race in portico %s", strings.Join(p.args, " "))
	}
	if t.Failed() {
		t.Logf("portico %s\n--- stdout ---\n%s--- stderr ---\n%s", strings.Join(p.args, " "), p.stdout.String(), p.stderr.String())
	}
}

// runPortico runs a short-lived portico command to completion (at most 30s) and returns
// its exit code and output.
func runPortico(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("portico %s: still running after 30s", strings.Join(args, " "))
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("portico %s: %v", strings.Join(args, " "), err)
	}
	if strings.Contains(errb.String(), "DATA RACE") {
		t.Errorf("the race detector found a data race in portico %s:\n%s", strings.Join(args, " "), errb.String())
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// ---- a running gateway ----

// gateway is `portico run` on a private copy of the quickstart.
type gateway struct {
	*proc
	q      *quickstart
	admin  string // host:port of the admin API
	url    string // base URL of the quickstart Gateway's listener
	client *http.Client
}

// errPortTaken means a port picked as free was taken before portico bound it.
var errPortTaken = errors.New("a port picked as free was taken in the meantime")

// startGateway runs `portico run` on a fresh copy of the quickstart and waits until it
// is ready. A port taken between picking and binding is retried with new ports.
func startGateway(t *testing.T, ports quickstartPorts, extraArgs ...string) *gateway {
	t.Helper()
	for attempt := 1; ; attempt++ {
		g := launchGateway(t, newQuickstart(t, ports), extraArgs...)
		err := g.waitReady(20 * time.Second)
		if err == nil {
			return g
		}
		if errors.Is(err, errPortTaken) && attempt < 3 {
			t.Logf("attempt %d: %v; retrying with new ports", attempt, err)
			g.stop(t)
			continue
		}
		t.Fatalf("portico did not become ready: %v", err)
	}
}

// launchGateway starts `portico run` without waiting for anything.
func launchGateway(t *testing.T, q *quickstart, extraArgs ...string) *gateway {
	t.Helper()
	g := &gateway{
		q:      q,
		admin:  net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
		url:    "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(q.Gateway)),
		client: newClient(t),
	}
	args := append([]string{"run", "--config", q.Dir, "--admin-address", g.admin, "--default-address", "127.0.0.1"}, extraArgs...)
	g.proc = startProc(t, args...)
	return g
}

// waitReady polls /readyz until it answers 200.
func (g *gateway) waitReady(timeout time.Duration) error {
	_, err := eventually(timeout, func() error {
		if g.exited() {
			return fmt.Errorf("portico exited with code %d", g.cmd.ProcessState.ExitCode())
		}
		if strings.Contains(g.stderr.String(), "address already in use") {
			return errPortTaken
		}
		code, body, err := g.adminGet("/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	if err != nil && strings.Contains(g.stderr.String(), "address already in use") {
		return fmt.Errorf("%w: %v", errPortTaken, err)
	}
	return err
}

func (g *gateway) adminGet(path string) (int, []byte, error) {
	resp, err := g.client.Get("http://" + g.admin + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// adminJSON fetches an admin endpoint that must answer 200 with JSON.
func (g *gateway) adminJSON(t *testing.T, path string, into any) {
	t.Helper()
	resp, err := g.client.Get("http://" + g.admin + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
	}
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatalf("GET %s: not JSON: %v\n%s", path, err, body)
	}
}

func (g *gateway) status(t *testing.T) statusDocument {
	t.Helper()
	var doc statusDocument
	g.adminJSON(t, "/status", &doc)
	return doc
}

// try sends one request through the gateway and returns the name of the backend that
// answered; anything but a 200 with an echo reply is an error.
func (g *gateway) try(c *http.Client, path string, header ...string) (string, error) {
	reply, err := fetchEcho(c, g.url+path, header...)
	if err != nil {
		return "", err
	}
	return reply.Name, nil
}

// backendOf is try for tests: it fails the test on error.
func (g *gateway) backendOf(t *testing.T, path string, header ...string) string {
	t.Helper()
	name, err := g.try(g.client, path, header...)
	if err != nil {
		t.Fatalf("GET %s %v: %v", path, header, err)
	}
	return name
}

// ---- HTTP ----

func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// echoReply is the part of an echo backend's answer the tests read.
type echoReply struct {
	Name    string              `json:"name"`
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
}

// fetchEcho GETs url with header (name, value pairs) and decodes the echo reply of a 200.
func fetchEcho(c *http.Client, url string, header ...string) (echoReply, error) {
	var reply echoReply
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return reply, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply, fmt.Errorf("reading the body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return reply, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		return reply, fmt.Errorf("not an echo reply: %v: %s", err, body)
	}
	return reply, nil
}

// ---- admin API documents (decoded here, not imported: these tests see only JSON) ----

type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

type statusDocument struct {
	Ready     bool       `json:"ready"`
	AppliedAt *time.Time `json:"appliedAt"`
	Errors    []struct {
		Time    time.Time `json:"time"`
		Stage   string    `json:"stage"`
		Message string    `json:"message"`
	} `json:"errors"`
	Status *struct {
		Gateways []struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
			Status    struct {
				Conditions []condition `json:"conditions"`
				Listeners  []struct {
					Name           string      `json:"name"`
					AttachedRoutes int         `json:"attachedRoutes"`
					Conditions     []condition `json:"conditions"`
				} `json:"listeners"`
			} `json:"status"`
		} `json:"gateways"`
		Routes []struct {
			Kind      string `json:"kind"`
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
			Status    struct {
				Parents []struct {
					Conditions []condition `json:"conditions"`
				} `json:"parents"`
			} `json:"status"`
		} `json:"routes"`
	} `json:"status"`
}

type configDocument struct {
	Gateways []struct {
		Name  string `json:"name"`
		Ports []struct {
			Number   int    `json:"number"`
			Protocol string `json:"protocol"`
		} `json:"ports"`
	} `json:"gateways"`
	Clusters []struct {
		Name      string `json:"name"`
		Endpoints []struct {
			Address string `json:"address"`
			Port    int    `json:"port"`
		} `json:"endpoints"`
	} `json:"clusters"`
}

// conditionStatus returns the status of the condition of type typ ("" if absent).
func conditionStatus(conds []condition, typ string) string {
	for _, c := range conds {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}
