package chart

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/portico-gw/portico/test/kube"
)

const (
	releaseName = "portico"
	releaseNS   = "portico-system"
)

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helmBin is the helm binary, built once per test process.
func helmBin(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		helmPath, helmErr = HelmBinary(ctx, t.Logf)
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	return helmPath
}

// valueCase is one way of installing the chart: its --set arguments.
type valueCase struct {
	name string
	set  []string
}

// required are the values without a default.
var required = []string{"image.repository=registry.example.com/portico", "gatewayAddresses=192.0.2.0/24"}

func standardCases() []valueCase {
	with := func(extra ...string) []string { return append(append([]string{}, required...), extra...) }
	return []valueCase{
		{"defaults", with()},
		{"gateway-api-crds", with("gatewayAPI.installCRDs=true")},
		{"single-replica", with("replicas=1")},
		{"pod-network", with("hostNetwork=false", "bindPrivilegedPorts=false", "image.tag=v9.9.9", "logFormat=text")},
		{"no-leader-election", with("replicas=1", "leaderElection.enabled=false", "podDisruptionBudget.enabled=false")},
	}
}

// rendered is one rendering of the chart: its objects and the values it was given
// (values.yaml with the --set arguments applied, as helm does).
type rendered struct {
	name   string
	objs   []*unstructured.Unstructured
	values values
}

func render(t *testing.T, c valueCase) *rendered {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := Template(ctx, helmBin(t), releaseName, releaseNS, kube.KubernetesVersion, c.set...)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	objs, err := kube.ParseManifests(out)
	if err != nil {
		t.Fatalf("%s: parsing helm's output: %v", c.name, err)
	}
	return &rendered{name: c.name, objs: objs, values: chartValues(t, c.set)}
}

// all returns the rendered objects of kind.
func (r *rendered) all(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the only rendered object of kind, failing the test unless there is
// exactly one.
func (r *rendered) one(t *testing.T, kind string) *unstructured.Unstructured {
	t.Helper()
	objs := r.all(kind)
	if len(objs) != 1 {
		t.Fatalf("%s: %d %s objects rendered, want 1", r.name, len(objs), kind)
	}
	return objs[0]
}

// values are the chart's values as a nested map.
type values map[string]any

// chartValues reads the chart's values.yaml and applies each "a.b=value" of set the way
// helm's --set does (true/false become booleans, integers numbers, the rest strings).
func chartValues(t *testing.T, set []string) values {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ChartDir(), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	v := values{}
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	for _, s := range set {
		path, raw, ok := strings.Cut(s, "=")
		if !ok {
			t.Fatalf("--set %q: no '='", s)
		}
		var val any = raw
		if b, err := strconv.ParseBool(raw); err == nil && (raw == "true" || raw == "false") {
			val = b
		} else if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
			val = float64(n) // what values.yaml's numbers decode to
		}
		keys := strings.Split(path, ".")
		m := map[string]any(v)
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[keys[len(keys)-1]] = val
	}
	return v
}

func (v values) get(t *testing.T, path string) any {
	t.Helper()
	var cur any = map[string]any(v)
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("value %s: %s is not a map", path, k)
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("value %s is not in values.yaml", path)
		}
	}
	return cur
}

func (v values) str(t *testing.T, path string) string {
	t.Helper()
	s, ok := v.get(t, path).(string)
	if !ok {
		t.Fatalf("value %s = %v, not a string", path, v.get(t, path))
	}
	return s
}

func (v values) num(t *testing.T, path string) int64 {
	t.Helper()
	f, ok := v.get(t, path).(float64)
	if !ok {
		t.Fatalf("value %s = %v, not a number", path, v.get(t, path))
	}
	return int64(f)
}

func (v values) flag(t *testing.T, path string) bool {
	t.Helper()
	b, ok := v.get(t, path).(bool)
	if !ok {
		t.Fatalf("value %s = %v, not a boolean", path, v.get(t, path))
	}
	return b
}

// chartMeta is Chart.yaml.
type chartMeta struct {
	APIVersion  string            `json:"apiVersion"`
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	AppVersion  string            `json:"appVersion"`
	Annotations map[string]string `json:"annotations"`
}

func readChartMeta(t *testing.T) chartMeta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ChartDir(), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m chartMeta
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	return m
}

// args splits a container's "--name=value" arguments into a map, failing on a
// repeated flag or one without "=" (a boolean flag given as "--flag value" would make
// "value" a positional argument, which the controller command refuses).
func parseArgs(t *testing.T, args []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range args {
		name, val, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok {
			t.Errorf("argument %q is not --name=value", a)
			continue
		}
		if _, dup := out[name]; dup {
			t.Errorf("flag --%s given twice", name)
		}
		out[name] = val
	}
	return out
}
