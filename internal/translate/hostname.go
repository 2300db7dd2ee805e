package translate

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// isDNSName reports whether h is a lower-case RFC 1123 DNS name, optionally behind a
// "*." wildcard label (what the regular expression in hostname_test.go says, without
// its cost: every route's hostnames are checked at every translation).
func isDNSName(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	for {
		label, rest, more := strings.Cut(h, ".")
		if !isDNSLabel(label) {
			return false
		}
		if !more {
			return true
		}
		h = rest
	}
}

// isDNSLabel: lower-case letters, digits and inner hyphens.
func isDNSLabel(l string) bool {
	if l == "" {
		return false
	}
	for i := 0; i < len(l); i++ {
		switch c := l[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(l)-1:
		default:
			return false
		}
	}
	return true
}

// validateHostname applies the API's rules for listener and route hostnames.
func validateHostname(h string) error {
	if h == "" {
		return errors.New("must not be empty")
	}
	if len(h) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", h)
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return fmt.Errorf("%q is an IP address; use a DNS name", h)
	}
	if !isDNSName(h) {
		return fmt.Errorf("%q is not a lower-case DNS name (a leading \"*.\" wildcard label is allowed)", h)
	}
	return nil
}

// wildcardMatches reports whether the pattern "*.suffix" covers host (which may itself
// be a wildcard): the wildcard stands for one or more whole labels.
func wildcardMatches(pattern, host string) bool {
	suffix, ok := strings.CutPrefix(pattern, "*")
	if !ok {
		return false
	}
	if h, ok := strings.CutPrefix(host, "*"); ok {
		// "*.a.example.com" is covered by "*.example.com", but not the other way round.
		return len(h) > len(suffix) && strings.HasSuffix(h, suffix) || h == suffix
	}
	return len(host) > len(suffix) && strings.HasSuffix(host, suffix)
}

// intersectHostnames returns the hostnames a route serves on a listener: the route's
// hostnames narrowed by the listener's hostname. "" stands for "any host". ok is false
// when the route has hostnames and none of them overlap the listener's.
func intersectHostnames(listener string, route []string) (out []string, ok bool) {
	if len(route) == 0 {
		if listener == "" {
			return []string{"*"}, true
		}
		return []string{listener}, true
	}
	if listener == "" {
		return dedupe(route), true
	}
	for _, h := range route {
		switch {
		case h == listener:
			out = append(out, h)
		case wildcardMatches(listener, h):
			out = append(out, h) // route is more specific
		case wildcardMatches(h, listener):
			out = append(out, listener) // listener is more specific
		}
	}
	out = dedupe(out)
	return out, len(out) > 0
}

func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// compareHostSpecificity orders hostnames most specific first: exact names (longer
// first), then wildcards by suffix length, then "" and "*" (any host). Ties break
// alphabetically so the order is total.
func compareHostSpecificity(a, b string) int {
	ra, rb := hostRank(a), hostRank(b)
	if ra != rb {
		return ra - rb
	}
	if len(a) != len(b) {
		return len(b) - len(a)
	}
	return strings.Compare(a, b)
}

func hostRank(h string) int {
	switch {
	case h == "" || h == "*":
		return 2
	case strings.HasPrefix(h, "*"):
		return 1
	}
	return 0
}
