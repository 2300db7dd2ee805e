package resource

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/api/v1alpha1"
)

// Documents of every kind a Snapshot holds. Each is valid on its own; tests join them.
const (
	gatewayClassDoc = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: portico
spec:
  controllerName: gateway.portico.dev/controller
`
	gatewayDoc = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: public
  namespace: infra
spec:
  gatewayClassName: portico
  listeners:
  - name: http
    protocol: HTTP
    port: 80
`
	listenerPolicyDoc = `apiVersion: gateway.portico.dev/v1alpha1
kind: ListenerPolicy
metadata:
  name: defaults
  namespace: infra
spec:
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: Gateway, name: public}
  tls: {minVersion: "1.3"}
  hsts: {maxAgeSeconds: 31536000}
  httpsRedirect: {}
`
	listenerSetDoc = `apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: team-a
  namespace: apps
spec:
  parentRef:
    name: public
    namespace: infra
  listeners:
  - name: http
    protocol: HTTP
    port: 8080
`
	httpRouteDoc = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
spec:
  parentRefs:
  - name: public
    namespace: infra
  hostnames: ["www.example.com"]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /}
    backendRefs:
    - name: web
      port: 8080
`
	grpcRouteDoc = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, namespace: apps}
spec:
  parentRefs: [{name: public, namespace: infra}]
  rules:
  - matches:
    - method: {service: echo.Echo, method: Say}
    backendRefs: [{name: echo, port: 9000}]
`
	tlsRouteDoc = `apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: passthrough, namespace: apps}
spec:
  parentRefs: [{name: public, namespace: infra}]
  hostnames: [secure.example.com]
  rules:
  - backendRefs: [{name: secure, port: 8443}]
`
	tcpRouteDoc = `apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: postgres, namespace: db}
spec:
  parentRefs: [{name: public, namespace: infra}]
  rules:
  - backendRefs: [{name: postgres, port: 5432}]
`
	udpRouteDoc = `apiVersion: gateway.networking.k8s.io/v1
kind: UDPRoute
metadata: {name: dns}
spec:
  parentRefs: [{name: public, namespace: infra}]
  rules:
  - backendRefs: [{name: coredns, port: 53}]
`
	referenceGrantDoc = `apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {name: from-infra, namespace: apps}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]
  to: [{group: "", kind: Secret}]
`
	backendTLSPolicyDoc = `apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: secure-tls, namespace: apps}
spec:
  targetRefs: [{group: "", kind: Service, name: secure}]
  validation:
    hostname: secure.internal
    caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]
`
	serviceDoc = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 8080
    targetPort: http
`
	endpointSliceDoc = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true}
ports:
- name: http
  port: 8080
`
	secretDoc = `apiVersion: v1
kind: Secret
metadata: {name: tls, namespace: infra}
type: kubernetes.io/tls
data:
  tls.crt: Y2VydA==
  tls.key: a2V5
`
	configMapDoc = `apiVersion: v1
kind: ConfigMap
metadata: {name: ca, namespace: apps}
data:
  ca.crt: "not really a certificate"
`
	namespaceDoc = `apiVersion: v1
kind: Namespace
metadata:
  name: apps
  labels: {team: web}
`
	backendDoc = `apiVersion: gateway.portico.dev/v1alpha1
kind: Backend
metadata: {name: legacy, namespace: apps}
spec:
  appProtocol: kubernetes.io/h2c
  endpoints:
  - address: 10.0.0.7
    port: 8080
  - address: legacy.example.com
    port: 8081
`
)

// lookup finds an object of one kind in a Snapshot.
type lookup func(*Snapshot, Key) (client.Object, bool)

func in[T client.Object](pick func(*Snapshot) map[Key]T) lookup {
	return func(s *Snapshot, k Key) (client.Object, bool) {
		obj, ok := pick(s)[k]
		return obj, ok
	}
}

type kindCase struct {
	kind   string
	doc    string
	key    Key
	gvk    schema.GroupVersionKind
	lookup lookup
}

func gwGVK(kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: kind}
}

