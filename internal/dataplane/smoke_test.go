package dataplane

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/portico-gw/portico/internal/ir"
)

func backend(t *testing.T, name string) ir.Endpoint {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Seen-Xff", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Request-Id", r.Header.Get("X-Request-Id"))
		io.WriteString(w, name+" "+r.Host+" "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().(*net.TCPAddr)
	return ir.Endpoint{Address: "127.0.0.1", Port: uint32(addr.Port)}
}

func TestSmokeHTTP(t *testing.T) {
	port := freePort(t)
	cfg := &ir.Config{
		Gateways: []ir.Gateway{{Name: "default/gw", Addresses: []string{"127.0.0.1"}, Ports: []ir.Port{{
			Number: port, Protocol: ir.ProtocolHTTP,
			Listeners: []ir.Listener{{Name: "default/gw/http", Protocol: ir.ProtocolHTTP, VirtualHosts: []ir.VirtualHost{{
				Hostname: "*",
				Routes: []ir.Route{
					{Name: "api", Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/api"}}, Backends: []ir.Backend{{Cluster: "b", Weight: 1}}},
					{Name: "root", Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}}, Backends: []ir.Backend{{Cluster: "a", Weight: 1}}},
				},
			}}}},
		}}}},
		Clusters: []ir.Cluster{
			{Name: "a", Protocol: ir.UpstreamHTTP1, Endpoints: []ir.Endpoint{backend(t, "a")}},
			{Name: "b", Protocol: ir.UpstreamHTTP1, Endpoints: []ir.Endpoint{backend(t, "b")}},
		},
	}
	startServer(t, Options{}, cfg)
	base := "http://127.0.0.1:" + strconv.Itoa(int(port))
	for path, want := range map[string]string{"/api/x": "b", "/apix": "a", "/": "a"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != want {
			t.Fatalf("%s: status %d backend %q body %q, want backend %s", path, resp.StatusCode, resp.Header.Get("X-Backend"), body, want)
		}
		if !strings.Contains(resp.Header.Get("X-Seen-Xff"), "127.0.0.1") || len(resp.Header.Get("X-Seen-Request-Id")) != 32 {
			t.Fatalf("%s: backend saw XFF %q request id %q", path, resp.Header.Get("X-Seen-Xff"), resp.Header.Get("X-Seen-Request-Id"))
		}
	}
}
