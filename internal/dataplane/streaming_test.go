package dataplane

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

// streamPeriod is the length of the pattern streamSource repeats: a prime, so a
// dropped, repeated or reordered buffer of any power-of-two size changes the hash.
const streamPeriod = 1<<20 + 7

// streamPattern is random data, made once per test binary.
var streamPattern = sync.OnceValue(func() []byte {
	b := make([]byte, streamPeriod)
	_, _ = rand.Read(b)
	return b
})

// streamSource yields n bytes of the pattern, made on the fly (nothing is held but the
// pattern itself), hashing what it hands out.
type streamSource struct {
	left int64
	off  int
	sum  hash.Hash32
}

func newStreamSource(n int64) *streamSource {
	return &streamSource{left: n, sum: crc32.New(crc32.MakeTable(crc32.Castagnoli))}
}

func (s *streamSource) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	pat := streamPattern()
	n := copy(p, pat[s.off:])
	s.off = (s.off + n) % streamPeriod
	s.left -= int64(n)
	s.sum.Write(p[:n])
	return n, nil
}

func (s *streamSource) digest() string { return hex.EncodeToString(s.sum.Sum(nil)) }

// streamSink counts and hashes what it receives.
type streamSink struct {
	n   int64
	sum hash.Hash32
}

func newStreamSink() *streamSink {
	return &streamSink{sum: crc32.New(crc32.MakeTable(crc32.Castagnoli))}
}

func (s *streamSink) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	return s.sum.Write(p)
}

func (s *streamSink) digest() string { return hex.EncodeToString(s.sum.Sum(nil)) }

// streamHeapWatch samples the test process's heap while a transfer runs and reports
// the largest growth over the baseline taken when it started.
type streamHeapWatch struct {
	base    uint64
	peak    uint64
	baseSys uint64
	peakSys uint64
	stop    chan struct{}
	done    chan struct{}
	count   int
}

func startHeapWatch() *streamHeapWatch {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w := &streamHeapWatch{base: ms.HeapInuse, peak: ms.HeapInuse, baseSys: ms.Sys, peakSys: ms.Sys, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			runtime.ReadMemStats(&ms)
			w.count++
			w.peak = max(w.peak, ms.HeapInuse)
			w.peakSys = max(w.peakSys, ms.Sys)
		}
	}()
	return w
}

// growth stops sampling and returns the peak growth of HeapInuse in bytes.
func (w *streamHeapWatch) growth() int64 {
	close(w.stop)
	<-w.done
	return int64(w.peak) - int64(w.base)
}

// sysGrowth is the peak growth of the memory obtained from the OS, in MiB.
func (w *streamHeapWatch) sysGrowth() float64 {
	return float64(int64(w.peakSys)-int64(w.baseSys)) / (1 << 20)
}

const (
	streamBigSize  = 1 << 30 // 1 GiB each way
	streamHeapCap  = 64 << 20
	streamDeadline = 120 * time.Second
)

func TestStreamingLargeBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 GiB through the gateway")
	}
	streamPattern()
	upload := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sink := newStreamSink()
		if _, err := io.CopyBuffer(sink, r.Body, make([]byte, 64<<10)); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %s", sink.n, sink.digest())
	}), nil)
	digests := make(chan string, 1)
	download := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("length") == "known" {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		src := newStreamSource(n)
		_, _ = io.CopyBuffer(w, src, make([]byte, 64<<10))
		digests <- src.digest()
	}), nil)
	gw := fwdStart(t, Options{}, []ir.Route{
		fwdRoute("up", "/up", "up"),
		fwdRoute("down", "/down", "down"),
	},
		fwdCluster("up", ir.UpstreamHTTP1, fwdEndpoint(t, upload.Listener.Addr().String())),
		fwdCluster("down", ir.UpstreamHTTP1, fwdEndpoint(t, download.Listener.Addr().String())),
	)
	client := fwdClient(t)
	client.Timeout = streamDeadline

	t.Run("upload", func(t *testing.T) {
		src := newStreamSource(streamBigSize)
		req, err := http.NewRequest(http.MethodPost, gw.base+"/up", src)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = streamBigSize
		watch := startHeapWatch()
		start := time.Now()
		code, _, body := fwdDo(t, client, req)
		elapsed := time.Since(start)
		growth := watch.growth()
		want := fmt.Sprintf("%d %s", int64(streamBigSize), src.digest())
		if code != 200 || body != want {
			t.Fatalf("status %d: backend got %q, sent %q", code, body, want)
		}
		t.Logf("1 GiB upload in %v; heap in use grew by at most %.1f MiB, Sys by %.1f MiB (%d samples)", elapsed.Round(time.Millisecond), float64(growth)/(1<<20), watch.sysGrowth(), watch.count)
		if growth > streamHeapCap {
			t.Errorf("heap in use grew by %.1f MiB during the upload, want under %d MiB", float64(growth)/(1<<20), streamHeapCap>>20)
		}
	})

	t.Run("download", func(t *testing.T) {
		watch := startHeapWatch()
		start := time.Now()
		resp, err := client.Get(gw.base + "/down?n=" + strconv.Itoa(streamBigSize))
		if err != nil {
			t.Fatal(err)
		}
		sink := newStreamSink()
		_, err = io.CopyBuffer(sink, resp.Body, make([]byte, 64<<10))
		resp.Body.Close()
		elapsed := time.Since(start)
		growth := watch.growth()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d after %d bytes: %v", resp.StatusCode, sink.n, err)
		}
		if want := <-digests; sink.n != streamBigSize || sink.digest() != want {
			t.Fatalf("received %d bytes with digest %s, backend sent %d with %s", sink.n, sink.digest(), int64(streamBigSize), want)
		}
		t.Logf("1 GiB download in %v; heap in use grew by at most %.1f MiB, Sys by %.1f MiB (%d samples)", elapsed.Round(time.Millisecond), float64(growth)/(1<<20), watch.sysGrowth(), watch.count)
		if growth > streamHeapCap {
			t.Errorf("heap in use grew by %.1f MiB during the download, want under %d MiB", float64(growth)/(1<<20), streamHeapCap>>20)
		}
	})
}

// TestStreamingBodyIntegrity checks both framings both ways with bodies small enough
// for -short runs.
func TestStreamingBodyIntegrity(t *testing.T) {
	echo := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An HTTP/1.1 handler must read the whole request before it writes.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("length") == "known" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		_, _ = w.Write(body)
	}), nil)
	gw := fwdStart(t, Options{}, []ir.Route{fwdRoute("echo", "/", "echo")},
		fwdCluster("echo", ir.UpstreamHTTP1, fwdEndpoint(t, echo.Listener.Addr().String())))
	for _, c := range []struct {
		name   string
		client *http.Client
	}{{"http1", fwdClient(t)}, {"h2c", fwdH2CClient(t)}} {
		for _, size := range []int64{0, 1, 32<<10 - 1, 1<<20 + 3, 4 << 20} {
			for _, length := range []string{"known", "chunked"} {
				src := newStreamSource(size)
				var body io.Reader = src
				if length == "chunked" {
					body = io.MultiReader(src) // hides the length
				}
				req, _ := http.NewRequest(http.MethodPut, gw.base+"/?length="+length, body)
				if length == "known" {
					req.ContentLength = size
				}
				resp, err := c.client.Do(req)
				if err != nil {
					t.Fatalf("%s %d %s: %v", c.name, size, length, err)
				}
				sink := newStreamSink()
				_, err = io.Copy(sink, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || sink.n != size || sink.digest() != src.digest() {
					t.Fatalf("%s %d %s: status %d, got %d bytes (%v), digest match %v", c.name, size, length, resp.StatusCode, sink.n, err, sink.digest() == src.digest())
				}
			}
		}
	}
}

