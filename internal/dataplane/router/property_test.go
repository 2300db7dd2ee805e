package router

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/portico-gw/portico/internal/ir"
)

// The property tests generate random route sets over a small alphabet of path segments,
// so that exact, regex and prefix routes overlap a lot, and check the router's answer
// against two references:
//
//   - linearScan: the first route, in IR order, whose matchPath && matchRest hold (what
//     an unindexed virtual host does). Checks that the index is only an optimisation.
//   - specMatch: an independent reading of the IR contract that shares no code with the
//     router. Checks matchPath/matchRest themselves.

var (
	propSegments = []string{"a", "b", "ab", "c"}
	propRegexes  = []string{`/a/.*`, `/[ab]+`, `/b(/.*)?`, `/c/[^/]+`, `/(a|b)/(a|b)`, `/ab/c/?`, `.*`}
	propMethods  = []string{"", "", "", "GET", "POST"}
)

// propHeaders are the header conditions the generator puts on routes; requests carry
// values that do and do not satisfy them.
var propHeaders = []ir.StringMatch{
	exactMatch("X-A", "1"),
	exactMatch("x-b", "2"),
	regexMatch("X-A", `[0-9]`),
	regexMatch("X-C", `on|off`),
}

var propQueries = []ir.StringMatch{
	exactMatch("q", "1"),
	exactMatch("q", "a b"),
	regexMatch("p", `[a-z]+`),
}

