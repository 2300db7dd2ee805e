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
	m.Connections("ns/gw", "127.0.0.1:80").Inc()
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
