package router

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/portico-gw/portico/internal/ir"
)

// --- helpers -------------------------------------------------------------------------

// routeName is the action the tests attach to every route: the route's own name, so a
// lookup's result reads as the route that was chosen.
func routeName(_ *ir.Listener, r *ir.Route) (string, error) { return r.Name, nil }

func compile(t testing.TB, listeners ...ir.Listener) *Table[string] {
	t.Helper()
	tbl, err := Compile(listeners, routeName)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tbl
}

func exactPath(v string) ir.PathMatch  { return ir.PathMatch{Type: ir.PathExact, Value: v} }
func prefixPath(v string) ir.PathMatch { return ir.PathMatch{Type: ir.PathPrefix, Value: v} }
func regexPath(v string) ir.PathMatch  { return ir.PathMatch{Type: ir.PathRegex, Value: v} }

func exactMatch(name, value string) ir.StringMatch {
	return ir.StringMatch{Name: name, Type: ir.MatchExact, Value: value}
}
func regexMatch(name, value string) ir.StringMatch {
	return ir.StringMatch{Name: name, Type: ir.MatchRegex, Value: value}
}

// route builds an IR route; extra conditions are set with the with* options.
func route(name string, path ir.PathMatch, opts ...func(*ir.Match)) ir.Route {
	r := ir.Route{Name: name, Match: ir.Match{Path: path}}
	for _, o := range opts {
		o(&r.Match)
	}
	return r
}

func withMethod(m string) func(*ir.Match) { return func(x *ir.Match) { x.Method = m } }
func withHeaders(h ...ir.StringMatch) func(*ir.Match) {
	return func(x *ir.Match) { x.Headers = append(x.Headers, h...) }
}
func withQuery(q ...ir.StringMatch) func(*ir.Match) {
	return func(x *ir.Match) { x.QueryParams = append(x.QueryParams, q...) }
}

func virtualHost(hostname string, routes ...ir.Route) ir.VirtualHost {
	return ir.VirtualHost{Hostname: hostname, Routes: routes}
}

func listener(name, hostname string, vhosts ...ir.VirtualHost) ir.Listener {
	return ir.Listener{Name: name, Hostname: hostname, Protocol: ir.ProtocolHTTP, VirtualHosts: vhosts}
}

// oneVHost is a table with one hostname-less listener and one "*" virtual host.
func oneVHost(t testing.TB, routes ...ir.Route) *Table[string] {
	t.Helper()
	return compile(t, listener("l", "", virtualHost("*", routes...)))
}

// newReq builds a server-side request; headers are name/value pairs added in order, so
// a repeated name gives a multi-valued header.
func newReq(method, target string, headers ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

// lookup does what the proxy does: normalise r.Host, pick the listener, pick the route.
// It returns the names of both ("" when none).
func lookup(tbl *Table[string], r *http.Request) (listenerName, routeName string) {
	host := NormalizeHost(r.Host)
	l := tbl.Listener(host)
	if l == nil {
		return "", ""
	}
	rt := l.Route(host, r)
	if rt == nil {
		return l.Name, ""
	}
	if rt.Action != rt.IR.Name {
		panic("action does not belong to the route's IR")
	}
	return l.Name, rt.Action
}

func routeOf(tbl *Table[string], r *http.Request) string {
	_, name := lookup(tbl, r)
	return name
}

// --- listener selection --------------------------------------------------------------

func TestListenerSelection(t *testing.T) {
	catchAll := virtualHost("*", route("r", prefixPath("/")))
	// IR order deliberately puts the shorter wildcard before the longer one: the table
	// must rank wildcards by specificity itself.
	withAny := compile(t,
		listener("wild", "*.example.com", catchAll),
		listener("any", "", catchAll),
		listener("exact", "foo.example.com", catchAll),
		listener("wild-deep", "*.b.example.com", catchAll),
		listener("other", "api.example.org", catchAll),
	)
	withoutAny := compile(t,
		listener("exact", "foo.example.com", catchAll),
		listener("wild", "*.example.com", catchAll),
	)
	tests := []struct {
		name  string
		table *Table[string]
		host  string
		want  string // listener name, "" for none
	}{
		{"exact beats wildcard", withAny, "foo.example.com", "exact"},
		{"exact with port", withAny, "foo.example.com:8080", "exact"},
		{"exact upper case", withAny, "FOO.Example.COM", "exact"},
		{"exact trailing dot", withAny, "foo.example.com.", "exact"},
		{"second exact", withAny, "api.example.org", "other"},
		{"wildcard one label", withAny, "bar.example.com", "wild"},
		{"wildcard many labels", withAny, "x.y.z.example.com", "wild"},
		{"wildcard with port", withAny, "bar.example.com:443", "wild"},
		{"longest wildcard wins", withAny, "a.b.example.com", "wild-deep"},
		{"longest wildcard many labels", withAny, "x.a.b.example.com", "wild-deep"},
		{"deep wildcard does not match its bare suffix", withAny, "b.example.com", "wild"},
		{"wildcard does not match bare suffix", withAny, "example.com", "any"},
		{"wildcard needs a dot boundary", withAny, "notexample.com", "any"},
		{"wildcard does not match a lone dot label", withAny, ".example.com", "any"},
		{"exact does not match a subdomain", withAny, "x.api.example.org", "any"},
		{"unrelated host falls to hostname-less", withAny, "unrelated.net", "any"},
		{"empty host", withAny, "", "any"},
		{"ipv4", withAny, "10.0.0.1:80", "any"},
		{"ipv6", withAny, "[::1]:8080", "any"},
		{"no hostname-less listener: exact", withoutAny, "foo.example.com", "exact"},
		{"no hostname-less listener: wildcard", withoutAny, "a.example.com", "wild"},
		{"no hostname-less listener: nothing", withoutAny, "example.com", ""},
		{"no hostname-less listener: empty host", withoutAny, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if l := tt.table.Listener(NormalizeHost(tt.host)); l != nil {
				got = l.Name
			}
			if got != tt.want {
				t.Errorf("Listener(%q) = %q, want %q", tt.host, got, tt.want)
			}
		})
	}
}

