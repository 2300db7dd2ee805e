package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/portico-gw/portico/internal/telemetry"
)

// errBackendTimeout marks an attempt that ran past the route's backendRequest timeout.
var errBackendTimeout = errors.New("backend request timeout")

// errNoTransport marks a cluster that does not speak HTTP.
var errNoTransport = errors.New("the backend cluster does not speak HTTP")

// dispatcher is the reverse proxy's RoundTripper: it sends the request to an endpoint
// of the chosen cluster, retrying on other endpoints as the route's retry policy says,
// and bounds each attempt by the backend timeout.
type dispatcher struct{}

func (dispatcher) RoundTrip(req *http.Request) (*http.Response, error) {
	return dispatch(req, req.Context().Value(stateKey{}).(*reqState))
}

// dispatch sends req for the request whose state is st; see dispatcher.
func dispatch(req *http.Request, st *reqState) (*http.Response, error) {
	a, c := st.action, st.backend.cluster
	if c.Transport == nil {
		// A stream (TCP/UDP) cluster behind an HTTP route: the translator never emits
		// one, but a nil transport must not crash the request.
		return nil, errNoTransport
	}
	attempts := 1
	canRetry := a.retry != nil && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
	if canRetry {
		attempts += a.retry.attempts
	}
	o := st.obs
	if o != nil {
		o.upstreamStart = time.Now()
	}
	var lastErr error
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			// The request's own deadline or cancellation ends the wait. Return its error, not
			// lastErr: after a retriable status lastErr is nil, and (nil, nil) would crash
			// the reverse proxy instead of answering 504.
			if err := sleepCtx(req.Context(), backoff(a.retry.backoff, attempt)); err != nil {
				return nil, err
			}
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, fmt.Errorf("replaying request body: %w", err)
				}
				req.Body = body
			}
		}
		ep, err := c.Pick()
		if err != nil {
			return nil, err
		}
		out := req
		if attempt > 0 {
			out = req.Clone(req.Context())
		}
		out.URL.Host = ep
		var sent *requestBody
		if out.Body != nil && out.Body != http.NoBody {
			sent = &requestBody{ReadCloser: out.Body}
			out.Body = sent
		}
		timeout := a.backendTimeout
		if isUpgrade(out) {
			timeout = handshakeTimeout(a)
		}
		var rt http.RoundTripper = c.Transport
		if c.Fast != nil && !isUpgrade(out) {
			rt = c.Fast
		}
		var sentAt time.Time
		if o != nil {
			o.entry.Attempts, o.entry.UpstreamHost = attempt+1, ep
			sentAt = time.Now()
		}
		resp, err := roundTripOnce(rt, out, timeout, o)
		last := attempt == attempts-1
		if o != nil && err == nil {
			o.entry.UpstreamTTFB = time.Since(sentAt)
			if last && attempt > 0 && canRetry && a.retry.retriable(resp.StatusCode) {
				o.note(telemetry.FlagUpstreamRetryLimit, "via_upstream")
			}
		}
		if err != nil && sent != nil {
			if bad := sent.err.Load(); bad != nil {
				// The client's body was malformed or cut short: its fault, not the
				// upstream's, and not worth a retry.
				return nil, &clientBodyError{err: *bad}
			}
		}
		if err != nil {
			lastErr = err
			if last || !canRetry || req.Context().Err() != nil {
				if attempt > 0 {
					o.note(telemetry.FlagUpstreamRetryLimit, "")
				}
				return nil, err
			}
			continue
		}
		if !last && canRetry && a.retry.retriable(resp.StatusCode) {
			// Drain a little so the connection can be reused, then try again.
			_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
			resp.Body.Close()
			lastErr = nil
			continue
		}
		if sent != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			resp.Body = &responseBody{ReadCloser: resp.Body, sent: sent}
		}
		return resp, nil
	}
	return nil, lastErr
}

// roundTripOnce sends one attempt. The backend timeout covers the whole response,
// body included, so the timer is stopped when the body is closed.
func roundTripOnce(t http.RoundTripper, req *http.Request, timeout time.Duration, o *observation) (*http.Response, error) {
	if timeout <= 0 {
		return t.RoundTrip(req)
	}
	if isUpgrade(req) {
		return roundTripUpgrade(t, req, timeout)
	}
	ctx, cancel := context.WithTimeoutCause(req.Context(), timeout, errBackendTimeout)
	resp, err := t.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		if context.Cause(ctx) == errBackendTimeout {
			return nil, errBackendTimeout
		}
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel, ctx: ctx, obs: o}
	return resp, nil
}

// handshakeTimeout bounds an upgrade's handshake: the backend timeout, else the request
// timeout. Neither applies to the tunnel that follows (a WebSocket lives as long as both
// ends keep it open).
func handshakeTimeout(a *Action) time.Duration {
	if a.backendTimeout > 0 {
		return a.backendTimeout
	}
	return a.requestTimeout
}

// roundTripUpgrade bounds only the wait for the backend's answer to an upgrade request.
func roundTripUpgrade(t http.RoundTripper, req *http.Request, timeout time.Duration) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(timeout, func() { cancel(errBackendTimeout) })
	resp, err := t.RoundTrip(req.WithContext(ctx))
	if !timer.Stop() {
		if err == nil {
			resp.Body.Close()
		}
		cancel(nil)
		return nil, errBackendTimeout
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	// The context lives as long as the connection: released when it is closed.
	release := func() { cancel(nil) }
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
		resp.Body = &upgradedBody{ReadWriteCloser: rwc, release: release}
	} else {
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: release, ctx: ctx}
	}
	return resp, nil
}

// upgradedBody is a switched connection (101) that releases its context when closed.
type upgradedBody struct {
	io.ReadWriteCloser
	release func()
}

func (b *upgradedBody) Close() error {
	err := b.ReadWriteCloser.Close()
	b.release()
	return err
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	ctx    context.Context
	obs    *observation // nil with telemetry off
}

func (b *cancelBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && context.Cause(b.ctx) == errBackendTimeout {
		err = errBackendTimeout
		b.obs.note(telemetry.FlagUpstreamTimeout, "upstream_timeout")
	}
	return n, err
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// requestBody notes when the request body has been read to its end, and whether
// reading it failed (bad chunked framing, a client that went away mid-body).
type requestBody struct {
	io.ReadCloser
	done atomic.Bool
	err  atomic.Pointer[error]
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		if err != io.EOF {
			b.err.CompareAndSwap(nil, &err)
		}
		b.done.Store(true)
	}
	return n, err
}

// clientBodyError is a failed forward caused by the client's request body: the
// handler answers 400.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// responseBody does not wait, on Close, for a request body that is still being sent.
// The HTTP/2 transport's Close waits for the request stream to end, and a client that
// keeps its side open (a bidirectional gRPC stream the backend has just finished, with
// trailers) would hold the handler forever: the reverse proxy closes the response body
// before it returns. The request side ends when the handler returns and the server
// resets the client's stream, or when the request's context ends.
type responseBody struct {
	io.ReadCloser
	sent *requestBody
}

func (b *responseBody) Close() error {
	if b.sent.done.Load() {
		return b.ReadCloser.Close()
	}
	go b.ReadCloser.Close()
	return nil
}

func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != ""
}

// backoff doubles the base delay per retry, capped at ten times the base.
func backoff(base time.Duration, attempt int) time.Duration {
	if base <= 0 {
		return 0
	}
	d := base << (attempt - 1)
	if limit := 10 * base; d > limit || d <= 0 {
		d = limit
	}
	return d
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
