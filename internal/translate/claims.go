package translate

// HTTPRoutes and GRPCRoutes must not share a hostname on a listener: the spec forbids
// merging them and has the older route win. Each listener keeps the hostnames each
// family has claimed.

type routeFamily int

const (
	familyHTTP routeFamily = iota
	familyGRPC
)

// hostClaims are the hostnames one route family serves on a listener.
type hostClaims struct {
	exact map[string]string // hostname -> route id
	wild  []hostClaim       // "*.suffix" and "*" claims
}

type hostClaim struct {
	host, route string
}

func (c *hostClaims) add(host, route string) {
	if hostRank(host) == 0 {
		if c.exact == nil {
			c.exact = map[string]string{}
		}
		if _, ok := c.exact[host]; !ok {
			c.exact[host] = route
		}
		return
	}
	c.wild = append(c.wild, hostClaim{host, route})
}

// overlapping returns a route whose hostnames intersect host, or "".
func (c *hostClaims) overlapping(host string) string {
	if r, ok := c.exact[host]; ok {
		return r
	}
	for _, w := range c.wild {
		if hostsOverlap(w.host, host) {
			return w.route
		}
	}
	found := ""
	if hostRank(host) > 0 {
		for h, r := range c.exact {
			if hostsOverlap(host, h) && (found == "" || r < found) {
				found = r // the smallest id, so the message does not depend on map order
			}
		}
	}
	return found
}

func hostsOverlap(a, b string) bool {
	return a == b || a == "*" || b == "*" || wildcardMatches(a, b) || wildcardMatches(b, a)
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