// everyKind has one case per kind a Snapshot holds; TestEveryKindIsCovered keeps it complete.
var everyKind = []kindCase{
	{"GatewayClass", gatewayClassDoc, Key{Name: "portico"}, gwGVK("GatewayClass"),
		in(func(s *Snapshot) map[Key]*gwv1.GatewayClass { return s.GatewayClasses })},
	{"Gateway", gatewayDoc, Key{"infra", "public"}, gwGVK("Gateway"),
		in(func(s *Snapshot) map[Key]*gwv1.Gateway { return s.Gateways })},
	{"ListenerSet", listenerSetDoc, Key{"apps", "team-a"}, gwGVK("ListenerSet"),
		in(func(s *Snapshot) map[Key]*gwv1.ListenerSet { return s.ListenerSets })},
	{"HTTPRoute", httpRouteDoc, Key{"default", "web"}, gwGVK("HTTPRoute"),
		in(func(s *Snapshot) map[Key]*gwv1.HTTPRoute { return s.HTTPRoutes })},
	{"GRPCRoute", grpcRouteDoc, Key{"apps", "echo"}, gwGVK("GRPCRoute"),
		in(func(s *Snapshot) map[Key]*gwv1.GRPCRoute { return s.GRPCRoutes })},
	{"TLSRoute", tlsRouteDoc, Key{"apps", "passthrough"}, gwGVK("TLSRoute"),
		in(func(s *Snapshot) map[Key]*gwv1.TLSRoute { return s.TLSRoutes })},
	{"TCPRoute", tcpRouteDoc, Key{"db", "postgres"}, gwGVK("TCPRoute"),
		in(func(s *Snapshot) map[Key]*gwv1.TCPRoute { return s.TCPRoutes })},
	{"UDPRoute", udpRouteDoc, Key{"default", "dns"}, gwGVK("UDPRoute"),
		in(func(s *Snapshot) map[Key]*gwv1.UDPRoute { return s.UDPRoutes })},
	{"ReferenceGrant", referenceGrantDoc, Key{"apps", "from-infra"}, gwGVK("ReferenceGrant"),
		in(func(s *Snapshot) map[Key]*gwv1.ReferenceGrant { return s.ReferenceGrants })},
	{"BackendTLSPolicy", backendTLSPolicyDoc, Key{"apps", "secure-tls"}, gwGVK("BackendTLSPolicy"),
		in(func(s *Snapshot) map[Key]*gwv1.BackendTLSPolicy { return s.BackendTLSPolicies })},
	{"Service", serviceDoc, Key{"default", "web"}, schema.GroupVersionKind{Version: "v1", Kind: "Service"},
		in(func(s *Snapshot) map[Key]*corev1.Service { return s.Services })},
	{"EndpointSlice", endpointSliceDoc, Key{"default", "web-abc12"},
		schema.GroupVersionKind{Group: "discovery.k8s.io", Version: "v1", Kind: "EndpointSlice"},
		in(func(s *Snapshot) map[Key]*discoveryv1.EndpointSlice { return s.EndpointSlices })},
	{"Secret", secretDoc, Key{"infra", "tls"}, schema.GroupVersionKind{Version: "v1", Kind: "Secret"},
		in(func(s *Snapshot) map[Key]*corev1.Secret { return s.Secrets })},
	{"ConfigMap", configMapDoc, Key{"apps", "ca"}, schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		in(func(s *Snapshot) map[Key]*corev1.ConfigMap { return s.ConfigMaps })},
	{"Namespace", namespaceDoc, Key{Name: "apps"}, schema.GroupVersionKind{Version: "v1", Kind: "Namespace"},
		in(func(s *Snapshot) map[Key]*corev1.Namespace { return s.Namespaces })},
	{"Backend", backendDoc, Key{"apps", "legacy"},
		schema.GroupVersionKind{Group: "gateway.portico.dev", Version: "v1alpha1", Kind: "Backend"},
		in(func(s *Snapshot) map[Key]*v1alpha1.Backend { return s.Backends })},
	{"ListenerPolicy", listenerPolicyDoc, Key{"infra", "defaults"},
		schema.GroupVersionKind{Group: "gateway.portico.dev", Version: "v1alpha1", Kind: "ListenerPolicy"},
		in(func(s *Snapshot) map[Key]*v1alpha1.ListenerPolicy { return s.ListenerPolicies })},
}

