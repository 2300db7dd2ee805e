package dataplane

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

// lfVHostConfig serves one catch-all listener whose virtual host "*" holds routes.
func lfVHostConfig(port uint32, clusters []ir.Cluster, routes ...ir.Route) *ir.Config {
	return lfHTTPConfig(port, clusters, lfHTTPListener("default/gw/http", "", "*", routes...))
}

// lfWith returns r after applying edit, for building route tables inline.
func lfWith(r ir.Route, edit func(*ir.Route)) ir.Route {
	edit(&r)
	return r
}

// TestFilterRequestHeaders follows the conformance test HTTPRouteRequestHeaderModifier.
func TestFilterRequestHeaders(t *testing.T) {
	b := lfEcho(t, "app", nil)
	port := freePort(t)
	lfStart(t, lfVHostConfig(port, lfClusters(b),
		lfWith(lfPrefix("set", "/set", "app"), func(r *ir.Route) {
			r.RequestHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "X-Header-Set", Value: "set-overwrites-values"}}}
		}),
		lfWith(lfPrefix("add", "/add", "app"), func(r *ir.Route) {
			r.RequestHeaders = &ir.HeaderModifier{Add: []ir.Header{{Name: "X-Header-Add", Value: "add-appends-values"}}}
		}),
		lfWith(lfPrefix("remove", "/remove", "app"), func(r *ir.Route) {
			r.RequestHeaders = &ir.HeaderModifier{Remove: []string{"X-Header-Remove"}}
		}),
		lfWith(lfPrefix("case", "/case-insensitivity", "app"), func(r *ir.Route) {
			r.RequestHeaders = &ir.HeaderModifier{
				Set:    []ir.Header{{Name: "x-header-set", Value: "header-set"}},
				Add:    []ir.Header{{Name: "X-header-ADD", Value: "header-add"}, {Name: "x-lowercase-add", Value: "lowercase-add"}},
				Remove: []string{"X-HEADER-REMOVE"},
			}
		}),
	))
	c := lfClient(t)
	for _, tc := range []struct {
		path   string
		send   map[string]string
		want   map[string]string // joined with ","
		absent []string
	}{
		{"/set", map[string]string{"Some-Other-Header": "val"}, map[string]string{"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"}, nil},
		{"/set", map[string]string{"X-Header-Set": "some-other-value"}, map[string]string{"X-Header-Set": "set-overwrites-values"}, nil},
		{"/add", map[string]string{"Some-Other-Header": "val"}, map[string]string{"X-Header-Add": "add-appends-values"}, nil},
		{"/add", map[string]string{"X-Header-Add": "some-other-value"}, map[string]string{"X-Header-Add": "some-other-value,add-appends-values"}, nil},
		{"/remove", map[string]string{"X-Header-Remove": "val", "Keep": "me"}, map[string]string{"Keep": "me"}, []string{"X-Header-Remove"}},
		{"/case-insensitivity", map[string]string{"x-header-set": "original-val-set", "x-header-add": "original-val-add", "x-header-remove": "original-val-remove"},
			map[string]string{"X-Header-Set": "header-set", "X-Header-Add": "original-val-add,header-add", "X-Lowercase-Add": "lowercase-add"}, []string{"X-Header-Remove"}},
	} {
		resp, body := lfDo(t, c, "GET", lfBase(port)+tc.path, "", tc.send)
		s := lfDecode(t, resp, body)
		for k, v := range tc.want {
			if got := strings.Join(s.Header.Values(k), ","); got != v {
				t.Errorf("%s: backend saw %s %q, want %q", tc.path, k, got, v)
			}
		}
		for _, k := range tc.absent {
			if _, ok := s.Header[k]; ok {
				t.Errorf("%s: backend saw removed header %s", tc.path, k)
			}
		}
	}
}

