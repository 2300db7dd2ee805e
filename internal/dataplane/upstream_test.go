package dataplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/portico-gw/portico/internal/ir"
)

// Helpers shared by upstream_test.go, streaming_test.go, defences_test.go and
// drain_test.go are prefixed fwd.

// fwdGateway is a data plane serving one plain-text HTTP port on 127.0.0.1.
type fwdGateway struct {
	srv  *Server
	addr string // "127.0.0.1:port"
	base string // "http://127.0.0.1:port"
}

// fwdStart applies a config with one HTTP port whose catch-all virtual host holds
// routes, and shuts the data plane down at the end of the test.
func fwdStart(t testing.TB, opts Options, routes []ir.Route, clusters ...ir.Cluster) *fwdGateway {
	t.Helper()
	s := New(opts)
	var port uint32
	var err error
	for range 5 { // another test may grab the free port between probe and bind
		port = freePort(t)
		if err = s.Apply(fwdConfig(port, routes, clusters)); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	shutdownOnCleanup(t, s)
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	return &fwdGateway{srv: s, addr: addr, base: "http://" + addr}
}

func fwdConfig(port uint32, routes []ir.Route, clusters []ir.Cluster) *ir.Config {
	return &ir.Config{
		Gateways: []ir.Gateway{{Name: "default/fwd", Addresses: []string{"127.0.0.1"}, Ports: []ir.Port{{
			Number: port, Protocol: ir.ProtocolHTTP,
			Listeners: []ir.Listener{{Name: "default/fwd/http", Protocol: ir.ProtocolHTTP, VirtualHosts: []ir.VirtualHost{{
				Hostname: "*", Routes: routes,
			}}}},
		}}}},
		Clusters: clusters,
	}
}

// fwdRoute sends everything under prefix to cluster.
func fwdRoute(name, prefix, cluster string) ir.Route {
	return ir.Route{
		Name:     "httproute/default/" + name + "/rule/0/match/0",
		Match:    ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: prefix}},
		Backends: []ir.Backend{{Cluster: cluster, Weight: 1}},
	}
}

func fwdCluster(name string, proto ir.Protocol, eps ...ir.Endpoint) ir.Cluster {
	return ir.Cluster{Name: name, Protocol: proto, Endpoints: eps}
}

// fwdEndpoint turns "host:port" into an IR endpoint.
func fwdEndpoint(t testing.TB, addr string) ir.Endpoint {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return ir.Endpoint{Address: host, Port: uint32(n)}
}

// fwdBackend starts an HTTP/1.1 backend; configure may adjust the server before it
// starts (ConnState, Protocols, TLS).
func fwdBackend(t testing.TB, h http.Handler, configure func(*httptest.Server)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if configure != nil {
		configure(srv)
	}
	if srv.TLS != nil {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// fwdClient is an HTTP/1.1 client without proxies whose connections close at cleanup.
func fwdClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// fwdH2CClient speaks HTTP/2 with prior knowledge to plain-text ports.
func fwdH2CClient(t *testing.T) *http.Client {
	t.Helper()
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Proxy: nil, Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// fwdDo sends a request and returns the status, headers and body.
func fwdDo(t *testing.T, c *http.Client, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

func fwdGet(t *testing.T, c *http.Client, u string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fwdDo(t, c, req)
}

// fwdCountConns counts the connections a backend accepts.
func fwdCountConns(n *atomic.Int64) func(*httptest.Server) {
	return func(s *httptest.Server) {
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				n.Add(1)
			}
		}
	}
}

func TestUpstreamRoundRobin(t *testing.T) {
	var hits [3]atomic.Int64
	var eps []ir.Endpoint
	for i := range hits {
		srv := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			hits[i].Add(1)
			fmt.Fprint(w, i)
		}), nil)
		eps = append(eps, fwdEndpoint(t, srv.Listener.Addr().String()))
	}
	gw := fwdStart(t, Options{}, []ir.Route{fwdRoute("rr", "/", "rr")}, fwdCluster("rr", ir.UpstreamHTTP1, eps...))
	c := fwdClient(t)
	var order []string
	for range 30 {
		code, _, body := fwdGet(t, c, gw.base+"/")
		if code != http.StatusOK {
			t.Fatalf("status %d body %q", code, body)
		}
		order = append(order, body)
	}
	for i := range hits {
		if n := hits[i].Load(); n != 10 {
			t.Errorf("endpoint %d served %d of 30 requests, want 10 (order %v)", i, n, order)
		}
	}
	// Strict rotation: no endpoint serves two requests in a row.
	for i := 1; i < len(order); i++ {
		if order[i] == order[i-1] {
			t.Fatalf("endpoint %s served requests %d and %d in a row: %v", order[i], i-1, i, order)
		}
	}
}