func TestListenerStarHostnameIsAny(t *testing.T) {
	tbl := compile(t, listener("star", "*", virtualHost("*", route("r", prefixPath("/")))))
	if l := tbl.Listener("anything.example"); l == nil || l.Name != "star" {
		t.Fatalf("Listener = %v, want the \"*\" listener", l)
	}
}

// TestFirstHostnameLessWins: with two hostname-less listeners, or two "*" virtual hosts,
// the first in IR order serves (the translator never emits either; the IR contract
// says the first match wins).
func TestFirstHostnameLessWins(t *testing.T) {
	tbl := compile(t,
		listener("first", "", virtualHost("*", route("a", prefixPath("/"))), virtualHost("", route("b", prefixPath("/")))),
		listener("second", "*", virtualHost("*", route("c", prefixPath("/")))),
	)
	if l, r := lookup(tbl, newReq("GET", "http://x.org/")); l != "first" || r != "a" {
		t.Fatalf("got %q/%q, want first/a", l, r)
	}
}

func TestListenersKeepIROrderAndIR(t *testing.T) {
	in := []ir.Listener{
		listener("a", "*.example.com"),
		listener("b", ""),
		listener("c", "x.example.com"),
	}
	tbl := compile(t, in...)
	all := tbl.Listeners()
	if len(all) != len(in) {
		t.Fatalf("Listeners() has %d entries, want %d", len(all), len(in))
	}
	for i, l := range all {
		if l.Name != in[i].Name || l.Hostname != in[i].Hostname || l.IR == nil || l.IR.Name != in[i].Name {
			t.Errorf("Listeners()[%d] = %q/%q, want %q/%q", i, l.Name, l.Hostname, in[i].Name, in[i].Hostname)
		}
	}
}

func TestEmptyTable(t *testing.T) {
	tbl := compile(t)
	if l := tbl.Listener("example.com"); l != nil {
		t.Fatalf("empty table returned listener %q", l.Name)
	}
	// A listener without virtual hosts serves nothing.
	tbl = compile(t, listener("l", ""))
	if rt := tbl.Listener("x").Route("x", newReq("GET", "/")); rt != nil {
		t.Fatalf("listener without virtual hosts returned route %q", rt.Action)
	}
}

// --- virtual hosts -------------------------------------------------------------------