// TestFilterResponseHeaders follows the conformance test
// HTTPRouteResponseHeaderModifier: the backend's headers are set, added to and removed.
func TestFilterResponseHeaders(t *testing.T) {
	// The backend answers with the headers the request asks for in X-Echo-<name>.
	b := lfEcho(t, "app", func(w http.ResponseWriter, r *http.Request) bool {
		for k, v := range r.Header {
			if name, ok := strings.CutPrefix(k, "X-Echo-"); ok {
				w.Header()[http.CanonicalHeaderKey(name)] = v
			}
		}
		return false
	})
	port := freePort(t)
	lfStart(t, lfVHostConfig(port, lfClusters(b),
		lfWith(lfPrefix("multiple", "/multiple", "app"), func(r *ir.Route) {
			r.ResponseHeaders = &ir.HeaderModifier{
				Set:    []ir.Header{{Name: "X-Header-Set-1", Value: "header-set-1"}, {Name: "X-Header-Set-2", Value: "header-set-2"}},
				Add:    []ir.Header{{Name: "X-Header-Add-1", Value: "header-add-1"}, {Name: "X-Header-Add-2", Value: "header-add-2"}, {Name: "X-Header-Add-3", Value: "header-add-3"}},
				Remove: []string{"X-Header-Remove-1", "x-header-remove-2"},
			}
		}),
		// A rule-level and a backend-level modifier both apply.
		lfWith(lfPrefix("backend", "/backend", "app"), func(r *ir.Route) {
			r.ResponseHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "X-Route", Value: "route"}}}
			r.Backends[0].ResponseHeaders = &ir.HeaderModifier{Add: []ir.Header{{Name: "X-Backend-Filter", Value: "backend"}}, Remove: []string{"X-Backend"}}
		}),
	))
	c := lfClient(t)
	resp, _ := lfDo(t, c, "GET", lfBase(port)+"/multiple", "", map[string]string{
		"X-Echo-X-Header-Set-2": "set-val-2", "X-Echo-X-Header-Add-2": "add-val-2", "X-Echo-X-Header-Remove-2": "remove-val-2",
		"X-Echo-Another-Header": "another-header-val", "X-Echo-X-Header-Remove-1": "val",
	})
	want := map[string]string{
		"X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2", "X-Header-Add-1": "header-add-1",
		"X-Header-Add-2": "add-val-2,header-add-2", "X-Header-Add-3": "header-add-3", "Another-Header": "another-header-val",
	}
	for k, v := range want {
		if got := strings.Join(resp.Header.Values(k), ","); got != v {
			t.Errorf("/multiple: %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"X-Header-Remove-1", "X-Header-Remove-2"} {
		if _, ok := resp.Header[k]; ok {
			t.Errorf("/multiple: removed header %s present", k)
		}
	}
	resp, _ = lfDo(t, c, "GET", lfBase(port)+"/backend", "", nil)
	if resp.Header.Get("X-Route") != "route" || resp.Header.Get("X-Backend-Filter") != "backend" || resp.Header.Get("X-Backend") != "" {
		t.Errorf("/backend: headers %v", resp.Header)
	}
}

// TestFilterRedirect sends real requests to HTTP and HTTPS listeners on ports other
// than 80/443 and checks the Location and status of every kind of redirect.
func TestFilterRedirect(t *testing.T) {
	ca := lfNewCA(t)
	httpPort, tlsPort := freePort(t), freePort(t)
	hp, tp := strconv.Itoa(int(httpPort)), strconv.Itoa(int(tlsPort))
	redirect := func(name, prefix string, rd ir.Redirect) ir.Route {
		if rd.StatusCode == 0 {
			rd.StatusCode = 302
		}
		return ir.Route{Name: name, Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: prefix}}, Redirect: &rd}
	}
	routes := []ir.Route{
		redirect("nil-nil", "/nil-nil", ir.Redirect{}),
		redirect("port-80", "/port-80", ir.Redirect{Port: 80}),
		redirect("port-8080", "/port-8080", ir.Redirect{Port: 8080}),
		redirect("https-nil", "/https-nil", ir.Redirect{Scheme: "https"}),
		redirect("https-443", "/https-443", ir.Redirect{Scheme: "https", Port: 443}),
		redirect("https-8443", "/https-8443", ir.Redirect{Scheme: "https", Port: 8443}),
		redirect("http-nil", "/http-nil", ir.Redirect{Scheme: "http"}),
		redirect("host", "/host", ir.Redirect{Hostname: "example.net"}),
		redirect("full", "/full", ir.Redirect{Path: &ir.PathModifier{Type: ir.FullPath, Value: "/new"}}),
		redirect("prefix", "/original-prefix", ir.Redirect{Path: &ir.PathModifier{Type: ir.PrefixPath, Value: "/replacement-prefix"}}),
		redirect("strip", "/strip", ir.Redirect{Path: &ir.PathModifier{Type: ir.PrefixPath, Value: ""}}),
		redirect("s301", "/s301", ir.Redirect{StatusCode: 301}),
		redirect("s302", "/s302", ir.Redirect{StatusCode: 302}),
		redirect("s303", "/s303", ir.Redirect{StatusCode: 303}),
		redirect("s307", "/s307", ir.Redirect{StatusCode: 307}),
		lfWith(redirect("s308", "/s308", ir.Redirect{StatusCode: 308, Scheme: "https", Hostname: "example.net", Port: 8443}), func(r *ir.Route) {
			r.ResponseHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "X-Redirected", Value: "yes"}}}
		}),
	}
	cfg := &ir.Config{Gateways: []ir.Gateway{{Name: "default/gw", Addresses: []string{"127.0.0.1"}, Ports: []ir.Port{
		{Number: httpPort, Protocol: ir.ProtocolHTTP, Listeners: []ir.Listener{lfHTTPListener("gw/http", "", "*", routes...)}},
		{Number: tlsPort, Protocol: ir.ProtocolTLS, Listeners: []ir.Listener{
			lfHTTPSListener("gw/https", "", []ir.Certificate{ca.leaf(t, "org", false, "example.org")}, routes...)}},
	}}}}
	lfStart(t, cfg)

	for _, tc := range []struct {
		tls      bool
		host     string
		path     string
		status   int
		location string
	}{
		{false, "example.org", "/nil-nil", 302, "http://example.org:" + hp + "/nil-nil"},
		{false, "example.org:" + hp, "/nil-nil/a?q=1&r=%2F", 302, "http://example.org:" + hp + "/nil-nil/a?q=1&r=%2F"},
		{false, "example.org", "/port-80", 302, "http://example.org/port-80"},
		{false, "example.org", "/port-8080", 302, "http://example.org:8080/port-8080"},
		{false, "example.org", "/https-nil", 302, "https://example.org/https-nil"},
		{false, "example.org:" + hp, "/https-nil", 302, "https://example.org/https-nil"},
		{false, "example.org", "/https-443", 302, "https://example.org/https-443"},
		{false, "example.org", "/https-8443", 302, "https://example.org:8443/https-8443"},
		{false, "example.org", "/http-nil", 302, "http://example.org/http-nil"}, // the scheme's well-known port
		{false, "example.org", "/host/x", 302, "http://example.net:" + hp + "/host/x"},
		{false, "example.org", "/full/a/b?x=y", 302, "http://example.org:" + hp + "/new?x=y"},
		{false, "example.org", "/original-prefix/lemon", 302, "http://example.org:" + hp + "/replacement-prefix/lemon"},
		{false, "example.org", "/original-prefix", 302, "http://example.org:" + hp + "/replacement-prefix"},
		{false, "example.org", "/strip/a", 302, "http://example.org:" + hp + "/a"},
		{false, "example.org", "/https-nil/a%2Fb", 302, "https://example.org/https-nil/a%2Fb"},
		{false, "example.org", "/s301", 301, "http://example.org:" + hp + "/s301"},
		{false, "example.org", "/s302", 302, "http://example.org:" + hp + "/s302"},
		{false, "example.org", "/s303", 303, "http://example.org:" + hp + "/s303"},
		{false, "example.org", "/s307", 307, "http://example.org:" + hp + "/s307"},
		{false, "example.org", "/s308", 308, "https://example.net:8443/s308"},
		{true, "example.org", "/nil-nil", 302, "https://example.org:" + tp + "/nil-nil"},
		{true, "example.org", "/http-nil", 302, "http://example.org/http-nil"},
		{true, "example.org", "/port-80", 302, "https://example.org:80/port-80"},
		{true, "example.org", "/https-nil", 302, "https://example.org/https-nil"},
	} {
		var c *http.Client
		url := lfBase(httpPort) + tc.path
		if tc.tls {
			c = lfTLSClient(t, ca.pool, "example.org", "h2")
			url = lfTLSBase(tlsPort) + tc.path
		} else {
			c = lfClient(t)
		}
		resp, body := lfDo(t, c, "GET", url, tc.host, nil)
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s%s: %d Location %q (%q), want %d %q", tc.host, tc.path, resp.StatusCode, resp.Header.Get("Location"), body, tc.status, tc.location)
		}
		if tc.path == "/s308" && resp.Header.Get("X-Redirected") != "yes" {
			t.Errorf("/s308: response header filter not applied to the redirect: %v", resp.Header)
		}
	}
}

