// Package router compiles the IR's listeners, virtual hosts and routes of one port into
// lookup structures, and finds the route for a request without allocating.
//
// Selection follows the IR contract: the most specific listener hostname matching the
// request's host, then that listener's virtual hosts from most to least specific, and
// within a virtual host the first route (in IR order) whose match holds.
package router

import (
	"fmt"
	"net/http"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/portico-gw/portico/internal/ir"
)

// Table is the compiled routing of one port. A is what the caller attaches to each
// route (its compiled action); the router only carries it.
type Table[A any] struct {
	exact    map[string]*Listener[A]
	wildcard map[string]*Listener[A] // ".suffix" of "*.suffix" -> listener
	any      *Listener[A]            // the listener without a hostname
	all      []*Listener[A]          // IR order
}

// Listener is one Gateway listener's routing.
type Listener[A any] struct {
	Name     string
	Hostname string
	IR       *ir.Listener

	exact    map[string]*vhost[A]
	wildcard map[string]*vhost[A] // ".suffix" of "*.suffix" -> virtual host
	any      *vhost[A]
}

type vhost[A any] struct {
	hostname string
	routes   []*Route[A]

	// indexed is true when the IR order groups routes as exact paths, then regexes,
	// then prefixes from longest to shortest: lookups then use the maps below instead
	// of scanning every route.
	indexed bool
	exact   map[string][]*Route[A]
	regex   []*Route[A]
	prefix  map[string][]*Route[A]
}

// Route is a compiled IR route.
type Route[A any] struct {
	IR     *ir.Route
	Action A

	pathType  ir.PathMatchType
	path      string
	pathRegex *regexp.Regexp
	headers   []headerMatch
	query     []queryMatch
	method    string
}

type headerMatch struct {
	name  string // canonical
	value string
	re    *regexp.Regexp
}

type queryMatch struct {
	name  string
	value string
	re    *regexp.Regexp
}

// Compile builds the table of one port. build turns each IR route into the caller's
// action; its error rejects the whole table.
func Compile[A any](listeners []ir.Listener, build func(l *ir.Listener, r *ir.Route) (A, error)) (*Table[A], error) {
	t := &Table[A]{exact: map[string]*Listener[A]{}, wildcard: map[string]*Listener[A]{}}
	for i := range listeners {
		irl := &listeners[i]
		l := &Listener[A]{Name: irl.Name, Hostname: irl.Hostname, IR: irl, exact: map[string]*vhost[A]{}, wildcard: map[string]*vhost[A]{}}
		for j := range irl.VirtualHosts {
			vh, err := compileVHost(irl, &irl.VirtualHosts[j], build)
			if err != nil {
				return nil, fmt.Errorf("listener %s: %w", irl.Name, err)
			}
			switch {
			case vh.hostname == "*" || vh.hostname == "":
				if l.any == nil {
					l.any = vh
				}
			case strings.HasPrefix(vh.hostname, "*."):
				if key := strings.ToLower(vh.hostname[1:]); l.wildcard[key] == nil {
					l.wildcard[key] = vh // first in IR order wins
				}
			default:
				if key := strings.ToLower(vh.hostname); l.exact[key] == nil {
					l.exact[key] = vh // first in IR order wins, as for "*"
				}
			}
		}
		switch {
		case irl.Hostname == "" || irl.Hostname == "*":
			if t.any == nil {
				t.any = l
			}
		case strings.HasPrefix(irl.Hostname, "*."):
			if key := strings.ToLower(irl.Hostname[1:]); t.wildcard[key] == nil {
				t.wildcard[key] = l // first in IR order wins
			}
		default:
			if key := strings.ToLower(irl.Hostname); t.exact[key] == nil {
				t.exact[key] = l // first in IR order wins, as for the hostname-less listener
			}
		}
		t.all = append(t.all, l)
	}
	return t, nil
}

func compileVHost[A any](l *ir.Listener, v *ir.VirtualHost, build func(*ir.Listener, *ir.Route) (A, error)) (*vhost[A], error) {
	vh := &vhost[A]{hostname: v.Hostname}
	for i := range v.Routes {
		r, err := compileRoute[A](&v.Routes[i])
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", v.Routes[i].Name, err)
		}
		if r.Action, err = build(l, &v.Routes[i]); err != nil {
			return nil, fmt.Errorf("route %s: %w", v.Routes[i].Name, err)
		}
		vh.routes = append(vh.routes, r)
	}
	vh.index()
	return vh, nil
}

func compileRoute[A any](r *ir.Route) (*Route[A], error) {
	out := &Route[A]{IR: r, pathType: r.Match.Path.Type, path: r.Match.Path.Value, method: r.Match.Method}
	switch out.pathType {
	case ir.PathExact, ir.PathPrefix:
		if out.path == "" {
			out.path = "/"
		}
	case ir.PathRegex:
		re, err := compileFull(out.path)
		if err != nil {
			return nil, fmt.Errorf("path regex: %w", err)
		}
		out.pathRegex = re
	default:
		return nil, fmt.Errorf("unknown path match type %q", out.pathType)
	}
	for _, h := range r.Match.Headers {
		m := headerMatch{name: http.CanonicalHeaderKey(h.Name), value: h.Value}
		if h.Type == ir.MatchRegex {
			re, err := compileFull(h.Value)
			if err != nil {
				return nil, fmt.Errorf("header %s regex: %w", h.Name, err)
			}
			m.re = re
		}
		out.headers = append(out.headers, m)
	}
	for _, q := range r.Match.QueryParams {
		m := queryMatch{name: q.Name, value: q.Value}
		if q.Type == ir.MatchRegex {
			re, err := compileFull(q.Value)
			if err != nil {
				return nil, fmt.Errorf("query %s regex: %w", q.Name, err)
			}
			m.re = re
		}
		out.query = append(out.query, m)
	}
	return out, nil
}

