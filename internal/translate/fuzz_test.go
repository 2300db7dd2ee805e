package translate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/resource"
)

// FuzzTranslate feeds arbitrary YAML through the loader and the translator. No input
// may panic, and whatever is produced must be self-consistent: every cluster a route
// names exists.
func FuzzTranslate(f *testing.F) {
	cases, _ := filepath.Glob("testdata/*.yaml")
	for _, c := range cases {
		if data, err := os.ReadFile(c); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: x}\nspec: {parentRefs: [{name: g}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		snap, err := resource.Load("fuzz.yaml", data)
		if err != nil {
			return
		}
		cfg, status := Translate(snap)
		if cfg == nil || status == nil {
			t.Fatal("nil result")
		}
		checkClusterRefs(t, cfg)
	})
}

func checkClusterRefs(t *testing.T, cfg *ir.Config) {
	t.Helper()
	clusters := map[string]bool{}
	for _, c := range cfg.Clusters {
		if clusters[c.Name] {
			t.Fatalf("cluster %s appears twice", c.Name)
		}
		clusters[c.Name] = true
	}
	check := func(owner, name string) {
		if name != "" && !clusters[name] {
			t.Fatalf("%s refers to missing cluster %s", owner, name)
		}
	}
	for _, g := range cfg.Gateways {
		for _, p := range g.Ports {
			for _, l := range p.Listeners {
				for _, vh := range l.VirtualHosts {
					for _, r := range vh.Routes {
						for _, b := range r.Backends {
							check(r.Name, b.Cluster)
						}
						for _, m := range r.Mirrors {
							if m.Cluster == "" {
								t.Fatalf("%s has a mirror without a cluster", r.Name)
							}
							check(r.Name, m.Cluster)
						}
					}
				}
				for _, r := range l.L4Routes {
					for _, b := range r.Backends {
						check(r.Name, b.Cluster)
					}
				}
			}
		}
	}
}
