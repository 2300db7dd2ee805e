package router

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/portico-gw/portico/internal/ir"
)

// benchRequest is a request prepared before the timer, with its host already normalised
// (the proxy calls NormalizeHost once and passes the result to both lookups).
type benchRequest struct {
	host string
	req  *http.Request
}

const benchRoutes = 10_000

// manyVHosts is shape (a): one virtual host per hostname (app-N.example.com), each with
// a header-matched /api prefix and a "/" prefix, on a "*.example.com" listener next to
// a hostname-less one.
func manyVHosts(n int) []ir.Listener {
	vhosts := make([]ir.VirtualHost, n)
	for i := range vhosts {
		name := fmt.Sprintf("app-%d", i)
		vhosts[i] = virtualHost(name+".example.com",
			route(name+"/api", prefixPath("/api"), withHeaders(exactMatch("X-Canary", "true"))),
			route(name+"/root", prefixPath("/")),
		)
	}
	return []ir.Listener{
		listener("public", "*.example.com", vhosts...),
		listener("default", "", virtualHost("*", route("default/root", prefixPath("/")))),
	}
}

func manyVHostsRequests(rng *rand.Rand, n int) []benchRequest {
	out := make([]benchRequest, 1024)
	for i := range out {
		host := fmt.Sprintf("app-%d.example.com", rng.IntN(n))
		var r *http.Request
		switch i % 8 {
		case 0, 1, 2:
			r = newReq("GET", "http://"+host+"/api/v1/items/42", "X-Canary", "true")
		case 3:
			r = newReq("POST", "http://"+host+"/api/v1/items", "X-Canary", "false") // header miss: falls to "/"
		case 4:
			r = newReq("GET", "http://"+host+"/")
		case 5:
			r = newReq("GET", "http://"+host+"/static/js/app.3f9a.js")
		case 6:
			r = newReq("GET", "http://"+host+"/api") // no header
		case 7:
			host = "unknown.example.com" // listener found, no virtual host: 404
			r = newReq("GET", "http://"+host+"/api/v1/items/42")
		}
		out[i] = benchRequest{host: NormalizeHost(r.Host), req: r}
	}
	return out
}

// manyRoutes is shape (b): one virtual host with n routes, n/5 exact paths and the rest
// prefixes of depth 1 to 4 (/svc-N, /svc-N/v1, /svc-N/v1/users, /svc-N/v1/users/admin),
// in the translator's precedence order.
func manyRoutes(n int) []ir.Route {
	services := n / 5
	routes := make([]ir.Route, 0, n)
	for s := range services {
		routes = append(routes, route(fmt.Sprintf("svc-%d/status", s), exactPath(fmt.Sprintf("/svc-%d/v1/status", s))))
	}
	for s := range services {
		for _, p := range []string{"", "/v1", "/v1/users", "/v1/users/admin"} {
			routes = append(routes, route(fmt.Sprintf("svc-%d%s", s, p), prefixPath(fmt.Sprintf("/svc-%d%s", s, p))))
		}
	}
	sortByPrecedence(routes)
	return routes
}

func manyRoutesRequests(rng *rand.Rand, n int) []benchRequest {
	services := n / 5
	paths := []string{
		"/svc-%d/v1/status",                 // exact
		"/svc-%d/v1/users/admin/settings/7", // deepest prefix
		"/svc-%d/v1/users?page=2",           // depth 3
		"/svc-%d/v1/orders/9",               // depth 2
		"/svc-%d/v2/orders",                 // depth 1
		"/svc-%d",                           // depth 1, whole path
		"/svc-%d/v1/users/admin",            // depth 4, whole path
		"/unknown-%d/x/y",                   // no route: 404
	}
	out := make([]benchRequest, 1024)
	for i := range out {
		r := newReq("GET", "http://api.example.com"+fmt.Sprintf(paths[i%len(paths)], rng.IntN(services)))
		out[i] = benchRequest{host: NormalizeHost(r.Host), req: r}
	}
	return out
}

var benchSink *Route[string]

