package telemetry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// AccessLogOptions configure an AccessLog.
type AccessLogOptions struct {
	// Path is a file to append to ("" with Writer set, or "stdout"). The file is reopened
	// by Reopen (on SIGHUP), for log rotation.
	Path string
	// Writer is used when Path is empty (tests, stdout).
	Writer io.Writer
	// Format is "json" (default) or "text".
	Format string
	// Buffer bounds the entries waiting to be written (default 65536: over 3 million
	// requests a second between two of the writer's rounds). When it is full, entries are
	// dropped and counted: the log never slows requests down.
	Buffer int
}

// AccessLog writes one line per request from a goroutine of its own.
type AccessLog struct {
	text    bool
	path    string
	max     int
	qmu     sync.Mutex
	queue   []*Entry // logged, not written yet; swapped out by the writer
	spare   []*Entry
	stopped bool
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed by the writer when it has written everything
	dropped atomic.Uint64
	written atomic.Uint64

	mu   sync.Mutex // guards w, sink, f and reopen against the writer goroutine
	w    *bufio.Writer
	sink io.Writer
	f    *os.File
	once sync.Once
}

// NewAccessLog opens the sink and starts the writer.
func NewAccessLog(opts AccessLogOptions) (*AccessLog, error) {
	l := &AccessLog{path: opts.Path, stop: make(chan struct{}), done: make(chan struct{})}
	switch opts.Format {
	case "", "json":
	case "text":
		l.text = true
	default:
		return nil, fmt.Errorf("access log format %q: want json or text", opts.Format)
	}
	l.max = opts.Buffer
	if l.max <= 0 {
		l.max = 65536
	}
	switch {
	case opts.Path == "" && opts.Writer == nil:
		return nil, errors.New("access log: no path or writer")
	case opts.Path == "" || opts.Path == "stdout":
		w := opts.Writer
		if w == nil {
			w = os.Stdout
		}
		l.path = ""
		l.sink = w
		l.w = bufio.NewWriterSize(w, 64<<10)
	default:
		f, err := openLog(opts.Path)
		if err != nil {
			return nil, err
		}
		l.f, l.sink = f, f
		l.w = bufio.NewWriterSize(f, 64<<10)
	}
	go l.run()
	return l, nil
}

func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return f, nil
}

// Log queues e for writing and takes ownership of it. It never blocks: when the queue is
// full (or the log closed), e is dropped and counted.
func (l *AccessLog) Log(e *Entry) {
	l.qmu.Lock()
	if len(l.queue) >= l.max || l.stopped {
		l.qmu.Unlock()
		l.dropped.Add(1)
		Release(e)
		return
	}
	l.queue = append(l.queue, e)
	l.qmu.Unlock()
}

// Dropped is the number of entries dropped because the queue was full.
func (l *AccessLog) Dropped() uint64 { return l.dropped.Load() }

// Written is the number of entries written.
func (l *AccessLog) Written() uint64 { return l.written.Load() }

// flushEvery is how often the writer wakes up to write what has been logged: lines
// are written in batches, and a request never wakes the writer (a goroutine switch per
// request would cost more than formatting its line).
const flushEvery = 20 * time.Millisecond

func (l *AccessLog) run() {
	defer close(l.done)
	buf := make([]byte, 0, 1024)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		last := false
		select {
		case <-tick.C:
		case <-l.stop:
			last = true
		}
		// Take the queue (a slice, not a channel: its backing array is sized by the load,
		// not by the bound, so the garbage collector scans little).
		l.qmu.Lock()
		batch := l.queue
		l.queue = l.spare[:0]
		l.stopped = last
		l.qmu.Unlock()
		if len(batch) > 0 {
			l.mu.Lock()
			for _, e := range batch {
				buf = buf[:0]
				if l.text {
					buf = e.appendText(buf)
				} else {
					buf = e.appendJSON(buf)
				}
				Release(e)
				l.w.Write(buf)
			}
			if err := l.w.Flush(); err != nil {
				// The sink failed (disk full, a closed pipe): this batch is lost, counted
				// as dropped; a bufio.Writer keeps its error, so start afresh for the next.
				l.dropped.Add(uint64(len(batch)))
				l.w.Reset(l.sink)
			} else {
				l.written.Add(uint64(len(batch)))
			}
			l.mu.Unlock()
			clear(batch)
		}
		l.spare = batch
		if last {
			return
		}
	}
}

// Reopen flushes and reopens the log file (after a rotation moved it away); a log on a
// writer ignores it.
func (l *AccessLog) Reopen() error {
	if l.path == "" {
		return nil
	}
	f, err := openLog(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil { // closed meanwhile
		return f.Close()
	}
	l.w.Flush()
	old := l.f
	l.f, l.sink = f, f
	l.w.Reset(f)
	return old.Close()
}

// Close writes what is queued and closes the file. Entries logged afterwards are never
// written.
func (l *AccessLog) Close() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.mu.Lock() // a Reopen may be running
		if l.f != nil {
			err = l.f.Close()
			l.f = nil
		}
		l.mu.Unlock()
	})
	return err
}
