package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"testing"
)

func TestLeanHead(t *testing.T) {
	cases := []struct {
		head string
		lean bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"POST /x?y HTTP/1.0\r\nHost: a\r\nContent-Length: 12\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\r\n\r\n", true},
		{"GET / HTTP/1.1\r\n\r\n", false},                       // no Host
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false}, // two
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-length: 1\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nupgrade: websocket\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", false},
		{"GET / HTTP/1.1\nHost: a\n\n", false},                     // bare LF
		{"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", false}, // folded
		{"GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n", false},
		{"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", false},
		{"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"PRI * HTTP/2.0\r\n\r\n", false},
	}
	for _, c := range cases {
		if got := leanHead([]byte(c.head)); got != c.lean {
			t.Errorf("leanHead(%q) = %v, want %v", c.head, got, c.lean)
		}
	}
}

// Whatever leanHead admits parses as one unambiguous request: a body framed
// only by Content-Length, nothing left over.
func FuzzLeanHead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		end := headEnd(b)
		if end == 0 || !leanHead(b[:end]) {
			return
		}
		head := b[:end]
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			return // net/http's parser refuses it: the loop answers 400 like net/http
		}
		if len(req.TransferEncoding) > 0 || req.ContentLength < 0 || req.RequestURI[0] != '/' {
			t.Fatalf("admitted %q: te=%v length=%d", head, req.TransferEncoding, req.ContentLength)
		}
	})
}