func TestEveryKindIsCovered(t *testing.T) {
	var covered []string
	for _, c := range everyKind {
		covered = append(covered, c.kind)
	}
	slices.Sort(covered)
	got := strings.Join(covered, ",")
	want := strings.Join(KnownKinds(), ",")
	if got != want {
		t.Fatalf("test cases cover kinds %s, loader knows %s", got, want)
	}
}

func TestLoadEachKind(t *testing.T) {
	for _, c := range everyKind {
		t.Run(c.kind, func(t *testing.T) {
			snap, err := Load("input.yaml", []byte(c.doc))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if snap.Len() != 1 {
				t.Fatalf("snapshot holds %d objects, want 1", snap.Len())
			}
			obj, ok := c.lookup(snap, c.key)
			if !ok {
				t.Fatalf("%s %s not found in its snapshot map", c.kind, c.key)
			}
			if got := obj.GetObjectKind().GroupVersionKind(); got != c.gvk {
				t.Errorf("GVK = %v, want %v", got, c.gvk)
			}
		})
	}
}

// TestLoadMultiDocument loads every kind from one stream and checks that each object
// lands in its own map, under its own key, with its content decoded.
func TestLoadMultiDocument(t *testing.T) {
	var docs []string
	for _, c := range everyKind {
		docs = append(docs, c.doc)
	}
	stream := "---\n" + strings.Join(docs, "---\n")
	snap, err := Load("all.yaml", []byte(stream))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if snap.Len() != len(everyKind) {
		t.Fatalf("snapshot holds %d objects, want %d", snap.Len(), len(everyKind))
	}
	for _, c := range everyKind {
		obj, ok := c.lookup(snap, c.key)
		if !ok {
			t.Errorf("%s %s not found", c.kind, c.key)
			continue
		}
		if KeyOf(obj) != c.key {
			t.Errorf("%s stored under %s has key %s", c.kind, c.key, KeyOf(obj))
		}
		if got := obj.GetObjectKind().GroupVersionKind(); got != c.gvk {
			t.Errorf("%s: GVK = %v, want %v", c.kind, got, c.gvk)
		}
	}

	// Spot-check that specs were decoded, not only metadata.
	route := snap.HTTPRoutes[Key{"default", "web"}]
	if len(route.Spec.Rules) != 1 || len(route.Spec.Rules[0].BackendRefs) != 1 ||
		route.Spec.Rules[0].BackendRefs[0].Port == nil || *route.Spec.Rules[0].BackendRefs[0].Port != 8080 {
		t.Errorf("HTTPRoute rules decoded wrongly: %+v", route.Spec.Rules)
	}
	if got := snap.Secrets[Key{"infra", "tls"}].Data["tls.crt"]; string(got) != "cert" {
		t.Errorf("Secret data tls.crt = %q, want base64-decoded %q", got, "cert")
	}
	backend := snap.Backends[Key{"apps", "legacy"}]
	if len(backend.Spec.Endpoints) != 2 || backend.Spec.Endpoints[1].Address != "legacy.example.com" ||
		backend.Spec.Endpoints[1].Port != 8081 {
		t.Errorf("Backend endpoints decoded wrongly: %+v", backend.Spec.Endpoints)
	}
	slice := snap.EndpointSlices[Key{"default", "web-abc12"}]
	if slice.Labels["kubernetes.io/service-name"] != "web" || len(slice.Endpoints) != 1 {
		t.Errorf("EndpointSlice decoded wrongly: %+v", slice)
	}
}

