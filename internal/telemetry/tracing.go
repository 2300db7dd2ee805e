package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// TracingOptions configure OpenTelemetry tracing.
type TracingOptions struct {
	// Endpoint is the OTLP receiver, "host:port" (gRPC) or a URL (HTTP). Empty: no
	// tracing; incoming trace context is then passed upstream untouched.
	Endpoint string
	// Protocol is "grpc" (default) or "http".
	Protocol string
	// Insecure sends OTLP without TLS.
	Insecure bool
	// SampleRatio is the share of new traces recorded (0..1). Requests that arrive with
	// a sampled trace context are recorded whatever the ratio (parent-based sampling).
	SampleRatio float64
	// ServiceName names Portico in the traces (default "portico").
	ServiceName string
	// Exporter replaces the OTLP exporter (tests).
	Exporter sdktrace.SpanExporter
}

// Tracing starts a server span per request, continuing the client's W3C trace context,
// and puts the span's context on the upstream request, so the backend's spans are its
// children.
type Tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TraceContext
}

// NewTracing sets up the exporter and the tracer provider; nil when Endpoint and
// Exporter are both unset.
func NewTracing(ctx context.Context, opts TracingOptions) (*Tracing, error) {
	exp := opts.Exporter
	if exp == nil {
		if opts.Endpoint == "" {
			return nil, nil
		}
		var err error
		switch opts.Protocol {
		case "", "grpc":
			o := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(opts.Endpoint)}
			if opts.Insecure {
				o = append(o, otlptracegrpc.WithInsecure())
			}
			exp, err = otlptracegrpc.New(ctx, o...)
		case "http":
			o := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(opts.Endpoint)}
			if opts.Insecure {
				o = append(o, otlptracehttp.WithInsecure())
			}
			exp, err = otlptracehttp.New(ctx, o...)
		default:
			return nil, fmt.Errorf("OTLP protocol %q: want grpc or http", opts.Protocol)
		}
		if err != nil {
			return nil, fmt.Errorf("OTLP exporter: %w", err)
		}
	}
	if opts.SampleRatio < 0 || opts.SampleRatio > 1 {
		return nil, fmt.Errorf("trace sample ratio %v: want 0..1", opts.SampleRatio)
	}
	name := opts.ServiceName
	if name == "" {
		name = "portico"
	}
	res := resource.NewSchemaless(semconv.ServiceName(name))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.SampleRatio))),
		sdktrace.WithResource(res),
	)
	return &Tracing{provider: tp, tracer: tp.Tracer("github.com/portico-gw/portico")}, nil
}

// Start continues the request's trace context (or starts a trace) with a server span.
func (t *Tracing) Start(r *http.Request) (context.Context, trace.Span) {
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	return t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("url.path", r.URL.Path),
			attribute.String("server.address", r.Host),
		))
}

// Inject writes the span context of ctx as traceparent (and tracestate) into h.
func (t *Tracing) Inject(ctx context.Context, h http.Header) {
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// End finishes a request's span with what the entry says about it.
func (t *Tracing) End(span trace.Span, e *Entry) {
	if span.IsRecording() {
		span.SetName(e.Method + " " + RouteName(e.Route))
		span.SetAttributes(
			attribute.Int("http.response.status_code", e.Status),
			attribute.String("portico.route", e.Route),
			attribute.String("portico.cluster", e.Cluster),
			attribute.String("portico.listener", e.Gateway+"/"+e.Listener),
			attribute.String("portico.response_flags", e.Flags.String()),
			attribute.String("server.upstream", e.UpstreamHost),
			attribute.String("portico.request_id", e.RequestID),
		)
		if e.Status >= 500 {
			span.SetStatus(codes.Error, e.Details)
		}
	}
	span.End()
}

// Shutdown exports what is buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.provider.Shutdown(ctx) }

// TraceID returns the trace id of a W3C traceparent header value, or "" when it is not
// valid (used for the access log when tracing is off).
func TraceID(traceparent string) string {
	// version "-" trace-id(32 hex) "-" parent-id(16 hex) "-" flags(2 hex)
	if len(traceparent) < 55 || traceparent[2] != '-' || traceparent[35] != '-' || traceparent[52] != '-' {
		return ""
	}
	id := traceparent[3:35]
	zero := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
		if c != '0' {
			zero = false
		}
	}
	if zero || traceparent[:2] == "ff" {
		return ""
	}
	return id
}

// ForceFlush exports the finished spans now.
func (t *Tracing) ForceFlush(ctx context.Context) error { return t.provider.ForceFlush(ctx) }
