package dataplane

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

// Helpers shared by this package's tests.

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) uint32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint32(ln.Addr().(*net.TCPAddr).Port)
}

// startServer applies cfg to a new Server and shuts it down, gracefully, when the test
// ends; a failed shutdown fails the test.
func startServer(t testing.TB, opts Options, cfg *ir.Config) *Server {
	t.Helper()
	s := New(opts)
	if err := s.Apply(cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	shutdownOnCleanup(t, s)
	return s
}

// shutdownOnCleanup shuts s down when the test ends, failing it if the drain does not
// finish within 10 s.
func shutdownOnCleanup(t testing.TB, s *Server) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

// holdingBackend is an echo backend (see lfEcho) that holds every request until the
// test ends or the client goes away: a mirror or upstream that never answers.
func holdingBackend(t *testing.T, name string) *lfBackend {
	t.Helper()
	release := make(chan struct{})
	b := lfEcho(t, name, func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return false
	})
	t.Cleanup(func() { close(release) }) // runs before the backend is closed
	return b
}