// compileFull compiles a regex that must match the whole value. The pattern is parsed
// alone first: wrapped in ^(?:...)$ an unbalanced pattern such as "a)|(b" would compile
// and lose its anchoring.
func compileFull(pattern string) (*regexp.Regexp, error) {
	if _, err := syntax.Parse(pattern, syntax.Perl); err != nil {
		return nil, err
	}
	return regexp.Compile(`^(?:` + pattern + `)$`)
}

// index builds the path maps when the route order allows it (see vhost.indexed).
func (vh *vhost[A]) index() {
	rank := func(t ir.PathMatchType) int {
		switch t {
		case ir.PathExact:
			return 0
		case ir.PathRegex:
			return 1
		}
		return 2
	}
	prevRank, prevLen := 0, int(^uint(0)>>1)
	for _, r := range vh.routes {
		rk := rank(r.pathType)
		if rk < prevRank || (rk == 2 && prevRank == 2 && len(r.path) > prevLen) {
			return // order does not follow the grouping: scan linearly
		}
		if rk == 2 {
			prevLen = len(r.path)
		}
		prevRank = rk
	}
	vh.indexed = true
	vh.exact = map[string][]*Route[A]{}
	vh.prefix = map[string][]*Route[A]{}
	for _, r := range vh.routes {
		switch r.pathType {
		case ir.PathExact:
			vh.exact[r.path] = append(vh.exact[r.path], r)
		case ir.PathRegex:
			vh.regex = append(vh.regex, r)
		default:
			vh.prefix[r.path] = append(vh.prefix[r.path], r)
		}
	}
}

// Listeners returns every listener in IR order.
func (t *Table[A]) Listeners() []*Listener[A] { return t.all }

// Listener returns the listener serving host (already normalised, see NormalizeHost):
// the exact hostname, else the longest matching wildcard, else the listener without a
// hostname. It returns nil when no listener serves host.
func (t *Table[A]) Listener(host string) *Listener[A] {
	if l, ok := t.exact[host]; ok {
		return l
	}
	// Suffixes from the longest (most specific wildcard) to the shortest; a wildcard
	// needs at least one label in front, so the suffix starts after the first byte.
	if len(t.wildcard) > 0 {
		for i := 1; i < len(host); i++ {
			if host[i] == '.' {
				if l, ok := t.wildcard[host[i:]]; ok {
					return l
				}
			}
		}
	}
	return t.any
}

// Route finds the route for r on this listener, trying the virtual hosts that match
// host from the most specific to the least. It returns nil when none matches.
func (l *Listener[A]) Route(host string, r *http.Request) *Route[A] {
	if vh, ok := l.exact[host]; ok {
		if rt := vh.match(r); rt != nil {
			return rt
		}
	}
	if len(l.wildcard) > 0 {
		for i := 1; i < len(host); i++ {
			if host[i] == '.' {
				if vh, ok := l.wildcard[host[i:]]; ok {
					if rt := vh.match(r); rt != nil {
						return rt
					}
				}
			}
		}
	}
	if l.any != nil {
		return l.any.match(r)
	}
	return nil
}

func (vh *vhost[A]) match(r *http.Request) *Route[A] {
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	if !vh.indexed {
		for _, rt := range vh.routes {
			if rt.matchPath(path) && rt.matchRest(r) {
				return rt
			}
		}
		return nil
	}
	for _, rt := range vh.exact[path] {
		if rt.matchRest(r) {
			return rt
		}
	}
	for _, rt := range vh.regex {
		if rt.pathRegex.MatchString(path) && rt.matchRest(r) {
			return rt
		}
	}
	// Longest prefix first: walk the path's segment prefixes from the whole path down to "/".
	cand := path
	for {
		for _, rt := range vh.prefix[cand] {
			if rt.matchRest(r) {
				return rt
			}
		}
		if cand == "/" {
			return nil
		}
		i := strings.LastIndexByte(cand, '/')
		if i <= 0 {
			cand = "/"
		} else {
			cand = cand[:i]
		}
	}
}

func (rt *Route[A]) matchPath(path string) bool {
	switch rt.pathType {
	case ir.PathExact:
		return path == rt.path
	case ir.PathRegex:
		return rt.pathRegex.MatchString(path)
	}
	p := rt.path
	if p == "/" {
		return true
	}
	return strings.HasPrefix(path, p) && (len(path) == len(p) || path[len(p)] == '/')
}

// matchRest checks method, headers and query parameters.
func (rt *Route[A]) matchRest(r *http.Request) bool {
	if rt.method != "" && r.Method != rt.method {
		return false
	}
	for i := range rt.headers {
		h := &rt.headers[i]
		vals := r.Header[h.name]
		if len(vals) == 0 {
			return false
		}
		v := vals[0]
		if len(vals) > 1 {
			v = strings.Join(vals, ",")
		}
		if h.re != nil {
			if !h.re.MatchString(v) {
				return false
			}
		} else if v != h.value {
			return false
		}
	}
	for i := range rt.query {
		q := &rt.query[i]
		v, ok := queryValue(r.URL.RawQuery, q.name)
		if !ok {
			return false
		}
		if q.re != nil {
			if !q.re.MatchString(v) {
				return false
			}
		} else if v != q.value {
			return false
		}
	}
	return true
}

// NormalizeHost turns a Host header into the form listeners and virtual hosts are keyed
// by: no port, no trailing dot, lower case. It allocates only for upper-case input.
func NormalizeHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}
