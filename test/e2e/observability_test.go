package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The binary logs every request to stdout as JSON by default and serves Prometheus
// metrics, data plane and control plane, on the admin API.
func TestObservabilityDefaults(t *testing.T) {
	t.Parallel()
	g := startGateway(t, quickstartPorts{}, "--echo-backends")
	for range 3 {
		if _, err := fetchEcho(g.client, g.url+"/api/orders?id=7"); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.stdout.waitFor(5*time.Second, `"path":"/api/orders?id=7"`); err != nil {
		t.Fatalf("%v; stdout:\n%s", err, g.stdout.String())
	}
	var entry map[string]any
	for _, line := range strings.Split(g.stdout.String(), "\n") {
		if strings.Contains(line, `"path":"/api/orders?id=7"`) {
			if err := json.Unmarshal([]byte(line), &entry); err != nil {
				t.Fatalf("access log line %q: %v", line, err)
			}
			break
		}
	}
	if entry["status"] != float64(200) || entry["route"] != "httproute/shop/shop/rule/1/match/0" || entry["gateway"] != "infra/public" {
		t.Errorf("access log entry %v", entry)
	}

	code, body, err := g.adminGet("/metrics")
	if err != nil || code != 200 {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	var requests float64
	for _, m := range fams["portico_http_requests_total"].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == "route" && l.GetValue() == "httproute/shop/shop" {
				requests += m.Counter.GetValue()
			}
		}
	}
	if requests != 3 {
		t.Errorf("portico_http_requests_total for httproute/shop/shop = %v, want 3", requests)
	}
	for _, name := range []string{"portico_config_applies_total", "portico_translate_duration_seconds", "portico_objects", "portico_config_last_apply_timestamp_seconds", "portico_http_request_duration_seconds"} {
		if fams[name] == nil {
			t.Errorf("%s missing from /metrics", name)
		}
	}
	var accepted float64
	for _, m := range fams["portico_objects"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["kind"] == "HTTPRoute" && labels["status"] == "accepted" {
			accepted = m.Gauge.GetValue()
		}
	}
	if accepted != 2 {
		t.Errorf("portico_objects{kind=HTTPRoute,status=accepted} = %v, want the quickstart's 2", accepted)
	}

	// A live edit is timed from the file change to the new config serving.
	g.q.write(t, "routes.yaml", g.q.read(t, "routes.yaml")+"\n# touched\n")
	if _, err := eventually(10*time.Second, func() error {
		_, body, err := g.adminGet("/metrics")
		if err != nil {
			return err
		}
		fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			return err
		}
		h := fams["portico_config_propagation_seconds"].GetMetric()
		if len(h) != 1 || h[0].Histogram.GetSampleCount() < 1 {
			return fmt.Errorf("no propagation observed yet")
		}
		if s := h[0].Histogram.GetSampleSum(); s <= 0 || s > 10 {
			return fmt.Errorf("propagation took %vs", s)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// A file access log is reopened on SIGHUP, after a rotation moved it away.
func TestAccessLogFileReopensOnSIGHUP(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "access.log")
	g := startGateway(t, quickstartPorts{}, "--echo-backends", "--access-log", path, "--access-log-format", "text")
	get := func(p string) {
		if _, err := fetchEcho(g.client, g.url+p); err != nil {
			t.Fatal(err)
		}
	}
	waitIn := func(file, want string) {
		t.Helper()
		if _, err := eventually(5*time.Second, func() error {
			b, _ := os.ReadFile(file)
			if !strings.Contains(string(b), want) {
				return fmt.Errorf("%s lacks %q:\n%s", file, want, b)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	get("/before-rotation")
	waitIn(path, `"/before-rotation"`)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	g.signal(t, syscall.SIGHUP)
	if _, err := eventually(5*time.Second, func() error {
		if _, err := os.Stat(path); err != nil {
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("the log was not reopened: %v", err)
	}
	get("/after-rotation")
	waitIn(path, `"/after-rotation"`)
	if b, _ := os.ReadFile(path + ".1"); strings.Contains(string(b), "/after-rotation") {
		t.Error("a line went to the rotated file")
	}
}

// SIGHUP never stops a Portico that has no access log file to reopen (a logrotate
// script may send it to every process).
func TestSIGHUPWithoutLogFile(t *testing.T) {
	t.Parallel()
	g := startGateway(t, quickstartPorts{}, "--echo-backends", "--access-log", "off")
	g.signal(t, syscall.SIGHUP)
	time.Sleep(200 * time.Millisecond)
	if g.exited() {
		t.Fatal("SIGHUP stopped portico")
	}
	if _, err := fetchEcho(g.client, g.url+"/"); err != nil {
		t.Fatalf("not serving after SIGHUP: %v", err)
	}
}

// Bad telemetry settings are refused at start with the flag named.
func TestBadTelemetryFlags(t *testing.T) {
	t.Parallel()
	q := newQuickstart(t, quickstartPorts{})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--access-log-format", "xml"}, "--access-log"},
		{[]string{"--otlp-endpoint", "127.0.0.1:4317", "--otlp-protocol", "carrier-pigeon"}, "OTLP protocol"},
		{[]string{"--otlp-endpoint", "127.0.0.1:4317", "--trace-sample-ratio", "2"}, "sample ratio"},
	} {
		args := append([]string{"run", "--config", q.Dir, "--admin-address", "127.0.0.1:0"}, c.args...)
		code, _, stderr := runPortico(t, args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %q", c.args, code, stderr, c.want)
		}
	}
}