// TestFilterRewrite checks host and path rewrites as the backend sees them, with the
// Gateway API's ReplacePrefixMatch examples (one virtual host per replacement) and the
// conformance HTTPRouteRewritePath and HTTPRouteRewriteHost cases.
func TestFilterRewrite(t *testing.T) {
	b := lfEcho(t, "app", nil)
	port := freePort(t)
	rewrite := func(name, prefix string, rw ir.Rewrite) ir.Route {
		return lfWith(lfPrefix(name, prefix, "app"), func(r *ir.Route) { r.Rewrite = &rw })
	}
	prefix := func(v string) ir.Rewrite {
		return ir.Rewrite{Path: &ir.PathModifier{Type: ir.PrefixPath, Value: v}}
	}
	vhost := func(host string, routes ...ir.Route) ir.VirtualHost {
		return ir.VirtualHost{Hostname: host, Routes: routes}
	}
	l := ir.Listener{Name: "gw/http", Protocol: ir.ProtocolHTTP, VirtualHosts: []ir.VirtualHost{
		vhost("xyz.test", rewrite("xyz", "/foo", prefix("/xyz"))),
		vhost("xyz-slash.test", rewrite("xyz-slash", "/foo", prefix("/xyz/"))),
		vhost("empty.test", rewrite("empty", "/foo", prefix(""))),
		vhost("slash.test", rewrite("slash", "/foo", prefix("/"))),
		vhost("*", // conformance
			rewrite("prefix-one", "/prefix/one", prefix("/one")),
			rewrite("strip", "/strip-prefix", prefix("/")),
			rewrite("full", "/full/one", ir.Rewrite{Path: &ir.PathModifier{Type: ir.FullPath, Value: "/one"}}),
			lfWith(rewrite("full-headers", "/full/rewrite-path-and-modify-headers", ir.Rewrite{Path: &ir.PathModifier{Type: ir.FullPath, Value: "/test"}}), func(r *ir.Route) {
				r.RequestHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "X-Header-Set", Value: "set-overwrites-values"}}, Remove: []string{"X-Header-Remove"}}
			}),
			rewrite("host", "/rewrite-host", ir.Rewrite{Hostname: "one.example.org"}),
			rewrite("host-and-path", "/host-and-path", ir.Rewrite{Hostname: "two.example.org", Path: &ir.PathModifier{Type: ir.PrefixPath, Value: "/v2"}}),
		),
	}}
	lfStart(t, lfHTTPConfig(port, lfClusters(b), l))
	c := lfClient(t)
	for _, tc := range []struct {
		host, path         string
		wantHost, wantPath string
		wantQuery          string
	}{
		{"xyz.test", "/foo/bar", "", "/xyz/bar", ""},
		{"xyz-slash.test", "/foo/bar", "", "/xyz/bar", ""},
		{"xyz.test", "/foo", "", "/xyz", ""},
		{"xyz.test", "/foo/", "", "/xyz/", ""},
		{"empty.test", "/foo/bar", "", "/bar", ""},
		{"empty.test", "/foo/", "", "/", ""},
		{"empty.test", "/foo", "", "/", ""},
		{"slash.test", "/foo/", "", "/", ""},
		{"slash.test", "/foo", "", "/", ""},
		{"slash.test", "/foo/bar?a=b", "", "/bar", "a=b"},
		{"xyz.test", "/foo/a%2Fb", "", "/xyz/a%2Fb", ""}, // escapes reach the backend as sent
		{"gw.test", "/prefix/one/two", "", "/one/two", ""},
		{"gw.test", "/strip-prefix/three", "", "/three", ""},
		{"gw.test", "/strip-prefix", "", "/", ""},
		{"gw.test", "/full/one/two?x=1", "", "/one", "x=1"},
		{"gw.test", "/full/rewrite-path-and-modify-headers/test", "", "/test", ""},
		{"gw.test", "/rewrite-host/x", "one.example.org", "/rewrite-host/x", ""},
		{"gw.test", "/host-and-path/users", "two.example.org", "/v2/users", ""},
	} {
		resp, body := lfDo(t, c, "GET", lfBase(port)+tc.path, tc.host, map[string]string{"X-Header-Remove": "x"})
		s := lfDecode(t, resp, body)
		wantHost := tc.wantHost
		if wantHost == "" {
			wantHost = tc.host
		}
		gotPath := s.Path
		if s.RawPath != "" {
			gotPath = s.RawPath
		}
		if s.Host != wantHost || gotPath != tc.wantPath || s.RawQuery != tc.wantQuery {
			t.Errorf("%s%s: backend saw host %q path %q query %q, want %q %q %q", tc.host, tc.path, s.Host, gotPath, s.RawQuery, wantHost, tc.wantPath, tc.wantQuery)
		}
		if tc.path == "/full/rewrite-path-and-modify-headers/test" && (s.Header.Get("X-Header-Set") != "set-overwrites-values" || s.Header.Get("X-Header-Remove") != "") {
			t.Errorf("rewrite with header modifier: backend saw %v", s.Header)
		}
	}
}