func TestUpstreamKeepAlivePool(t *testing.T) {
	var conns, requests atomic.Int64
	var protoErr atomic.Value
	srv := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Proto != "HTTP/1.1" {
			protoErr.Store(r.Proto)
		}
		io.WriteString(w, "ok")
	}), fwdCountConns(&conns))
	gw := fwdStart(t, Options{}, []ir.Route{fwdRoute("ka", "/", "ka")},
		fwdCluster("ka", ir.UpstreamHTTP1, fwdEndpoint(t, srv.Listener.Addr().String())))

	c := fwdClient(t)
	const sequential = 100
	for range sequential {
		if code, _, body := fwdGet(t, c, gw.base+"/seq"); code != 200 || body != "ok" {
			t.Fatalf("status %d body %q", code, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("backend saw %d connections for %d sequential requests, want 1 (pooled keep-alive)", n, sequential)
	}

	// Concurrent bursts: the pool grows to the concurrency, not to the request count.
	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range perWorker {
				resp, err := c.Get(gw.base + "/burst")
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := int64(sequential + workers*perWorker)
	if got := requests.Load(); got != total {
		t.Fatalf("backend saw %d requests, want %d", got, total)
	}
	if n := conns.Load(); n > workers+1 {
		t.Errorf("backend saw %d connections for %d requests from %d workers, want at most %d", n, total, workers, workers+1)
	}
	if p := protoErr.Load(); p != nil {
		t.Errorf("backend saw %v, want HTTP/1.1", p)
	}
	t.Logf("%d requests over %d upstream connections", total, conns.Load())
}

func TestUpstreamH2C(t *testing.T) {
	var conns atomic.Int64
	srv := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", r.Proto, r.Host, r.URL.Path)
	}), func(s *httptest.Server) {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true) // HTTP/2 prior knowledge only: HTTP/1.1 is refused
		s.Config.Protocols = p
		fwdCountConns(&conns)(s)
	})
	ep := fwdEndpoint(t, srv.Listener.Addr().String())
	gw := fwdStart(t, Options{}, []ir.Route{
		fwdRoute("h2c", "/h2c", "h2c"),
		fwdRoute("h1", "/h1", "h1"),
	}, fwdCluster("h1", ir.UpstreamHTTP1, ep), fwdCluster("h2c", ir.UpstreamH2C, ep))

	for _, client := range []struct {
		name string
		c    *http.Client
	}{{"http1 client", fwdClient(t)}, {"h2c client", fwdH2CClient(t)}} {
		for i := range 20 {
			code, _, body := fwdGet(t, client.c, gw.base+"/h2c/"+strconv.Itoa(i))
			want := "HTTP/2.0 " + gw.addr + " /h2c/" + strconv.Itoa(i)
			if code != 200 || body != want {
				t.Fatalf("%s: status %d body %q, want 200 %q", client.name, code, body, want)
			}
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("backend saw %d connections for 40 h2c requests, want 1 (multiplexed)", n)
	}
	// The same backend through an HTTP/1.1 cluster fails: proof the backend really
	// requires prior knowledge, so the 200s above were HTTP/2.
	if code, _, body := fwdGet(t, fwdClient(t), gw.base+"/h1"); code < 500 {
		t.Errorf("HTTP/1.1 to an h2c-only backend: status %d body %q, want a 5xx", code, body)
	}
}

func TestUpstreamWebSocket(t *testing.T) {
	upgrader := websocket.Upgrader{}
	srv := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, http.Header{"X-Backend-Path": {r.URL.Path}})
		if err != nil {
			return
		}
		defer ws.Close()
		// The backend speaks first, then echoes with a prefix.
		if err := ws.WriteMessage(websocket.TextMessage, []byte("hello "+r.Header.Get("X-Request-Id"))); err != nil {
			return
		}
		for {
			kind, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if err := ws.WriteMessage(kind, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	}), nil)
	ep := fwdEndpoint(t, srv.Listener.Addr().String())
	rewrite := fwdRoute("ws-rewrite", "/rewritten", "plain")
	rewrite.Rewrite = &ir.Rewrite{Path: &ir.PathModifier{Type: ir.PrefixPath, Value: "/inner"}}
	rewrite.Retry = &ir.Retry{Attempts: 2, Codes: []int{503}}
	rewrite.Timeouts = &ir.Timeouts{BackendRequest: "10s"}
	gw := fwdStart(t, Options{}, []ir.Route{
		fwdRoute("ws", "/ws", "ws"),
		rewrite,
		fwdRoute("plain", "/", "plain"),
	}, fwdCluster("ws", ir.UpstreamWebSocket, ep), fwdCluster("plain", ir.UpstreamHTTP1, ep))

	for _, tc := range []struct{ path, backendPath string }{
		{"/ws/chat", "/ws/chat"},     // WebSocket cluster
		{"/anything", "/anything"},   // plain HTTP/1.1 cluster
		{"/rewritten/x", "/inner/x"}, // route with rewrite, retries and a backend timeout
	} {
		t.Run(tc.path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ws, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+gw.addr+tc.path, http.Header{"X-Request-Id": {"ws-" + tc.path}})
			if err != nil {
				t.Fatalf("dial: %v (response %v)", err, resp)
			}
			defer ws.Close()
			if got := resp.Header.Get("X-Backend-Path"); got != tc.backendPath {
				t.Errorf("backend saw path %q, want %q", got, tc.backendPath)
			}
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			kind, msg, err := ws.ReadMessage()
			if err != nil || kind != websocket.TextMessage || string(msg) != "hello ws-"+tc.path {
				t.Fatalf("first message: %d %q %v", kind, msg, err)
			}
			for i := range 50 {
				kind := websocket.TextMessage
				payload := []byte("message " + strconv.Itoa(i))
				if i%2 == 1 {
					kind = websocket.BinaryMessage
					payload = []byte{0, byte(i), 0xff, '\n'}
				}
				if err := ws.WriteMessage(kind, payload); err != nil {
					t.Fatal(err)
				}
				gotKind, got, err := ws.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				if gotKind != kind || string(got) != "echo:"+string(payload) {
					t.Fatalf("echo %d: got %d %q, want %d %q", i, gotKind, got, kind, "echo:"+string(payload))
				}
			}
			// A large message crosses many TCP segments in both directions.
			big := strings.Repeat("0123456789abcdef", 64<<10)
			if err := ws.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
				t.Fatal(err)
			}
			if _, got, err := ws.ReadMessage(); err != nil || string(got) != "echo:"+big {
				t.Fatalf("large echo: %d bytes, %v", len(got), err)
			}
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		})
	}
}

// grpcEchoDesc is a hand-written service (no generated code): Unary echoes a
// StringValue with header and trailer metadata, and fails with NotFound for values
// starting with "missing"; Bidi echoes every message until the client closes, or fails
// on "fail".
var grpcEchoDesc = grpc.ServiceDesc{
	ServiceName: "portico.test.Echo",
	HandlerType: (*any)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Unary", Handler: fwdGRPCUnary}},
	Streams:     []grpc.StreamDesc{{StreamName: "Bidi", Handler: fwdGRPCBidi, ServerStreams: true, ClientStreams: true}},
}

