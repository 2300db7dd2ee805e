package telemetry

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// exercised returns metrics with a series in every family.
func exercised() *Metrics {
	m := NewMetrics()
	rm := m.Route("ns/gw/http", "httproute/ns/web/rule/0/match/0")
	e := NewEntry()
	e.Status, e.Attempts, e.UpstreamTime, e.Flags = 504, 2, time.Millisecond, FlagUpstreamTimeout
	e.BytesReceived, e.BytesSent = 1, 1
	rm.Observe(e)
	rm.Listener().Active.Inc()
	m.Connections("ns/gw", "127.0.0.1:80").Add(1)
	m.Applied(nil, time.Now().Add(-time.Millisecond))
	m.Applied(errors.New("x"), time.Time{})
	m.Translated(time.Millisecond)
	m.SetObjects(map[string]map[string]int{"HTTPRoute": {"accepted": 1}})
	m.SetClusterSource(func() []ClusterStats {
		return []ClusterStats{{Name: "c", Endpoints: 2, IdleConns: 1, ActiveConns: 0}}
	})
	return m
}

// Every metric the example Grafana dashboard queries is one Portico serves.
func TestDashboardQueriesServedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../examples/grafana/portico-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	fams, err := exercised().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, f := range fams {
		served[f.GetName()] = true
	}
	name := regexp.MustCompile(`portico_[a-z_]+`)
	queried := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				queried++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
				if !served[base] {
					t.Errorf("panel %q queries %s, which Portico does not serve", p.Title, n)
				}
			}
		}
	}
	if queried < 15 {
		t.Errorf("only %d metric references found in the dashboard", queried)
	}
}

func TestRouteName(t *testing.T) {
	for in, want := range map[string]string{
		"httproute/ns/web/rule/0/match/1": "httproute/ns/web",
		"grpcroute/ns/api/rule/2/match/0": "grpcroute/ns/api",
		"plain":                           "plain",
	} {
		if got := RouteName(in); got != want {
			t.Errorf("RouteName(%q) = %q, want %q", in, got, want)
		}
	}
	if gw, l := SplitListener("infra/public/https"); gw != "infra/public" || l != "https" {
		t.Errorf("SplitListener: %q %q", gw, l)
	}
}

// series returns the values of the series of family name (every family when name is
// "") that carry label=value (every series when label is "").
func series(t *testing.T, m *Metrics, name, label, value string) []float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, f := range fams {
		if name != "" && f.GetName() != name {
			continue
		}
		for _, mt := range f.Metric {
			match := label == ""
			for _, lp := range mt.Label {
				match = match || lp.GetName() == label && lp.GetValue() == value
			}
			if match {
				out = append(out, mt.GetCounter().GetValue()+mt.GetGauge().GetValue())
			}
		}
	}
	return out
}

// A request finishing on a route that a new config removed does not bring its series
// back; a listener that is still served keeps its unrouted-request counts.
func TestRetain(t *testing.T) {
	m := NewMetrics()
	rm := m.Route("ns/gw/http", "httproute/ns/gone/rule/0/match/0")
	nr := m.Listener("ns/gw/idle").NoRoute()
	e := NewEntry()
	e.Status = 404
	nr.Observe(e)
	m.Retain(nil, []string{"ns/gw/idle"})
	e.Status, e.Attempts, e.Flags = 503, 3, FlagUpstreamTimeout
	rm.Observe(e)
	if got := series(t, m, "", "route", "httproute/ns/gone"); len(got) != 0 {
		t.Errorf("%d series of the removed route came back", len(got))
	}
	if got := series(t, m, "portico_http_requests_total", "listener", "idle"); len(got) != 1 || got[0] != 1 {
		t.Errorf("the idle listener's unrouted count is %v after the apply, want [1]", got)
	}
}

// Connections of a socket being drained and of its replacement on the same address are
// summed; forgetting the drained one leaves the new one's count.
func TestConnectionCounters(t *testing.T) {
	m := NewMetrics()
	old, fresh := m.Connections("ns/gw", "127.0.0.1:80"), m.Connections("ns/gw", "127.0.0.1:80")
	old.Add(2)
	fresh.Add(1)
	if got := series(t, m, "portico_downstream_connections", "", ""); len(got) != 1 || got[0] != 3 {
		t.Errorf("%v, want one series at 3", got)
	}
	old.Add(-2)
	m.ForgetConnections(old)
	if got := series(t, m, "portico_downstream_connections", "", ""); len(got) != 1 || got[0] != 1 {
		t.Errorf("after the drain %v, want one series at 1", got)
	}
}
