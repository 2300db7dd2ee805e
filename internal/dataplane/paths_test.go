package dataplane

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// TestDotSegmentsCannotEscapeAPrefix: "/public/../admin" is routed (and forwarded) as
// "/admin", so a rule for /public never sends a request that the backend would resolve
// to /admin.
func TestDotSegmentsCannotEscapeAPrefix(t *testing.T) {
	public, admin := lfEcho(t, "public", nil), lfEcho(t, "admin", nil)
	port := freePort(t)
	lfStart(t, lfHTTPConfig(port, lfClusters(public, admin),
		lfHTTPListener("default/gw/http", "", "*", lfPrefix("public", "/public", "public"), lfPrefix("admin", "/admin", "admin"))))

	for _, target := range []string{"/public/../admin", "/public/%2e%2e/admin", "/public//..//admin"} {
		conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(port)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte("GET " + target + " HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		if got := resp.Header.Get("X-Backend"); got != "admin" {
			t.Errorf("%s: served by %q (status %d), want the /admin rule", target, got, resp.StatusCode)
		}
	}
	for _, s := range admin.requests() {
		if s.Path != "/admin" {
			t.Errorf("admin backend saw path %q, want /admin", s.Path)
		}
	}
	if n := len(public.requests()); n != 0 {
		t.Errorf("public backend saw %d requests, want 0", n)
	}
}