func fwdGRPCUnary(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	in := new(wrapperspb.StringValue)
	if err := dec(in); err != nil {
		return nil, err
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-echo-header", "unary"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-echo-trailer", in.Value))
	if strings.HasPrefix(in.Value, "missing") {
		return nil, status.Error(codes.NotFound, "no such thing: "+in.Value)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	return wrapperspb.String("echo:" + in.Value + " id:" + strings.Join(md.Get("x-request-id"), ",")), nil
}

func fwdGRPCBidi(_ any, stream grpc.ServerStream) error {
	_ = stream.SetHeader(metadata.Pairs("x-bidi-header", "bidi"))
	n := 0
	for {
		in := new(wrapperspb.StringValue)
		err := stream.RecvMsg(in)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		n++
		if in.Value == "fail" {
			stream.SetTrailer(metadata.Pairs("x-failed-after", strconv.Itoa(n)))
			return status.Error(codes.FailedPrecondition, "asked to fail")
		}
		if err := stream.SendMsg(wrapperspb.String("echo:" + in.Value)); err != nil {
			return err
		}
	}
	stream.SetTrailer(metadata.Pairs("x-bidi-count", strconv.Itoa(n)))
	return nil
}

var fwdBidiDesc = &grpc.StreamDesc{StreamName: "Bidi", ServerStreams: true, ClientStreams: true}

func TestUpstreamGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	gs.RegisterService(&grpcEchoDesc, nil)
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-served })

	route := fwdRoute("grpc", "/portico.test.Echo", "grpc")
	route.Name = "grpcroute/default/echo/rule/0/match/0"
	route.GRPC = true
	gw := fwdStart(t, Options{}, []ir.Route{route}, fwdCluster("grpc", ir.UpstreamH2C, fwdEndpoint(t, lis.Addr().String())))

	conn, err := grpc.NewClient(gw.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("unary", func(t *testing.T) {
		var hdr, trl metadata.MD
		out := new(wrapperspb.StringValue)
		err := conn.Invoke(ctx, "/portico.test.Echo/Unary", wrapperspb.String("ping"), out, grpc.Header(&hdr), grpc.Trailer(&trl))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.Value, "echo:ping id:") || len(out.Value) != len("echo:ping id:")+32 {
			t.Errorf("reply %q, want echo:ping with a generated 32-digit request id", out.Value)
		}
		if got := hdr.Get("x-echo-header"); len(got) != 1 || got[0] != "unary" {
			t.Errorf("header metadata %v", hdr)
		}
		if got := trl.Get("x-echo-trailer"); len(got) != 1 || got[0] != "ping" {
			t.Errorf("trailer metadata %v, want x-echo-trailer: ping", trl)
		}
	})

	t.Run("unary error with trailers", func(t *testing.T) {
		var trl metadata.MD
		err := conn.Invoke(ctx, "/portico.test.Echo/Unary", wrapperspb.String("missing-42"), new(wrapperspb.StringValue), grpc.Trailer(&trl))
		st, _ := status.FromError(err)
		if st.Code() != codes.NotFound || st.Message() != "no such thing: missing-42" {
			t.Fatalf("status %v %q, want NotFound \"no such thing: missing-42\"", st.Code(), st.Message())
		}
		if got := trl.Get("x-echo-trailer"); len(got) != 1 || got[0] != "missing-42" {
			t.Errorf("trailer metadata %v, want x-echo-trailer: missing-42", trl)
		}
	})

	t.Run("unknown method", func(t *testing.T) {
		err := conn.Invoke(ctx, "/portico.test.Echo/Nope", wrapperspb.String("x"), new(wrapperspb.StringValue))
		if st, _ := status.FromError(err); st.Code() != codes.Unimplemented {
			t.Fatalf("status %v, want Unimplemented", st.Code())
		}
	})

	t.Run("bidi", func(t *testing.T) {
		cs, err := conn.NewStream(ctx, fwdBidiDesc, "/portico.test.Echo/Bidi")
		if err != nil {
			t.Fatal(err)
		}
		// Lock step: each reply must arrive before the next message is sent, which
		// only works when both directions stream through the gateway at once.
		for i := range 20 {
			msg := "m" + strconv.Itoa(i)
			if err := cs.SendMsg(wrapperspb.String(msg)); err != nil {
				t.Fatal(err)
			}
			got := new(wrapperspb.StringValue)
			if err := cs.RecvMsg(got); err != nil {
				t.Fatalf("recv %d: %v", i, err)
			}
			if got.Value != "echo:"+msg {
				t.Fatalf("recv %d: %q", i, got.Value)
			}
		}
		hdr, err := cs.Header()
		if err != nil || len(hdr.Get("x-bidi-header")) != 1 {
			t.Errorf("header %v %v", hdr, err)
		}
		if err := cs.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if err := cs.RecvMsg(new(wrapperspb.StringValue)); !errors.Is(err, io.EOF) {
			t.Fatalf("end of stream: %v, want io.EOF (status OK)", err)
		}
		if got := cs.Trailer().Get("x-bidi-count"); len(got) != 1 || got[0] != "20" {
			t.Errorf("trailer %v, want x-bidi-count: 20", cs.Trailer())
		}
	})

	t.Run("bidi error", func(t *testing.T) {
		cs, err := conn.NewStream(ctx, fwdBidiDesc, "/portico.test.Echo/Bidi")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"a", "b", "fail"} {
			if err := cs.SendMsg(wrapperspb.String(m)); err != nil {
				t.Fatal(err)
			}
		}
		var err2 error
		for err2 == nil {
			err2 = cs.RecvMsg(new(wrapperspb.StringValue))
		}
		if st, _ := status.FromError(err2); st.Code() != codes.FailedPrecondition || st.Message() != "asked to fail" {
			t.Fatalf("status %v, want FailedPrecondition \"asked to fail\"", err2)
		}
		if got := cs.Trailer().Get("x-failed-after"); len(got) != 1 || got[0] != "3" {
			t.Errorf("trailer %v, want x-failed-after: 3", cs.Trailer())
		}
	})
}

// fwdHold is a backend handler that blocks until the request's context ends or the
// test finishes; arrivals counts requests.
func fwdHold(t *testing.T, arrivals *atomic.Int64) http.Handler {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrivals.Add(1)
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})
}

