package translate

import (
	"cmp"
	"slices"

	"github.com/portico-gw/portico/internal/ir"
)

// vhostBuilder collects the routes of one hostname on one listener.
type vhostBuilder struct {
	hostname string
	entries  []routeEntry
}

// routeEntry is a route with the facts that decide its precedence.
type routeEntry struct {
	route ir.Route
	key   precedence
}

// precedence orders routes that can match the same request, following the Gateway API
// rules: Exact path, then RegularExpression (implementation-specific: Portico ranks a
// regex above prefixes so a catch-all prefix cannot shadow it), then PathPrefix by
// length; then method; then header count; then query parameter count; then the oldest
// route, then namespace/name, then rule and match order.
type precedence struct {
	pathRank int
	pathLen  int
	// grpcService and grpcMethod are the lengths of a GRPCRoute match's service and
	// method, which rank gRPC matches instead of the path (zero for HTTPRoutes).
	grpcService int
	grpcMethod  int
	method      bool
	headers     int
	query       int
	created     int64  // unix seconds of the route's creationTimestamp
	route       string // "namespace/name", compared as one string as the spec says
	rule        int
	match       int
}

func pathRank(t ir.PathMatchType) int {
	switch t {
	case ir.PathExact:
		return 0
	case ir.PathRegex:
		return 1
	}
	return 2
}

func comparePrecedence(a, b precedence) int {
	return cmp.Or(
		cmp.Compare(a.pathRank, b.pathRank),
		cmp.Compare(b.pathLen, a.pathLen),
		cmp.Compare(b.grpcService, a.grpcService),
		cmp.Compare(b.grpcMethod, a.grpcMethod),
		cmpBoolFirst(a.method, b.method),
		cmp.Compare(b.headers, a.headers),
		cmp.Compare(b.query, a.query),
		cmp.Compare(a.created, b.created),
		cmp.Compare(a.route, b.route),
		cmp.Compare(a.rule, b.rule),
		cmp.Compare(a.match, b.match),
	)
}

func cmpBoolFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

func (l *listenerState) addRoutes(hostname string, entries []routeEntry) {
	vh, ok := l.vhosts[hostname]
	if !ok {
		vh = &vhostBuilder{hostname: hostname}
		l.vhosts[hostname] = vh
	}
	vh.entries = append(vh.entries, entries...)
}

// buildVirtualHosts sorts virtual hosts most specific first and their routes by precedence.
func buildVirtualHosts(vhosts map[string]*vhostBuilder) []ir.VirtualHost {
	if len(vhosts) == 0 {
		return nil
	}
	names := sortedKeys(vhosts)
	slices.SortFunc(names, compareHostSpecificity)
	out := make([]ir.VirtualHost, 0, len(names))
	for _, n := range names {
		vh := vhosts[n]
		slices.SortFunc(vh.entries, func(a, b routeEntry) int { return comparePrecedence(a.key, b.key) })
		routes := make([]ir.Route, len(vh.entries))
		for i, e := range vh.entries {
			routes[i] = e.route
		}
		out = append(out, ir.VirtualHost{Hostname: n, Routes: routes})
	}
	return out
}

// l4Entry is a TLS, TCP or UDP route rule attached to a listener.
type l4Entry struct {
	route ir.L4Route
	key   precedence
}

// buildL4Routes orders stream routes: for TLS, most specific SNI hostname first; then
// oldest route first.
func buildL4Routes(entries []l4Entry) []ir.L4Route {
	if len(entries) == 0 {
		return nil
	}
	slices.SortFunc(entries, func(a, b l4Entry) int {
		return cmp.Or(compareHostSpecificity(firstHost(a.route), firstHost(b.route)), comparePrecedence(a.key, b.key))
	})
	out := make([]ir.L4Route, len(entries))
	for i, e := range entries {
		out[i] = e.route
	}
	return out
}

func firstHost(r ir.L4Route) string {
	if len(r.Hostnames) == 0 {
		return ""
	}
	return r.Hostnames[0]
}
