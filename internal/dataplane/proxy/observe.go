package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/portico-gw/portico/internal/dataplane/upstream"
	"github.com/portico-gw/portico/internal/telemetry"
)

// observed serves a request with telemetry on: it fills the request's access log entry
// as the request goes (see serve), and when the handler is done (or panics, as the
// forwarder does when a response cannot be completed) it counts the request, ends
// its span and logs it.
func (h *Handler) observed(w http.ResponseWriter, r *http.Request) {
	e := telemetry.NewEntry()
	e.Start = time.Now()
	e.Method = r.Method
	e.Path = r.RequestURI
	e.Protocol = r.Proto
	e.Authority = r.Host
	e.UserAgent = r.Header.Get("User-Agent")
	e.ForwardedFor = r.Header.Get("X-Forwarded-For")
	e.ClientAddress = r.RemoteAddr
	e.Gateway = h.gateway
	if r.TLS != nil {
		e.TLSServerName = r.TLS.ServerName
		e.TLSVersion = tls.VersionName(r.TLS.Version)
	}
	obs := &observation{entry: e}
	rec := &recorder{ResponseWriter: w}
	var span trace.Span
	if t := h.tel.Tracing; t != nil {
		var ctx context.Context
		ctx, span = t.Start(r)
		if sc := span.SpanContext(); sc.HasTraceID() {
			e.TraceID = sc.TraceID().String()
		}
		r = r.WithContext(ctx)
	} else {
		e.TraceID = telemetry.TraceID(r.Header.Get("Traceparent"))
	}
	var body *countingBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &countingBody{ReadCloser: r.Body}
		r.Body = body
	}
	defer func() {
		p := recover()
		h.finish(r, obs, rec, body, span, p)
		if p != nil {
			panic(p)
		}
	}()
	h.serve(rec, r, obs)
}

// observation is what serve, the forwarder and the reverse proxy's hooks learn about a
// request.
type observation struct {
	entry         *telemetry.Entry
	metrics       *telemetry.RouteMetrics
	active        bool      // counted in the listener's active requests
	upstreamStart time.Time // the first attempt began
	timing        upstream.Timing
	timed         bool // timing is filled by the upstream pool
	upgraded      bool
}

// note records who produced the answer and what went wrong; o may be nil (telemetry
// off). The first details given win: they come from where the answer was decided.
func (o *observation) note(f telemetry.Flags, details string) {
	if o == nil {
		return
	}
	o.entry.Flags |= f
	if o.entry.Details == "" {
		o.entry.Details = details
	}
}

func (h *Handler) finish(r *http.Request, o *observation, rec *recorder, body *countingBody, span trace.Span, panicked any) {
	e := o.entry
	now := time.Now()
	e.Duration = now.Sub(e.Start)
	e.Status = rec.status
	if e.Status == 0 && o.upgraded {
		e.Status = http.StatusSwitchingProtocols
	}
	e.BytesSent = rec.bytes
	if body != nil {
		e.BytesReceived = body.n.Load()
	}
	if !o.upstreamStart.IsZero() {
		e.UpstreamTime = now.Sub(o.upstreamStart)
		// Only Portico's HTTP/1.1 pool reports its dials; other transports leave the
		// connect time unknown (-1).
		if o.timed && e.UpstreamTTFB >= 0 {
			e.UpstreamConnect = o.timing.Connect
		}
	}
	switch {
	case rec.writeErr != nil:
		o.note(telemetry.FlagDownstreamTerminated, "downstream_write_failed")
	case e.Flags&(telemetry.FlagDownstreamTerminated|telemetry.FlagUpstreamTimeout) != 0:
		// already known: the client left, or a timeout ended the response
	case panicked != nil:
		o.note(telemetry.FlagUpstreamTerminated, "upstream_response_cut")
	case e.Status == 0 && errors.Is(r.Context().Err(), context.Canceled):
		o.note(telemetry.FlagDownstreamTerminated, "downstream_disconnected")
	}
	if e.Details == "" {
		if e.Attempts > 0 {
			e.Details = "via_upstream"
		} else {
			e.Details = "local"
		}
	}
	if o.metrics != nil {
		o.metrics.Observe(e)
	}
	if o.active && o.metrics != nil {
		o.metrics.Listener().Active.Dec()
	}
	if span != nil {
		h.tel.Tracing.End(span, e)
	}
	if h.tel.Log != nil {
		h.tel.Log.Log(e)
	} else {
		telemetry.Release(e)
	}
}

// recorder notes the status and the body bytes of a response.
type recorder struct {
	http.ResponseWriter
	status   int
	bytes    int64
	writeErr error
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	if err != nil && w.writeErr == nil {
		w.writeErr = err
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the server's writer (flush, hijack).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingBody counts the request body bytes read.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64 // an upstream transport may still be reading when the handler ends
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
