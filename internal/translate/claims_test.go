package translate

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestHostClaimsMatchBruteForce checks the indexed overlap lookup against comparing
// every claim, over random exact and wildcard names on a small label alphabet.
func TestHostClaimsMatchBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	labels := []string{"a", "b", "c"}
	name := func() string {
		if rng.IntN(12) == 0 {
			return "*"
		}
		n := 1 + rng.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = labels[rng.IntN(len(labels))]
		}
		if rng.IntN(3) == 0 {
			parts[0] = "*"
		}
		return strings.Join(parts, ".")
	}
	for round := range 300 {
		var c hostClaims
		type claim struct{ host, route string }
		var claims []claim
		for i := range rng.IntN(8) {
			cl := claim{name(), "r" + string(rune('a'+i))}
			claims = append(claims, cl)
			c.add(cl.host, cl.route)
		}
		for range 20 {
			h := name()
			want := ""
			for _, cl := range claims {
				if hostsOverlap(cl.host, h) && (want == "" || cl.route < want) {
					want = cl.route
				}
			}
			if got := c.overlapping(h); got != want {
				t.Fatalf("round %d: claims %v, overlapping(%q) = %q, want %q", round, claims, h, got, want)
			}
		}
	}
}

// hostsOverlap is the plain definition the index must agree with.
func hostsOverlap(a, b string) bool {
	return a == b || a == "*" || b == "*" || wildcardMatches(a, b) || wildcardMatches(b, a)
}