// streamStepper is a backend that sends a response in steps: it writes step i when
// the test sends on next, and tells the test each write was flushed to the gateway.
type streamStepper struct {
	contentType string
	steps       []string
	next        chan struct{}
	flushed     chan int
}

func (s *streamStepper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.contentType != "" {
		w.Header().Set("Content-Type", s.contentType)
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	for i, step := range s.steps {
		select {
		case <-s.next:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, step)
		w.(http.Flusher).Flush()
		select {
		case s.flushed <- i:
		case <-r.Context().Done():
			return
		}
	}
}

func TestStreamingFlushesImmediately(t *testing.T) {
	sse := &streamStepper{contentType: "text/event-stream", steps: []string{"id: 1\ndata: first\n\n", "id: 2\ndata: second\n\n", "data: third\n\n"}, next: make(chan struct{}), flushed: make(chan int)}
	poll := &streamStepper{contentType: "application/json", steps: []string{`{"event":1}` + "\n", `{"event":2}` + "\n"}, next: make(chan struct{}), flushed: make(chan int)}
	sseSrv := fwdBackend(t, sse, nil)
	pollSrv := fwdBackend(t, poll, nil)
	timed := fwdRoute("sse-timeouts", "/timed", "sse")
	timed.Timeouts = &ir.Timeouts{Request: "60s", BackendRequest: "60s"}
	gw := fwdStart(t, Options{}, []ir.Route{
		fwdRoute("sse", "/events", "sse"),
		timed,
		fwdRoute("poll", "/poll", "poll"),
	},
		fwdCluster("sse", ir.UpstreamHTTP1, fwdEndpoint(t, sseSrv.Listener.Addr().String())),
		fwdCluster("poll", ir.UpstreamHTTP1, fwdEndpoint(t, pollSrv.Listener.Addr().String())),
	)

	cases := []struct {
		name    string
		path    string
		backend *streamStepper
		client  *http.Client
		read    func(*bufio.Reader) (string, error)
	}{
		{"sse http1", "/events", sse, fwdClient(t), streamReadEvent},
		{"sse h2c", "/events", sse, fwdH2CClient(t), streamReadEvent},
		{"sse with timeouts", "/timed/x", sse, fwdClient(t), streamReadEvent},
		{"long poll chunks", "/poll", poll, fwdClient(t), func(r *bufio.Reader) (string, error) { return r.ReadString('\n') }},
		{"long poll chunks h2c", "/poll", poll, fwdH2CClient(t), func(r *bufio.Reader) (string, error) { return r.ReadString('\n') }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw.base+c.path, nil)
			// The response headers come through before the backend writes any event:
			// the backend is held on next until the client has them.
			resp, err := c.client.Do(req)
			if err != nil {
				t.Fatalf("response headers did not arrive before the first event: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.backend.contentType {
				t.Fatalf("status %d content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			br := bufio.NewReader(resp.Body)
			for i, want := range c.backend.steps {
				select {
				case c.backend.next <- struct{}{}:
				case <-ctx.Done():
					t.Fatalf("backend never asked for step %d", i)
				}
				select {
				case <-c.backend.flushed:
				case <-ctx.Done():
					t.Fatalf("backend never flushed step %d", i)
				}
				// The backend now waits for next: whatever arrives was not pushed out by
				// a later write or by the end of the response.
				got, err := c.read(br)
				if err != nil {
					t.Fatalf("step %d: %v (the gateway buffered it?)", i, err)
				}
				if got != want {
					t.Fatalf("step %d: got %q, want %q", i, got, want)
				}
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Fatalf("after the last step: %q %v", rest, err)
			}
		})
	}
}

// streamReadEvent reads one server-sent event (up to and including its blank line).
func streamReadEvent(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if line == "\n" {
			return b.String(), nil
		}
	}
}
