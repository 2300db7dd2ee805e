package dataplane

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http2"

	"github.com/portico-gw/portico/internal/ir"
)

// drainHolder is a backend whose requests wait for release; arrivals receives each
// request's path as it comes in.
type drainHolder struct {
	arrivals chan string
	release  chan struct{}
	open     atomic.Int64 // backend connections not yet closed
}

func newDrainHolder(t *testing.T) (*drainHolder, ir.Endpoint) {
	h := &drainHolder{arrivals: make(chan string, 16), release: make(chan struct{})}
	srv := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.arrivals <- r.URL.Path
		if r.URL.Path != "/quick" {
			select {
			case <-h.release:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "done "+r.URL.Path)
	}), func(s *httptest.Server) {
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				h.open.Add(1)
			case http.StateClosed, http.StateHijacked:
				h.open.Add(-1)
			}
		}
	})
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
	})
	return h, fwdEndpoint(t, srv.Listener.Addr().String())
}

func drainShutdown(ctx context.Context, s *Server) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	return done
}

func TestDrainInFlightRequest(t *testing.T) {
	h, ep := newDrainHolder(t)
	gw := fwdStart(t, Options{}, []ir.Route{fwdRoute("hold", "/", "hold")}, fwdCluster("hold", ir.UpstreamHTTP1, ep))

	// An idle keep-alive connection, and a request that is still running.
	idle := defenceDial(t, gw.addr)
	idleReader := bufio.NewReader(idle)
	if _, err := io.WriteString(idle, "GET /quick HTTP/1.1\r\nHost: drain.example\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(idleReader, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	<-h.arrivals

	type result struct {
		code int
		body string
		err  error
	}
	long := make(chan result, 1)
	client := fwdClient(t)
	go func() {
		resp, err := client.Get(gw.base + "/long")
		if err != nil {
			long <- result{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		long <- result{resp.StatusCode, string(body), err}
	}()
	if p := <-h.arrivals; p != "/long" {
		t.Fatalf("backend saw %s", p)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := drainShutdown(ctx, gw.srv)

	// The idle connection is closed (after the listener, so new connections are refused).
	if rest := defenceWaitClosed(t, idle, idleReader); len(rest) != 0 {
		t.Errorf("idle connection got %q while draining", rest)
	}
	if c, err := net.DialTimeout("tcp", gw.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("a new connection was accepted while draining")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}

	close(h.release)
	if r := <-long; r.err != nil || r.code != 200 || r.body != "done /long" {
		t.Fatalf("in-flight request: %d %q %v, want 200 \"done /long\"", r.code, r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Pooled upstream connections are closed too.
	for deadline := time.Now().Add(5 * time.Second); h.open.Load() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("backend still has %d connections from the gateway after Shutdown", h.open.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := gw.srv.Apply(fwdConfig(1, nil, nil)); err == nil {
		t.Errorf("Apply after Shutdown succeeded")
	}
}

func TestDrainHTTP2GoAway(t *testing.T) {
	h, ep := newDrainHolder(t)
	gw := fwdStart(t, Options{}, []ir.Route{fwdRoute("hold", "/", "hold")}, fwdCluster("hold", ir.UpstreamHTTP1, ep))
	fr, conn := defenceH2C(t, gw.addr)
	defenceServerSettings(t, fr)
	defenceH2Request(t, fr, 1, "/stream1")
	<-h.arrivals

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := drainShutdown(ctx, gw.srv)

	var goaway *http2.GoAwayFrame
	for goaway == nil {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for GOAWAY: %v", err)
		}
		goaway, _ = f.(*http2.GoAwayFrame)
	}
	if goaway.ErrCode != http2.ErrCodeNo || goaway.LastStreamID != 1 {
		t.Fatalf("GOAWAY %v last stream %d, want NO_ERROR and 1", goaway.ErrCode, goaway.LastStreamID)
	}
	// A stream opened after the GOAWAY is not served.
	defenceH2Request(t, fr, 3, "/stream3")
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a stream in flight", err)
	default:
	}

	close(h.release)
	var status string
	var body []byte
	for ended := false; !ended; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("stream 1 did not finish: %v", err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				status = f.PseudoValue("status")
				ended = f.StreamEnded()
			}
		case *http2.DataFrame:
			if f.StreamID == 1 {
				body = append(body, f.Data()...)
				ended = f.StreamEnded()
			}
		}
	}
	if status != "200" || string(body) != "done /stream1" {
		t.Fatalf("stream 1: status %s body %q", status, body)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// The connection is gone, and stream 3 never reached the backend.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := fr.ReadFrame(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("HTTP/2 connection still open after Shutdown")
			}
			break
		}
	}
	select {
	case p := <-h.arrivals:
		t.Fatalf("backend saw %s after GOAWAY", p)
	default:
	}
}

// drainWebSocket starts a gateway in front of an echo WebSocket backend and connects
// a client through it.
func drainWebSocket(t *testing.T) (*fwdGateway, *websocket.Conn) {
	upgrader := websocket.Upgrader{}
	srv := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			kind, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if err := ws.WriteMessage(kind, msg); err != nil {
				return
			}
		}
	}), nil)
	gw := fwdStart(t, Options{}, []ir.Route{fwdRoute("ws", "/", "ws")},
		fwdCluster("ws", ir.UpstreamWebSocket, fwdEndpoint(t, srv.Listener.Addr().String())))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+gw.addr+"/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	drainEcho(t, ws, "before")
	if n := gw.srv.conns.Len(); n != 1 {
		t.Fatalf("%d hijacked connections tracked, want 1", n)
	}
	return gw, ws
}

func drainEcho(t *testing.T, ws *websocket.Conn, msg string) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if _, got, err := ws.ReadMessage(); err != nil || string(got) != msg {
		t.Fatalf("echo %q: got %q %v", msg, got, err)
	}
}

// drainListenerClosed waits until the gateway refuses new connections, which Shutdown
// does before it waits for anything.
func drainListenerClosed(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections during Shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDrainWebSocketFinishes(t *testing.T) {
	gw, ws := drainWebSocket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := drainShutdown(ctx, gw.srv)
	drainListenerClosed(t, gw.addr)

	// The WebSocket keeps working while the gateway drains, and holds Shutdown open.
	for _, m := range []string{"during 1", "during 2"} {
		drainEcho(t, ws, m)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a WebSocket open", err)
	default:
	}

	// The client says goodbye; the backend closes; Shutdown completes cleanly.
	if err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("close handshake: %v", err)
	}
	ws.Close()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := gw.srv.conns.Len(); n != 0 {
		t.Errorf("%d hijacked connections still tracked", n)
	}
}

func TestDrainWebSocketDeadline(t *testing.T) {
	gw, ws := drainWebSocket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	shut := drainShutdown(ctx, gw.srv)

	// The client stays connected and silent: at the deadline the gateway closes the
	// connection and Shutdown reports the context's error.
	if err := <-shut; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	_, _, err := ws.ReadMessage()
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("WebSocket still open after Shutdown gave up: %v", err)
	}
	if n := gw.srv.conns.Len(); n != 0 {
		t.Errorf("%d hijacked connections still tracked", n)
	}
}
