package resource

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/portico-gw/portico/api/v1alpha1"
)

// LoadError locates a problem in an input file: the file, the 1-based document number
// within it (0 when the whole file is at fault), and what is wrong.
type LoadError struct {
	File string
	Doc  int
	Err  error
}

func (e *LoadError) Error() string {
	if e.Doc == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s: document %d: %v", e.File, e.Doc, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// kindInfo is how to decode one kind, and which apiVersions of it are accepted.
type kindInfo struct {
	versions   []string // accepted apiVersions; the first is the canonical one
	namespaced bool
	newObject  func() client.Object
}

const (
	gwGroup = "gateway.networking.k8s.io/"
)

// kinds lists every kind a Snapshot holds. Gateway API kinds accept every version that
// gateway-api v1.6.3 serves; older versions have the same schema as v1 and decode into
// the v1 types.
var kinds = map[string]kindInfo{
	"GatewayClass":              {[]string{gwGroup + "v1", gwGroup + "v1beta1"}, false, func() client.Object { return &gwv1.GatewayClass{} }},
	"Gateway":                   {[]string{gwGroup + "v1", gwGroup + "v1beta1"}, true, func() client.Object { return &gwv1.Gateway{} }},
	"ListenerSet":               {[]string{gwGroup + "v1"}, true, func() client.Object { return &gwv1.ListenerSet{} }},
	"HTTPRoute":                 {[]string{gwGroup + "v1", gwGroup + "v1beta1"}, true, func() client.Object { return &gwv1.HTTPRoute{} }},
	"GRPCRoute":                 {[]string{gwGroup + "v1"}, true, func() client.Object { return &gwv1.GRPCRoute{} }},
	"TLSRoute":                  {[]string{gwGroup + "v1", gwGroup + "v1alpha3", gwGroup + "v1alpha2"}, true, func() client.Object { return &gwv1.TLSRoute{} }},
	"TCPRoute":                  {[]string{gwGroup + "v1", gwGroup + "v1alpha2"}, true, func() client.Object { return &gwv1.TCPRoute{} }},
	"UDPRoute":                  {[]string{gwGroup + "v1", gwGroup + "v1alpha2"}, true, func() client.Object { return &gwv1.UDPRoute{} }},
	"ReferenceGrant":            {[]string{gwGroup + "v1", gwGroup + "v1beta1"}, true, func() client.Object { return &gwv1.ReferenceGrant{} }},
	"BackendTLSPolicy":          {[]string{gwGroup + "v1", gwGroup + "v1alpha3"}, true, func() client.Object { return &gwv1.BackendTLSPolicy{} }},
	"Service":                   {[]string{"v1"}, true, func() client.Object { return &corev1.Service{} }},
	"EndpointSlice":             {[]string{"discovery.k8s.io/v1"}, true, func() client.Object { return &discoveryv1.EndpointSlice{} }},
	"Secret":                    {[]string{"v1"}, true, func() client.Object { return &corev1.Secret{} }},
	"ConfigMap":                 {[]string{"v1"}, true, func() client.Object { return &corev1.ConfigMap{} }},
	"Namespace":                 {[]string{"v1"}, false, func() client.Object { return &corev1.Namespace{} }},
	v1alpha1.BackendKind:        {[]string{v1alpha1.GroupVersion.String()}, true, func() client.Object { return &v1alpha1.Backend{} }},
	v1alpha1.ListenerPolicyKind: {[]string{v1alpha1.GroupVersion.String()}, true, func() client.Object { return &v1alpha1.ListenerPolicy{} }},
}

// KnownKinds lists the kinds the loader accepts, sorted.
func KnownKinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Decode parses every document of a YAML (or JSON) stream. name is used in errors only.
// Namespaced objects without a namespace get "default". It stops at the first bad
// document and returns a *LoadError naming the document.
func Decode(name string, data []byte) ([]client.Object, error) {
	decoded, err := decodeStream(name, data)
	if err != nil {
		return nil, err
	}
	out := make([]client.Object, len(decoded))
	for i, d := range decoded {
		out[i] = d.obj
	}
	return out, nil
}

// located is a decoded object and the document it came from, so that later errors
// (an object defined twice) can point at it.
type located struct {
	obj client.Object
	doc int
}

func decodeStream(name string, data []byte) ([]located, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []located
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, &LoadError{File: name, Doc: doc, Err: err}
		}
		objs, err := decodeDocument(raw)
		if err != nil {
			return nil, &LoadError{File: name, Doc: doc, Err: err}
		}
		for _, obj := range objs {
			out = append(out, located{obj: obj, doc: doc})
		}
	}
}

