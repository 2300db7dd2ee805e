package filter

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portico-gw/portico/internal/ir"
)

// TestRewritePathPrefixExamples is the table of the Gateway API's HTTPPathModifier
// documentation for ReplacePrefixMatch, plus the conformance HTTPRouteRewritePath cases.
func TestRewritePathPrefixExamples(t *testing.T) {
	for _, tc := range []struct {
		path, prefix, repl, want string
	}{
		{"/foo/bar", "/foo", "/xyz", "/xyz/bar"},
		{"/foo/bar", "/foo", "/xyz/", "/xyz/bar"},
		{"/foo/bar", "/foo/", "/xyz", "/xyz/bar"},
		{"/foo/bar", "/foo/", "/xyz/", "/xyz/bar"},
		{"/foo", "/foo", "/xyz", "/xyz"},
		{"/foo/", "/foo", "/xyz", "/xyz/"},
		{"/foo/bar", "/foo", "", "/bar"},
		{"/foo/", "/foo", "", "/"},
		{"/foo", "/foo", "", "/"},
		{"/foo/", "/foo", "/", "/"},
		{"/foo", "/foo", "/", "/"},
		// A trailing-slash prefix applied to the path without it (it matches: the API
		// ignores the prefix's trailing slash).
		{"/foo", "/foo/", "/xyz", "/xyz"},
		{"/foo/", "/foo/", "/xyz", "/xyz/"},
		// Conformance HTTPRouteRewritePath.
		{"/prefix/one/two", "/prefix/one", "/one", "/one/two"},
		{"/strip-prefix/three", "/strip-prefix", "/", "/three"},
		{"/strip-prefix", "/strip-prefix", "/", "/"},
		{"/prefix/rewrite-path-and-modify-headers/one", "/prefix/rewrite-path-and-modify-headers", "/prefix", "/prefix/one"},
		// The root prefix.
		{"/bar", "/", "/xyz", "/xyz/bar"},
		{"/bar", "/", "/xyz/", "/xyz/bar"},
		{"/a/b", "/", "", "/a/b"},
		{"/", "/", "/xyz", "/xyz/"},
	} {
		rw := CompileRewrite(&ir.Rewrite{Path: &ir.PathModifier{Type: ir.PrefixPath, Value: tc.repl}}, tc.prefix)
		in := httptest.NewRequest("GET", "http://example.com"+tc.path+"?q=1", nil)
		out := in.Clone(in.Context())
		rw.Apply(in, out)
		if out.URL.Path != tc.want || out.URL.RawQuery != "q=1" {
			t.Errorf("%s with prefix %q -> %q: got %q (query %q), want %q", tc.path, tc.prefix, tc.repl, out.URL.Path, out.URL.RawQuery, tc.want)
		}
	}
}

func TestRewriteFullPathAndHost(t *testing.T) {
	rw := CompileRewrite(&ir.Rewrite{Hostname: "backend.internal", Path: &ir.PathModifier{Type: ir.FullPath, Value: "/one"}}, "/full/one")
	in := httptest.NewRequest("GET", "http://example.com/full/one/two?x=y", nil)
	out := in.Clone(in.Context())
	rw.Apply(in, out)
	if out.Host != "backend.internal" || out.URL.Path != "/one" || out.URL.RawQuery != "x=y" {
		t.Fatalf("got host %q path %q query %q", out.Host, out.URL.Path, out.URL.RawQuery)
	}
	if in.Host != "example.com" || in.URL.Path != "/full/one/two" {
		t.Fatalf("the inbound request changed: %q %q", in.Host, in.URL.Path)
	}
	// Host only: the path is untouched.
	rw = CompileRewrite(&ir.Rewrite{Hostname: "h.example"}, "/")
	in = httptest.NewRequest("GET", "http://example.com/a%2Fb", nil)
	out = in.Clone(in.Context())
	rw.Apply(in, out)
	if out.Host != "h.example" || out.URL.EscapedPath() != "/a%2Fb" {
		t.Fatalf("host-only rewrite: host %q path %q", out.Host, out.URL.EscapedPath())
	}
	if CompileRewrite(nil, "/") != nil {
		t.Fatal("nil rewrite compiled to a filter")
	}
	var none *Rewrite
	none.Apply(in, out)
}

// TestRewriteKeepsEscapes: the part of the path after the replaced prefix reaches the
// backend spelled as the client sent it (an encoded slash stays encoded).
func TestRewriteKeepsEscapes(t *testing.T) {
	for _, tc := range []struct {
		path, prefix, repl, want string
	}{
		{"/foo/a%2Fb", "/foo", "/xyz", "/xyz/a%2Fb"},
		{"/foo/a%2Fb/c", "/foo", "/", "/a%2Fb/c"},
		{"/foo/a%20b", "/foo", "/xyz", "/xyz/a%20b"},
		{"/f%6Fo/bar", "/foo", "/xyz", "/xyz/bar"}, // the prefix itself escaped: decoded path used
	} {
		rw := CompileRewrite(&ir.Rewrite{Path: &ir.PathModifier{Type: ir.PrefixPath, Value: tc.repl}}, tc.prefix)
		in := httptest.NewRequest("GET", "http://example.com"+tc.path, nil)
		out := in.Clone(in.Context())
		rw.Apply(in, out)
		if got := out.URL.EscapedPath(); got != tc.want {
			t.Errorf("%s: forwarded as %q, want %q", tc.path, got, tc.want)
		}
	}
}

func BenchmarkRewritePrefix(b *testing.B) {
	rw := CompileRewrite(&ir.Rewrite{Path: &ir.PathModifier{Type: ir.PrefixPath, Value: "/v2"}}, "/v1")
	in, _ := http.NewRequest("GET", "http://example.com/v1/users/42", nil)
	out := in.Clone(in.Context())
	b.ReportAllocs()
	for b.Loop() {
		rw.Apply(in, out)
	}
}
