package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestQuickstartTraffic(t *testing.T) {
	t.Parallel()
	g := startGateway(t, quickstartPorts{}, "--echo-backends")

	t.Run("stdout announces the gateway and admin URLs", func(t *testing.T) {
		gw := fmt.Sprintf("Gateway infra/public serving %s\n", g.url)
		admin := fmt.Sprintf("Admin API: http://%s/status\n", g.admin)
		if err := g.stdout.waitFor(5*time.Second, gw, admin); err != nil {
			t.Fatalf("%v; stdout:\n%s", err, g.stdout.String())
		}
	})

	t.Run("path routing", func(t *testing.T) {
		for _, tc := range []struct{ path, want string }{
			{"/", "shop/web"},
			{"/index.html", "shop/web"},
			{"/apiary", "shop/web"}, // PathPrefix matches whole segments only
			{"/api", "shop/api-v1"},
			{"/api/", "shop/api-v1"},
			{"/api/orders/7?page=2", "shop/api-v1"},
		} {
			reply, err := fetchEcho(g.client, g.url+tc.path)
			if err != nil {
				t.Errorf("GET %s: %v", tc.path, err)
				continue
			}
			if reply.Name != tc.want {
				t.Errorf("GET %s went to %s, want %s", tc.path, reply.Name, tc.want)
			}
			if wantPath, _, _ := strings.Cut(tc.path, "?"); reply.Path != wantPath {
				t.Errorf("GET %s: backend saw path %q", tc.path, reply.Path)
			}
		}
		for _, v := range []string{"false", "TRUE", ""} {
			if got := g.backendOf(t, "/api", "X-Canary", v); got != "shop/api-v1" {
				t.Errorf("x-canary %q went to %s, want shop/api-v1 (only the exact value true is the canary)", v, got)
			}
		}
	})

	// Only this subtest sends canary requests, so the canary route's counter starts at 0.
	canary := make([]string, 0, 100)
	for range 100 {
		canary = append(canary, g.backendOf(t, "/api/items", "x-canary", "true"))
	}
	count := func(t *testing.T, names []string) (v1, v2 int) {
		for _, n := range names {
			switch n {
			case "shop/api-v1":
				v1++
			case "shop/api-v2":
				v2++
			default:
				t.Errorf("canary request went to %s", n)
			}
		}
		return v1, v2
	}

	t.Run("canary split is exactly 80/20 over 100 requests", func(t *testing.T) {
		if v1, v2 := count(t, canary); v1 != 80 || v2 != 20 {
			t.Fatalf("100 canary requests: %d to api-v1 and %d to api-v2, want 80 and 20", v1, v2)
		}
	})

	t.Run("canary split is exactly 8/2 in every 10 requests", func(t *testing.T) {
		var splits []string
		ok := true
		for i := 0; i < len(canary); i += 10 {
			v1, v2 := count(t, canary[i:i+10])
			splits = append(splits, fmt.Sprintf("%d/%d", v1, v2))
			ok = ok && v1 == 8 && v2 == 2
		}
		if ok {
			return
		}
		msg := fmt.Sprintf("api-v1/api-v2 per 10 canary requests: %s, want 8/2 each time", strings.Join(splits, " "))
		t.Fatal(msg)
	})

	t.Run("healthz and readyz", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			code, body, err := g.adminGet(path)
			if err != nil || code != http.StatusOK || string(body) != "ok\n" {
				t.Errorf("GET %s: %d %q %v, want 200 ok", path, code, body, err)
			}
		}
	})

	t.Run("config lists the gateway and the clusters", func(t *testing.T) {
		var cfg configDocument
		g.adminJSON(t, "/config", &cfg)
		if len(cfg.Gateways) != 1 || cfg.Gateways[0].Name != "infra/public" ||
			len(cfg.Gateways[0].Ports) != 1 || cfg.Gateways[0].Ports[0].Number != g.q.Gateway {
			t.Errorf("/config gateways = %+v, want infra/public on port %d", cfg.Gateways, g.q.Gateway)
		}
		want := map[string]int{"backend/shop/web": g.q.Web, "backend/shop/api-v1": g.q.APIv1, "backend/shop/api-v2": g.q.APIv2}
		got := map[string]int{}
		for _, c := range cfg.Clusters {
			if len(c.Endpoints) != 1 || c.Endpoints[0].Address != "127.0.0.1" {
				t.Errorf("cluster %s endpoints %+v, want one on 127.0.0.1", c.Name, c.Endpoints)
				continue
			}
			got[c.Name] = c.Endpoints[0].Port
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("/config clusters (name: port) = %v, want %v", got, want)
		}
	})

	t.Run("status is ready with every object accepted", func(t *testing.T) {
		doc := g.status(t)
		if !doc.Ready || doc.AppliedAt == nil || len(doc.Errors) != 0 || doc.Status == nil {
			t.Fatalf("/status ready=%v appliedAt=%v errors=%+v status present=%v", doc.Ready, doc.AppliedAt, doc.Errors, doc.Status != nil)
		}
		if len(doc.Status.Gateways) != 1 {
			t.Fatalf("/status has %d gateways, want 1", len(doc.Status.Gateways))
		}
		gw := doc.Status.Gateways[0]
		if gw.Namespace+"/"+gw.Name != "infra/public" ||
			conditionStatus(gw.Status.Conditions, "Accepted") != "True" ||
			conditionStatus(gw.Status.Conditions, "Programmed") != "True" {
			t.Errorf("gateway %s/%s conditions %+v, want Accepted and Programmed True", gw.Namespace, gw.Name, gw.Status.Conditions)
		}
		if len(gw.Status.Listeners) != 1 || gw.Status.Listeners[0].AttachedRoutes != 2 {
			t.Errorf("listeners %+v, want one with 2 attached routes", gw.Status.Listeners)
		}
		routes := map[string]bool{}
		for _, r := range doc.Status.Routes {
			name := r.Kind + " " + r.Namespace + "/" + r.Name
			routes[name] = true
			for _, p := range r.Status.Parents {
				if conditionStatus(p.Conditions, "Accepted") != "True" || conditionStatus(p.Conditions, "ResolvedRefs") != "True" {
					t.Errorf("%s conditions %+v, want Accepted and ResolvedRefs True", name, p.Conditions)
				}
			}
		}
		if !routes["HTTPRoute shop/shop"] || !routes["HTTPRoute shop/api-canary"] || len(routes) != 2 {
			t.Errorf("/status routes %v, want HTTPRoutes shop/shop and shop/api-canary", routes)
		}
	})

	t.Run("portico status exits 0", func(t *testing.T) {
		code, out, errOut := runPortico(t, "status", "--admin-address", g.admin)
		if code != 0 {
			t.Fatalf("portico status: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		for _, want := range []string{"Config applied at", "infra/public", "HTTPRoute shop/shop", "HTTPRoute shop/api-canary"} {
			if !strings.Contains(out, want) {
				t.Errorf("portico status output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "ERROR") {
			t.Errorf("portico status reports an error:\n%s", out)
		}
	})
}

// --net-http1 swaps the lean HTTP/1.1 loop for net/http's server; traffic flows the same.
func TestQuickstartWithNetHTTP1(t *testing.T) {
	t.Parallel()
	g := startGateway(t, quickstartPorts{}, "--echo-backends", "--net-http1")
	for path, want := range map[string]string{"/": "shop/web", "/api/orders": "shop/api-v1"} {
		reply, err := fetchEcho(g.client, g.url+path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if reply.Name != want {
			t.Errorf("GET %s went to %s, want %s", path, reply.Name, want)
		}
	}
}
