package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"
)

// maxMirrorBody is the largest request body copied to mirrors; larger bodies are not
// mirrored (buffering them would hold up the real request).
const maxMirrorBody = 64 << 10

// mirror sends copies of r to the action's mirrors, fire and forget, and returns the
// request to forward (with its body re-readable if it was buffered for the mirrors).
// Mirrors never affect the client's response: their answers are discarded, and when
// too many are in flight new ones are dropped.
func (h *Handler) mirror(r *http.Request, a *Action) *http.Request {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength < 0 || r.ContentLength > maxMirrorBody {
			return r
		}
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, maxMirrorBody+1))
		if err != nil || len(body) > maxMirrorBody {
			return r
		}
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	for i := range a.mirrors {
		m := &a.mirrors[i]
		if !m.mirrorThis() || m.cluster.Transport == nil {
			continue
		}
		select {
		case h.mirrorsN <- struct{}{}:
		default:
			continue // saturated: drop rather than queue
		}
		out := mirrorRequest(r, body)
		go func() {
			defer func() { <-h.mirrorsN }()
			h.sendMirror(m, out)
		}()
	}
	return r
}

func mirrorRequest(r *http.Request, body []byte) *http.Request {
	out := r.Clone(context.Background())
	out.RequestURI = ""
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
	} else {
		out.Body = http.NoBody
	}
	removeHopHeaders(out.Header)
	return out
}

func (h *Handler) sendMirror(m *mirror, out *http.Request) {
	ep, err := m.cluster.Pick()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(h.mirrorCtx, 10*time.Second)
	defer cancel()
	out = out.WithContext(ctx)
	out.URL.Scheme = m.cluster.Scheme
	out.URL.Host = ep
	resp, err := m.cluster.Transport.RoundTrip(out)
	if err != nil {
		h.log.Debug("mirror failed", "cluster", m.cluster.Name, "error", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

// removeHopHeaders deletes the hop-by-hop headers from h, and those its Connection
// header lists.
func removeHopHeaders(h http.Header) {
	removeConnectionListed(h, h["Connection"])
	for k := range h {
		if isHopHeader(k) {
			delete(h, k)
		}
	}
}
