package dataplane

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/telemetry"
)

// benchBody is the backend's whole answer: small, so the numbers measure the proxy's
// per-request work rather than copying.
const benchBody = "hello from the backend\n"

// benchBackend serves benchBody on HTTP/1.1 keep-alive connections.
func benchBackend(b *testing.B) *httptest.Server {
	b.Helper()
	body := []byte(benchBody)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// benchClient is a keep-alive HTTP/1.1 client with enough idle connections for every
// parallel goroutine.
func benchClient(b *testing.B) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// benchConcurrency is the number of client goroutines per GOMAXPROCS: enough requests in
// flight that the numbers measure throughput, not one request's round trip.
const benchConcurrency = 16

// benchRun sends GET url from b.RunParallel goroutines and checks every answer.
func benchRun(b *testing.B, url string) {
	client := benchClient(b)
	b.ReportAllocs()
	b.SetParallelism(benchConcurrency)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || n != int64(len(benchBody)) {
				b.Errorf("status %d, %d bytes, %v", resp.StatusCode, n, err)
				return
			}
		}
	})
}

// BenchmarkProxy is one request through the whole data plane: client -> Server on
// 127.0.0.1 (router, filters, reverse proxy, upstream pool) -> backend, all in this
// process, on keep-alive connections. Allocations count the client and backend too;
// subtract BenchmarkProxyDirect's for the proxy's share.
func BenchmarkProxy(b *testing.B) { benchProxy(b, nil) }

// BenchmarkProxyTelemetry is BenchmarkProxy with the access log (JSON, written to
// io.Discard by its goroutine) and metrics on: the ratio is telemetry's cost.
func BenchmarkProxyTelemetry(b *testing.B) {
	l, err := telemetry.NewAccessLog(telemetry.AccessLogOptions{Writer: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		l.Close()
		if d := l.Dropped(); d > 0 {
			b.Logf("%d access log entries dropped", d)
		}
	})
	benchProxy(b, &telemetry.Set{Log: l, Metrics: telemetry.NewMetrics()})
}

func benchProxy(b *testing.B, tel *telemetry.Set) {
	backend := benchBackend(b)
	addr := backend.Listener.Addr().(*net.TCPAddr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cfg := &ir.Config{
		Gateways: []ir.Gateway{{Name: "bench/gw", Addresses: []string{"127.0.0.1"}, Ports: []ir.Port{{
			Number: port, Protocol: ir.ProtocolHTTP,
			Listeners: []ir.Listener{{Name: "bench/gw/http", Protocol: ir.ProtocolHTTP, VirtualHosts: []ir.VirtualHost{{
				Hostname: "*",
				Routes: []ir.Route{{
					Name:     "httproute/bench/echo/rule/0/match/0",
					Match:    ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}},
					Backends: []ir.Backend{{Cluster: "service/bench/backend/80", Weight: 1}},
				}},
			}}}},
		}}}},
		Clusters: []ir.Cluster{{
			Name: "service/bench/backend/80", Protocol: ir.UpstreamHTTP1,
			Endpoints: []ir.Endpoint{{Address: "127.0.0.1", Port: uint32(addr.Port)}},
		}},
	}
	s := New(Options{Telemetry: tel})
	if err := s.Apply(cfg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	benchRun(b, "http://127.0.0.1:"+strconv.Itoa(int(port))+"/bench")
}

// BenchmarkProxyDirect is BenchmarkProxy's client talking to the same backend without
// the proxy: the ratio of the two is the proxy's cost.
func BenchmarkProxyDirect(b *testing.B) {
	backend := benchBackend(b)
	benchRun(b, backend.URL+"/bench")
}
