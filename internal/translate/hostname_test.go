package translate

import (
	"regexp"
	"testing"
)

// dnsName is the definition isDNSName implements: a lower-case RFC 1123 DNS name,
// optionally behind a "*." wildcard label.
var dnsName = regexp.MustCompile(`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func TestIsDNSName(t *testing.T) {
	for _, h := range []string{"", "a", "a.b", "*.a.b", "*", "*.", "*.*.a", "a..b", "a.", ".a", "-a", "a-", "a-b.c-d",
		"A.b", "a_b", "xn--bcher-kva.example", "1.2.3.4", "*.a-", "a.*.b", "a.b-.c"} {
		if got, want := isDNSName(h), dnsName.MatchString(h); got != want {
			t.Errorf("isDNSName(%q) = %v, want %v", h, got, want)
		}
	}
}

func FuzzIsDNSName(f *testing.F) {
	for _, s := range []string{"a.b", "*.a", "a-b", "*.", "a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if got, want := isDNSName(h), dnsName.MatchString(h); got != want {
			t.Fatalf("isDNSName(%q) = %v, the definition says %v", h, got, want)
		}
	})
}
