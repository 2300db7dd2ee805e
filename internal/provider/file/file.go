// Package file is the standalone provider: it reads a file or a folder of YAML into a
// resource.Snapshot and reloads it when anything under the folder changes.
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/portico-gw/portico/internal/resource"
)

// DefaultDebounce is short enough for route changes to serve within 100 ms of a save,
// and longer than the steps of one save by the tools that write config folders. A save
// caught half-way is harmless when it is broken (it is refused and the last good config
// keeps serving) and brief when it is not: the save's last event brings a reload.
const DefaultDebounce = 25 * time.Millisecond

// Provider watches Path (a file or a directory tree).
type Provider struct {
	Path string
	// Debounce is how long the folder must be quiet before a reload (default
	// DefaultDebounce): one save makes several events (an editor's write and rename, a
	// ConfigMap's symlink swap), which should make one reload.
	Debounce time.Duration
	Log      *slog.Logger

	changedAt time.Time      // the first relevant event since the last load
	cache     resource.Cache // decoded files: a reload decodes only what changed
}

// ChangedAt is when the change that led to the current load was first noticed; zero for
// the initial load. Valid inside the onLoad and onError callbacks.
func (p *Provider) ChangedAt() time.Time { return p.changedAt }

// Run loads the inputs and calls onLoad with every Snapshot that loads, or onError with
// the error of one that does not (the caller keeps its last good config). It returns
// when ctx ends, or at once if the first watch cannot be set up.
func (p *Provider) Run(ctx context.Context, onLoad func(*resource.Snapshot), onError func(error)) error {
	if p.Debounce <= 0 {
		p.Debounce = DefaultDebounce
	}
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", p.Path, err)
	}
	defer w.Close()
	if err := p.watchTree(w); err != nil {
		return err
	}
	load := func() {
		defer func() { p.changedAt = time.Time{} }()
		snap, err := p.cache.LoadPath(p.Path)
		if err != nil {
			onError(err)
			return
		}
		onLoad(snap)
	}
	load()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file watcher closed")
			}
			if ev.Has(fsnotify.Create) {
				// New subfolders must be watched too; watching twice is harmless.
				if info, err := os.Stat(ev.Name); err == nil && info.IsDir() && !hidden(ev.Name) {
					_ = p.addTree(w, ev.Name)
				}
			}
			if relevant(ev.Name) {
				if p.changedAt.IsZero() {
					p.changedAt = time.Now()
				}
				timer.Reset(p.Debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file watcher closed")
			}
			log.Warn("file watcher error", "error", err)
		case <-timer.C:
			load()
		}
	}
}

// watchTree watches the directory (or, for a file, its directory: editors replace files
// by renaming, which a watch on the file itself would lose).
func (p *Provider) watchTree(w *fsnotify.Watcher) error {
	info, err := os.Stat(p.Path)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return w.Add(filepath.Dir(p.Path))
	}
	return p.addTree(w, p.Path)
}

func (p *Provider) addTree(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != root && hidden(path) {
			return filepath.SkipDir
		}
		if err := w.Add(path); err != nil {
			return fmt.Errorf("watching %s: %w", path, err)
		}
		return nil
	})
}

func hidden(path string) bool {
	return strings.HasPrefix(filepath.Base(path), ".")
}

// relevant filters out editor swap files and other noise. "..data" is the one hidden
// name that matters: Kubernetes updates a mounted ConfigMap or Secret by renaming a new
// ..data symlink over the old one, and that is the only event such an update makes.
func relevant(path string) bool {
	base := filepath.Base(path)
	if base == "..data" {
		return true
	}
	if strings.HasPrefix(base, ".") || strings.HasSuffix(base, "~") || strings.HasSuffix(base, ".swp") {
		return false
	}
	switch strings.ToLower(filepath.Ext(base)) {
	case ".yaml", ".yml", ".json", "":
		return true
	}
	return false
}
