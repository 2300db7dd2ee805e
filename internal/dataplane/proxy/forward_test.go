package proxy

import (
	"net/http"
	"net/url"
	"testing"
)

func TestIsEventStream(t *testing.T) {
	for _, c := range []struct {
		ct   []string
		want bool
	}{
		{nil, false},
		{[]string{"text/event-stream"}, true},
		{[]string{" Text/Event-Stream ; charset=utf-8"}, true},
		{[]string{"text/event-stream;"}, true},
		{[]string{"text/event-streams"}, false},
		{[]string{"text/event-ſtream"}, false}, // Unicode folding is not ASCII case
		{[]string{"text/plain", "text/event-stream"}, false},
	} {
		if got := isEventStream(c.ct); got != c.want {
			t.Errorf("isEventStream(%q) = %v, want %v", c.ct, got, c.want)
		}
	}
}

func TestCleanQuery(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"a=1&b=2", "a=1&b=2"},
		{"a=%41&b=&c", "a=%41&b=&c"}, // well formed: untouched, order and escapes kept
		{"b=2;a=1", ""},              // a semicolon makes the pair unparsable: dropped
		{"a=1;x&b=2", "b=2"},
		{"a=%zz&b=2", "b=2"},
		{"b=2&a=%4", "b=2"},
		{"a=%", ""},
	} {
		if got := cleanQuery(c.in); got != c.want {
			t.Errorf("cleanQuery(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzCleanQuery: what cleanQuery passes on parses without error, and a well-formed
// query is passed on unchanged.
func FuzzCleanQuery(f *testing.F) {
	for _, s := range []string{"a=1&b=2", "a=1;b", "x=%zz", "%", "a=%41", "&&=&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out := cleanQuery(q)
		if _, err := url.ParseQuery(out); err != nil {
			t.Fatalf("cleanQuery(%q) = %q, which does not parse: %v", q, out, err)
		}
		if _, err := url.ParseQuery(q); err == nil && out != q {
			t.Fatalf("cleanQuery(%q) = %q: a query that parses must pass unchanged", q, out)
		}
	})
}

func TestOutboundHeader(t *testing.T) {
	in := http.Header{
		"Connection":      {"keep-alive, X-Hop"},
		"X-Hop":           {"1"},
		"Keep-Alive":      {"5"},
		"X-Forwarded-For": {"6.6.6.6"},
		"Forwarded":       {"for=x"},
		"Accept":          {"a", "b"},
	}
	out := outboundHeader(in)
	if len(out) != 1 || len(out["Accept"]) != 2 {
		t.Fatalf("outbound header %v, want only Accept", out)
	}
}