func runLookups(b *testing.B, tbl *Table[string], reqs []benchRequest, wantHits int) {
	b.Helper()
	hits := 0
	for _, br := range reqs {
		if l := tbl.Listener(br.host); l != nil && l.Route(br.host, br.req) != nil {
			hits++
		}
	}
	if hits != wantHits {
		b.Fatalf("setup: %d of %d prepared requests find a route, want %d", hits, len(reqs), wantHits)
	}
	b.ReportAllocs()
	var rt *Route[string]
	for i := 0; b.Loop(); i++ {
		br := &reqs[i&(len(reqs)-1)]
		if l := tbl.Listener(br.host); l != nil {
			rt = l.Route(br.host, br.req)
		}
	}
	benchSink = rt
}

// BenchmarkLookup measures Table.Listener + Listener.Route per request. The first two
// sub-benchmarks are the reference shapes (10,000 virtual hosts of 2 routes; one virtual
// host of 10,000 routes); the others show the cost of paths those shapes do not take.
func BenchmarkLookup(b *testing.B) {
	b.Run("vhosts=10000", func(b *testing.B) {
		tbl := compile(b, manyVHosts(benchRoutes)...)
		runLookups(b, tbl, manyVHostsRequests(rand.New(rand.NewPCG(1, 2)), benchRoutes), 1024*7/8)
	})
	b.Run("routes=10000", func(b *testing.B) {
		tbl := compile(b, listener("api", "api.example.com", virtualHost("api.example.com", manyRoutes(benchRoutes)...)))
		if !tbl.Listener("api.example.com").exact["api.example.com"].indexed {
			b.Fatal("setup: virtual host is not indexed")
		}
		runLookups(b, tbl, manyRoutesRequests(rand.New(rand.NewPCG(3, 4)), benchRoutes), 1024*7/8)
	})

	// The proxy's full host handling: NormalizeHost on a Host header with a port.
	b.Run("vhosts=10000+NormalizeHost", func(b *testing.B) {
		tbl := compile(b, manyVHosts(benchRoutes)...)
		reqs := manyVHostsRequests(rand.New(rand.NewPCG(1, 2)), benchRoutes)
		for i := range reqs {
			reqs[i].req.Host += ":8080"
		}
		b.ReportAllocs()
		var rt *Route[string]
		for i := 0; b.Loop(); i++ {
			r := reqs[i&(len(reqs)-1)].req
			host := NormalizeHost(r.Host)
			if l := tbl.Listener(host); l != nil {
				rt = l.Route(host, r)
			}
		}
		benchSink = rt
	})
	// Wildcard virtual hosts are scanned in order: 10,000 "*.app-N.example.com" hosts.
	b.Run("wildcard-vhosts=10000", func(b *testing.B) {
		vhosts := make([]ir.VirtualHost, benchRoutes)
		for i := range vhosts {
			vhosts[i] = virtualHost(fmt.Sprintf("*.app-%d.example.com", i), route(fmt.Sprintf("app-%d", i), prefixPath("/")))
		}
		tbl := compile(b, listener("public", "", vhosts...))
		rng := rand.New(rand.NewPCG(5, 6))
		reqs := make([]benchRequest, 1024)
		for i := range reqs {
			r := newReq("GET", fmt.Sprintf("http://www.app-%d.example.com/", rng.IntN(benchRoutes)))
			reqs[i] = benchRequest{host: NormalizeHost(r.Host), req: r}
		}
		runLookups(b, tbl, reqs, 1024)
	})
	// The same 10,000 routes behind one prefix that breaks the grouping: linear scan.
	b.Run("unindexed-routes=10000", func(b *testing.B) {
		routes := append([]ir.Route{route("breaker", prefixPath("/zz"))}, manyRoutes(benchRoutes)...)
		tbl := compile(b, listener("api", "api.example.com", virtualHost("api.example.com", routes...)))
		if tbl.Listener("api.example.com").exact["api.example.com"].indexed {
			b.Fatal("setup: virtual host is indexed")
		}
		runLookups(b, tbl, manyRoutesRequests(rand.New(rand.NewPCG(3, 4)), benchRoutes), 1024*7/8)
	})
}