func TestDecodeDefaultNamespace(t *testing.T) {
	for _, c := range everyKind {
		t.Run(c.kind, func(t *testing.T) {
			apiVersion := c.gvk.GroupVersion().String()
			info := kinds[c.kind]
			objs, err := Decode("ns.yaml", fmt.Appendf(nil,
				"apiVersion: %s\nkind: %s\nmetadata: {name: x}\n", apiVersion, c.kind))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(objs) != 1 {
				t.Fatalf("got %d objects, want 1", len(objs))
			}
			want := ""
			if info.namespaced {
				want = "default"
			}
			if got := objs[0].GetNamespace(); got != want {
				t.Errorf("namespace = %q, want %q", got, want)
			}
		})
	}

	objs, err := Decode("ns.yaml", []byte("apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: shop}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := objs[0].GetNamespace(); got != "shop" {
		t.Errorf("explicit namespace replaced: got %q, want %q", got, "shop")
	}
}

func TestDecodeOlderAPIVersions(t *testing.T) {
	tests := []struct {
		apiVersion, kind, spec string
	}{
		{"gateway.networking.k8s.io/v1beta1", "GatewayClass", "{controllerName: x.dev/c}"},
		{"gateway.networking.k8s.io/v1beta1", "Gateway", "{gatewayClassName: portico, listeners: [{name: http, protocol: HTTP, port: 80}]}"},
		{"gateway.networking.k8s.io/v1beta1", "HTTPRoute", "{rules: [{backendRefs: [{name: web, port: 80}]}]}"},
		{"gateway.networking.k8s.io/v1beta1", "ReferenceGrant", "{from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: a}], to: [{group: '', kind: Service}]}"},
		{"gateway.networking.k8s.io/v1alpha2", "TLSRoute", "{hostnames: [a.example.com], rules: [{backendRefs: [{name: web, port: 80}]}]}"},
		{"gateway.networking.k8s.io/v1alpha3", "TLSRoute", "{hostnames: [a.example.com], rules: [{backendRefs: [{name: web, port: 80}]}]}"},
		{"gateway.networking.k8s.io/v1alpha2", "TCPRoute", "{rules: [{backendRefs: [{name: db, port: 5432}]}]}"},
		{"gateway.networking.k8s.io/v1alpha2", "UDPRoute", "{rules: [{backendRefs: [{name: dns, port: 53}]}]}"},
		{"gateway.networking.k8s.io/v1alpha3", "BackendTLSPolicy", "{targetRefs: [{group: '', kind: Service, name: s}], validation: {hostname: s.internal, wellKnownCACertificates: System}}"},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.apiVersion, func(t *testing.T) {
			key := Key{Name: "old"}
			if kinds[tt.kind].namespaced {
				key.Namespace = "legacy"
			}
			doc := fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata: {name: %s, namespace: %q}\nspec: %s\n",
				tt.apiVersion, tt.kind, key.Name, key.Namespace, tt.spec)
			snap, err := Load("old.yaml", []byte(doc))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var c *kindCase
			for i := range everyKind {
				if everyKind[i].kind == tt.kind {
					c = &everyKind[i]
				}
			}
			obj, ok := c.lookup(snap, key)
			if !ok {
				t.Fatalf("%s %s not in the snapshot", tt.kind, key)
			}
			if got := obj.GetObjectKind().GroupVersionKind(); got != gwGVK(tt.kind) {
				t.Errorf("GVK = %v, want it normalised to %v", got, gwGVK(tt.kind))
			}
		})
	}

	t.Run("content survives", func(t *testing.T) {
		snap, err := Load("old.yaml", []byte("apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\n"+
			"metadata: {name: db}\nspec: {rules: [{backendRefs: [{name: db, port: 5432}]}]}\n"))
		if err != nil {
			t.Fatal(err)
		}
		route := snap.TCPRoutes[Key{"default", "db"}]
		if route == nil || len(route.Spec.Rules) != 1 || *route.Spec.Rules[0].BackendRefs[0].Port != 5432 {
			t.Fatalf("v1alpha2 TCPRoute decoded wrongly: %+v", route)
		}
		if route.APIVersion != "gateway.networking.k8s.io/v1" {
			t.Errorf("APIVersion = %q, want gateway.networking.k8s.io/v1", route.APIVersion)
		}
	})
}