// decodeDocument turns one YAML document into objects: none for an empty document,
// several for a List.
func decodeDocument(raw []byte) ([]client.Object, error) {
	// Strict, like kube-apiserver with fieldValidation=Strict: a key given twice is an
	// error rather than a silent last-one-wins.
	jsonDoc, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return nil, fmt.Errorf("malformed YAML: %w", err)
	}
	jsonDoc = bytes.TrimSpace(jsonDoc)
	if len(jsonDoc) == 0 || string(jsonDoc) == "null" {
		return nil, nil
	}
	if jsonDoc[0] != '{' {
		return nil, errors.New("a document must be an object with apiVersion and kind")
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(jsonDoc, &tm); err != nil {
		return nil, fmt.Errorf("reading apiVersion and kind: %s", cleanJSONError(err))
	}
	if tm.Kind == "" {
		return nil, errors.New("field kind: missing")
	}
	if tm.APIVersion == "" {
		return nil, fmt.Errorf("field apiVersion: missing (kind %s)", tm.Kind)
	}
	if tm.Kind == "List" && tm.APIVersion == "v1" {
		return decodeList(jsonDoc)
	}
	info, ok := kinds[tm.Kind]
	if !ok {
		return nil, fmt.Errorf("field kind: unknown kind %q (apiVersion %s); known kinds: %s",
			tm.Kind, tm.APIVersion, strings.Join(KnownKinds(), ", "))
	}
	if !slices.Contains(info.versions, tm.APIVersion) {
		return nil, fmt.Errorf("field apiVersion: %s does not serve kind %s; use %s",
			tm.APIVersion, tm.Kind, strings.Join(info.versions, " or "))
	}
	obj := info.newObject()
	if err := decodeStrict(jsonDoc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", describe(tm.Kind, obj), err)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvkOf(info.versions[0], tm.Kind))
	if obj.GetName() == "" {
		return nil, fmt.Errorf("%s: field metadata.name: missing", tm.Kind)
	}
	if info.namespaced && obj.GetNamespace() == "" {
		obj.SetNamespace("default")
	}
	if !info.namespaced && obj.GetNamespace() != "" {
		return nil, fmt.Errorf("%s %s: field metadata.namespace: must be empty, %s is cluster-scoped",
			tm.Kind, obj.GetName(), tm.Kind)
	}
	return []client.Object{obj}, nil
}

func decodeList(jsonDoc []byte) ([]client.Object, error) {
	var list struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ListMeta `json:"metadata"`
		Items           []jsonRaw       `json:"items"`
	}
	if err := decodeStrict(jsonDoc, &list); err != nil {
		return nil, fmt.Errorf("kind List: %w", err)
	}
	var out []client.Object
	for i, item := range list.Items {
		objs, err := decodeDocument(item)
		if err != nil {
			return nil, fmt.Errorf("items[%d]: %w", i, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

// decodeStrict decodes JSON the way kube-apiserver does with fieldValidation=Strict:
// field names match case-sensitively, and unknown or duplicate fields are errors that
// name the field's full path ("spec.rules[0].matchez").
func decodeStrict(jsonDoc []byte, into any) error {
	strictErrs, err := kjson.UnmarshalStrict(jsonDoc, into)
	if err != nil {
		return errors.New(cleanJSONError(err))
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// describe names an object in an error: its kind, and its name when decoding got that far.
func describe(kind string, obj client.Object) string {
	if obj.GetName() == "" {
		return kind
	}
	return kind + " " + obj.GetName()
}

// jsonRaw keeps a list item's bytes for a second decode.
type jsonRaw []byte

func (r *jsonRaw) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// cleanJSONError drops the decoder's nested prefixes so the message starts with what is wrong.
func cleanJSONError(err error) string {
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return msg
}

// LoadPath reads a file, or every *.yaml, *.yml and *.json file under a directory (in
// lexical order, skipping hidden files and directories), into a new Snapshot.
// The same object defined twice is an error naming both places.
func LoadPath(path string) (*Snapshot, error) {
	return LoadPaths(path)
}

// LoadPaths is LoadPath over several files or directories, into one Snapshot.
func LoadPaths(paths ...string) (*Snapshot, error) {
	snap := NewSnapshot()
	seen := map[string]place{}
	for _, path := range paths {
		files, err := inputFiles(path)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, &LoadError{File: f, Err: err}
			}
			if err := addDocuments(snap, f, data, seen); err != nil {
				return nil, err
			}
		}
	}
	return snap, nil
}

// Load decodes one stream into a new Snapshot.
func Load(name string, data []byte) (*Snapshot, error) {
	snap := NewSnapshot()
	if err := addDocuments(snap, name, data, map[string]place{}); err != nil {
		return nil, err
	}
	return snap, nil
}

// place is where an object was defined: a file and a 1-based document number.
type place struct {
	file string
	doc  int
}

func addDocuments(snap *Snapshot, name string, data []byte, seen map[string]place) error {
	decoded, err := decodeStream(name, data)
	if err != nil {
		return err
	}
	return addDecoded(snap, name, decoded, seen)
}

// addDecoded adds a file's decoded objects to snap, refusing one defined twice.
func addDecoded(snap *Snapshot, name string, decoded []located, seen map[string]place) error {
	for _, d := range decoded {
		obj := d.obj
		id := obj.GetObjectKind().GroupVersionKind().Kind + " " + KeyOf(obj).String()
		if where, dup := seen[id]; dup {
			return &LoadError{File: name, Doc: d.doc, Err: fmt.Errorf(
				"%s is defined twice (also in %s, document %d)", id, where.file, where.doc)}
		}
		seen[id] = place{file: name, doc: d.doc}
		if _, err := snap.Add(obj); err != nil {
			return &LoadError{File: name, Doc: d.doc, Err: err}
		}
	}
	return nil
}

func inputFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	// WalkDir does not descend into a symlinked root (a config folder is often one, a
	// mounted ConfigMap for instance): walk its target, and name files under path.
	root, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.Join(path, rel))
		}
		return nil
	})
	slices.Sort(files)
	return files, err
}
