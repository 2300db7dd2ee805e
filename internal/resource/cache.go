package resource

import (
	"crypto/sha256"
	"os"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Cache keeps the decoded objects of the files a folder held at its last load, keyed by
// their content, so that a reload decodes only the files that changed: decoding is most
// of a reload's cost, and a folder of thousands of routes usually changes one file at a
// time. Content decides (a SHA-256 of each file is kept, not the file), and a file is
// not even read again when its identity and timestamps say it is the same file as last
// time and its modification time is old enough to be trusted (see trusted). Reused
// objects are deep copies, so snapshots never share an object.
//
// A Cache is not safe for concurrent use; the zero value is ready.
type Cache struct {
	files map[string]cachedFile
	// Decoded counts the files decoded (not taken from the cache) by the last load;
	// Read counts the files read.
	Decoded, Read int
}

type cachedFile struct {
	stat    fileStat
	sum     [sha256.Size]byte
	decoded []located
}

// fileStat is what says a file is unchanged without reading it: the same inode, size,
// modification and change times. statAt is when it was taken.
type fileStat struct {
	ino, dev     uint64
	size         int64
	mtime, ctime int64 // nanoseconds
	statAt       time.Time
}

// racyWindow: timestamps come from a coarse clock (a few milliseconds on Linux, up to
// 2 s on some filesystems), so a file changed again within the same tick keeps its
// times. A stat taken less than this after the file's modification time is not trusted
// (the same rule git uses for its index), and the file is read. The change time counts
// too: it cannot be set back (tools that keep an old modification time, cp -p or
// rsync -t, still change it). A variable for tests.
var racyWindow = 2 * time.Second

func statFile(f string) (fileStat, bool) {
	info, err := os.Stat(f)
	if err != nil {
		return fileStat{}, false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStat{}, false
	}
	return fileStat{
		ino: st.Ino, dev: uint64(st.Dev), size: info.Size(),
		mtime: info.ModTime().UnixNano(), ctime: time.Unix(st.Ctim.Unix()).UnixNano(),
		statAt: time.Now(),
	}, true
}

// trusted reports whether a file whose stat was old (taken at a load) and is now cur is
// certainly unchanged.
func (old fileStat) trusted(cur fileStat) bool {
	return old.ino == cur.ino && old.dev == cur.dev && old.size == cur.size &&
		old.mtime == cur.mtime && old.ctime == cur.ctime &&
		old.statAt.Sub(time.Unix(0, max(old.mtime, old.ctime))) > racyWindow
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
	c.Decoded, c.Read = 0, 0
	for _, f := range files {
		var decoded []located
		old, cached := c.files[f]
		st, statted := statFile(f)
		if cached && statted && old.stat.trusted(st) {
			decoded = copyLocated(old.decoded)
			next[f] = old
			if err := addDecoded(snap, f, decoded, seen); err != nil {
				return nil, err
			}
			continue
		}
		c.Read++
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, &LoadError{File: f, Err: err}
		}
		sum := sha256.Sum256(data)
		if cached && old.sum == sum {
			decoded = copyLocated(old.decoded)
			next[f] = cachedFile{stat: st, sum: sum, decoded: old.decoded}
		} else {
			c.Decoded++
			if decoded, err = decodeStream(f, data); err != nil {
				return nil, err
			}
			next[f] = cachedFile{stat: st, sum: sum, decoded: copyLocated(decoded)}
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
