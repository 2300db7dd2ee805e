package dataplane

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/telemetry"
)

// otlpReceiver is a small OTLP trace receiver (gRPC and HTTP/protobuf) built on the
// official OTLP protos: it keeps every span it is sent.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// ServeHTTP is OTLP/HTTP: a protobuf ExportTraceServiceRequest posted to /v1/traces.
func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var msg collectortrace.ExportTraceServiceRequest
	if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &msg) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	resp, _ := r.Export(req.Context(), &msg)
	out, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// span finds the span of a trace, waiting for the export.
func (r *otlpReceiver) span(t *testing.T, traceID string) *tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, s := range r.spans {
			if hex.EncodeToString(s.TraceId) == traceID {
				r.mu.Unlock()
				return s
			}
		}
		r.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no span exported for trace %s", traceID)
	return nil
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			if v := kv.Value.GetStringValue(); v != "" {
				return v
			}
			if n := kv.Value.GetIntValue(); n != 0 {
				return strconv.FormatInt(n, 10)
			}
		}
	}
	return ""
}

type seenHeaders struct {
	mu sync.Mutex
	m  map[string]http.Header
}

func (s *seenHeaders) get(path string) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[path]
}

func TestTracePropagation(t *testing.T) {
	recv := &otlpReceiver{}
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, recv)
	go gs.Serve(grpcLn)
	t.Cleanup(gs.Stop)
	httpRecv := fwdBackend(t, recv, nil)

	seen := &seenHeaders{m: map[string]http.Header{}}
	backend := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.mu.Lock()
		seen.m[r.URL.Path] = r.Header.Clone()
		seen.mu.Unlock()
		io.WriteString(w, "ok")
	}), nil)
	cluster := fwdCluster("echo", ir.UpstreamHTTP1, fwdEndpoint(t, backend.Listener.Addr().String()))

	for _, exp := range []struct{ name, protocol, endpoint string }{
		{"grpc", "grpc", grpcLn.Addr().String()},
		{"http", "http", httpRecv.URL + "/v1/traces"},
	} {
		t.Run(exp.name, func(t *testing.T) {
			tr, err := telemetry.NewTracing(context.Background(), telemetry.TracingOptions{Endpoint: exp.endpoint, Protocol: exp.protocol, Insecure: true, SampleRatio: 1})
			if err != nil {
				t.Fatal(err)
			}
			out := &safeBuffer{}
			log, _ := telemetry.NewAccessLog(telemetry.AccessLogOptions{Writer: out})
			gw := fwdStart(t, Options{Telemetry: &telemetry.Set{Tracing: tr, Log: log}}, []ir.Route{fwdRoute("traced", "/", "echo")}, cluster)
			t.Cleanup(func() { log.Close(); tr.Shutdown(context.Background()) })
			tg := &telGateway{fwdGateway: gw, log: log, out: out}
			client := fwdClient(t)
			get := func(path string, h map[string]string) {
				req, _ := http.NewRequest(http.MethodGet, gw.base+path, nil)
				for k, v := range h {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			clientTrace, clientSpan := "4bf92f3577b34da6a3ce929d0e0e47"+hex.EncodeToString([]byte(exp.name[:1])), "00f067aa0ba902b7"
			p := "/" + exp.name
			get(p+"/continued", map[string]string{"Traceparent": "00-" + clientTrace + "-" + clientSpan + "-01", "Tracestate": "vendor=abc,other=1"})
			get(p+"/fresh", nil)
			get(p+"/invalid", map[string]string{"Traceparent": "00-zzzz-not-a-trace"})
			if err := tr.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}

			// Continued: same trace, the gateway's span between the client's and the backend.
			up := seen.get(p + "/continued")
			parts := strings.Split(up.Get("Traceparent"), "-")
			if len(parts) != 4 || parts[1] != clientTrace || parts[2] == clientSpan || parts[3] != "01" {
				t.Fatalf("upstream traceparent %q: want trace %s with the gateway's span as parent", up.Get("Traceparent"), clientTrace)
			}
			if got := up.Get("Tracestate"); got != "vendor=abc,other=1" {
				t.Errorf("tracestate forwarded as %q", got)
			}
			s := recv.span(t, clientTrace)
			if hex.EncodeToString(s.SpanId) != parts[2] || hex.EncodeToString(s.ParentSpanId) != clientSpan {
				t.Errorf("span %x parent %x: want span %s (the upstream's parent) with parent %s", s.SpanId, s.ParentSpanId, parts[2], clientSpan)
			}
			if s.Kind != tracepb.Span_SPAN_KIND_SERVER || spanAttr(s, "portico.route") != "httproute/default/traced/rule/0/match/0" ||
				spanAttr(s, "http.response.status_code") != "200" || spanAttr(s, "server.upstream") != backend.Listener.Addr().String() ||
				spanAttr(s, "portico.response_flags") != "-" {
				t.Errorf("span attributes: kind %v %v", s.Kind, s.Attributes)
			}
			if e := tg.accessLine(t, p+"/continued"); e["trace_id"] != clientTrace {
				t.Errorf("access log trace_id %v", e["trace_id"])
			}

			// Fresh and invalid: a new trace starts at the gateway.
			for _, path := range []string{p + "/fresh", p + "/invalid"} {
				parts := strings.Split(seen.get(path).Get("Traceparent"), "-")
				if len(parts) != 4 || len(parts[1]) != 32 || parts[1] == clientTrace || strings.Trim(parts[1], "0") == "" {
					t.Fatalf("%s: upstream traceparent %q: want a new trace", path, seen.get(path).Get("Traceparent"))
				}
				s := recv.span(t, parts[1])
				if len(s.ParentSpanId) != 0 || hex.EncodeToString(s.SpanId) != parts[2] {
					t.Errorf("%s: span %x parent %x, upstream parent %s", path, s.SpanId, s.ParentSpanId, parts[2])
				}
				if e := tg.accessLine(t, path); e["trace_id"] != parts[1] {
					t.Errorf("%s: access log trace_id %v, want %s", path, e["trace_id"], parts[1])
				}
			}
		})
	}
}
