package filter

import (
	"net/http/httptest"
	"testing"

	"github.com/portico-gw/portico/internal/ir"
)

// TestRedirectLocation covers the Location rules of HTTPRequestRedirectFilter: empty
// fields keep the request's values; without a port, a scheme change takes the scheme's
// well-known port and no scheme keeps the listener's; ports 80 (http) and 443 (https)
// are left out. The rows follow the conformance tests HTTPRouteRedirectPortAndScheme,
// HTTPRouteRedirectHostAndStatus and HTTPRouteRedirectPath.
func TestRedirectLocation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rd       ir.Redirect
		prefix   string
		url      string // request URL, its host is the Host header
		scheme   string // how the request arrived
		listener uint32
		want     string
	}{
		{"nil scheme nil port on 80", ir.Redirect{Hostname: "example.org"}, "/", "http://gw/p", "http", 80, "http://example.org/p"},
		{"nil scheme port 80", ir.Redirect{Hostname: "example.org", Port: 80}, "/", "http://gw/p", "http", 80, "http://example.org/p"},
		{"nil scheme port 8080", ir.Redirect{Hostname: "example.org", Port: 8080}, "/", "http://gw/p", "http", 80, "http://example.org:8080/p"},
		{"https nil port", ir.Redirect{Scheme: "https", Hostname: "example.org"}, "/", "http://gw/p", "http", 80, "https://example.org/p"},
		{"https port 443", ir.Redirect{Scheme: "https", Hostname: "example.org", Port: 443}, "/", "http://gw/p", "http", 80, "https://example.org/p"},
		{"https port 8443", ir.Redirect{Scheme: "https", Hostname: "example.org", Port: 8443}, "/", "http://gw/p", "http", 80, "https://example.org:8443/p"},
		{"listener on 8080, nil nil", ir.Redirect{Hostname: "example.org"}, "/", "http://gw/p", "http", 8080, "http://example.org:8080/p"},
		{"listener on 8080, port 80", ir.Redirect{Hostname: "example.org", Port: 80}, "/", "http://gw/p", "http", 8080, "http://example.org/p"},
		{"listener on 8080, https nil", ir.Redirect{Scheme: "https", Hostname: "example.org"}, "/", "http://gw/p", "http", 8080, "https://example.org/p"},
		{"https listener 443, nil nil", ir.Redirect{Hostname: "example.org"}, "/", "https://gw/p", "https", 443, "https://example.org/p"},
		{"https listener, port 8443", ir.Redirect{Hostname: "example.org", Port: 8443}, "/", "https://gw/p", "https", 443, "https://example.org:8443/p"},
		{"https listener, http nil", ir.Redirect{Scheme: "http", Hostname: "example.org"}, "/", "https://gw/p", "https", 443, "http://example.org/p"},
		{"https listener, http 8080", ir.Redirect{Scheme: "http", Hostname: "example.org", Port: 8080}, "/", "https://gw/p", "https", 443, "http://example.org:8080/p"},
		{"http scheme on an 8080 listener uses 80", ir.Redirect{Scheme: "http"}, "/", "http://example.org:8080/p", "http", 8080, "http://example.org/p"},
		{"https with port 80 keeps it", ir.Redirect{Scheme: "https", Port: 80}, "/", "http://example.org/p", "http", 80, "https://example.org:80/p"},
		{"http with port 443 keeps it", ir.Redirect{Scheme: "http", Port: 443}, "/", "https://example.org/p", "https", 443, "http://example.org:443/p"},
		{"host keeps the request's port", ir.Redirect{}, "/", "http://example.org:8080/p", "http", 8080, "http://example.org:8080/p"},
		{"the listener's port, not the Host header's", ir.Redirect{}, "/", "http://example.org:9999/p", "http", 8080, "http://example.org:8080/p"},
		{"the listener's well-known port drops the Host header's", ir.Redirect{}, "/", "http://example.org:9999/p", "http", 80, "http://example.org/p"},
		{"host without port takes the listener's", ir.Redirect{}, "/", "http://example.org/p", "http", 8080, "http://example.org:8080/p"},
		{"hostname replaced", ir.Redirect{Hostname: "example.net"}, "/", "http://example.org:8080/p", "http", 8080, "http://example.net:8080/p"},
		{"query kept", ir.Redirect{Scheme: "https"}, "/", "http://example.org/p?a=1&b=%2F", "http", 80, "https://example.org/p?a=1&b=%2F"},
		{"full path", ir.Redirect{Path: &ir.PathModifier{Type: ir.FullPath, Value: "/new"}}, "/full", "http://example.org/full/a?x=1", "http", 80, "http://example.org/new?x=1"},
		{"prefix path", ir.Redirect{Path: &ir.PathModifier{Type: ir.PrefixPath, Value: "/replacement-prefix"}}, "/original-prefix", "http://example.org/original-prefix/lemon", "http", 80, "http://example.org/replacement-prefix/lemon"},
		{"prefix path trailing slash", ir.Redirect{Path: &ir.PathModifier{Type: ir.PrefixPath, Value: "/replacement-prefix/"}}, "/original-prefix", "http://example.org/original-prefix/lemon", "http", 80, "http://example.org/replacement-prefix/lemon"},
		{"prefix path strip", ir.Redirect{Path: &ir.PathModifier{Type: ir.PrefixPath, Value: ""}}, "/original-prefix", "http://example.org/original-prefix/lemon", "http", 80, "http://example.org/lemon"},
		{"escaped path kept", ir.Redirect{Scheme: "https"}, "/", "http://example.org/a%2Fb/c%20d", "http", 80, "https://example.org/a%2Fb/c%20d"},
		{"escaped path kept after a prefix", ir.Redirect{Path: &ir.PathModifier{Type: ir.PrefixPath, Value: "/new"}}, "/old", "http://example.org/old/a%2Fb", "http", 80, "http://example.org/new/a%2Fb"},
		{"IPv6 host", ir.Redirect{Scheme: "https"}, "/", "http://[::1]:8080/p", "http", 8080, "https://[::1]/p"},
		{"IPv6 host, listener port", ir.Redirect{}, "/", "http://[::1]/p", "http", 8080, "http://[::1]:8080/p"},
	} {
		r := httptest.NewRequest("GET", tc.url, nil)
		rd := CompileRedirect(&tc.rd, tc.prefix)
		if got := rd.Location(r, tc.scheme, tc.listener); got != tc.want {
			t.Errorf("%s: Location %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRedirectStatusCode(t *testing.T) {
	for _, code := range []int{301, 302, 303, 307, 308} {
		if got := CompileRedirect(&ir.Redirect{StatusCode: code}, "/").StatusCode(); got != code {
			t.Errorf("status %d, want %d", got, code)
		}
	}
	if CompileRedirect(nil, "/") != nil {
		t.Fatal("nil redirect compiled to a filter")
	}
}

func BenchmarkRedirectLocation(b *testing.B) {
	rd := CompileRedirect(&ir.Redirect{Scheme: "https", StatusCode: 301}, "/")
	r := httptest.NewRequest("GET", "http://www.example.com/some/path?x=1", nil)
	b.ReportAllocs()
	for b.Loop() {
		_ = rd.Location(r, "http", 80)
	}
}