// TestFilterMirror: the mirror receives a copy of the request (method, path, headers,
// body), the client gets the primary backend's answer.
func TestFilterMirror(t *testing.T) {
	primary, mirror := lfEcho(t, "primary", nil), lfEcho(t, "mirror", nil)
	port := freePort(t)
	lfStart(t, lfVHostConfig(port, lfClusters(primary, mirror),
		lfWith(lfPrefix("mirror", "/mirror", "primary"), func(r *ir.Route) {
			r.Mirrors = []ir.Mirror{{Cluster: "mirror", Numerator: 1, Denominator: 1}}
		})))
	req, _ := http.NewRequest("POST", lfBase(port)+"/mirror/a?id=1", strings.NewReader("payload"))
	req.Host = "shop.example.com"
	req.Header.Set("X-Custom", "v")
	resp, err := lfClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s := lfDecode(t, resp, string(body))
	if s.Backend != "primary" || s.Body != "payload" {
		t.Fatalf("client got %+v", s)
	}
	m := mirror.waitFor(t, 1)[0]
	if m.Method != "POST" || m.Path != "/mirror/a" || m.RawQuery != "id=1" || m.Host != "shop.example.com" || m.Body != "payload" || m.Header.Get("X-Custom") != "v" {
		t.Fatalf("mirror saw %+v", m)
	}
	if m.Header.Get("X-Request-Id") != s.Header.Get("X-Request-Id") || m.Header.Get("X-Request-Id") == "" {
		t.Errorf("mirror request id %q, primary %q", m.Header.Get("X-Request-Id"), s.Header.Get("X-Request-Id"))
	}
}

// TestFilterMirrorNeverAffectsClient: a mirror that hangs, one that fails with 500 and
// one that cannot be reached leave the client's answer unchanged, and the client gets
// it while the hanging mirror is still holding its copy.
func TestFilterMirrorNeverAffectsClient(t *testing.T) {
	slow := holdingBackend(t, "slow")
	failing := lfEcho(t, "failing", func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "mirror broke", http.StatusInternalServerError)
		return true
	})
	primary := lfEcho(t, "primary", nil)
	unreachable := ir.Cluster{Name: "unreachable", Protocol: ir.UpstreamHTTP1, Endpoints: []ir.Endpoint{{Address: "127.0.0.1", Port: freePort(t)}}}
	port := freePort(t)
	lfStart(t, lfVHostConfig(port, append(lfClusters(primary, slow, failing), unreachable),
		lfWith(lfPrefix("mirrored", "/", "primary"), func(r *ir.Route) {
			r.Mirrors = []ir.Mirror{
				{Cluster: "slow", Numerator: 1, Denominator: 1},
				{Cluster: "failing", Numerator: 1, Denominator: 1},
				{Cluster: "unreachable", Numerator: 1, Denominator: 1},
			}
		})))
	c := lfClient(t)
	const n = 5
	for i := range n {
		resp, body := lfDo(t, c, "GET", lfBase(port)+"/r/"+strconv.Itoa(i), "", nil)
		if s := lfDecode(t, resp, body); s.Backend != "primary" {
			t.Fatalf("request %d answered by %s", i, s.Backend)
		}
	}
	// Every answer above arrived while the slow mirror still held its copies (it is only
	// released when the test ends), so mirrors are off the client's path.
	slow.waitFor(t, n)
	failing.waitFor(t, n)
}