func TestDecodeList(t *testing.T) {
	list := `apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: v1
  kind: Service
  metadata: {name: web}
  spec: {ports: [{port: 80}]}
- apiVersion: gateway.networking.k8s.io/v1beta1
  kind: HTTPRoute
  metadata: {name: web, namespace: shop}
- apiVersion: v1
  kind: List
  items:
  - apiVersion: v1
    kind: Namespace
    metadata: {name: shop}
`
	snap, err := Load("list.yaml", []byte(list))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if snap.Len() != 3 {
		t.Fatalf("snapshot holds %d objects, want 3", snap.Len())
	}
	if snap.Services[Key{"default", "web"}] == nil {
		t.Error("Service default/web missing (list items get the default namespace too)")
	}
	if r := snap.HTTPRoutes[Key{"shop", "web"}]; r == nil || r.APIVersion != "gateway.networking.k8s.io/v1" {
		t.Errorf("HTTPRoute shop/web missing or not normalised: %+v", r)
	}
	if snap.Namespaces[Key{Name: "shop"}] == nil {
		t.Error("Namespace shop from a nested List missing")
	}

	empty, err := Decode("empty-list.yaml", []byte("apiVersion: v1\nkind: List\nitems: []\n"))
	if err != nil || len(empty) != 0 {
		t.Errorf("empty List: got %d objects, err %v; want none, no error", len(empty), err)
	}
}

