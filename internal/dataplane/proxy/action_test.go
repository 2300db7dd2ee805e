package proxy

import (
	"testing"

	"github.com/portico-gw/portico/internal/dataplane/upstream"
	"github.com/portico-gw/portico/internal/ir"
)

func TestWeightedScheduleIsExactAndInterleaved(t *testing.T) {
	clusters := upstream.Set{"a": {Name: "a"}, "b": {Name: "b"}, "c": {Name: "c"}}
	cases := []struct {
		weights []uint32
		window  int // every window of this many requests holds exactly the reduced weights
	}{
		{[]uint32{80, 20}, 5},
		{[]uint32{1, 1}, 2},
		{[]uint32{3, 2, 1}, 6},
		{[]uint32{50, 0, 50}, 2},
	}
	for _, tc := range cases {
		var backends []ir.Backend
		for i, w := range tc.weights {
			backends = append(backends, ir.Backend{Cluster: []string{"a", "b", "c"}[i], Weight: w})
		}
		a, err := Compile(&ir.Listener{Name: "ns/gw/l"}, &ir.Route{Name: "r", Backends: backends}, clusters, nil)
		if err != nil {
			t.Fatal(err)
		}
		for start := 0; start < 3; start++ {
			counts := map[string]int{}
			for range tc.window {
				counts[a.pickBackend().cluster.Name]++
			}
			g := uint32(0)
			for _, w := range tc.weights {
				g = uint32(gcd(uint64(g), uint64(w)))
			}
			for i, w := range tc.weights {
				name := []string{"a", "b", "c"}[i]
				if counts[name] != int(w/g) {
					t.Fatalf("weights %v window %d: %s got %d, want %d (%v)", tc.weights, start, name, counts[name], w/g, counts)
				}
			}
		}
	}
	// Interleaved: 80/20 never sends two requests in a row to the small backend.
	a, _ := Compile(&ir.Listener{Name: "ns/gw/l"}, &ir.Route{Name: "r", Backends: []ir.Backend{{Cluster: "a", Weight: 80}, {Cluster: "b", Weight: 20}}}, clusters, nil)
	prev := ""
	for range 50 {
		cur := a.pickBackend().cluster.Name
		if cur == "b" && prev == "b" {
			t.Fatal("80/20 sent two requests in a row to the 20% backend")
		}
		prev = cur
	}
}