// TestFilterMirrorSaturation: with the mirror hanging, mirror copies beyond the
// in-flight bound are dropped, never queued, and every client request is answered.
func TestFilterMirrorSaturation(t *testing.T) {
	slow := holdingBackend(t, "slow")
	primary := lfEcho(t, "primary", nil)
	port := freePort(t)
	lfStart(t, lfVHostConfig(port, lfClusters(primary, slow),
		lfWith(lfPrefix("mirrored", "/", "primary"), func(r *ir.Route) {
			r.Mirrors = []ir.Mirror{{Cluster: "slow", Numerator: 1, Denominator: 1}}
		})))
	c := lfClient(t)
	const requests, inFlight = 300, 256 // inFlight: proxy.Handler's mirror bound
	for i := range requests {
		resp, body := lfDo(t, c, "GET", lfBase(port)+"/r/"+strconv.Itoa(i), "", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if got := len(slow.waitFor(t, inFlight)); got != inFlight {
		t.Fatalf("hanging mirror holds %d copies, want %d", got, inFlight)
	}
}

// TestFilterMirrorPercentage: a 50% mirror gets exactly every second request (the
// fraction is spread by a deterministic counter), identified by request id.
func TestFilterMirrorPercentage(t *testing.T) {
	primary, half, all := lfEcho(t, "primary", nil), lfEcho(t, "half", nil), lfEcho(t, "all", nil)
	port := freePort(t)
	lfStart(t, lfVHostConfig(port, lfClusters(primary, half, all),
		lfWith(lfPrefix("mirrored", "/", "primary"), func(r *ir.Route) {
			r.Mirrors = []ir.Mirror{{Cluster: "half", Numerator: 50, Denominator: 100}, {Cluster: "all", Numerator: 1, Denominator: 1}}
		})))
	c := lfClient(t)
	const n = 100
	var want []string
	for i := range n {
		id := "req-" + strconv.Itoa(i)
		resp, body := lfDo(t, c, "GET", lfBase(port)+"/p", "", map[string]string{"X-Request-Id": id})
		lfDecode(t, resp, body)
		if i%2 == 1 {
			want = append(want, id)
		}
	}
	// The 100% mirror is a second, independent mirror of the same route: it sees all.
	if got := len(all.waitFor(t, n)); got != n {
		t.Errorf("100%% mirror saw %d of %d", got, n)
	}
	var got []string
	for _, s := range half.waitFor(t, n/2) {
		got = append(got, s.Header.Get("X-Request-Id"))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("50%% mirror saw %d requests %v, want exactly %v", len(got), got, want)
	}
}

// TestFilterWeightedBackends: weights 80/20 send exactly 8 of every 10 requests to the
// first backend, in every window of 10 (the deterministic counter spreads the picks).
func TestFilterWeightedBackends(t *testing.T) {
	a, b := lfEcho(t, "a", nil), lfEcho(t, "b", nil)
	port := freePort(t)
	lfStart(t, lfVHostConfig(port, lfClusters(a, b), ir.Route{
		Name: "weighted", Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}},
		Backends: []ir.Backend{
			{Cluster: "a", Weight: 80, RequestHeaders: &ir.HeaderModifier{Set: []ir.Header{{Name: "X-Chosen", Value: "a"}}}},
			{Cluster: "b", Weight: 20, RequestHeaders: &ir.HeaderModifier{Set: []ir.Header{{Name: "X-Chosen", Value: "b"}}}},
		},
	}))
	c := lfClient(t)
	for cycle := range 3 {
		count := map[string]int{}
		for range 10 {
			resp, body := lfDo(t, c, "GET", lfBase(port)+"/w", "", nil)
			s := lfDecode(t, resp, body)
			if s.Header.Get("X-Chosen") != s.Backend {
				t.Fatalf("backend %s got the request filters of %q", s.Backend, s.Header.Get("X-Chosen"))
			}
			count[s.Backend]++
		}
		if count["a"] != 8 || count["b"] != 2 {
			t.Errorf("cycle %d: a=%d b=%d, want 8 and 2", cycle, count["a"], count["b"])
		}
	}
}

