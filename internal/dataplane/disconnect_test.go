package dataplane

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

// A client that goes away while its request waits for the backend cancels the upstream
// request, on both HTTP/1.1 servers and with or without a request body.
func TestClientDisconnectCancelsUpstream(t *testing.T) {
	cancelled := make(chan string, 4)
	arrived := make(chan string, 4)
	backend := fwdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		arrived <- r.URL.Path
		select {
		case <-r.Context().Done():
			cancelled <- r.URL.Path
		case <-time.After(20 * time.Second):
		}
	}), nil)
	cluster := fwdCluster("hold", ir.UpstreamHTTP1, fwdEndpoint(t, backend.Listener.Addr().String()))
	routes := []ir.Route{fwdRoute("hold", "/", "hold")}
	for _, mode := range []struct {
		name string
		opts Options
	}{{"lean", Options{}}, {"net/http", Options{NetHTTP1: true}}} {
		gw := fwdStart(t, mode.opts, routes, cluster)
		for _, req := range []struct{ path, raw string }{
			{"/get", "GET /get HTTP/1.1\r\nHost: h\r\n\r\n"},
			{"/post", "POST /post HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"},
		} {
			t.Run(mode.name+req.path, func(t *testing.T) {
				c, err := net.Dial("tcp", gw.addr)
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(c, req.raw)
				select {
				case p := <-arrived:
					if p != req.path {
						t.Fatalf("backend got %s", p)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("request never reached the backend")
				}
				c.Close()
				select {
				case p := <-cancelled:
					if p != req.path {
						t.Fatalf("cancelled %s", p)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the upstream request was not cancelled after the client left")
				}
			})
		}
	}
}