func TestUpstreamTimeouts(t *testing.T) {
	var arrivals atomic.Int64
	slow := fwdBackend(t, fwdHold(t, &arrivals), nil)
	// Headers arrive at once but the body never ends: the backend timeout covers the
	// whole response, the request timeout the whole exchange.
	slowBody := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}), nil)
	fast := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "fast") }), nil)

	route := func(name, prefix, cluster string, to ir.Timeouts) ir.Route {
		r := fwdRoute(name, prefix, cluster)
		r.Timeouts = &to
		return r
	}
	gw := fwdStart(t, Options{}, []ir.Route{
		route("request", "/request", "slow", ir.Timeouts{Request: "200ms"}),
		route("backend", "/backend", "slow", ir.Timeouts{BackendRequest: "200ms"}),
		route("both", "/both", "slow", ir.Timeouts{Request: "10s", BackendRequest: "200ms"}),
		route("fast", "/fast", "fast", ir.Timeouts{Request: "10s", BackendRequest: "5s"}),
		route("body", "/body", "slowbody", ir.Timeouts{BackendRequest: "200ms"}),
	},
		fwdCluster("slow", ir.UpstreamHTTP1, fwdEndpoint(t, slow.Listener.Addr().String())),
		fwdCluster("slowbody", ir.UpstreamHTTP1, fwdEndpoint(t, slowBody.Listener.Addr().String())),
		fwdCluster("fast", ir.UpstreamHTTP1, fwdEndpoint(t, fast.Listener.Addr().String())),
	)
	c := fwdClient(t)
	for _, path := range []string{"/request", "/backend", "/both"} {
		if code, _, body := fwdGet(t, c, gw.base+path); code != http.StatusGatewayTimeout {
			t.Errorf("%s: status %d body %q, want 504", path, code, body)
		}
	}
	if n := arrivals.Load(); n != 3 {
		t.Errorf("slow backend saw %d requests, want 3", n)
	}
	if code, _, body := fwdGet(t, c, gw.base+"/fast"); code != 200 || body != "fast" {
		t.Errorf("/fast: status %d body %q", code, body)
	}
	// Once the backend's headers are in, a timeout can only abort the response: the
	// client must see an error, never a complete body.
	if resp, err := c.Get(gw.base + "/body"); err == nil {
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("/body: status %d body %q read in full, want the response aborted", resp.StatusCode, got)
		}
	}
}

// fwdFlaky fails with code until it has been called fails times, then answers 200;
// it records every attempt's method and body.
type fwdFlaky struct {
	mu       sync.Mutex
	fails    int
	code     int
	attempts []string
}

func (f *fwdFlaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.attempts = append(f.attempts, r.Method+" "+r.URL.Path+" "+string(body))
	n := len(f.attempts)
	f.mu.Unlock()
	if n <= f.fails {
		w.WriteHeader(f.code)
		fmt.Fprintf(w, "attempt %d failed", n)
		return
	}
	fmt.Fprintf(w, "attempt %d ok", n)
}

func (f *fwdFlaky) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.attempts)
}

