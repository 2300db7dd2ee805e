package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Tests of the loop's edge cases with real connections; the differential tests against
// net/http live in the dataplane package (h1diff_test.go).

func startLean(t *testing.T, h http.Handler, configure ...func(*Server)) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, Fallback: &http.Server{Handler: h}}
	for _, f := range configure {
		f(s)
	}
	served := make(chan struct{})
	go func() { s.Serve(ln); close(served) }()
	t.Cleanup(func() { s.Close(); <-served })
	return ln.Addr().String(), s
}

func dialLean(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readBodyLate reads r.Body on another goroutine, as http.Transport's writer does, and
// returns once that goroutine is blocked waiting for the client's bytes.
func readBodyLate(r *http.Request) {
	started := make(chan struct{})
	go func() {
		var one [1]byte
		r.Body.Read(one[:])
		close(started)
		io.Copy(io.Discard, r.Body)
	}()
	<-started
	time.Sleep(20 * time.Millisecond)
}

// A body read that outlives a handler that panicked gets an error: never bytes of the
// connection that reuses the pooled reader.
func TestPanicRefusesLaterBodyReads(t *testing.T) {
	release := make(chan struct{})
	late := make(chan string, 1)
	addr, _ := startLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/victim" {
			io.WriteString(w, "victim served")
			return
		}
		go func() {
			<-release
			b, err := io.ReadAll(r.Body)
			if err == nil {
				err = errors.New("no error")
			}
			late <- string(b) + " / " + err.Error()
		}()
		panic(http.ErrAbortHandler)
	}))
	a, _ := dialLean(t, addr)
	io.WriteString(a, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\nAAAA")
	time.Sleep(100 * time.Millisecond)
	b, _ := dialLean(t, addr)
	io.WriteString(b, "GET /victim HTTP/1.1\r\nHost: b\r\nCookie: session=SECRET")
	time.Sleep(100 * time.Millisecond)
	close(release)
	select {
	case s := <-late:
		if strings.Contains(s, "victim") || strings.Contains(s, "SECRET") || strings.HasSuffix(s, "no error") {
			t.Fatalf("the abandoned body read %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the late read never returned")
	}
}

// A body that reaches its end after the handler returned does not start the disconnect
// watch: the idle timeout still closes the connection, and the next request's body
// arrives intact.
func TestLateBodyEndLeavesConnectionAlone(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/echo" {
			time.Sleep(50 * time.Millisecond) // a stray watch would take the socket now
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
			return
		}
		readBodyLate(r)
	})
	lateEnd := func(t *testing.T, c net.Conn, br *bufio.Reader) {
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nh")
		time.Sleep(50 * time.Millisecond)
		io.WriteString(c, "ello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	t.Run("idle timeout", func(t *testing.T) {
		addr, _ := startLean(t, handler, func(s *Server) { s.IdleTimeout = 300 * time.Millisecond })
		c, br := dialLean(t, addr)
		lateEnd(t, c, br)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := br.ReadByte(); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the idle connection outlived its 300ms idle timeout by seconds")
		}
	})
	t.Run("next body", func(t *testing.T) {
		addr, _ := startLean(t, handler)
		c, br := dialLean(t, addr)
		lateEnd(t, c, br)
		time.Sleep(300 * time.Millisecond) // a stray watch would fire meanwhile
		io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
		time.Sleep(100 * time.Millisecond)
		io.WriteString(c, "ABCDE")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(resp.Body); string(b) != "ABCDE" {
			t.Fatalf("the second body arrived as %q", b)
		}
	})
}

// Running out of file descriptors does not stop the port: accepting resumes.
func TestAcceptErrorsDoNotStopServing(t *testing.T) {
	addr, s := startLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	_ = s
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Skip(err)
	}
	ents, _ := os.ReadDir("/proc/self/fd")
	lim := old
	lim.Cur = uint64(len(ents) + 12)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	var conns []net.Conn
	for range 20 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond) // accept fails with EMFILE meanwhile
	for _, c := range conns {
		c.Close()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	c, br := dialLean(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the port stopped serving after accept errors: %v", err)
	}
	resp.Body.Close()
}