// TestFilterInvalidBackends: the share of an invalid backend answers 500 (weights 1/1
// alternate 200 and 500); a cluster marked invalid answers 500; zero weights answer 500.
func TestFilterInvalidBackends(t *testing.T) {
	a := lfEcho(t, "a", nil)
	port := freePort(t)
	bad := a.cluster()
	bad.Name, bad.Invalid = "bad-tls", "BackendTLSPolicy CA cannot be loaded"
	lfStart(t, lfVHostConfig(port, append(lfClusters(a), bad),
		ir.Route{Name: "half", Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/half"}},
			Backends: []ir.Backend{{Cluster: "a", Weight: 1}, {Weight: 1, Invalid: "service default/missing not found"}}},
		ir.Route{Name: "invalid-cluster", Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/invalid-cluster"}},
			Backends: []ir.Backend{{Cluster: "bad-tls", Weight: 1}}},
		ir.Route{Name: "zero", Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/zero"}},
			Backends: []ir.Backend{{Cluster: "a", Weight: 0}}},
	))
	c := lfClient(t)
	var got []int
	for range 6 {
		resp, _ := lfDo(t, c, "GET", lfBase(port)+"/half", "", nil)
		got = append(got, resp.StatusCode)
	}
	if !slices.Equal(got, []int{200, 500, 200, 500, 200, 500}) {
		t.Errorf("1/1 with one invalid backend: %v, want alternating 200/500", got)
	}
	if n := len(a.requests()); n != 3 {
		t.Errorf("valid backend saw %d requests, want 3", n)
	}
	for _, p := range []string{"/invalid-cluster", "/zero"} {
		if resp, body := lfDo(t, c, "GET", lfBase(port)+p, "", nil); resp.StatusCode != 500 {
			t.Errorf("%s: %d %q, want 500", p, resp.StatusCode, body)
		}
	}
	if n := len(a.requests()); n != 3 {
		t.Errorf("valid backend saw %d requests after the invalid routes, want 3", n)
	}
}

