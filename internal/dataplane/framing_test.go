package dataplane

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
)

// framingScript is a connection that delivers data step bytes at a time.
type framingScript struct {
	net.Conn
	data []byte
	step int
}

func (c *framingScript) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.step, len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

type framingReq struct {
	raw, method, path, body string
}

// framingRequests builds well-formed pipelined requests of every framing.
func framingRequests(rng *rand.Rand) []framingReq {
	var out []framingReq
	for i := range 40 {
		path := fmt.Sprintf("/r%d", i)
		body := strings.Repeat(string(rune('a'+i%26)), rng.IntN(3000))
		switch i % 5 {
		case 0:
			out = append(out, framingReq{"GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n", "GET", path, ""})
		case 1:
			out = append(out, framingReq{fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body), "POST", path, body})
		case 2, 3:
			var b strings.Builder
			fmt.Fprintf(&b, "PUT %s HTTP/1.1\r\nHost: x\r\ntransfer-encoding: Chunked\r\n\r\n", path)
			for rest := body; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(700))
				if i%5 == 3 {
					fmt.Fprintf(&b, "%X;ext=1\r\n%s\r\n", n, rest[:n])
				} else {
					fmt.Fprintf(&b, "%x\r\n%s\r\n", n, rest[:n])
				}
				rest = rest[n:]
			}
			if i%5 == 3 {
				b.WriteString("0\r\nX-Trailer: t\r\n\r\n")
			} else {
				b.WriteString("0\r\n\r\n")
			}
			out = append(out, framingReq{b.String(), "PUT", path, body})
		case 4:
			out = append(out, framingReq{"DELETE " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "DELETE", path, ""})
		}
	}
	return out
}

func TestFramingGuardPassesWellFormedRequests(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	reqs := framingRequests(rng)
	var raw strings.Builder
	for _, r := range reqs {
		raw.WriteString(r.raw)
	}
	for _, step := range []int{1, 2, 3, 5, 17, 512, 4096, 1 << 20} {
		conn := &framingConn{Conn: &framingScript{data: []byte(raw.String()), step: step}, maxHead: 64 << 10}
		br := bufio.NewReaderSize(conn, 4096)
		for i, want := range reqs {
			req, err := http.ReadRequest(br)
			if err != nil {
				t.Fatalf("step %d request %d: %v", step, i, err)
			}
			body, err := io.ReadAll(req.Body)
			if err != nil || req.Method != want.method || req.URL.Path != want.path || string(body) != want.body {
				t.Fatalf("step %d request %d: %s %s %d bytes %v, want %s %s %d bytes", step, i, req.Method, req.URL.Path, len(body), err, want.method, want.path, len(want.body))
			}
		}
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("step %d: trailing data: %v", step, err)
		}
	}
}

func TestFramingGuardRejectsLengthAndChunked(t *testing.T) {
	for _, head := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
	} {
		// After a good request, so the guard must have followed the first body.
		raw := "POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody" + head
		for _, step := range []int{1, 7, 4096} {
			conn := &framingConn{Conn: &framingScript{data: []byte(raw), step: step}, maxHead: 64 << 10}
			br := bufio.NewReader(conn)
			req, err := http.ReadRequest(br)
			if err != nil || req.URL.Path != "/ok" {
				t.Fatalf("first request: %v", err)
			}
			_, _ = io.ReadAll(req.Body)
			if _, err := http.ReadRequest(br); err == nil || !strings.Contains(err.Error(), "multiple Content-Length") {
				t.Fatalf("step %d %q: %v, want the rejected head", step, head, err)
			}
		}
	}
}

func TestFramingGuardStopsAtWhatItDoesNotFollow(t *testing.T) {
	for _, raw := range []string{
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		conn := &framingConn{Conn: &framingScript{data: []byte(raw), step: 3}, maxHead: 64 << 10}
		got, err := io.ReadAll(conn)
		if err != nil || string(got) != raw {
			t.Fatalf("%q came out as %q (%v), want it untouched", raw, got, err)
		}
	}
}