func TestDecodeSkipsEmptyDocuments(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  int
	}{
		{"empty input", "", 0},
		{"whitespace only", "\n  \n\n", 0},
		{"separators only", "---\n---\n---\n", 0},
		{"comments only", "# nothing here\n# still nothing\n", 0},
		{"explicit null", "null\n", 0},
		{"tilde", "~\n", 0},
		{"empty and comment documents around objects",
			"---\n# header comment\n---\n" + serviceDoc + "---\n\n---\n# trailing\n---\n" + namespaceDoc + "---\n", 2},
		{"separator followed by comment", "--- # first\n" + serviceDoc + "--- # second\n" + namespaceDoc, 2},
		{"CRLF line endings", strings.ReplaceAll(serviceDoc+"---\n"+namespaceDoc, "\n", "\r\n"), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Decode("in.yaml", []byte(tt.input))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(objs) != tt.want {
				t.Fatalf("got %d objects, want %d", len(objs), tt.want)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	t.Run("object", func(t *testing.T) {
		doc := `{
  "apiVersion": "gateway.networking.k8s.io/v1",
  "kind": "HTTPRoute",
  "metadata": {"name": "api", "namespace": "shop"},
  "spec": {"hostnames": ["api.example.com"], "rules": [{"backendRefs": [{"name": "api", "port": 8080}]}]}
}`
		snap, err := Load("route.json", []byte(doc))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		r := snap.HTTPRoutes[Key{"shop", "api"}]
		if r == nil || len(r.Spec.Hostnames) != 1 || r.Spec.Hostnames[0] != "api.example.com" {
			t.Fatalf("HTTPRoute shop/api decoded wrongly: %+v", r)
		}
	})
	t.Run("list on one line", func(t *testing.T) {
		doc := `{"apiVersion":"v1","kind":"List","items":[` +
			`{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}},` +
			`{"apiVersion":"gateway.portico.dev/v1alpha1","kind":"Backend","metadata":{"name":"b"},"spec":{"endpoints":[{"address":"127.0.0.1","port":80}]}}]}`
		snap, err := Load("list.json", []byte(doc))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if snap.Services[Key{"default", "a"}] == nil || snap.Backends[Key{"default", "b"}] == nil {
			t.Fatalf("list items missing: services %v backends %v", snap.Services, snap.Backends)
		}
	})
	t.Run("unknown field", func(t *testing.T) {
		_, err := Load("bad.json", []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"},"spec":{"portz":[]}}`))
		assertLoadError(t, err, "bad.json", 1, `unknown field "spec.portz"`)
	})
}

func TestDecodeErrors(t *testing.T) {
	const route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web}\n"
	tests := []struct {
		name  string
		input string
		doc   int
		want  []string // substrings of the message besides file name and "document N"
	}{
		{
			name:  "unknown kind",
			input: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
			doc:   1,
			want:  []string{`unknown kind "Pod"`, "known kinds: Backend,", "HTTPRoute"},
		},
		{
			name:  "unknown kind in the third document",
			input: serviceDoc + "---\n" + namespaceDoc + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
			doc:   3,
			want:  []string{`unknown kind "Deployment"`},
		},
		{
			name:  "wrong apiVersion for HTTPRoute",
			input: "apiVersion: networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web}\n",
			doc:   1,
			want:  []string{"field apiVersion", "networking.k8s.io/v1 does not serve kind HTTPRoute", "use gateway.networking.k8s.io/v1"},
		},
		{
			name:  "GRPCRoute has no v1alpha2 any more",
			input: "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: GRPCRoute\nmetadata: {name: g}\n",
			doc:   1,
			want:  []string{"field apiVersion", "does not serve kind GRPCRoute"},
		},
		{
			name:  "wrong apiVersion for Service",
			input: "apiVersion: apps/v1\nkind: Service\nmetadata: {name: s}\n",
			doc:   1,
			want:  []string{"field apiVersion", "apps/v1 does not serve kind Service", "use v1"},
		},
		{
			name:  "wrong apiVersion for Backend",
			input: "apiVersion: gateway.portico.dev/v1\nkind: Backend\nmetadata: {name: b}\n",
			doc:   1,
			want:  []string{"field apiVersion", "use gateway.portico.dev/v1alpha1"},
		},
		{
			name:  "unknown field",
			input: route + "spec:\n  rulez: []\n",
			doc:   1,
			want:  []string{"HTTPRoute web", `unknown field "spec.rulez"`},
		},
		{
			name:  "unknown nested field names its path",
			input: route + "spec:\n  rules:\n  - matches:\n    - path: {type: Exact, value: /, typo: 1}\n",
			doc:   1,
			want:  []string{`unknown field "spec.rules[0].matches[0].path.typo"`},
		},
		{
			name:  "unknown top-level field",
			input: route + "extra: true\n",
			doc:   1,
			want:  []string{`unknown field "extra"`},
		},
		{
			name:  "field names are case-sensitive",
			input: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nData: {a: b}\n",
			doc:   1,
			want:  []string{`unknown field "Data"`},
		},
		{
			name:  "duplicate key",
			input: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n",
			doc:   1,
			want:  []string{"malformed YAML", `key "name" already set`},
		},
		{
			name:  "wrong type for a field",
			input: "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports:\n  - port: http\n",
			doc:   1,
			want:  []string{"Service web", "cannot unmarshal string", "spec.ports.port", "int32"},
		},
		{
			name:  "list where an object belongs",
			input: route + "spec:\n  parentRefs: public\n",
			doc:   1,
			want:  []string{"HTTPRoute web", "parentRefs"},
		},
		{
			name:  "bad base64 in a Secret",
			input: "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '!!!'}\n",
			doc:   1,
			want:  []string{"Secret s", "base64"},
		},
		{
			name:  "missing metadata.name",
			input: "apiVersion: v1\nkind: Service\nmetadata: {namespace: shop}\n",
			doc:   1,
			want:  []string{"Service", "field metadata.name: missing"},
		},
		{
			name:  "missing metadata",
			input: "apiVersion: v1\nkind: Namespace\n",
			doc:   1,
			want:  []string{"Namespace", "field metadata.name: missing"},
		},
		{
			name:  "missing kind",
			input: "apiVersion: v1\nmetadata: {name: x}\n",
			doc:   1,
			want:  []string{"field kind: missing"},
		},
		{
			name:  "missing apiVersion",
			input: serviceDoc + "---\nkind: Service\nmetadata: {name: x}\n",
			doc:   2,
			want:  []string{"field apiVersion: missing", "kind Service"},
		},
		{
			name:  "kind of the wrong type",
			input: "apiVersion: v1\nkind: [Service]\n",
			doc:   1,
			want:  []string{"reading apiVersion and kind", "kind"},
		},
		{
			name:  "namespace on GatewayClass",
			input: "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: gc, namespace: infra}\n",
			doc:   1,
			want:  []string{"GatewayClass gc", "field metadata.namespace", "cluster-scoped"},
		},
		{
			name:  "namespace on Namespace",
			input: "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, namespace: default}\n",
			doc:   1,
			want:  []string{"Namespace shop", "field metadata.namespace", "cluster-scoped"},
		},
		{
			name:  "bad indentation",
			input: "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n   namespace: shop\n",
			doc:   1,
			want:  []string{"malformed YAML", "line 5"},
		},
		{
			name:  "tab indentation",
			input: serviceDoc + "---\napiVersion: v1\nkind: Service\nmetadata:\n\tname: web\n",
			doc:   2,
			want:  []string{"malformed YAML"},
		},
		{
			name:  "unclosed flow mapping",
			input: "apiVersion: v1\nkind: Service\nmetadata: {name: web\n",
			doc:   1,
			want:  []string{"malformed YAML"},
		},
		{
			name:  "document is a sequence",
			input: "- apiVersion: v1\n  kind: Service\n",
			doc:   1,
			want:  []string{"must be an object with apiVersion and kind"},
		},
		{
			name:  "document is a scalar",
			input: serviceDoc + "---\njust text\n",
			doc:   2,
			want:  []string{"must be an object with apiVersion and kind"},
		},
		{
			// The reader fails while ending document 1, so that is the one named.
			name:  "content after a separator",
			input: serviceDoc + "--- !!map\n" + namespaceDoc,
			doc:   1,
			want:  []string{"document separator", "!!map"},
		},
		{
			name:  "comment-only documents still count",
			input: "# first\n---\n# second\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
			doc:   3,
			want:  []string{`unknown kind "Pod"`},
		},
		{
			name: "bad List item",
			input: "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSpace(serviceDoc), "\n", "\n  ") +
				"\n- apiVersion: v1\n  kind: Service\n  metadata: {name: x}\n  spec: {portz: []}\n",
			doc:  1,
			want: []string{"items[1]", `unknown field "spec.portz"`},
		},
		{
			name:  "List with an unknown field",
			input: "apiVersion: v1\nkind: List\nitemz: []\n",
			doc:   1,
			want:  []string{"kind List", `unknown field "itemz"`},
		},
		{
			name:  "List whose items are not a list",
			input: "apiVersion: v1\nkind: List\nitems: {a: b}\n",
			doc:   1,
			want:  []string{"kind List", "items"},
		},
		{
			name:  "duplicate object in one stream",
			input: serviceDoc + "---\n" + namespaceDoc + "---\n" + serviceDoc,
			doc:   3,
			want:  []string{"Service default/web is defined twice", "also in in.yaml, document 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := Load("in.yaml", []byte(tt.input))
			if snap != nil {
				t.Errorf("Load returned a snapshot along with an error")
			}
			assertLoadError(t, err, "in.yaml", tt.doc, tt.want...)
		})
	}
}

func assertLoadError(t *testing.T, err error, file string, doc int, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", want)
	}
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("error %v is a %T, want *resource.LoadError", err, err)
	}
	if le.File != file || le.Doc != doc {
		t.Errorf("LoadError locates file %q document %d, want %q document %d", le.File, le.Doc, file, doc)
	}
	msg := err.Error()
	for _, w := range append([]string{file + ": ", fmt.Sprintf("document %d: ", doc)}, want...) {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
}

// writeTree creates files (slash-separated paths relative to the returned root).
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestLoadPathDirectory(t *testing.T) {
	const broken = "this: [is not: valid\n"
	root := writeTree(t, map[string]string{
		"gateway.yaml":           gatewayClassDoc + "---\n" + gatewayDoc,
		"routes/web.yml":         httpRouteDoc,
		"routes/grpc/echo.json":  `{"apiVersion":"gateway.networking.k8s.io/v1","kind":"GRPCRoute","metadata":{"name":"echo","namespace":"apps"}}`,
		"routes/grpc/UPPER.YAML": backendDoc,
		"services/web.yaml":      serviceDoc,
		"empty.yaml":             "# nothing yet\n",
		".hidden.yaml":           broken,
		".git/config.yaml":       broken,
		"routes/.cache/x.yaml":   broken,
		"notes.txt":              broken,
		"README.md":              broken,
		"backup.yaml~":           broken,
	})
	snap, err := LoadPath(root)
	if err != nil {
		t.Fatalf("LoadPath: %v", err)
	}
	checks := map[string]bool{
		"GatewayClass portico":         snap.GatewayClasses[Key{Name: "portico"}] != nil,
		"Gateway infra/public":         snap.Gateways[Key{"infra", "public"}] != nil,
		"HTTPRoute default/web (.yml)": snap.HTTPRoutes[Key{"default", "web"}] != nil,
		"GRPCRoute apps/echo (.json)":  snap.GRPCRoutes[Key{"apps", "echo"}] != nil,
		"Backend apps/legacy (.YAML)":  snap.Backends[Key{"apps", "legacy"}] != nil,
		"Service default/web":          snap.Services[Key{"default", "web"}] != nil,
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("%s missing", what)
		}
	}
	if snap.Len() != len(checks) {
		t.Errorf("snapshot holds %d objects, want %d", snap.Len(), len(checks))
	}
}

