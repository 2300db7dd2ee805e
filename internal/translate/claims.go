package translate

import "strings"

// HTTPRoutes and GRPCRoutes must not share a hostname on a listener: the spec forbids
// merging them and has the older route win. Each listener keeps the hostnames each
// family has claimed.

type routeFamily int

const (
	familyHTTP routeFamily = iota
	familyGRPC
)

// hostClaims are the hostnames one route family serves on a listener, indexed so that
// "does anything overlap this hostname" costs a few map lookups per label, whatever the
// number of claims. Each index keeps the smallest route id, so messages do not depend
// on map order.
type hostClaims struct {
	any       string            // a "*" claim (a route without hostnames on a listener without one)
	min       string            // the smallest route over every claim
	exact     map[string]string // "a.b.c" -> route
	under     map[string]string // ".b.c" and ".c" -> a route with an exact claim under that suffix
	wild      map[string]string // ".b.c" for "*.b.c" -> route
	wildUnder map[string]string // ".c" for "*.b.c" -> a route with a wildcard claim under that suffix
}

func keepMin(m map[string]string, k, route string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	if old, ok := m[k]; !ok || route < old {
		m[k] = route
	}
	return m
}

// parentSuffixes calls fn with ".b.c" and ".c" for "a.b.c" (or for ".a.b.c").
func parentSuffixes(host string, fn func(suffix string)) {
	for i := 1; i < len(host); i++ {
		if host[i] == '.' {
			fn(host[i:])
		}
	}
}

func (c *hostClaims) add(host, route string) {
	if c.min == "" || route < c.min {
		c.min = route
	}
	switch {
	case host == "*":
		if c.any == "" || route < c.any {
			c.any = route
		}
	case strings.HasPrefix(host, "*."):
		suffix := host[1:]
		c.wild = keepMin(c.wild, suffix, route)
		parentSuffixes(suffix, func(s string) { c.wildUnder = keepMin(c.wildUnder, s, route) })
	default:
		c.exact = keepMin(c.exact, host, route)
		parentSuffixes(host, func(s string) { c.under = keepMin(c.under, s, route) })
	}
}

// overlapping returns a route whose hostnames intersect host, or "".
func (c *hostClaims) overlapping(host string) string {
	found := c.any
	pick := func(r string, ok bool) {
		if ok && (found == "" || r < found) {
			found = r
		}
	}
	switch {
	case host == "*":
		return c.min // "*" overlaps every claim
	case strings.HasPrefix(host, "*."):
		suffix := host[1:]
		r, ok := c.under[suffix] // exact names it covers
		pick(r, ok)
		r, ok = c.wild[suffix] // the same wildcard
		pick(r, ok)
		r, ok = c.wildUnder[suffix] // narrower wildcards it covers
		pick(r, ok)
		parentSuffixes(suffix, func(s string) { r, ok := c.wild[s]; pick(r, ok) }) // wider wildcards
	default:
		r, ok := c.exact[host]
		pick(r, ok)
		parentSuffixes(host, func(s string) { r, ok := c.wild[s]; pick(r, ok) })
	}
	return found
}

// claimHostnames drops the attachments where an older route of the other family
// already serves an overlapping hostname, then claims the hostnames that remain.
// Routes are translated oldest first, so the older route always claims first.
func claimHostnames(info routeInfo, parents []*parentResult, family routeFamily) {
	other := 1 - family
	for _, p := range parents {
		if !p.accepted() {
			continue
		}
		var kept []attachment
		var lost problems
		for _, a := range p.attachments {
			conflict := ""
			for _, h := range a.hostnames {
				if conflict = a.listener.claims[other].overlapping(h); conflict != "" {
					break
				}
			}
			if conflict != "" {
				delete(a.listener.attached, info.id())
				lost.add("HostnameConflict", "listener %q: %s already serves an overlapping hostname, and HTTPRoutes and GRPCRoutes cannot share one", a.listener.spec.Name, conflict)
				continue
			}
			kept = append(kept, a)
		}
		p.attachments = kept
		if len(kept) == 0 {
			p.status.Conditions = setCondition(p.status.Conditions, condition("Accepted", false, lost.reason, info.meta.Generation, lost.message()))
		}
	}
	for _, p := range parents {
		for _, a := range p.attachments {
			for _, h := range a.hostnames {
				a.listener.claims[family].add(h, info.id())
			}
		}
	}
}