func TestUpstreamRetries(t *testing.T) {
	retryRoute := func(name string, cluster string, rt ir.Retry) ir.Route {
		r := fwdRoute(name, "/"+name, cluster)
		r.Retry = &rt
		return r
	}
	start := func(t *testing.T, f *fwdFlaky, rt ir.Retry) (*fwdGateway, *http.Client) {
		srv := fwdBackend(t, f, nil)
		gw := fwdStart(t, Options{}, []ir.Route{retryRoute("r", "flaky", rt)},
			fwdCluster("flaky", ir.UpstreamHTTP1, fwdEndpoint(t, srv.Listener.Addr().String())))
		return gw, fwdClient(t)
	}

	t.Run("retried codes until success", func(t *testing.T) {
		f := &fwdFlaky{fails: 2, code: 503}
		gw, c := start(t, f, ir.Retry{Attempts: 3, Codes: []int{502, 503}, Backoff: "1ms"})
		code, _, body := fwdGet(t, c, gw.base+"/r/x")
		if code != 200 || body != "attempt 3 ok" || f.count() != 3 {
			t.Fatalf("status %d body %q after %d attempts, want 200 from attempt 3", code, body, f.count())
		}
	})

	t.Run("attempts exhausted", func(t *testing.T) {
		f := &fwdFlaky{fails: 100, code: 502}
		gw, c := start(t, f, ir.Retry{Attempts: 2, Codes: []int{502}})
		code, _, body := fwdGet(t, c, gw.base+"/r/x")
		// One try and two retries; the client gets the last answer as it was.
		if code != 502 || body != "attempt 3 failed" || f.count() != 3 {
			t.Fatalf("status %d body %q after %d attempts, want 502 from attempt 3", code, body, f.count())
		}
	})

	t.Run("unlisted code not retried", func(t *testing.T) {
		f := &fwdFlaky{fails: 100, code: 500}
		gw, c := start(t, f, ir.Retry{Attempts: 3, Codes: []int{503}})
		if code, _, _ := fwdGet(t, c, gw.base+"/r/x"); code != 500 || f.count() != 1 {
			t.Fatalf("status %d after %d attempts, want 500 after 1", code, f.count())
		}
	})

	t.Run("no policy no retry", func(t *testing.T) {
		f := &fwdFlaky{fails: 100, code: 503}
		srv := fwdBackend(t, f, nil)
		gw := fwdStart(t, Options{}, []ir.Route{fwdRoute("r", "/", "flaky")},
			fwdCluster("flaky", ir.UpstreamHTTP1, fwdEndpoint(t, srv.Listener.Addr().String())))
		if code, _, _ := fwdGet(t, fwdClient(t), gw.base+"/r"); code != 503 || f.count() != 1 {
			t.Fatalf("status %d after %d attempts, want 503 after 1", code, f.count())
		}
	})

	t.Run("connection errors go to another endpoint", func(t *testing.T) {
		dead := freePort(t) // nothing listens here
		var hits atomic.Int64
		live := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			hits.Add(1)
			io.WriteString(w, "live")
		}), nil)
		cluster := fwdCluster("mixed", ir.UpstreamHTTP1,
			ir.Endpoint{Address: "127.0.0.1", Port: dead}, fwdEndpoint(t, live.Listener.Addr().String()))
		gw := fwdStart(t, Options{}, []ir.Route{
			retryRoute("retry", "mixed", ir.Retry{Attempts: 1}),
			fwdRoute("noretry", "/noretry", "mixed"),
		}, cluster)
		c := fwdClient(t)
		for i := range 10 {
			if code, _, body := fwdGet(t, c, gw.base+"/retry"); code != 200 || body != "live" {
				t.Fatalf("request %d: status %d body %q, want 200 from the live endpoint", i, code, body)
			}
		}
		if n := hits.Load(); n != 10 {
			t.Errorf("live endpoint saw %d requests, want 10", n)
		}
		// Without a retry policy, the requests that land on the dead endpoint fail with 503.
		codes := map[int]int{}
		for range 10 {
			code, _, _ := fwdGet(t, c, gw.base+"/noretry")
			codes[code]++
		}
		if codes[200] != 5 || codes[503] != 5 {
			t.Errorf("without retries: statuses %v, want 5x200 and 5x503", codes)
		}
	})

	t.Run("an attempt past the backend timeout is retried", func(t *testing.T) {
		// HTTPRouteRetryBackendTimeout: the first attempt hangs past backendRequest; the
		// retry answers at once.
		var n atomic.Int64
		release := make(chan struct{})
		defer close(release)
		srv := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
			io.WriteString(w, "second")
		}), nil)
		r := retryRoute("r", "slow", ir.Retry{Attempts: 1, Backoff: "1ms"})
		r.Timeouts = &ir.Timeouts{BackendRequest: "200ms"}
		gw := fwdStart(t, Options{}, []ir.Route{r},
			fwdCluster("slow", ir.UpstreamHTTP1, fwdEndpoint(t, srv.Listener.Addr().String())))
		if code, _, body := fwdGet(t, fwdClient(t), gw.base+"/r"); code != 200 || body != "second" || n.Load() != 2 {
			t.Fatalf("status %d body %q after %d attempts, want 200 from attempt 2", code, body, n.Load())
		}
	})

	t.Run("backoff is waited for", func(t *testing.T) {
		// The retry is due after an hour; the request timeout ends the exchange first,
		// so the backend sees exactly one attempt and the client a 504.
		f := &fwdFlaky{fails: 100, code: 503}
		srv := fwdBackend(t, f, nil)
		r := retryRoute("r", "flaky", ir.Retry{Attempts: 3, Codes: []int{503}, Backoff: "1h"})
		r.Timeouts = &ir.Timeouts{Request: "300ms"}
		gw := fwdStart(t, Options{}, []ir.Route{r},
			fwdCluster("flaky", ir.UpstreamHTTP1, fwdEndpoint(t, srv.Listener.Addr().String())))
		resp, err := fwdClient(t).Get(gw.base + "/r")
		if err != nil {
			t.Fatalf("request failed instead of answering 504: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout || f.count() != 1 {
			t.Fatalf("status %d after %d attempts, want 504 after 1", resp.StatusCode, f.count())
		}
	})

	t.Run("backoff between attempts keeps order", func(t *testing.T) {
		f := &fwdFlaky{fails: 3, code: 503}
		gw, c := start(t, f, ir.Retry{Attempts: 3, Codes: []int{503}, Backoff: "5ms"})
		if code, _, body := fwdGet(t, c, gw.base+"/r/ordered"); code != 200 || body != "attempt 4 ok" {
			t.Fatalf("status %d body %q", code, body)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, a := range f.attempts {
			if a != "GET /r/ordered " {
				t.Errorf("attempt %d was %q, want the same GET each time", i, a)
			}
		}
	})

	t.Run("streaming body not retried", func(t *testing.T) {
		f := &fwdFlaky{fails: 100, code: 503}
		gw, c := start(t, f, ir.Retry{Attempts: 3, Codes: []int{503}})
		pr, pw := io.Pipe()
		go func() {
			for i := range 5 {
				fmt.Fprintf(pw, "chunk%d;", i)
			}
			pw.Close()
		}()
		req, err := http.NewRequest(http.MethodPost, gw.base+"/r/upload", pr)
		if err != nil {
			t.Fatal(err)
		}
		code, _, _ := fwdDo(t, c, req)
		if code != 503 || f.count() != 1 {
			t.Fatalf("status %d after %d attempts, want 503 after 1 (a streamed body cannot be replayed)", code, f.count())
		}
		if got := f.attempts[0]; got != "POST /r/upload chunk0;chunk1;chunk2;chunk3;chunk4;" {
			t.Errorf("backend saw %q", got)
		}
	})
}

// fwdPKI is a test CA that issues server certificates.
type fwdPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string
}