// TestFilterDirectResponse: a direct response answers with its status and exactly its
// body, with the route's response headers, and never reaches a backend.
func TestFilterDirectResponse(t *testing.T) {
	a := lfEcho(t, "a", nil)
	port := freePort(t)
	lfStart(t, lfVHostConfig(port, lfClusters(a),
		ir.Route{Name: "direct", Match: ir.Match{Path: ir.PathMatch{Type: ir.PathExact, Value: "/direct"}},
			DirectResponse:  &ir.DirectResponse{StatusCode: 500, Body: "filter not available"},
			ResponseHeaders: &ir.HeaderModifier{Set: []ir.Header{{Name: "X-Direct", Value: "yes"}}},
			Backends:        []ir.Backend{{Cluster: "a", Weight: 1}}},
		ir.Route{Name: "teapot", Match: ir.Match{Path: ir.PathMatch{Type: ir.PathExact, Value: "/teapot"}},
			DirectResponse: &ir.DirectResponse{StatusCode: 418}},
	))
	c := lfClient(t)
	resp, body := lfDo(t, c, "GET", lfBase(port)+"/direct", "", nil)
	if resp.StatusCode != 500 || body != "filter not available" || resp.Header.Get("X-Direct") != "yes" {
		t.Errorf("/direct: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = lfDo(t, c, "GET", lfBase(port)+"/teapot", "", nil)
	if resp.StatusCode != 418 || body != "" {
		t.Errorf("/teapot: %d %q", resp.StatusCode, body)
	}
	if n := len(a.requests()); n != 0 {
		t.Errorf("backend saw %d requests", n)
	}
}

// TestFilterNoRoute: 404 when no route matches (path, method, header).
func TestFilterNoRoute(t *testing.T) {
	a := lfEcho(t, "a", nil)
	port := freePort(t)
	lfStart(t, lfHTTPConfig(port, lfClusters(a), lfHTTPListener("gw/http", "", "only.example.com",
		lfWith(lfPrefix("api", "/api", "a"), func(r *ir.Route) {
			r.Match.Method = "GET"
			r.Match.Headers = []ir.StringMatch{{Name: "X-Version", Type: ir.MatchExact, Value: "2"}}
		}))))
	c := lfClient(t)
	for _, tc := range []struct {
		method, host, path string
		hdr                map[string]string
		status             int
	}{
		{"GET", "only.example.com", "/api", map[string]string{"X-Version": "2"}, 200},
		{"GET", "only.example.com", "/other", map[string]string{"X-Version": "2"}, 404},
		{"POST", "only.example.com", "/api", map[string]string{"X-Version": "2"}, 404},
		{"GET", "only.example.com", "/api", map[string]string{"X-Version": "1"}, 404},
		{"GET", "other.example.com", "/api", map[string]string{"X-Version": "2"}, 404},
	} {
		if resp, body := lfDo(t, c, tc.method, lfBase(port)+tc.path, tc.host, tc.hdr); resp.StatusCode != tc.status {
			t.Errorf("%s %s%s %v: %d %q, want %d", tc.method, tc.host, tc.path, tc.hdr, resp.StatusCode, body, tc.status)
		}
	}
}

// TestFilterCORS follows the conformance test HTTPRouteCORS through the data plane:
// preflights are answered by the gateway, simple requests reach the backend and get the
// CORS headers added to its response.
func TestFilterCORS(t *testing.T) {
	b := lfEcho(t, "app", func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("X-Header-3", "exposed")
		return false
	})
	port := freePort(t)
	cors := func(name, prefix string, c ir.CORS) ir.Route {
		return lfWith(lfPrefix(name, prefix, "app"), func(r *ir.Route) { r.CORS = &c })
	}
	lfStart(t, lfVHostConfig(port, lfClusters(b),
		cors("cors-1", "/cors-1", ir.CORS{
			AllowOrigins: []string{"https://www.foo.com", "https://*.bar.com"}, AllowMethods: []string{"GET", "OPTIONS"},
			AllowHeaders: []string{"x-header-1", "x-header-2"}, ExposeHeaders: []string{"x-header-3", "x-header-4"},
			AllowCredentials: true, MaxAgeSeconds: 3600,
		}),
		cors("cors-2", "/cors-2", ir.CORS{AllowOrigins: []string{"https://www.foo.com"}, AllowMethods: []string{"*"}, MaxAgeSeconds: 5}),
		cors("cors-wildcard-origin", "/cors-wildcard-origin", ir.CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"PUT"}, MaxAgeSeconds: 5}),
		cors("cors-wildcard-methods-headers-unauth", "/cors-wildcard-methods-headers-unauth", ir.CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"*"}, AllowHeaders: []string{"*"}, MaxAgeSeconds: 5}),
		cors("cors-wildcard-methods-headers", "/cors-wildcard-methods-headers", ir.CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"*"}, AllowHeaders: []string{"*"}, AllowCredentials: true, MaxAgeSeconds: 5}),
	))
	c := lfClient(t)
	type want map[string][]string // header -> acceptable values; nil: absent
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		status             int
		want               want
		backend            bool // the request reaches the backend
	}{
		{"preflight exact origin", "OPTIONS", "/cors-1",
			map[string]string{"Origin": "https://www.foo.com", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-header-1, x-header-2"}, 204,
			want{"Access-Control-Allow-Origin": {"https://www.foo.com"}, "Access-Control-Allow-Methods": {"GET, OPTIONS"},
				"Access-Control-Allow-Headers": {"x-header-1, x-header-2"}, "Access-Control-Expose-Headers": {"x-header-3, x-header-4"},
				"Access-Control-Max-Age": {"3600"}, "Access-Control-Allow-Credentials": {"true"}}, false},
		{"preflight wildcard origin", "OPTIONS", "/cors-1",
			map[string]string{"Origin": "https://xpto.www.bar.com", "Access-Control-Request-Method": "GET"}, 204,
			want{"Access-Control-Allow-Origin": {"https://xpto.www.bar.com"}, "Access-Control-Allow-Credentials": {"true"}}, false},
		{"preflight disallowed origin", "OPTIONS", "/cors-1",
			map[string]string{"Origin": "https://foobar.com", "Access-Control-Request-Method": "GET"}, 204,
			want{"Access-Control-Allow-Origin": nil, "Access-Control-Allow-Methods": nil, "Access-Control-Allow-Credentials": nil}, false},
		{"simple exact origin", "GET", "/cors-1", map[string]string{"Origin": "https://www.foo.com"}, 200,
			want{"Access-Control-Allow-Origin": {"https://www.foo.com"}, "Access-Control-Expose-Headers": {"x-header-3, x-header-4"},
				"Access-Control-Allow-Credentials": {"true"}, "X-Header-3": {"exposed"}}, true},
		{"simple wildcard origin", "GET", "/cors-1", map[string]string{"Origin": "https://www.bar.com"}, 200,
			want{"Access-Control-Allow-Origin": {"https://www.bar.com"}}, true},
		{"simple disallowed origin", "GET", "/cors-1", map[string]string{"Origin": "https://foobar.com"}, 200,
			want{"Access-Control-Allow-Origin": nil, "Access-Control-Expose-Headers": nil}, true},
		{"simple without origin", "GET", "/cors-1", nil, 200, want{"Access-Control-Allow-Origin": nil}, true},
		{"OPTIONS without preflight headers is forwarded", "OPTIONS", "/cors-1", map[string]string{"Origin": "https://www.foo.com"}, 200,
			want{"Access-Control-Allow-Origin": {"https://www.foo.com"}}, true},
		{"wildcard methods", "OPTIONS", "/cors-2", map[string]string{"Origin": "https://www.foo.com", "Access-Control-Request-Method": "POST"}, 204,
			want{"Access-Control-Allow-Methods": {"POST", "*"}, "Access-Control-Allow-Origin": {"https://www.foo.com"}, "Access-Control-Allow-Credentials": nil, "Access-Control-Max-Age": {"5"}}, false},
		{"wildcard origin", "OPTIONS", "/cors-wildcard-origin", map[string]string{"Origin": "https://foobar.com:12345", "Access-Control-Request-Method": "PUT"}, 204,
			want{"Access-Control-Allow-Origin": {"https://foobar.com:12345", "*"}, "Access-Control-Allow-Methods": {"PUT"}, "Access-Control-Allow-Credentials": nil}, false},
		{"wildcard origin simple", "PUT", "/cors-wildcard-origin", map[string]string{"Origin": "https://foobar.com"}, 200,
			want{"Access-Control-Allow-Origin": {"https://foobar.com", "*"}, "Access-Control-Allow-Credentials": nil}, true},
		{"wildcards with credentials", "OPTIONS", "/cors-wildcard-methods-headers",
			map[string]string{"Origin": "https://other.foo.com", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-header-1, x-header-2"}, 204,
			want{"Access-Control-Allow-Origin": {"https://other.foo.com"}, "Access-Control-Allow-Methods": {"PUT"},
				"Access-Control-Allow-Headers": {"x-header-1, x-header-2"}, "Access-Control-Allow-Credentials": {"true"}}, false},
		{"wildcards without credentials", "OPTIONS", "/cors-wildcard-methods-headers-unauth",
			map[string]string{"Origin": "https://other.foo.com", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-header-1, x-header-2"}, 204,
			want{"Access-Control-Allow-Origin": {"https://other.foo.com", "*"}, "Access-Control-Allow-Methods": {"PUT", "*"},
				"Access-Control-Allow-Headers": {"x-header-1, x-header-2", "*"}, "Access-Control-Allow-Credentials": nil}, false},
		{"simple with credentials", "GET", "/cors-wildcard-methods-headers", map[string]string{"Origin": "https://other.foo.com"}, 200,
			want{"Access-Control-Allow-Origin": {"https://other.foo.com"}, "Access-Control-Allow-Credentials": {"true"}}, true},
	} {
		before := len(b.requests())
		resp, body := lfDo(t, c, tc.method, lfBase(port)+tc.path, "", tc.hdr)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d (%q), want %d", tc.name, resp.StatusCode, body, tc.status)
		}
		for k, vals := range tc.want {
			got, present := resp.Header[k]
			switch {
			case vals == nil && present:
				t.Errorf("%s: %s = %q, want it absent", tc.name, k, got)
			case vals != nil && (len(got) != 1 || !slices.Contains(vals, got[0])):
				t.Errorf("%s: %s = %q, want one of %q", tc.name, k, got, vals)
			}
		}
		if reached := len(b.requests()) > before; reached != tc.backend {
			t.Errorf("%s: reached the backend %v, want %v", tc.name, reached, tc.backend)
		}
	}
}

// TestFilterMirrorConcurrentClients drives a mirrored, weighted route from several
// clients at once (under -race) and checks every request is answered and mirrored.
func TestFilterMirrorConcurrentClients(t *testing.T) {
	a, b, m := lfEcho(t, "a", nil), lfEcho(t, "b", nil), lfEcho(t, "m", nil)
	port := freePort(t)
	lfStart(t, lfVHostConfig(port, lfClusters(a, b, m), ir.Route{
		Name: "busy", Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}},
		Backends: []ir.Backend{{Cluster: "a", Weight: 1}, {Cluster: "b", Weight: 1}},
		Mirrors:  []ir.Mirror{{Cluster: "m", Numerator: 1, Denominator: 1}},
	}))
	c := lfClient(t)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan string, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				req, _ := http.NewRequestWithContext(context.Background(), "POST", lfBase(port)+"/c", strings.NewReader(strconv.Itoa(w*each+i)))
				resp, err := c.Do(req)
				if err != nil {
					errs <- err.Error()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- "status " + strconv.Itoa(resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if na, nb := len(a.requests()), len(b.requests()); na != workers*each/2 || nb != workers*each/2 {
		t.Errorf("1/1 weights: a=%d b=%d", na, nb)
	}
	bodies := map[string]bool{}
	for _, s := range m.waitFor(t, workers*each) {
		bodies[s.Body] = true
	}
	if len(bodies) != workers*each {
		t.Errorf("mirror saw %d distinct bodies, want %d", len(bodies), workers*each)
	}
}

// TestFilterMirrorStopsWithShutdown: mirror requests belong to the data plane, so when
// Shutdown returns none is still open (a hanging mirror is cancelled, not left running
// up to its own timeout).
func TestFilterMirrorStopsWithShutdown(t *testing.T) {
	cancelled := make(chan struct{}, 1)
	release := make(chan struct{})
	slow := lfEcho(t, "slow", func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-release:
		}
		return true
	})
	t.Cleanup(func() { close(release) })
	primary := lfEcho(t, "primary", nil)
	port := freePort(t)
	s := New(Options{})
	if err := s.Apply(lfVHostConfig(port, lfClusters(primary, slow),
		lfWith(lfPrefix("mirrored", "/", "primary"), func(r *ir.Route) {
			r.Mirrors = []ir.Mirror{{Cluster: "slow", Numerator: 1, Denominator: 1}}
		}))); err != nil {
		t.Fatal(err)
	}
	resp, body := lfDo(t, lfClient(t), "GET", lfBase(port)+"/x", "", nil)
	lfDecode(t, resp, body)
	slow.waitFor(t, 1) // the mirror copy is in flight and hanging
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutdown has returned: the mirror request must be over. Its cancellation reaches
	// the backend asynchronously, so allow a hang guard, well below the mirror's own
	// 10s timeout.
	select {
	case <-cancelled:
	case <-time.After(3 * time.Second):
		t.Fatal("a mirror request is still open after Shutdown returned")
	}
}
