package filter

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portico-gw/portico/internal/ir"
)

func TestCORSAllowsOrigins(t *testing.T) {
	c := CompileCORS(&ir.CORS{AllowOrigins: []string{
		"https://www.foo.com",
		"https://*.bar.com",
		"http://*",
		"https://api.example.com:8443",
		"https://Upper.Example.com",
		"https://plain.example.com:443",
		"https://*.ports.example.com:9000",
	}})
	for origin, want := range map[string]bool{
		"https://www.foo.com":              true,
		"HTTPS://WWW.FOO.COM":              true,
		"https://www.foo.com:443":          true, // the default port is implied
		"https://www.foo.com:8443":         false,
		"http://www.foo.com":               true, // "http://*" allows every http origin on port 80
		"http://anything.example":          true,
		"http://anything.example:8080":     false,
		"https://foobar.com":               false,
		"https://www.bar.com":              true,
		"https://xpto.www.bar.com":         true, // "*" spans several labels
		"https://bar.com":                  false,
		"https://evilbar.com":              false,
		"http://www.bar.com:443":           false,
		"https://api.example.com:8443":     true,
		"https://api.example.com":          false,
		"https://upper.example.com":        true,
		"https://plain.example.com":        true,
		"https://a.ports.example.com:9000": true,
		"https://a.ports.example.com":      false,
		"null":                             false,
		"":                                 false,
		"https://":                         false,
		"www.foo.com":                      false,
	} {
		if got := c.allows(origin); got != want {
			t.Errorf("origin %q: allowed %v, want %v", origin, got, want)
		}
	}
	all := CompileCORS(&ir.CORS{AllowOrigins: []string{"*"}})
	if !all.allows("null") || !all.allows("https://x.y:1") {
		t.Error(`"*" does not allow every origin`)
	}
	if CompileCORS(nil) != nil {
		t.Error("nil policy compiled to a filter")
	}
}

func preflight(c *CORS, origin, method, headers string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("OPTIONS", "http://gw/cors", nil)
	r.Header.Set("Origin", origin)
	r.Header.Set("Access-Control-Request-Method", method)
	if headers != "" {
		r.Header.Set("Access-Control-Request-Headers", headers)
	}
	w := httptest.NewRecorder()
	c.Preflight(w, r)
	return w
}

// TestCORSPreflight follows the conformance test HTTPRouteCORS for preflights.
func TestCORSPreflight(t *testing.T) {
	cors1 := CompileCORS(&ir.CORS{
		AllowOrigins:     []string{"https://www.foo.com", "https://*.bar.com"},
		AllowMethods:     []string{"GET", "OPTIONS"},
		AllowHeaders:     []string{"x-header-1", "x-header-2"},
		ExposeHeaders:    []string{"x-header-3", "x-header-4"},
		AllowCredentials: true,
		MaxAgeSeconds:    3600,
	})
	for _, origin := range []string{"https://www.foo.com", "https://www.bar.com", "https://xpto.www.bar.com"} {
		w := preflight(cors1, origin, "GET", "x-header-1, x-header-2")
		want := http.Header{
			"Access-Control-Allow-Origin":      {origin},
			"Access-Control-Allow-Methods":     {"GET, OPTIONS"},
			"Access-Control-Allow-Headers":     {"x-header-1, x-header-2"},
			"Access-Control-Expose-Headers":    {"x-header-3, x-header-4"},
			"Access-Control-Max-Age":           {"3600"},
			"Access-Control-Allow-Credentials": {"true"},
			"Vary":                             {"Origin"},
		}
		checkHeaders(t, "preflight from "+origin, w, want)
	}
	w := preflight(cors1, "https://foobar.com", "GET", "")
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "" || w.Header().Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("disallowed origin: %d %v", w.Code, w.Header())
	}

	// allowMethods "*" without credentials: "*" (or the requested method) and no
	// Allow-Credentials.
	cors2 := CompileCORS(&ir.CORS{AllowOrigins: []string{"https://www.foo.com"}, AllowMethods: []string{"*"}})
	w = preflight(cors2, "https://www.foo.com", "POST", "")
	if m := w.Header().Get("Access-Control-Allow-Methods"); m != "*" && m != "POST" {
		t.Errorf("wildcard methods: %q", m)
	}
	if _, ok := w.Header()["Access-Control-Allow-Credentials"]; ok || w.Header().Get("Access-Control-Allow-Origin") != "https://www.foo.com" {
		t.Errorf("wildcard methods: %v", w.Header())
	}

	// Wildcard origin without credentials.
	cors3 := CompileCORS(&ir.CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"PUT"}})
	for _, origin := range []string{"https://foobar.com", "https://foobar.com:12345"} {
		w = preflight(cors3, origin, "PUT", "")
		if o := w.Header().Get("Access-Control-Allow-Origin"); o != "*" && o != origin {
			t.Errorf("wildcard origin %s: %q", origin, o)
		}
		if _, ok := w.Header()["Access-Control-Allow-Credentials"]; ok || w.Header().Get("Access-Control-Allow-Methods") != "PUT" {
			t.Errorf("wildcard origin %s: %v", origin, w.Header())
		}
	}

	// Everything "*" with credentials: the request's values are echoed, never "*".
	cors4 := CompileCORS(&ir.CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"*"}, AllowHeaders: []string{"*"}, ExposeHeaders: []string{"*"}, AllowCredentials: true})
	w = preflight(cors4, "https://other.foo.com", "PUT", "x-header-1, x-header-2")
	checkHeaders(t, "wildcards with credentials", w, http.Header{
		"Access-Control-Allow-Origin":      {"https://other.foo.com"},
		"Access-Control-Allow-Methods":     {"PUT"},
		"Access-Control-Allow-Headers":     {"x-header-1, x-header-2"},
		"Access-Control-Allow-Credentials": {"true"},
		"Vary":                             {"Origin"},
	})
	// Without requested headers, Allow-Headers is omitted.
	w = preflight(cors4, "https://other.foo.com", "PUT", "")
	if _, ok := w.Header()["Access-Control-Allow-Headers"]; ok {
		t.Errorf("echoed headers without a request for any: %v", w.Header())
	}

	// Everything "*" without credentials.
	cors5 := CompileCORS(&ir.CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"*"}, AllowHeaders: []string{"*"}, ExposeHeaders: []string{"*"}, MaxAgeSeconds: 5})
	w = preflight(cors5, "https://other.foo.com", "PUT", "x-header-1")
	checkHeaders(t, "wildcards without credentials", w, http.Header{
		"Access-Control-Allow-Origin":   {"*"},
		"Access-Control-Allow-Methods":  {"*"},
		"Access-Control-Allow-Headers":  {"*"},
		"Access-Control-Expose-Headers": {"*"},
		"Access-Control-Max-Age":        {"5"},
	})
}

