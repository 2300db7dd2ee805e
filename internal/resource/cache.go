package resource

import (
	"os"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Cache keeps the decoded objects of the files a folder held at its last load, keyed by
// their content, so that a reload decodes only the files that changed: decoding is most
// of a reload's cost, and a folder of thousands of routes usually changes one file at a
// time. Files are still read every time (content, not timestamps, decides), and reused
// objects are deep copies, so snapshots never share an object.
//
// A Cache is not safe for concurrent use; the zero value is ready.
type Cache struct {
	files map[string]cachedFile
	// Decoded counts the files decoded (not taken from the cache) by the last load.
	Decoded int
}

type cachedFile struct {
	data    []byte
	decoded []located
}

// LoadPath is resource.LoadPath with the cache: the same Snapshot, or the same error.
func (c *Cache) LoadPath(path string) (*Snapshot, error) {
	files, err := inputFiles(path)
	if err != nil {
		return nil, err
	}
	next := make(map[string]cachedFile, len(files))
	snap := NewSnapshot()
	seen := map[string]place{}
	c.Decoded = 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, &LoadError{File: f, Err: err}
		}
		var decoded []located
		if old, ok := c.files[f]; ok && string(old.data) == string(data) {
			decoded = copyLocated(old.decoded)
			next[f] = old
		} else {
			c.Decoded++
			if decoded, err = decodeStream(f, data); err != nil {
				return nil, err
			}
			next[f] = cachedFile{data: data, decoded: copyLocated(decoded)}
		}
		if err := addDecoded(snap, f, decoded, seen); err != nil {
			return nil, err
		}
	}
	c.files = next
	return snap, nil
}

func copyLocated(in []located) []located {
	out := make([]located, len(in))
	for i, d := range in {
		out[i] = located{obj: d.obj.DeepCopyObject().(client.Object), doc: d.doc}
	}
	return out
}