// Two Content-Length values from a handler are dropped, not sent next to chunked
// framing.
func TestConflictingContentLengthsDropped(t *testing.T) {
	addr, _ := startLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{"3000", "5"}
		io.WriteString(w, strings.Repeat("x", 3000))
	}))
	c, br := dialLean(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response unreadable: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if len(b) != 3000 || resp.Header["Content-Length"] != nil {
		t.Errorf("%d bytes, Content-Length %q, Transfer-Encoding %v", len(b), resp.Header["Content-Length"], resp.TransferEncoding)
	}
}

// A full-duplex handler reads the body after it began its response.
func TestFullDuplex(t *testing.T) {
	addr, _ := startLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			t.Error(err)
		}
		w.WriteHeader(200)
		http.NewResponseController(w).Flush()
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "read "+string(b))
	}))
	c, br := dialLean(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "read hello" {
		t.Errorf("got %q", b)
	}
}

// A client that leaves while its request waits gets no made-up answer, and the request's
// context is cancelled.
func TestClientGoneGetsNoAnswer(t *testing.T) {
	cancelled := make(chan struct{})
	addr, _ := startLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(cancelled)
			return // writes nothing, as the proxy does when the client is gone
		case <-time.After(5 * time.Second):
			io.WriteString(w, "late answer")
		}
	}), func(s *Server) { s.WatchDelay = 10 * time.Millisecond })
	c, br := dialLean(t, addr)
	io.WriteString(c, "GET /pay HTTP/1.1\r\nHost: a\r\n\r\n")
	c.(*net.TCPConn).CloseWrite()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the request's context was not cancelled")
	}
	if resp, err := http.ReadResponse(br, nil); err == nil {
		t.Fatalf("got %s for a request whose client left", resp.Status)
	}
}

// The request's context ends when the handler returns.
func TestRequestContextEndsWithHandler(t *testing.T) {
	ctxs := make(chan context.Context, 1)
	addr, _ := startLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctxs <- r.Context()
	}))
	c, br := dialLean(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-(<-ctxs).Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the context outlived the handler")
	}
}

// Zero or negative timeouts mean none, as in net/http.
func TestNonPositiveTimeouts(t *testing.T) {
	addr, _ := startLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		func(s *Server) { s.IdleTimeout, s.ReadHeaderTimeout = -1, 0 })
	c, br := dialLean(t, addr)
	for i := range 2 {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
	}
}

// A connection that has not sent its first request when Shutdown starts may still send
// it, and gets an answer.
func TestShutdownLetsFreshConnectionsSpeak(t *testing.T) {
	addr, s := startLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	c, br := dialLean(t, addr)
	time.Sleep(50 * time.Millisecond) // accepted
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the fresh connection was closed under its first request: %v", err)
	}
	resp.Body.Close()
	if !resp.Close {
		t.Error("the answer during shutdown should close the connection")
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// Idle keep-alive connections give their buffers back; a request after the idle wait,
// the idle timeout and a pipelined pair still work.
func TestIdleConnectionsHoldNoBuffers(t *testing.T) {
	var srv atomic.Pointer[Server]
	var heldWhileServing atomic.Int64
	addr, s := startLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		heldWhileServing.Store(srv.Load().buffers.Load())
		io.WriteString(w, "ok "+r.URL.Path)
	}), func(s *Server) { s.IdleTimeout = 500 * time.Millisecond })
	srv.Store(s)
	get := func(c net.Conn, br *bufio.Reader, path string) {
		t.Helper()
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "ok "+path {
			t.Fatalf("body %q", body)
		}
	}
	type client struct {
		c  net.Conn
		br *bufio.Reader
	}
	var clients []client
	for range 20 {
		c, br := dialLean(t, addr)
		get(c, br, "/first")
		clients = append(clients, client{c, br})
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.buffers.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := s.buffers.Load(); n != 0 {
		t.Fatalf("%d idle connections still hold buffers", n)
	}
	if n := heldWhileServing.Load(); n < 1 {
		t.Fatalf("buffers held while serving: %d, want at least the serving connection's", n)
	}
	// Woken by the next request.
	get(clients[0].c, clients[0].br, "/second")
	// Two requests in one write: the second is already buffered when the first ends.
	io.WriteString(clients[1].c, "GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"ok /p1", "ok /p2"} {
		resp, err := http.ReadResponse(clients[1].br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want {
			t.Fatalf("pipelined: %q, want %q", body, want)
		}
	}
	// The idle timeout still ends a silent connection.
	start := time.Now()
	if _, err := clients[2].br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("idle timeout took %s", took)
	}
}