func TestVirtualHostFallThrough(t *testing.T) {
	full := compile(t, listener("l", "",
		// IR order is shallow wildcard first on purpose; the router ranks them itself.
		virtualHost("*.example.com",
			route("wild/api", prefixPath("/api")),
			route("wild/shared", exactPath("/shared")),
		),
		virtualHost("api.example.com",
			route("exact/only", exactPath("/only-exact")),
			route("exact/api-prod", prefixPath("/api"), withHeaders(exactMatch("X-Env", "prod"))),
		),
		virtualHost("*.deep.example.com",
			route("deep/api", prefixPath("/api"), withMethod("POST")),
		),
		virtualHost("*", route("any/root", prefixPath("/"))),
	))
	noAny := compile(t, listener("l", "",
		virtualHost("api.example.com", route("exact/only", exactPath("/only-exact"))),
		virtualHost("*.example.com", route("wild/api", prefixPath("/api"))),
	))
	emptyName := compile(t, listener("l", "",
		virtualHost("api.example.com", route("exact/only", exactPath("/only-exact"))),
		virtualHost("", route("empty/root", prefixPath("/"))),
	))
	tests := []struct {
		name   string
		table  *Table[string]
		method string
		target string
		hdrs   []string
		want   string
	}{
		{"exact vhost route", full, "GET", "http://api.example.com/only-exact", nil, "exact/only"},
		{"exact vhost header route", full, "GET", "http://api.example.com/api/x", []string{"X-Env", "prod"}, "exact/api-prod"},
		{"exact vhost no match falls to wildcard", full, "GET", "http://api.example.com/api/x", nil, "wild/api"},
		{"exact vhost falls to wildcard exact route", full, "GET", "http://api.example.com/shared", nil, "wild/shared"},
		{"exact vhost falls through wildcard to any", full, "GET", "http://api.example.com/other", nil, "any/root"},
		{"host with port and case", full, "GET", "http://API.Example.com:8080/only-exact", nil, "exact/only"},
		{"wildcard vhost", full, "GET", "http://shop.example.com/api", nil, "wild/api"},
		{"wildcard vhost multi-label", full, "GET", "http://a.b.c.example.com/api/v1", nil, "wild/api"},
		{"wildcard does not cover bare suffix", full, "GET", "http://example.com/api", nil, "any/root"},
		{"deeper wildcard first", full, "POST", "http://x.deep.example.com/api", nil, "deep/api"},
		{"deeper wildcard falls to shallower", full, "GET", "http://x.deep.example.com/api", nil, "wild/api"},
		{"deeper wildcard falls to any", full, "GET", "http://x.deep.example.com/", nil, "any/root"},
		{"unknown host uses any", full, "GET", "http://elsewhere.org/x", nil, "any/root"},
		{"no any vhost: exact", noAny, "GET", "http://api.example.com/only-exact", nil, "exact/only"},
		{"no any vhost: wildcard", noAny, "GET", "http://api.example.com/api", nil, "wild/api"},
		{"no any vhost: nothing", noAny, "GET", "http://api.example.com/nothing", nil, ""},
		{"no any vhost: unknown host", noAny, "GET", "http://elsewhere.org/api", nil, ""},
		{"empty vhost hostname is any", emptyName, "GET", "http://api.example.com/x", nil, "empty/root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := routeOf(tt.table, newReq(tt.method, tt.target, tt.hdrs...)); got != tt.want {
				t.Errorf("route = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestVirtualHostsOfWildcardListener checks the two levels together: a wildcard listener
// whose virtual hosts are the route hostnames intersected with it.
func TestVirtualHostsOfWildcardListener(t *testing.T) {
	tbl := compile(t,
		listener("wild", "*.example.com",
			virtualHost("shop.example.com", route("shop", prefixPath("/"))),
			virtualHost("*.example.com", route("wild", prefixPath("/"))),
		),
		listener("exact", "admin.example.com",
			virtualHost("admin.example.com", route("admin", prefixPath("/"))),
		),
	)
	tests := []struct {
		host, wantListener, wantRoute string
	}{
		{"shop.example.com", "wild", "shop"},
		{"cart.example.com", "wild", "wild"},
		{"admin.example.com", "exact", "admin"},
		{"example.com", "", ""},
	}
	for _, tt := range tests {
		l, r := lookup(tbl, newReq("GET", "http://"+tt.host+"/"))
		if l != tt.wantListener || r != tt.wantRoute {
			t.Errorf("%s: got %q/%q, want %q/%q", tt.host, l, r, tt.wantListener, tt.wantRoute)
		}
	}
}

// --- path matching -------------------------------------------------------------------

func TestPathMatch(t *testing.T) {
	tests := []struct {
		name string
		path ir.PathMatch
		hits []string
		miss []string
	}{
		{"exact", exactPath("/foo"), []string{"/foo"}, []string{"/foo/", "/foo/bar", "/foobar", "/FOO", "/", "/fo"}},
		{"exact root", exactPath("/"), []string{"/", ""}, []string{"/a", "//"}},
		{"exact empty value is root", exactPath(""), []string{"/"}, []string{"/a"}},
		{"exact trailing slash", exactPath("/foo/"), []string{"/foo/"}, []string{"/foo", "/foo/bar"}},
		{"prefix segment", prefixPath("/foo"),
			[]string{"/foo", "/foo/", "/foo/bar", "/foo/bar/baz", "/foo//bar"},
			[]string{"/foobar", "/fo", "/", "/Foo", "/bar/foo", ""}},
		{"prefix two segments", prefixPath("/foo/bar"),
			[]string{"/foo/bar", "/foo/bar/", "/foo/bar/baz"},
			[]string{"/foo", "/foo/", "/foo/barbaz", "/foo/ba"}},
		{"prefix root matches all", prefixPath("/"), []string{"/", "", "/a", "/a/b/c", "/foobar", "*"}, nil},
		{"prefix empty value is root", prefixPath(""), []string{"/", "/anything/at/all"}, nil},
		{"regex full match", regexPath(`/foo/[0-9]+`),
			[]string{"/foo/1", "/foo/123"},
			[]string{"/foo/", "/foo/123/x", "/x/foo/123", "/foo/12a"}},
		{"regex alternation stays anchored", regexPath(`/a|/b`),
			[]string{"/a", "/b"},
			[]string{"/ab", "/a/x", "/x/b", "/bb"}},
		{"regex with its own anchors", regexPath(`^/v[12]/.*$`), []string{"/v1/x", "/v2/"}, []string{"/v3/x"}},
		{"regex flags", regexPath(`(?i)/foo`), []string{"/foo", "/FOO", "/Foo"}, []string{"/foo/"}},
		{"regex dot-star", regexPath(`.*`), []string{"/", "", "/a/b"}, nil},
	}
	// Every case runs in both lookup modes: alone (indexed) and behind two routes whose
	// order breaks the grouping (linear scan). The decoys never match the test paths.
	decoys := []ir.Route{
		route("decoy/prefix", prefixPath("/zz-decoy")),
		route("decoy/exact", exactPath("/zz-decoy-exact")),
	}
	for _, tt := range tests {
		for _, indexed := range []bool{true, false} {
			routes := []ir.Route{route("under-test", tt.path)}
			if !indexed {
				routes = append(append([]ir.Route{}, decoys...), routes...)
			}
			tbl := oneVHost(t, routes...)
			if got := tbl.Listener("h").any.indexed; got != indexed {
				t.Fatalf("%s: indexed = %v, want %v", tt.name, got, indexed)
			}
			mode := map[bool]string{true: "indexed", false: "linear"}[indexed]
			for _, p := range tt.hits {
				if got := routeOf(tbl, pathReq(p)); got != "under-test" {
					t.Errorf("%s/%s: path %q: got %q, want a match", tt.name, mode, p, got)
				}
			}
			for _, p := range tt.miss {
				if got := routeOf(tbl, pathReq(p)); got != "" {
					t.Errorf("%s/%s: path %q: got %q, want no match", tt.name, mode, p, got)
				}
			}
		}
	}
}

// pathReq builds a request whose URL.Path is exactly p (including "" and "*", which a
// request target cannot always express).
func pathReq(p string) *http.Request {
	r := httptest.NewRequest("GET", "http://h/", nil)
	r.URL.Path = p
	return r
}

func TestPathFromRequestTarget(t *testing.T) {
	tbl := oneVHost(t,
		route("exact", exactPath("/a b")),
		route("prefix", prefixPath("/files")),
	)
	tests := []struct{ target, want string }{
		{"/a%20b", "exact"},      // the router sees the decoded path
		{"/files?x=1", "prefix"}, // the query is not part of the path
		{"http://h/files/x", "prefix"},
		{"/filesx", ""},
	}
	for _, tt := range tests {
		if got := routeOf(tbl, newReq("GET", tt.target)); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.target, got, tt.want)
		}
	}
}

func TestOptionsAsterisk(t *testing.T) {
	tbl := oneVHost(t, route("exact", exactPath("/")), route("root", prefixPath("/")))
	r := newReq("OPTIONS", "*")
	if r.URL.Path != "*" {
		t.Fatalf("test setup: path is %q", r.URL.Path)
	}
	if got := routeOf(tbl, r); got != "root" {
		t.Fatalf("OPTIONS *: got %q, want the \"/\" prefix", got)
	}
}

// --- headers, query parameters, method -----------------------------------------------

func TestHeaderMatch(t *testing.T) {
	tests := []struct {
		name  string
		match []ir.StringMatch
		hdrs  []string
		want  bool
	}{
		{"exact", []ir.StringMatch{exactMatch("X-Env", "prod")}, []string{"X-Env", "prod"}, true},
		{"route name lower case", []ir.StringMatch{exactMatch("x-env", "prod")}, []string{"X-Env", "prod"}, true},
		{"request name upper case", []ir.StringMatch{exactMatch("x-env", "prod")}, []string{"X-ENV", "prod"}, true},
		{"odd case both sides", []ir.StringMatch{exactMatch("x-eNV", "prod")}, []string{"x-Env", "prod"}, true},
		{"value is case-sensitive", []ir.StringMatch{exactMatch("X-Env", "prod")}, []string{"X-Env", "Prod"}, false},
		{"value must be whole", []ir.StringMatch{exactMatch("X-Env", "prod")}, []string{"X-Env", "production"}, false},
		{"missing", []ir.StringMatch{exactMatch("X-Env", "prod")}, []string{"X-Other", "prod"}, false},
		{"empty value", []ir.StringMatch{exactMatch("X-Env", "")}, []string{"X-Env", ""}, true},
		{"empty value needs the header", []ir.StringMatch{exactMatch("X-Env", "")}, nil, false},
		{"multiple values are joined", []ir.StringMatch{exactMatch("X-Env", "prod,dev")}, []string{"X-Env", "prod", "X-Env", "dev"}, true},
		{"multiple values: first alone does not match", []ir.StringMatch{exactMatch("X-Env", "prod")}, []string{"X-Env", "prod", "X-Env", "dev"}, false},
		{"regex", []ir.StringMatch{regexMatch("X-Version", `v[0-9]+`)}, []string{"X-Version", "v12"}, true},
		{"regex is a full match", []ir.StringMatch{regexMatch("X-Version", `v[0-9]`)}, []string{"X-Version", "v12"}, false},
		{"regex full match, not substring", []ir.StringMatch{regexMatch("X-Version", `[0-9]+`)}, []string{"X-Version", "v12"}, false},
		{"regex alternation anchored", []ir.StringMatch{regexMatch("X-Version", `a|b`)}, []string{"X-Version", "ab"}, false},
		{"regex over joined values", []ir.StringMatch{regexMatch("X-Env", `(prod|dev)(,(prod|dev))*`)}, []string{"X-Env", "prod", "X-Env", "dev"}, true},
		{"regex lower-case name", []ir.StringMatch{regexMatch("x-version", `v.*`)}, []string{"X-VERSION", "v1"}, true},
		{"regex missing header", []ir.StringMatch{regexMatch("X-Version", `.*`)}, nil, false},
		{"all must hold", []ir.StringMatch{exactMatch("X-A", "1"), exactMatch("X-B", "2")}, []string{"X-A", "1", "X-B", "2"}, true},
		{"all must hold: one wrong", []ir.StringMatch{exactMatch("X-A", "1"), exactMatch("X-B", "2")}, []string{"X-A", "1", "X-B", "3"}, false},
		{"all must hold: one missing", []ir.StringMatch{exactMatch("X-A", "1"), exactMatch("X-B", "2")}, []string{"X-A", "1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := oneVHost(t, route("r", prefixPath("/"), withHeaders(tt.match...)))
			got := routeOf(tbl, newReq("GET", "/", tt.hdrs...)) == "r"
			if got != tt.want {
				t.Errorf("matched = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestQueryParamMatch(t *testing.T) {
	tests := []struct {
		name   string
		match  []ir.StringMatch
		target string
		want   bool
	}{
		{"exact", []ir.StringMatch{exactMatch("q", "x")}, "/?q=x", true},
		{"exact among others", []ir.StringMatch{exactMatch("q", "x")}, "/?a=1&q=x&b=2", true},
		{"value differs", []ir.StringMatch{exactMatch("q", "x")}, "/?q=y", false},
		{"value is case-sensitive", []ir.StringMatch{exactMatch("q", "x")}, "/?q=X", false},
		{"name is case-sensitive", []ir.StringMatch{exactMatch("q", "x")}, "/?Q=x", false},
		{"missing", []ir.StringMatch{exactMatch("q", "x")}, "/?p=x", false},
		{"no query", []ir.StringMatch{exactMatch("q", "x")}, "/", false},
		{"first value counts", []ir.StringMatch{exactMatch("q", "x")}, "/?q=y&q=x", false},
		{"first value counts (hit)", []ir.StringMatch{exactMatch("q", "x")}, "/?q=x&q=y", true},
		{"empty value", []ir.StringMatch{exactMatch("q", "")}, "/?q=", true},
		{"no equals sign is an empty value", []ir.StringMatch{exactMatch("q", "")}, "/?q", true},
		{"escaped value %20", []ir.StringMatch{exactMatch("q", "a b")}, "/?q=a%20b", true},
		{"escaped value +", []ir.StringMatch{exactMatch("q", "a b")}, "/?q=a+b", true},
		{"escaped value with reserved chars", []ir.StringMatch{exactMatch("q", "a&b=c")}, "/?q=a%26b%3Dc", true},
		{"escaped value is compared decoded", []ir.StringMatch{exactMatch("q", "a%20b")}, "/?q=a%20b", false},
		{"escaped key", []ir.StringMatch{exactMatch("my key", "1")}, "/?my%20key=1", true},
		{"escaped key +", []ir.StringMatch{exactMatch("my key", "1")}, "/?my+key=1", true},
		{"escaped key and value", []ir.StringMatch{exactMatch("k&", "v=")}, "/?k%26=v%3D", true},
		{"invalid escape in value", []ir.StringMatch{exactMatch("q", "%zz")}, "/?q=%zz", false},
		{"regex", []ir.StringMatch{regexMatch("page", `[0-9]+`)}, "/?page=42", true},
		{"regex full match", []ir.StringMatch{regexMatch("page", `[0-9]+`)}, "/?page=42a", false},
		{"regex on decoded value", []ir.StringMatch{regexMatch("q", `a b`)}, "/?q=a+b", true},
		{"regex missing", []ir.StringMatch{regexMatch("q", `.*`)}, "/?p=1", false},
		{"all must hold", []ir.StringMatch{exactMatch("a", "1"), regexMatch("b", "[0-9]")}, "/?b=2&a=1", true},
		{"all must hold: one missing", []ir.StringMatch{exactMatch("a", "1"), regexMatch("b", "[0-9]")}, "/?a=1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := oneVHost(t, route("r", prefixPath("/"), withQuery(tt.match...)))
			got := routeOf(tbl, newReq("GET", tt.target)) == "r"
			if got != tt.want {
				t.Errorf("%s: matched = %v, want %v", tt.target, got, tt.want)
			}
		})
	}
}

func TestMethodMatch(t *testing.T) {
	tbl := oneVHost(t,
		route("get", prefixPath("/"), withMethod("GET")),
		route("post", prefixPath("/"), withMethod("POST")),
	)
	tests := []struct{ method, want string }{
		{"GET", "get"},
		{"POST", "post"},
		{"HEAD", ""}, // HEAD is not GET
		{"PUT", ""},
		{"get", ""}, // methods are case-sensitive
	}
	for _, tt := range tests {
		if got := routeOf(tbl, newReq(tt.method, "/x")); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.method, got, tt.want)
		}
	}
}

// --- precedence ----------------------------------------------------------------------

func TestFirstMatchInIROrderWins(t *testing.T) {
	tests := []struct {
		name        string
		routes      []ir.Route
		wantIndexed bool
		reqs        []struct {
			method, target string
			hdrs           []string
			want           string
		}
	}{
		{
			name: "translator order (indexed)",
			routes: []ir.Route{
				route("exact/hdr", exactPath("/api/v1"), withHeaders(exactMatch("X-A", "1"))),
				route("exact", exactPath("/api/v1")),
				route("regex/post", regexPath(`/api/v[0-9]+`), withMethod("POST")),
				route("regex", regexPath(`/api/v[0-9]+/.*`)),
				route("prefix/long", prefixPath("/api/v1/users")),
				route("prefix/get", prefixPath("/api"), withMethod("GET")),
				route("prefix/hdr", prefixPath("/api"), withHeaders(exactMatch("X-A", "1"))),
				route("prefix", prefixPath("/api")),
				route("root", prefixPath("/")),
			},
			wantIndexed: true,
			reqs: []struct {
				method, target string
				hdrs           []string
				want           string
			}{
				{"GET", "/api/v1", []string{"X-A", "1"}, "exact/hdr"},
				{"GET", "/api/v1", nil, "exact"},
				{"POST", "/api/v1", nil, "exact"},
				{"POST", "/api/v2", nil, "regex/post"},
				{"GET", "/api/v2", nil, "prefix/get"},
				{"GET", "/api/v1/users", nil, "regex"},
				{"PUT", "/api/v1x/users", nil, "prefix"},
				{"PUT", "/api/x", []string{"X-A", "1"}, "prefix/hdr"},
				{"GET", "/api/x", []string{"X-A", "1"}, "prefix/get"},
				{"PUT", "/apix", nil, "root"},
			},
		},
		{
			name: "equal prefixes keep IR order (indexed)",
			routes: []ir.Route{
				route("first", prefixPath("/a")),
				route("second", prefixPath("/a")),
				route("other", prefixPath("/b")),
			},
			wantIndexed: true,
			reqs: []struct {
				method, target string
				hdrs           []string
				want           string
			}{
				{"GET", "/a/x", nil, "first"},
				{"GET", "/b", nil, "other"},
			},
		},
		{
			name: "catch-all first shadows everything (linear)",
			routes: []ir.Route{
				route("root", prefixPath("/")),
				route("exact", exactPath("/x")),
			},
			wantIndexed: false,
			reqs: []struct {
				method, target string
				hdrs           []string
				want           string
			}{
				{"GET", "/x", nil, "root"},
			},
		},
		{
			name: "short prefix before long prefix (linear)",
			routes: []ir.Route{
				route("short", prefixPath("/a"), withHeaders(exactMatch("X-A", "1"))),
				route("long", prefixPath("/a/b")),
				route("exact", exactPath("/a/b")),
			},
			wantIndexed: false,
			reqs: []struct {
				method, target string
				hdrs           []string
				want           string
			}{
				{"GET", "/a/b", []string{"X-A", "1"}, "short"},
				{"GET", "/a/b", nil, "long"},
				{"GET", "/a", nil, ""},
			},
		},
		{
			name: "prefixes growing in length (linear)",
			routes: []ir.Route{
				route("short", prefixPath("/a")),
				route("long", prefixPath("/a/b")),
			},
			wantIndexed: false,
			reqs: []struct {
				method, target string
				hdrs           []string
				want           string
			}{
				{"GET", "/a/b/c", nil, "short"},
			},
		},
		{
			name: "regex before exact (linear)",
			routes: []ir.Route{
				route("regex", regexPath(`/a.*`)),
				route("exact", exactPath("/a")),
			},
			wantIndexed: false,
			reqs: []struct {
				method, target string
				hdrs           []string
				want           string
			}{
				{"GET", "/a", nil, "regex"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := oneVHost(t, tt.routes...)
			if got := tbl.Listener("h").any.indexed; got != tt.wantIndexed {
				t.Fatalf("indexed = %v, want %v", got, tt.wantIndexed)
			}
			for _, rq := range tt.reqs {
				if got := routeOf(tbl, newReq(rq.method, rq.target, rq.hdrs...)); got != rq.want {
					t.Errorf("%s %s %v: got %q, want %q", rq.method, rq.target, rq.hdrs, got, rq.want)
				}
			}
		})
	}
}

// --- NormalizeHost and queryValue ----------------------------------------------------

func TestNormalizeHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"example.com:8080", "example.com"},
		{"example.com:", "example.com"},
		{"Example.COM", "example.com"},
		{"EXAMPLE.COM:443", "example.com"},
		{"example.com.", "example.com"},
		{"example.com.:80", "example.com"},
		{"Example.Com.:80", "example.com"},
		{"10.0.0.1", "10.0.0.1"},
		{"10.0.0.1:80", "10.0.0.1"},
		{"[::1]", "::1"},
		{"[::1]:8080", "::1"},
		{"[2001:DB8::1]:443", "2001:db8::1"},
		{"[fe80::1%25eth0]:80", "fe80::1%25eth0"},
		{"", ""},
		{".", ""},
		{":80", ""},
		{"*.example.com", "*.example.com"},
	}
	for _, tt := range tests {
		if got := NormalizeHost(tt.in); got != tt.want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeHostAllocatesOnlyForUpperCase(t *testing.T) {
	for _, in := range []string{"example.com", "example.com:8080", "[::1]:8080", "example.com.:80"} {
		if n := testing.AllocsPerRun(100, func() { _ = NormalizeHost(in) }); n != 0 {
			t.Errorf("NormalizeHost(%q) allocates %v times", in, n)
		}
	}
}

func TestQueryValue(t *testing.T) {
	tests := []struct {
		raw, name string
		want      string
		ok        bool
	}{
		{"", "a", "", false},
		{"a=1", "a", "1", true},
		{"a=1", "b", "", false},
		{"a", "a", "", true},
		{"a=", "a", "", true},
		{"=1", "", "1", true},
		{"=1", "a", "", false},
		{"a=1&a=2", "a", "1", true},
		{"b=1&a=2", "a", "2", true},
		{"&&a=1&&", "a", "1", true},
		{"ab=1&a=2", "a", "2", true},
		{"a=1=2", "a", "1=2", true},
		{"a=x+y", "a", "x y", true},
		{"a=x%20y", "a", "x y", true},
		{"a=%2B", "a", "+", true},
		{"a%3D=1", "a=", "1", true},
		{"a+b=1", "a b", "1", true},
		{"a%2Bb=1", "a+b", "1", true},
		{"a%2Bb=1", "a b", "", false},
		{"a+b=1", "a+b", "", false}, // a literal + in a key means space
		{"A=1", "a", "", false},
		{"a=1;b=2", "a", "1;b=2", true}, // ';' is not a separator
		{"%zz=1&a=2", "a", "2", true},   // an undecodable key is skipped
		{"%zz=1", "%zz", "", false},
		{"a=%zz", "a", "", false},
		// An undecodable first value makes the parameter missing, even when a later
		// one decodes (url.ParseQuery would skip the bad pair and return "2").
		{"a=%zz&a=2", "a", "", false},
		{"a=%e2%82%ac", "a", "€", true},
	}
	for _, tt := range tests {
		got, ok := queryValue(tt.raw, tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("queryValue(%q, %q) = %q, %v; want %q, %v", tt.raw, tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// --- Compile errors ------------------------------------------------------------------

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		route   ir.Route
		wantMsg []string
	}{
		{"bad path regex", route("r1", regexPath(`/a(`)), []string{"listener l", "route r1", "path regex"}},
		{"bad header regex", route("r2", prefixPath("/"), withHeaders(regexMatch("X-A", `[a-`))), []string{"route r2", "header X-A regex"}},
		{"bad query regex", route("r3", prefixPath("/"), withQuery(regexMatch("q", `*`))), []string{"route r3", "query q regex"}},
		{"unknown path type", route("r4", ir.PathMatch{Type: "Glob", Value: "/*"}), []string{"route r4", `unknown path match type "Glob"`}},
		{"missing path type", route("r5", ir.PathMatch{Value: "/"}), []string{"route r5", "unknown path match type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls := []ir.Listener{listener("l", "", virtualHost("*", route("ok", prefixPath("/")), tt.route))}
			tbl, err := Compile(ls, routeName)
			if err == nil {
				t.Fatal("Compile succeeded, want an error")
			}
			if tbl != nil {
				t.Error("Compile returned a table along with its error")
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestCompileBuildError(t *testing.T) {
	boom := errors.New("boom")
	var built []string
	ls := []ir.Listener{
		listener("l1", "", virtualHost("*", route("a", prefixPath("/")))),
		listener("l2", "x.example", virtualHost("x.example", route("b", prefixPath("/")), route("c", prefixPath("/")))),
	}
	_, err := Compile(ls, func(l *ir.Listener, r *ir.Route) (int, error) {
		built = append(built, l.Name+"/"+r.Name)
		if r.Name == "b" {
			return 0, boom
		}
		return 1, nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want it to wrap the build error", err)
	}
	for _, m := range []string{"listener l2", "route b"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
	if strings.Join(built, ",") != "l1/a,l2/b" {
		t.Errorf("build called for %v; want l1/a then l2/b, stopping at the error", built)
	}
}

func TestCompileCarriesActionAndIR(t *testing.T) {
	ls := []ir.Listener{listener("l", "", virtualHost("*", route("a", prefixPath("/"))))}
	tbl, err := Compile(ls, func(l *ir.Listener, r *ir.Route) (*ir.Route, error) { return r, nil })
	if err != nil {
		t.Fatal(err)
	}
	rt := tbl.Listener("h").Route("h", newReq("GET", "/"))
	if rt == nil || rt.IR != rt.Action || rt.IR != &ls[0].VirtualHosts[0].Routes[0] {
		t.Fatal("route does not point at its IR route, or the action was not the one built for it")
	}
}

// --- runtime properties --------------------------------------------------------------

func TestLookupDoesNotAllocate(t *testing.T) {
	tbl := compile(t, listener("l", "",
		virtualHost("app.example.com",
			route("exact", exactPath("/health")),
			route("regex", regexPath(`/v[0-9]+/items/[0-9]+`)),
			route("api", prefixPath("/api"), withHeaders(exactMatch("X-Tenant", "t1")), withQuery(exactMatch("page", "2"))),
			route("root", prefixPath("/")),
		),
		virtualHost("*.example.com", route("wild", prefixPath("/"))),
	))
	reqs := []*http.Request{
		newReq("GET", "http://app.example.com/health"),
		newReq("GET", "http://app.example.com/v2/items/7"),
		newReq("GET", "http://app.example.com/api/x/y?page=2", "X-Tenant", "t1"),
		newReq("GET", "http://app.example.com/api/x/y?page=3", "X-Tenant", "t1"),
		newReq("GET", "http://other.example.com/z"),
	}
	for _, r := range reqs {
		if got := routeOf(tbl, r); got == "" {
			t.Fatalf("%s: no route", r.URL)
		}
		n := testing.AllocsPerRun(100, func() {
			host := NormalizeHost(r.Host)
			_ = tbl.Listener(host).Route(host, r)
		})
		if n != 0 {
			t.Errorf("%s: lookup allocates %v times", r.URL, n)
		}
	}
}

// TestConcurrentLookups shares one table between goroutines, as the proxy does; run
// with -race.
func TestConcurrentLookups(t *testing.T) {
	tbl := compile(t, listener("l", "",
		virtualHost("a.example.com", route("a", prefixPath("/a"))),
		virtualHost("*.example.com", route("wild", regexPath(`/w/.*`))),
		virtualHost("*", route("root", prefixPath("/"))),
	))
	cases := []struct{ target, want string }{
		{"http://a.example.com/a/1", "a"},
		{"http://b.example.com/w/1", "wild"},
		{"http://a.example.com/w/1", "wild"},
		{"http://c.org/", "root"},
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				c := cases[(g+i)%len(cases)]
				if got := routeOf(tbl, newReq("GET", c.target)); got != c.want {
					t.Errorf("%s: got %q, want %q", c.target, got, c.want)
					return
				}
			}
		})
	}
	wg.Wait()
}
