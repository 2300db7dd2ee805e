package translate

import (
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

func TestBoundTimeouts(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		name      string
		in        *ir.Timeouts
		def, maxT time.Duration
		want      string // Request|BackendRequest, or "nil"
	}{
		{"no route timeout, default", nil, 15 * s, 60 * s, "15s|"},
		{"no route timeout, only a maximum", nil, 0, 60 * s, "1m0s|"},
		{"no bounds", nil, 0, 0, "nil"},
		{"asked for none, only a default", &ir.Timeouts{Request: "0s"}, 15 * s, 0, "0s|"},
		{"asked for none, a maximum", &ir.Timeouts{Request: "0s", BackendRequest: "0s"}, 15 * s, 60 * s, "1m0s|0s"},
		{"shorter than the maximum", &ir.Timeouts{Request: "5s"}, 15 * s, 60 * s, "5s|"},
		{"longer than the maximum", &ir.Timeouts{Request: "2m0s", BackendRequest: "1m30s"}, 15 * s, 60 * s, "1m0s|1m0s"},
		{"backend timeout alone, under the default", &ir.Timeouts{BackendRequest: "10s"}, 15 * s, 0, "15s|10s"},
		{"backend timeout alone, over the maximum", &ir.Timeouts{BackendRequest: "90s"}, 0, 60 * s, "1m0s|1m0s"},
	} {
		got := "nil"
		if out := boundTimeouts(tc.in, tc.def, tc.maxT); out != nil {
			got = out.Request + "|" + out.BackendRequest
		}
		if got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
	in := &ir.Timeouts{Request: "2m0s"}
	boundTimeouts(in, 0, time.Minute)
	if in.Request != "2m0s" {
		t.Error("boundTimeouts changed the route's own timeouts, which other listeners share")
	}
}
