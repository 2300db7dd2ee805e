package telemetry

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestAccessLogWritesEverythingByClose(t *testing.T) {
	out := &lockedBuffer{}
	l, err := NewAccessLog(AccessLogOptions{Writer: out, Format: "text"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		e := NewEntry()
		e.Method, e.Status = "GET", 200+i%3
		l.Log(e)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.b.String(), "\n"); n != 1000 || l.Written() != 1000 || l.Dropped() != 0 {
		t.Errorf("%d lines, written %d, dropped %d", n, l.Written(), l.Dropped())
	}
}

func TestAccessLogDropsWhenFull(t *testing.T) {
	out := &lockedBuffer{}
	l, err := NewAccessLog(AccessLogOptions{Writer: out, Buffer: 4})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		l.Log(NewEntry())
	}
	l.Close()
	if l.Dropped() == 0 || l.Written()+l.Dropped() != 100 {
		t.Errorf("written %d, dropped %d, want some dropped and 100 in all", l.Written(), l.Dropped())
	}
}

func TestAccessLogReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := NewAccessLog(AccessLogOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	logPath := func(p string) {
		e := NewEntry()
		e.Path = p
		l.Log(e)
	}
	waitFor := func(file, want string) {
		t.Helper()
		for range 500 {
			if b, _ := os.ReadFile(file); strings.Contains(string(b), want) {
				return
			}
			testingSleep()
		}
		t.Fatalf("%s never got %q", file, want)
	}
	logPath("/one")
	waitFor(path, `"/one"`)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	logPath("/two")
	waitFor(path, `"/two"`)
	if b, _ := os.ReadFile(path + ".1"); strings.Contains(string(b), "/two") {
		t.Error("a line went to the rotated file")
	}
	if _, err := NewAccessLog(AccessLogOptions{Path: path, Format: "xml"}); err == nil {
		t.Error("format xml accepted")
	}
}

func testingSleep() { time.Sleep(10 * time.Millisecond) }

// failOnce fails its first write, as a full disk might, then works.
type failOnce struct {
	lockedBuffer
	failed bool
}

func (f *failOnce) Write(p []byte) (int, error) {
	f.mu.Lock()
	if !f.failed {
		f.failed = true
		f.mu.Unlock()
		return 0, errors.New("no space left on device")
	}
	f.mu.Unlock()
	return f.lockedBuffer.Write(p)
}

// A failed write loses its batch (counted as dropped), not every line after it.
func TestAccessLogRecoversFromWriteErrors(t *testing.T) {
	sink := &failOnce{}
	l, err := NewAccessLog(AccessLogOptions{Writer: sink})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(NewEntry())
	time.Sleep(3 * flushEvery)
	e := NewEntry()
	e.Path = "/after"
	l.Log(e)
	l.Close()
	if !strings.Contains(sink.b.String(), `"/after"`) || l.Dropped() != 1 || l.Written() != 1 {
		t.Errorf("written %d, dropped %d, sink %q", l.Written(), l.Dropped(), sink.b.String())
	}
}
