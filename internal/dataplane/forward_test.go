package dataplane

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/portico-gw/portico/internal/ir"
)

// Trailers a client declares and sends after a chunked request body reach the backend
// with their values.
func TestForwardRequestTrailers(t *testing.T) {
	got := make(chan http.Header, 1)
	backend := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) != "hello" {
			t.Errorf("body %q", body)
		}
		got <- r.Trailer
	}), nil)
	g := fwdStart(t, Options{}, []ir.Route{fwdRoute("echo", "/", "echo")},
		fwdCluster("echo", ir.UpstreamHTTP1, fwdEndpoint(t, backend.Listener.Addr().String())))
	req, _ := http.NewRequest(http.MethodPost, g.base+"/up", io.NopCloser(strings.NewReader("hello")))
	req.ContentLength = -1 // chunked, so that trailers can follow
	req.Trailer = http.Header{"X-Checksum": nil}
	req.Body = &trailerSetter{r: strings.NewReader("hello"), set: func() { req.Trailer.Set("X-Checksum", "abc") }}
	status, _, _ := fwdDo(t, fwdClient(t), req)
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if tr := <-got; tr.Get("X-Checksum") != "abc" {
		t.Fatalf("backend's trailers %v, want X-Checksum: abc", tr)
	}
}

// trailerSetter sets the request's trailer values when its body has been read.
type trailerSetter struct {
	r   io.Reader
	set func()
}

func (b *trailerSetter) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.set()
	}
	return n, err
}

func (b *trailerSetter) Close() error { return nil }
