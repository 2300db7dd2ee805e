package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"
)

// errBackendTimeout marks an attempt that ran past the route's backendRequest timeout.
var errBackendTimeout = errors.New("backend request timeout")

// dispatcher is the reverse proxy's RoundTripper: it sends the request to an endpoint
// of the chosen cluster, retrying on other endpoints as the route's retry policy says,
// and bounds each attempt by the backend timeout.
type dispatcher struct{}

func (dispatcher) RoundTrip(req *http.Request) (*http.Response, error) {
	st := req.Context().Value(stateKey{}).(*reqState)
	a, c := st.action, st.backend.cluster
	attempts := 1
	canRetry := a.retry != nil && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
	if canRetry {
		attempts += a.retry.attempts
	}
	var lastErr error
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			if err := sleepCtx(req.Context(), backoff(a.retry.backoff, attempt)); err != nil {
				return nil, lastErr
			}
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, lastErr
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
		resp, err := roundTripOnce(c.Transport, out, a.backendTimeout)
		last := attempt == attempts-1
		if err != nil {
			lastErr = err
			if last || !canRetry || req.Context().Err() != nil {
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
		return resp, nil
	}
	return nil, lastErr
}

// roundTripOnce sends one attempt. The backend timeout covers the whole response,
// body included, so the timer is stopped when the body is closed.
func roundTripOnce(t http.RoundTripper, req *http.Request, timeout time.Duration) (*http.Response, error) {
	if timeout <= 0 || isUpgrade(req) {
		return t.RoundTrip(req)
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
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel, ctx: ctx}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	ctx    context.Context
}

func (b *cancelBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && context.Cause(b.ctx) == errBackendTimeout {
		err = errBackendTimeout
	}
	return n, err
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
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