func randPath(rng *rand.Rand, maxDepth int) string {
	n := rng.IntN(maxDepth + 1)
	var b strings.Builder
	for range n {
		b.WriteByte('/')
		b.WriteString(propSegments[rng.IntN(len(propSegments))])
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// randRoute generates one route. Prefix values have no trailing slash, as the translator
// emits them, unless trailingSlash is set.
func randRoute(rng *rand.Rand, i int, trailingSlash bool) ir.Route {
	var path ir.PathMatch
	switch k := rng.IntN(10); {
	case k < 3:
		p := randPath(rng, 3)
		if rng.IntN(6) == 0 && p != "/" {
			p += "/"
		}
		path = exactPath(p)
	case k < 5:
		path = regexPath(propRegexes[rng.IntN(len(propRegexes))])
	default:
		p := randPath(rng, 3)
		if trailingSlash && rng.IntN(4) == 0 && p != "/" {
			p += "/"
		}
		path = prefixPath(p)
	}
	r := route(fmt.Sprintf("r%d", i), path, withMethod(propMethods[rng.IntN(len(propMethods))]))
	for _, j := range rng.Perm(len(propHeaders))[:rng.IntN(3)] {
		// The translator keeps only the first match per header name.
		h := propHeaders[j]
		if !slices.ContainsFunc(r.Match.Headers, func(x ir.StringMatch) bool {
			return http.CanonicalHeaderKey(x.Name) == http.CanonicalHeaderKey(h.Name)
		}) {
			r.Match.Headers = append(r.Match.Headers, h)
		}
	}
	if rng.IntN(4) == 0 {
		r.Match.QueryParams = append(r.Match.QueryParams, propQueries[rng.IntN(len(propQueries))])
	}
	return r
}

// sortByPrecedence orders routes as the translator does (internal/translate/vhost.go):
// Exact, then RegularExpression, then PathPrefix; longer path first; method before no
// method; more headers first; more query parameters first; then generation order.
func sortByPrecedence(routes []ir.Route) {
	rank := map[ir.PathMatchType]int{ir.PathExact: 0, ir.PathRegex: 1, ir.PathPrefix: 2}
	slices.SortStableFunc(routes, func(a, b ir.Route) int {
		ma, mb := a.Match, b.Match
		return cmp.Or(
			cmp.Compare(rank[ma.Path.Type], rank[mb.Path.Type]),
			cmp.Compare(len(mb.Path.Value), len(ma.Path.Value)),
			cmp.Compare(boolRank(ma.Method != ""), boolRank(mb.Method != "")),
			cmp.Compare(len(mb.Headers), len(ma.Headers)),
			cmp.Compare(len(mb.QueryParams), len(ma.QueryParams)),
		)
	})
}

func boolRank(b bool) int {
	if b {
		return 0
	}
	return 1
}

func randRequest(rng *rand.Rand) *http.Request {
	var p string
	switch k := rng.IntN(12); {
	case k == 0:
		p = ""
	case k == 1:
		p = randPath(rng, 4) + "/"
	case k == 2:
		p = "/" + randPath(rng, 3) // leading "//"
	case k == 3:
		p = randPath(rng, 2) + "x" // "/ax", "/abx": near misses for segment prefixes
	case k == 4:
		p = strings.Replace(randPath(rng, 4), "/", "//", 1+rng.IntN(2))
	default:
		p = randPath(rng, 5)
	}
	method := []string{"GET", "GET", "POST", "PUT"}[rng.IntN(4)]
	r := newReq(method, "http://h/")
	r.URL.Path = p
	for _, h := range []struct{ name, values string }{
		{"X-A", "1,2,9,x"},
		{"X-B", "2,3"},
		{"X-C", "on,off,maybe"},
	} {
		vals := strings.Split(h.values, ",")
		switch rng.IntN(4) {
		case 0: // absent
		case 3: // two values
			r.Header.Add(h.name, vals[rng.IntN(len(vals))])
			r.Header.Add(h.name, vals[rng.IntN(len(vals))])
		default:
			r.Header.Add(h.name, vals[rng.IntN(len(vals))])
		}
	}
	var q []string
	for range rng.IntN(3) {
		q = append(q, []string{"q=1", "q=2", "q=a+b", "q=a%20b", "p=abc", "p=ab1", "p=", "x=1", "p"}[rng.IntN(9)])
	}
	r.URL.RawQuery = strings.Join(q, "&")
	return r
}

// linearScan is what an unindexed virtual host does.
func linearScan(routes []*Route[string], r *http.Request) *Route[string] {
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	for _, rt := range routes {
		if rt.matchPath(path) && rt.matchRest(r) {
			return rt
		}
	}
	return nil
}

var longestCache = map[string]*regexp.Regexp{}

// longestRegex compiles pattern, unanchored, with leftmost-longest semantics. Tests using
// it do not run in parallel.
func longestRegex(pattern string) *regexp.Regexp {
	re, ok := longestCache[pattern]
	if !ok {
		re = regexp.MustCompile(pattern)
		re.Longest()
		longestCache[pattern] = re
	}
	return re
}

// specMatch returns the name of the first route in routes that matches r, by the IR
// contract read independently of the router: whole-segment prefixes, fully anchored
// regexes, canonical header names with multiple values joined by ",", the first value
// of a query parameter, decoded.
func specMatch(t *testing.T, routes []ir.Route, r *http.Request) string {
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	full := func(pattern, s string) bool {
		// Leftmost-longest finds a match spanning s whenever one exists.
		loc := longestRegex(pattern).FindStringIndex(s)
		return loc != nil && loc[0] == 0 && loc[1] == len(s)
	}
	segments := func(p string) []string { return strings.Split(strings.TrimSuffix(p, "/"), "/") }
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		t.Fatalf("generated query %q does not parse: %v", r.URL.RawQuery, err)
	}
	for _, rt := range routes {
		m := rt.Match
		ok := false
		switch m.Path.Type {
		case ir.PathExact:
			ok = path == m.Path.Value
		case ir.PathRegex:
			ok = full(m.Path.Value, path)
		case ir.PathPrefix:
			want := segments(m.Path.Value)
			if m.Path.Value == "/" {
				want = nil
			}
			have := strings.Split(path, "/")
			ok = len(have) >= len(want) && slices.Equal(have[:len(want)], want)
		}
		if !ok || (m.Method != "" && m.Method != r.Method) {
			continue
		}
		for _, h := range m.Headers {
			vals := r.Header.Values(h.Name)
			v := strings.Join(vals, ",")
			if len(vals) == 0 || (h.Type == ir.MatchExact && v != h.Value) || (h.Type == ir.MatchRegex && !full(h.Value, v)) {
				ok = false
			}
		}
		for _, q := range m.QueryParams {
			vals, present := query[q.Name]
			if !present {
				ok = false
				continue
			}
			v := vals[0]
			if (q.Type == ir.MatchExact && v != q.Value) || (q.Type == ir.MatchRegex && !full(q.Value, v)) {
				ok = false
			}
		}
		if ok {
			return rt.Name
		}
	}
	return ""
}

// propSets is how many random route sets each property test checks (fewer with -short).
func propSets(n uint64) uint64 {
	if testing.Short() {
		return n / 8
	}
	return n
}

func nameOf(rt *Route[string]) string {
	if rt == nil {
		return ""
	}
	return rt.Action
}

// TestPropertyIndexedEqualsLinear: in the translator's order the virtual host is
// indexed, and the index returns what a linear scan and the spec reading return.
func TestPropertyIndexedEqualsLinear(t *testing.T) {
	const reqsPerSet = 150
	for seed := range propSets(400) {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		routes := make([]ir.Route, 1+rng.IntN(25))
		for i := range routes {
			routes[i] = randRoute(rng, i, false)
		}
		sortByPrecedence(routes)
		tbl := oneVHost(t, routes...)
		l := tbl.Listener("h")
		vh := l.any
		if !vh.indexed {
			t.Fatalf("seed %d: routes in precedence order were not indexed:\n%s", seed, describe(routes))
		}
		for range reqsPerSet {
			r := randRequest(rng)
			got := nameOf(l.Route("h", r))
			if lin := nameOf(linearScan(vh.routes, r)); got != lin {
				t.Fatalf("seed %d: %s: indexed lookup chose %q, linear scan %q\nroutes:\n%s", seed, describeReq(r), got, lin, describe(routes))
			}
			if spec := specMatch(t, routes, r); got != spec {
				t.Fatalf("seed %d: %s: router chose %q, the IR contract says %q\nroutes:\n%s", seed, describeReq(r), got, spec, describe(routes))
			}
		}
	}
}

// TestPropertyIndexedEqualsLinearTrailingSlashPrefixes widens the generator to prefixes
// ending in "/" (the translator trims them, other IR producers might not): whatever they
// mean, the index must agree with the linear scan.
func TestPropertyIndexedEqualsLinearTrailingSlashPrefixes(t *testing.T) {
	for seed := range propSets(300) {
		rng := rand.New(rand.NewPCG(seed, 0x7a11))
		routes := make([]ir.Route, 1+rng.IntN(25))
		for i := range routes {
			routes[i] = randRoute(rng, i, true)
		}
		sortByPrecedence(routes)
		tbl := oneVHost(t, routes...)
		l := tbl.Listener("h")
		if !l.any.indexed {
			t.Fatalf("seed %d: not indexed", seed)
		}
		for range 150 {
			r := randRequest(rng)
			if got, lin := nameOf(l.Route("h", r)), nameOf(linearScan(l.any.routes, r)); got != lin {
				t.Fatalf("seed %d: %s: indexed %q, linear %q\nroutes:\n%s", seed, describeReq(r), got, lin, describe(routes))
			}
		}
	}
}

// TestPropertyBrokenOrderFallsBack: routes in an order that breaks the grouping (a
// random shuffle, and a sorted list with one route moved to the front) are not indexed
// and still return the first match in IR order.
func TestPropertyBrokenOrderFallsBack(t *testing.T) {
	broken, sets := 0, propSets(400)
	for seed := range sets {
		rng := rand.New(rand.NewPCG(seed, 0xb0e4))
		routes := make([]ir.Route, 2+rng.IntN(20))
		for i := range routes {
			routes[i] = randRoute(rng, i, false)
		}
		if seed%2 == 0 {
			rng.Shuffle(len(routes), func(i, j int) { routes[i], routes[j] = routes[j], routes[i] })
		} else {
			sortByPrecedence(routes)
			// Move the last prefix route (the shortest) to the front.
			for k := len(routes) - 1; k > 0; k-- {
				if routes[k].Match.Path.Type == ir.PathPrefix {
					moved := routes[k]
					copy(routes[1:k+1], routes[:k])
					routes[0] = moved
					break
				}
			}
		}
		tbl := oneVHost(t, routes...)
		l := tbl.Listener("h")
		if want := !groupingHolds(routes); want {
			broken++
			if l.any.indexed {
				t.Fatalf("seed %d: order breaks the grouping but the vhost is indexed:\n%s", seed, describe(routes))
			}
		} else if !l.any.indexed {
			t.Fatalf("seed %d: order keeps the grouping but the vhost is not indexed:\n%s", seed, describe(routes))
		}
		for range 150 {
			r := randRequest(rng)
			if got, spec := nameOf(l.Route("h", r)), specMatch(t, routes, r); got != spec {
				t.Fatalf("seed %d: %s: router chose %q, first match in IR order is %q\nroutes:\n%s", seed, describeReq(r), got, spec, describe(routes))
			}
		}
	}
	if broken < int(sets/2) {
		t.Fatalf("only %d of %d generated orders broke the grouping; the generator is too tame", broken, sets)
	}
}

// groupingHolds is the indexing precondition read from the IR: exact, then regex, then
// prefixes with non-increasing length.
func groupingHolds(routes []ir.Route) bool {
	rank := map[ir.PathMatchType]int{ir.PathExact: 0, ir.PathRegex: 1, ir.PathPrefix: 2}
	for i := 1; i < len(routes); i++ {
		a, b := routes[i-1].Match.Path, routes[i].Match.Path
		if rank[b.Type] < rank[a.Type] {
			return false
		}
		if a.Type == ir.PathPrefix && b.Type == ir.PathPrefix && len(b.Value) > len(a.Value) {
			return false
		}
	}
	return true
}

func describe(routes []ir.Route) string {
	var b strings.Builder
	for _, r := range routes {
		fmt.Fprintf(&b, "  %-4s %-17s %-10q method=%q headers=%v query=%v\n",
			r.Name, r.Match.Path.Type, r.Match.Path.Value, r.Match.Method, r.Match.Headers, r.Match.QueryParams)
	}
	return b.String()
}

func describeReq(r *http.Request) string {
	return fmt.Sprintf("%s path=%q query=%q headers=%v", r.Method, r.URL.Path, r.URL.RawQuery, r.Header)
}