func fwdNewCA(t testing.TB, name string) *fwdPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &fwdPKI{cert: cert, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue returns a server certificate for the DNS names and URIs.
func (ca *fwdPKI) issue(t testing.TB, dns []string, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "backend"},
		DNSNames:     dns,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestUpstreamTLS(t *testing.T) {
	ca := fwdNewCA(t, "portico test CA")
	otherCA := fwdNewCA(t, "someone else's CA")
	var hits atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintf(w, "%s sni=%s", r.Proto, r.TLS.ServerName)
	})
	leaf := ca.issue(t, []string{"backend.internal", "*.wild.internal"}, "spiffe://portico.test/ns/default/sa/backend")
	tlsBackend := func(h2 bool) ir.Endpoint {
		srv := fwdBackend(t, handler, func(s *httptest.Server) {
			s.EnableHTTP2 = h2
			s.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
		})
		return fwdEndpoint(t, srv.Listener.Addr().String())
	}
	h1, h2 := tlsBackend(false), tlsBackend(true)

	type tc struct {
		name  string
		proto ir.Protocol
		ep    ir.Endpoint
		tls   ir.UpstreamTLS
		want  string // body; "" means the handshake must fail
	}
	cases := []tc{
		{"sni", ir.UpstreamHTTP1, h1, ir.UpstreamTLS{SNI: "backend.internal", CACertificates: ca.pem}, "HTTP/1.1 sni=backend.internal"},
		{"sni wildcard", ir.UpstreamHTTP1, h1, ir.UpstreamTLS{SNI: "a.wild.internal", CACertificates: ca.pem}, "HTTP/1.1 sni=a.wild.internal"},
		{"h2 over tls", ir.UpstreamH2C, h2, ir.UpstreamTLS{SNI: "backend.internal", CACertificates: ca.pem}, "HTTP/2.0 sni=backend.internal"},
		{"sni not in certificate", ir.UpstreamHTTP1, h1, ir.UpstreamTLS{SNI: "other.internal", CACertificates: ca.pem}, ""},
		{"wrong ca", ir.UpstreamHTTP1, h1, ir.UpstreamTLS{SNI: "backend.internal", CACertificates: otherCA.pem}, ""},
		{"wrong ca h2", ir.UpstreamH2C, h2, ir.UpstreamTLS{SNI: "backend.internal", CACertificates: otherCA.pem}, ""},
		{"san hostname replaces sni", ir.UpstreamHTTP1, h1, ir.UpstreamTLS{SNI: "other.internal", CACertificates: ca.pem,
			SubjectAltNames: []ir.SubjectAltName{{Hostname: "nope.internal"}, {Hostname: "backend.internal"}}}, "HTTP/1.1 sni=other.internal"},
		{"san uri", ir.UpstreamHTTP1, h1, ir.UpstreamTLS{SNI: "other.internal", CACertificates: ca.pem,
			SubjectAltNames: []ir.SubjectAltName{{URI: "spiffe://portico.test/ns/default/sa/backend"}}}, "HTTP/1.1 sni=other.internal"},
		{"san mismatch", ir.UpstreamHTTP1, h1, ir.UpstreamTLS{SNI: "backend.internal", CACertificates: ca.pem,
			SubjectAltNames: []ir.SubjectAltName{{Hostname: "other.internal"}, {URI: "spiffe://portico.test/ns/default/sa/other"}}}, ""},
		{"san with wrong ca", ir.UpstreamHTTP1, h1, ir.UpstreamTLS{SNI: "backend.internal", CACertificates: otherCA.pem,
			SubjectAltNames: []ir.SubjectAltName{{Hostname: "backend.internal"}}}, ""},
		{"system roots without the ca", ir.UpstreamHTTP1, h1, ir.UpstreamTLS{SNI: "backend.internal", SystemRoots: true}, ""},
	}
	var routes []ir.Route
	var clusters []ir.Cluster
	for i, c := range cases {
		name := "tls" + strconv.Itoa(i)
		routes = append(routes, fwdRoute(name, "/"+name, name))
		cl := fwdCluster(name, c.proto, c.ep)
		cl.TLS = &c.tls
		clusters = append(clusters, cl)
	}
	gw := fwdStart(t, Options{}, routes, clusters...)
	client := fwdClient(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := hits.Load()
			code, hdr, body := fwdGet(t, client, gw.base+"/tls"+strconv.Itoa(i))
			if c.want != "" {
				if code != 200 || body != c.want {
					t.Fatalf("status %d body %q, want 200 %q", code, body, c.want)
				}
				return
			}
			if code != http.StatusBadGateway && code != http.StatusServiceUnavailable {
				t.Fatalf("status %d body %q, want 502 or 503", code, body)
			}
			if hits.Load() != before {
				t.Fatalf("the backend answered a request although its certificate was not trusted")
			}
			if strings.Contains(body, "sni=") || hdr.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Fatalf("unexpected error response %q %v", body, hdr)
			}
		})
	}
}