func TestLoadPathSingleFile(t *testing.T) {
	root := writeTree(t, map[string]string{"config.txt": serviceDoc})
	snap, err := LoadPath(filepath.Join(root, "config.txt"))
	if err != nil {
		t.Fatalf("LoadPath: %v", err)
	}
	if snap.Services[Key{"default", "web"}] == nil {
		t.Error("a file named explicitly is read whatever its extension")
	}
}

func TestLoadPathEmptyDirectory(t *testing.T) {
	snap, err := LoadPath(t.TempDir())
	if err != nil {
		t.Fatalf("LoadPath: %v", err)
	}
	if snap.Len() != 0 {
		t.Errorf("snapshot holds %d objects, want 0", snap.Len())
	}
}

func TestLoadPathMissing(t *testing.T) {
	_, err := LoadPath(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestLoadPathErrorNamesFile(t *testing.T) {
	root := writeTree(t, map[string]string{
		"a.yaml":          serviceDoc,
		"sub/broken.yaml": namespaceDoc + "---\napiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {portz: []}\n",
	})
	_, err := LoadPath(root)
	assertLoadError(t, err, filepath.Join(root, "sub", "broken.yaml"), 2, `unknown field "spec.portz"`)
}

func TestLoadPathDuplicateAcrossFiles(t *testing.T) {
	root := writeTree(t, map[string]string{
		"a.yaml": httpRouteDoc,
		"b.yaml": serviceDoc + "---\n" + httpRouteDoc,
	})
	_, err := LoadPath(root)
	a, b := filepath.Join(root, "a.yaml"), filepath.Join(root, "b.yaml")
	assertLoadError(t, err, b, 2, "HTTPRoute default/web is defined twice", "also in "+a+", document 1")
}

// Same name, different kinds or namespaces, are different objects.
func TestLoadPathSameNameIsNotDuplicate(t *testing.T) {
	root := writeTree(t, map[string]string{
		"a.yaml": serviceDoc,
		"b.yaml": httpRouteDoc + "---\n" + strings.Replace(serviceDoc, "{name: web}", "{name: web, namespace: other}", 1),
	})
	snap, err := LoadPath(root)
	if err != nil {
		t.Fatalf("LoadPath: %v", err)
	}
	if snap.Len() != 3 {
		t.Errorf("snapshot holds %d objects, want 3", snap.Len())
	}
}

// Files are read in lexical order of their full path, so "a.yaml" comes before
// "a/x.yaml" even though a directory walk would enter "a/" first; the later file is
// the one blamed for a duplicate.
func TestLoadPathLexicalOrder(t *testing.T) {
	root := writeTree(t, map[string]string{
		"a/x.yaml": serviceDoc,
		"a.yaml":   serviceDoc,
		"b.yaml":   namespaceDoc,
	})
	_, err := LoadPath(root)
	first, second := filepath.Join(root, "a.yaml"), filepath.Join(root, "a", "x.yaml")
	assertLoadError(t, err, second, 1, "also in "+first+", document 1")

	root = writeTree(t, map[string]string{
		"9-late.yaml":  serviceDoc,
		"10-early.yml": serviceDoc,
	})
	_, err = LoadPath(root)
	first, second = filepath.Join(root, "10-early.yml"), filepath.Join(root, "9-late.yaml")
	assertLoadError(t, err, second, 1, "also in "+first)
}
