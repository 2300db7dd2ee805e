package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func poolGet(t *testing.T, p *H1Pool, addr, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s body: %v", path, err)
	}
	return resp, string(body)
}

func TestH1PoolReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.URL.Path)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	p := NewH1Pool(time.Second, 8, time.Minute)
	defer p.Close()
	addr := srv.Listener.Addr().String()
	for i := range 50 {
		if _, body := poolGet(t, p, addr, "/x"); body != "hello /x" {
			t.Fatalf("request %d: body %q", i, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("50 sequential requests used %d connections, want 1", n)
	}
	if p.IdleConns() != 1 {
		t.Fatalf("idle connections = %d, want 1", p.IdleConns())
	}
}

// TestH1PoolReplacesStaleConnection: a server that closes a keep-alive connection after
// answering (without saying so) leaves a dead connection in the pool; the next request
// notices nothing came back and retries once on a fresh connection.
func TestH1PoolReplacesStaleConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				_ = req
				// close right away, as an upstream's idle timeout would
			}()
		}
	}()
	p := NewH1Pool(time.Second, 8, time.Minute)
	defer p.Close()
	for i := range 3 {
		if resp, body := poolGet(t, p, ln.Addr().String(), "/"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := accepted.Load(); n < 3 {
		t.Fatalf("server accepted %d connections for 3 requests on a closing server, want 3", n)
	}
}

func TestH1PoolAbandonedBodyClosesConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 1<<20))
	}))
	defer srv.Close()
	p := NewH1Pool(time.Second, 8, time.Minute)
	defer p.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/big", nil)
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if p.IdleConns() != 0 {
		t.Fatal("a connection with an unread body went back to the pool")
	}
	if _, body := poolGet(t, p, srv.Listener.Addr().String(), "/next"); len(body) != 1<<20 {
		t.Fatalf("next request got %d bytes", len(body))
	}
}

func TestH1PoolCancellation(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	p := NewH1Pool(time.Second, 8, time.Minute)
	defer p.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	done := make(chan error, 1)
	go func() {
		_, err := p.RoundTrip(req)
		done <- err
	}()
	cause := errors.New("client went away")
	cancel(cause)
	select {
	case err := <-done:
		if !errors.Is(err, cause) {
			t.Fatalf("error = %v, want the cancellation cause", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RoundTrip did not return after its context was cancelled")
	}
}

func TestH1PoolHonoursConnectionClose(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	}))
	defer srv.Close()
	p := NewH1Pool(time.Second, 8, time.Minute)
	defer p.Close()
	if _, body := poolGet(t, p, srv.Listener.Addr().String(), "/"); body != "bye" {
		t.Fatalf("body %q", body)
	}
	if p.IdleConns() != 0 {
		t.Fatal("a connection the server closed was pooled")
	}
}