// fwdEchoHeaders answers with the request's headers as the backend saw them.
func fwdEchoHeaders(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Seen-Host", r.Host)
	w.Header().Set("X-Seen-Path", r.URL.RequestURI())
	w.Header().Set("X-Seen-Proto", r.Proto)
	var b strings.Builder
	for k, vs := range r.Header {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	// Hop-by-hop headers the proxy must drop from the response.
	w.Header().Set("Connection", "X-Backend-Hop")
	w.Header().Set("X-Backend-Hop", "secret")
	w.Header().Set("Keep-Alive", "timeout=5")
	w.Header().Set("Proxy-Authenticate", "Basic")
	w.Header().Set("X-Backend-End", "kept")
	io.WriteString(w, b.String())
}

func TestUpstreamForwardingHeaders(t *testing.T) {
	srv := fwdBackend(t, http.HandlerFunc(fwdEchoHeaders), nil)
	ep := fwdEndpoint(t, srv.Listener.Addr().String())
	rewritten := fwdRoute("rewrite", "/rewrite", "echo")
	rewritten.Rewrite = &ir.Rewrite{Hostname: "internal.example"}
	gw := fwdStart(t, Options{}, []ir.Route{rewritten, fwdRoute("echo", "/", "echo")}, fwdCluster("echo", ir.UpstreamHTTP1, ep))
	c := fwdClient(t)

	parse := func(body string) http.Header {
		h := http.Header{}
		for line := range strings.SplitSeq(strings.TrimSpace(body), "\n") {
			k, v, _ := strings.Cut(line, ": ")
			h.Add(k, v)
		}
		return h
	}
	get := func(path string, hdr http.Header, host string) (http.Header, http.Header) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, gw.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = hdr
		if host != "" {
			req.Host = host
		}
		code, respHdr, body := fwdDo(t, c, req)
		if code != 200 {
			t.Fatalf("%s: status %d body %q", path, code, body)
		}
		return parse(body), respHdr
	}

	t.Run("x-forwarded and request id generated", func(t *testing.T) {
		seen, resp := get("/a?q=1", http.Header{}, "shop.example:8080")
		if got := seen.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For %q, want 127.0.0.1", got)
		}
		if got := seen.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("X-Forwarded-Proto %q, want http", got)
		}
		if got := seen.Get("X-Forwarded-Host"); got != "shop.example:8080" {
			t.Errorf("X-Forwarded-Host %q, want shop.example:8080", got)
		}
		if got := resp.Get("X-Seen-Host"); got != "shop.example:8080" {
			t.Errorf("backend saw Host %q, want it preserved", got)
		}
		if got := resp.Get("X-Seen-Path"); got != "/a?q=1" {
			t.Errorf("backend saw %q, want /a?q=1", got)
		}
		id := seen.Get("X-Request-Id")
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("generated X-Request-Id %q, want 32 hex digits", id)
		}
		again, _ := get("/a", http.Header{}, "")
		if again.Get("X-Request-Id") == id {
			t.Errorf("two requests got the same generated id %q", id)
		}
	})

	t.Run("request id kept", func(t *testing.T) {
		seen, _ := get("/", http.Header{"X-Request-Id": {"client-chosen-id"}}, "")
		if got := seen.Values("X-Request-Id"); len(got) != 1 || got[0] != "client-chosen-id" {
			t.Errorf("X-Request-Id %q, want the client's", got)
		}
	})

	t.Run("client forwarding headers not trusted", func(t *testing.T) {
		seen, _ := get("/", http.Header{
			"X-Forwarded-For":   {"203.0.113.7"},
			"X-Forwarded-Proto": {"https"},
			"X-Forwarded-Host":  {"evil.example"},
		}, "good.example")
		// No hop before the gateway is trusted: the backend learns the peer the gateway
		// saw, never a client-supplied chain, and Proto and Host describe this hop.
		if got := seen.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("X-Forwarded-For %q, want only the peer 127.0.0.1", got)
		}
		if got := seen.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("X-Forwarded-Proto %q, want http", got)
		}
		if got := seen.Get("X-Forwarded-Host"); got != "good.example" {
			t.Errorf("X-Forwarded-Host %q, want good.example", got)
		}
	})

	t.Run("hop-by-hop removed", func(t *testing.T) {
		seen, resp := get("/", http.Header{
			"Connection":          {"keep-alive, X-Hop-Secret"},
			"X-Hop-Secret":        {"do not forward"},
			"Keep-Alive":          {"timeout=5"},
			"Upgrade":             {"h2c-but-not-asked-for"},
			"Proxy-Connection":    {"keep-alive"},
			"Proxy-Authorization": {"Basic Zm9vOmJhcg=="},
			"Te":                  {"gzip"},
			"X-End-To-End":        {"kept"},
		}, "")
		for _, h := range []string{"Connection", "X-Hop-Secret", "Keep-Alive", "Upgrade", "Proxy-Connection", "Proxy-Authorization", "Te", "Transfer-Encoding"} {
			if v := seen.Values(h); len(v) > 0 {
				t.Errorf("backend got hop-by-hop %s: %q", h, v)
			}
		}
		if got := seen.Get("X-End-To-End"); got != "kept" {
			t.Errorf("end-to-end header lost: %q", got)
		}
		for _, h := range []string{"X-Backend-Hop", "Keep-Alive", "Proxy-Authenticate"} {
			if v := resp.Values(h); len(v) > 0 {
				t.Errorf("client got hop-by-hop %s: %q", h, v)
			}
		}
		if got := resp.Get("X-Backend-End"); got != "kept" {
			t.Errorf("end-to-end response header lost: %q", got)
		}
	})

	t.Run("chunked request body re-framed", func(t *testing.T) {
		// The client's Transfer-Encoding is hop-by-hop: the backend gets the body, framed
		// by the gateway, and never a Transfer-Encoding header.
		pr, pw := io.Pipe()
		go func() { io.WriteString(pw, "streamed body"); pw.Close() }()
		req, _ := http.NewRequest(http.MethodPost, gw.base+"/", pr)
		code, _, body := fwdDo(t, c, req)
		seen := parse(body)
		if code != 200 || len(seen.Values("Transfer-Encoding")) != 0 {
			t.Errorf("status %d, backend headers %v", code, seen)
		}
	})

	t.Run("host rewritten", func(t *testing.T) {
		seen, resp := get("/rewrite/x", http.Header{}, "public.example")
		if got := resp.Get("X-Seen-Host"); got != "internal.example" {
			t.Errorf("backend saw Host %q, want internal.example", got)
		}
		if got := seen.Get("X-Forwarded-Host"); got != "public.example" {
			t.Errorf("X-Forwarded-Host %q, want the client's public.example", got)
		}
	})
}

// TestUpstreamWebSocketTimeouts: a route's timeouts bound the upgrade handshake, not
// the WebSocket that follows it.
func TestUpstreamWebSocketTimeouts(t *testing.T) {
	upgrader := websocket.Upgrader{}
	var arrivals atomic.Int64
	hold := fwdHold(t, &arrivals)
	srv := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stuck" {
			hold.ServeHTTP(w, r) // never answers the upgrade
			return
		}
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
			if string(msg) == "answer later" {
				// Outlast the route's timeouts before answering.
				select {
				case <-time.After(time.Second):
				case <-r.Context().Done():
					return
				}
			}
			if err := ws.WriteMessage(kind, msg); err != nil {
				return
			}
		}
	}), nil)
	ep := fwdEndpoint(t, srv.Listener.Addr().String())
	var routes []ir.Route
	for _, to := range []ir.Timeouts{{Request: "200ms"}, {BackendRequest: "200ms"}, {Request: "200ms", BackendRequest: "150ms"}} {
		name := "ws" + strconv.Itoa(len(routes))
		r := fwdRoute(name, "/"+name, "ws")
		r.Rewrite = &ir.Rewrite{Path: &ir.PathModifier{Type: ir.PrefixPath, Value: "/"}}
		r.Timeouts = &to
		routes = append(routes, r)
	}
	gw := fwdStart(t, Options{}, routes, fwdCluster("ws", ir.UpstreamHTTP1, ep))
	for i, r := range routes {
		prefix := "/ws" + strconv.Itoa(i)
		t.Run(fmt.Sprintf("%+v", *r.Timeouts), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+gw.addr+prefix+"/chat", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			for _, m := range []string{"now", "answer later", "still here"} {
				if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
					t.Fatal(err)
				}
				if _, got, err := ws.ReadMessage(); err != nil || string(got) != m {
					t.Fatalf("%q: got %q %v (the route timeout cut the WebSocket)", m, got, err)
				}
			}
			// A backend that never answers the upgrade gets the route's timeout.
			_, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+gw.addr+prefix+"/stuck", nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusGatewayTimeout {
				t.Fatalf("stuck handshake: %v %v, want 504", resp, err)
			}
		})
	}
}

