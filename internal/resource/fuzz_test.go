package resource

import (
	"strings"
	"testing"
)

// FuzzDecode checks that no input makes the loader panic, and that whatever it accepts
// is something the translator can rely on: named, namespaced exactly when the kind is,
// and of a canonical apiVersion.
func FuzzDecode(f *testing.F) {
	var all []string
	for _, c := range everyKind {
		f.Add([]byte(c.doc))
		all = append(all, c.doc)
	}
	f.Add([]byte(strings.Join(all, "---\n")))
	for _, seed := range []string{
		"",
		"---\n---\n# only a comment\n",
		"null",
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a}\n",
		`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n"}}]}`,
		`{"apiVersion":"gateway.networking.k8s.io/v1beta1","kind":"HTTPRoute","metadata":{"name":"r"}}`,
		"apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: t}\n",
		// Invalid inputs.
		"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
		"apiVersion: apps/v1\nkind: Service\nmetadata: {name: s}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {portz: []}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: http}]}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n",
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: n, namespace: x}\n",
		"apiVersion: v1\nmetadata: {name: x}\n",
		"kind: Service\nmetadata: {name: x}\n",
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n   namespace: b\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n",
		"apiVersion: v1\nkind: List\nitems: [null, 5, {kind: List, apiVersion: v1, items: [{}]}]\n",
		"--- !!map\n",
		"- a\n- b\n",
		"a: &a [*a, *a]\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '!!!'}\n",
		"{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"a\"}, \"metadata\": {}}",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Decode("fuzz.yaml", data)
		if err != nil {
			if _, ok := err.(*LoadError); !ok {
				t.Fatalf("Decode error is a %T, want *LoadError: %v", err, err)
			}
			if len(objs) != 0 {
				t.Fatalf("Decode returned %d objects along with an error", len(objs))
			}
			return
		}
		for _, obj := range objs {
			gvk := obj.GetObjectKind().GroupVersionKind()
			info, known := kinds[gvk.Kind]
			if !known {
				t.Fatalf("accepted an object of unknown kind %q", gvk.Kind)
			}
			if got := gvk.GroupVersion().String(); got != info.versions[0] {
				t.Errorf("%s: apiVersion %s, want canonical %s", gvk.Kind, got, info.versions[0])
			}
			if obj.GetName() == "" {
				t.Errorf("accepted a %s without a name", gvk.Kind)
			}
			if info.namespaced && obj.GetNamespace() == "" {
				t.Errorf("accepted %s %s without a namespace", gvk.Kind, obj.GetName())
			}
			if !info.namespaced && obj.GetNamespace() != "" {
				t.Errorf("accepted cluster-scoped %s %s with namespace %q", gvk.Kind, obj.GetName(), obj.GetNamespace())
			}
		}

		// Load runs the same decoder and then indexes; it may only add the
		// defined-twice error.
		snap, err := Load("fuzz.yaml", data)
		if err == nil && snap.Len() != len(objs) {
			t.Errorf("Load kept %d of %d decoded objects", snap.Len(), len(objs))
		}
	})
}
