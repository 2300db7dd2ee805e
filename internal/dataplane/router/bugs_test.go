package router

// Tests for defects found while writing the suite. Each fails against the current
// router.go; the fix proposed with it makes it pass.

import (
	"testing"

	"github.com/portico-gw/portico/internal/ir"
)

// Compile wraps user regexes as ^(?:PATTERN)$ without checking PATTERN alone, so a
// string that is not a regex at all, like "/a)|(/b", compiles to ^(?:/a)|(/b)$: the
// wrapped form is valid, the anchoring is lost, and the route matches every path that
// starts with "/a". Compile must reject it (the translator validates regexes alone, but
// the router's own contract is "full match", and the IR is its only input).
func TestBugCompileAcceptsRegexOnlyValidWhenWrapped(t *testing.T) {
	for _, tt := range []struct {
		name  string
		route ir.Route
	}{
		{"path", route("r", regexPath(`/a)|(/b`))},
		{"header", route("r", prefixPath("/"), withHeaders(regexMatch("X-A", `a)|(b`)))},
		{"query", route("r", prefixPath("/"), withQuery(regexMatch("q", `a)|(b`)))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ls := []ir.Listener{listener("l", "", virtualHost("*", tt.route))}
			tbl, err := Compile(ls, routeName)
			if err == nil {
				got := routeOf(tbl, newReq("GET", "/a/anything?q=a-anything", "X-A", "a-anything"))
				t.Fatalf("Compile accepted an unbalanced regex; it matches partial values (route %q)", got)
			}
		})
	}
}

// matchRest indexes vals[0] whenever the header's key is present, so a header map entry
// with no values (which net/http never produces, but any code that builds or edits a
// request can: r.Header["X-A"] = nil) panics on the request path instead of not
// matching.
func TestBugHeaderWithNoValuesPanics(t *testing.T) {
	tbl := oneVHost(t, route("r", prefixPath("/"), withHeaders(exactMatch("X-A", "1"))))
	r := newReq("GET", "/")
	r.Header["X-A"] = []string{}
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("lookup panicked: %v", p)
		}
	}()
	if got := routeOf(tbl, r); got != "" {
		t.Fatalf("a header without values matched %q", got)
	}
}

// Duplicate hostnames: for hostname-less listeners and "*" virtual hosts the first in IR
// order wins (see TestFirstHostnameLessWins), but for exact hostnames the map assignment
// lets the last one win. The IR contract is "first match wins". The translator does not
// emit duplicates today, so this is a consistency fix, not a live bug.
func TestBugDuplicateExactHostnameLastWins(t *testing.T) {
	tbl := compile(t,
		listener("first", "a.example.com",
			virtualHost("a.example.com", route("first-vhost", prefixPath("/"))),
			virtualHost("a.example.com", route("second-vhost", prefixPath("/"))),
		),
		listener("second", "a.example.com", virtualHost("*", route("second-listener", prefixPath("/")))),
	)
	if l := tbl.Listener("a.example.com"); l == nil || l.Name != "first" {
		t.Errorf("duplicate exact listener hostname: got %v, want the first listener", nameOfListener(l))
	}
	if l := tbl.Listeners()[0]; l.Route("a.example.com", newReq("GET", "/")).Action != "first-vhost" {
		t.Errorf("duplicate exact virtual host: the second one serves")
	}
}

func nameOfListener(l *Listener[string]) string {
	if l == nil {
		return "<nil>"
	}
	return l.Name
}