// issuePEM returns a server certificate and its key, PEM-encoded, for a listener.
func (ca *fwdPKI) issuePEM(t testing.TB, dns ...string) (certPEM, keyPEM string) {
	t.Helper()
	c := ca.issue(t, dns)
	der, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

func TestUpstreamForwardingOverTLS(t *testing.T) {
	srv := fwdBackend(t, http.HandlerFunc(fwdEchoHeaders), nil)
	ca := fwdNewCA(t, "listener CA")
	certPEM, keyPEM := ca.issuePEM(t, "gw.example")
	s := New(Options{})
	var port uint32
	var err error
	for range 5 {
		port = freePort(t)
		cfg := &ir.Config{
			Gateways: []ir.Gateway{{Name: "default/fwd-tls", Addresses: []string{"127.0.0.1"}, Ports: []ir.Port{{
				Number: port, Protocol: ir.ProtocolTLS,
				Listeners: []ir.Listener{{
					Name: "default/fwd-tls/https", Hostname: "gw.example", Protocol: ir.ProtocolHTTPS,
					TLS:          &ir.ListenerTLS{Mode: ir.TLSTerminate, Certificates: []ir.Certificate{{Name: "secret/default/gw", CertPEM: certPEM, KeyPEM: keyPEM}}},
					VirtualHosts: []ir.VirtualHost{{Hostname: "gw.example", Routes: []ir.Route{fwdRoute("echo", "/", "echo")}}},
				}},
			}}}},
			Clusters: []ir.Cluster{fwdCluster("echo", ir.UpstreamHTTP1, fwdEndpoint(t, srv.Listener.Addr().String()))},
		}
		if err = s.Apply(cfg); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: h2,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		t.Cleanup(tr.CloseIdleConnections)
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://gw.example:" + strconv.Itoa(int(port)) + "/secure")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantProto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]
		if resp.StatusCode != 200 || resp.Proto != wantProto {
			t.Fatalf("h2=%v: status %d proto %s, want 200 over %s", h2, resp.StatusCode, resp.Proto, wantProto)
		}
		seen := string(body)
		for _, want := range []string{"X-Forwarded-Proto: https\n", "X-Forwarded-Host: gw.example:" + strconv.Itoa(int(port)) + "\n", "X-Forwarded-For: 127.0.0.1\n"} {
			if !strings.Contains(seen, want) {
				t.Errorf("h2=%v: backend headers lack %q:\n%s", h2, want, seen)
			}
		}
		if got := resp.Header.Get("X-Seen-Host"); got != "gw.example:"+strconv.Itoa(int(port)) {
			t.Errorf("h2=%v: backend saw Host %q", h2, got)
		}
	}
}

// TestUpstreamStreamClusterBehindHTTPRoute: the translator never sends HTTP to a TCP or
// UDP cluster, but a config that does must answer an error, not drop the connection.
func TestUpstreamStreamClusterBehindHTTPRoute(t *testing.T) {
	srv := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "http") }), nil)
	ep := fwdEndpoint(t, srv.Listener.Addr().String())
	gw := fwdStart(t, Options{}, []ir.Route{fwdRoute("tcp", "/tcp", "tcp"), fwdRoute("udp", "/udp", "udp")},
		fwdCluster("tcp", ir.UpstreamTCP, ep), fwdCluster("udp", ir.UpstreamUDP, ep))
	for _, p := range []string{"/tcp", "/udp"} {
		resp, err := fwdClient(t).Get(gw.base + p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		resp.Body.Close()
		if resp.StatusCode < 500 {
			t.Errorf("%s: status %d, want a 5xx", p, resp.StatusCode)
		}
	}
}

// TestUpstreamTLSClientCertificate: a cluster with a client certificate presents it to
// a backend that requires one; the same backend refuses a cluster without it.
func TestUpstreamTLSClientCertificate(t *testing.T) {
	ca := fwdNewCA(t, "portico test CA")
	clientCA := fwdNewCA(t, "client CA")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(clientCA.pem))
	leaf := ca.issue(t, []string{"backend.internal"})
	srv := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "client=%s", r.TLS.PeerCertificates[0].Subject.CommonName)
	}), func(s *httptest.Server) {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	})
	ep := fwdEndpoint(t, srv.Listener.Addr().String())

	// The client certificate as the translator passes it: PEM from the Gateway's Secret.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "gateway"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, clientCA.cert, &key.PublicKey, clientCA.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ir.Certificate{Name: "secret/default/client",
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))}

	with, without := fwdCluster("with", ir.UpstreamHTTP1, ep), fwdCluster("without", ir.UpstreamHTTP1, ep)
	with.TLS = &ir.UpstreamTLS{SNI: "backend.internal", CACertificates: ca.pem, ClientCertificate: cert}
	without.TLS = &ir.UpstreamTLS{SNI: "backend.internal", CACertificates: ca.pem}
	gw := fwdStart(t, Options{}, []ir.Route{fwdRoute("with", "/with", "with"), fwdRoute("without", "/without", "without")}, with, without)
	client := fwdClient(t)
	if code, _, body := fwdGet(t, client, gw.base+"/with"); code != 200 || body != "client=gateway" {
		t.Fatalf("with a client certificate: %d %q", code, body)
	}
	if code, _, body := fwdGet(t, client, gw.base+"/without"); code != http.StatusBadGateway && code != http.StatusServiceUnavailable {
		t.Fatalf("without a client certificate: %d %q, want 502 or 503", code, body)
	}
}