func checkHeaders(t *testing.T, name string, w *httptest.ResponseRecorder, want http.Header) {
	t.Helper()
	if w.Code != http.StatusNoContent {
		t.Errorf("%s: status %d, want 204", name, w.Code)
	}
	got := w.Header().Clone()
	delete(got, "Content-Length")
	if len(got) != len(want) {
		t.Errorf("%s: headers %v, want %v", name, got, want)
	}
	for k, v := range want {
		if g := got[k]; len(g) != len(v) || g[0] != v[0] {
			t.Errorf("%s: %s = %q, want %q", name, k, g, v)
		}
	}
}

func TestCORSDecorate(t *testing.T) {
	c := CompileCORS(&ir.CORS{AllowOrigins: []string{"https://www.foo.com"}, ExposeHeaders: []string{"X-Header-3", "X-Header-4"}, AllowCredentials: true})
	r := httptest.NewRequest("GET", "http://gw/", nil)
	r.Header.Set("Origin", "https://www.foo.com")
	h := http.Header{"Vary": {"Accept-Encoding, origin"}, "Access-Control-Allow-Origin": {"https://backend.set"}}
	c.Decorate(h, r)
	if h.Get("Access-Control-Allow-Origin") != "https://www.foo.com" || h.Get("Access-Control-Expose-Headers") != "X-Header-3, X-Header-4" ||
		h.Get("Access-Control-Allow-Credentials") != "true" || len(h["Vary"]) != 1 {
		t.Errorf("allowed origin: %v", h)
	}

	r.Header.Set("Origin", "https://evil.com")
	h = http.Header{}
	c.Decorate(h, r)
	if len(h) != 1 || h.Get("Vary") != "Origin" {
		t.Errorf("disallowed origin: %v", h)
	}

	r.Header.Del("Origin")
	h = http.Header{}
	c.Decorate(h, r)
	if len(h) != 0 {
		t.Errorf("no origin: %v", h)
	}

	// "*" exposes nothing when credentials are allowed.
	c = CompileCORS(&ir.CORS{AllowOrigins: []string{"*"}, ExposeHeaders: []string{"*"}, AllowCredentials: true})
	r.Header.Set("Origin", "https://a.example")
	h = http.Header{}
	c.Decorate(h, r)
	if _, ok := h["Access-Control-Expose-Headers"]; ok || h.Get("Access-Control-Allow-Origin") != "https://a.example" {
		t.Errorf("wildcard expose with credentials: %v", h)
	}
}

func TestIsPreflight(t *testing.T) {
	r := httptest.NewRequest("OPTIONS", "http://gw/", nil)
	if IsPreflight(r) {
		t.Error("OPTIONS without Origin is a preflight")
	}
	r.Header.Set("Origin", "https://a.example")
	if IsPreflight(r) {
		t.Error("OPTIONS without Access-Control-Request-Method is a preflight")
	}
	r.Header.Set("Access-Control-Request-Method", "PUT")
	if !IsPreflight(r) {
		t.Error("a preflight is not recognised")
	}
	r.Method = "GET"
	if IsPreflight(r) {
		t.Error("GET is a preflight")
	}
}

func BenchmarkCORSAllows(b *testing.B) {
	c := CompileCORS(&ir.CORS{AllowOrigins: []string{"https://www.foo.com", "https://*.bar.com"}})
	b.ReportAllocs()
	for b.Loop() {
		if !c.allows("https://deep.www.bar.com") || !c.allows("https://www.foo.com") {
			b.Fatal("not allowed")
		}
	}
}
