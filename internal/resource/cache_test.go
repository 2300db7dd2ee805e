package resource

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

const cacheGateway = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public, namespace: infra}
spec:
  gatewayClassName: portico
  listeners: [{name: http, port: 80, protocol: HTTP}]
`

func cacheRoute(name, path string) string {
	return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ` + name + `, namespace: apps}
spec:
  parentRefs: [{name: public, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: ` + path + `}}]
`
}

// The cache gives exactly what LoadPath gives, decoding only the files that changed.
func TestCacheMatchesLoadPath(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("gateway.yaml", cacheGateway)
	write("a.yaml", cacheRoute("a", "/a"))
	write("b.yaml", cacheRoute("b", "/b")+"---\n"+cacheRoute("c", "/c"))
	var c Cache
	check := func(step string, decoded int) *Snapshot {
		t.Helper()
		got, gotErr := c.LoadPath(dir)
		want, wantErr := LoadPath(dir)
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("%s: cache error %v, LoadPath error %v", step, gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: the cached load differs from LoadPath", step)
		}
		if c.Decoded != decoded {
			t.Fatalf("%s: %d files decoded, want %d", step, c.Decoded, decoded)
		}
		return got
	}
	first := check("first load", 3)
	check("unchanged", 0)
	write("a.yaml", cacheRoute("a", "/a2"))
	check("one file changed", 1)
	// Snapshots never share objects: changing one does not change the next.
	for _, r := range first.HTTPRoutes {
		r.Labels = map[string]string{"mutated": "yes"}
	}
	next := check("after a mutation", 0)
	for _, r := range next.HTTPRoutes {
		if r.Labels["mutated"] != "" {
			t.Fatal("a cached object was shared between snapshots")
		}
	}
	write("b.yaml", "kind: [unclosed")
	check("a broken file", 1)
	write("b.yaml", cacheRoute("b", "/b"))
	check("fixed", 1)
	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	check("a file removed", 0)
	write("dup.yaml", cacheRoute("b", "/dup"))
	check("an object defined twice", 1)
	if err := os.Remove(filepath.Join(dir, "dup.yaml")); err != nil {
		t.Fatal(err)
	}

	// Recently changed files are read every time (their timestamps could hide a change
	// made within the same clock tick)...
	check("recent files", 0)
	if c.Read != 2 {
		t.Fatalf("%d recent files read, want both", c.Read)
	}
	// ...and files changed long enough ago (here: any time before the stat) are not
	// read again while their inode, size and times stay the same.
	defer func(w time.Duration) { racyWindow = w }(racyWindow)
	racyWindow = -time.Hour
	check("old files, first stat", 0)
	check("old and unchanged", 0)
	if c.Read != 0 {
		t.Fatalf("%d unchanged old files were read again", c.Read)
	}
	// A change that keeps the modification time still changes the change time.
	mtime := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "b.yaml"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	check("b's modification time set back", 0)
	// (Later than the coarse clock's tick, which the racy window covers outside tests.)
	time.Sleep(50 * time.Millisecond)
	write("b.yaml", cacheRoute("x", "/b")) // the same size
	if err := os.Chtimes(filepath.Join(dir, "b.yaml"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	check("b changed under its old modification time", 1)
}
