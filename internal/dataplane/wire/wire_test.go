package wire

import (
	"net/textproto"
	"testing"
)

func TestCanonicalKey(t *testing.T) {
	for _, k := range []string{"host", "Host", "HOST", "content-type", "x-foo-bar", "X_under", "a", "-x-", "x--y",
		"accept-encoding", "A-Very-Long-Header-Name-That-Goes-On-And-On-Beyond-Sixty-Four-Bytes-x"} {
		if got, want := CanonicalKey(k), textproto.CanonicalMIMEHeaderKey(k); got != want {
			t.Errorf("CanonicalKey(%q) = %q, want %q", k, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { CanonicalKey("content-length"); CanonicalKey("X-Custom") }); n != 0 {
		t.Errorf("%v allocations for a common and a canonical name", n)
	}
}

// FuzzCanonicalKey: the same result as textproto for every token.
func FuzzCanonicalKey(f *testing.F) {
	f.Add("x-forwarded-for")
	f.Fuzz(func(t *testing.T, k string) {
		for i := 0; i < len(k); i++ {
			if !IsTokenChar(k[i]) {
				return
			}
		}
		if got, want := CanonicalKey(k), textproto.CanonicalMIMEHeaderKey(k); got != want {
			t.Fatalf("CanonicalKey(%q) = %q, want %q", k, got, want)
		}
	})
}
