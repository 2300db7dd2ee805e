package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

var parseHeadSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /p/a%20b?x=1&y=%41 HTTP/1.1\r\nHost: a.example:8080\r\nuser-agent: t\r\naccept: */*\r\n\r\n",
	"POST /x?y HTTP/1.0\r\nHost: a\r\nContent-Length: 0012\r\nConnection: keep-alive\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, Close\r\n\r\n",
	"GET / HTTP/1.1\r\nhOST:   a  \r\nX-Multi: 1\r\nx-multi: 2\r\nX-Empty:\r\nX_under-score: \t v \t\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nCache-Control: max-age=0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\r\n\r\n",
	"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n",
	"get /lower HTTP/1.1\r\nHost: a\r\nA-Very-Long-Header-Name-That-Goes-On-And-On-Beyond-Sixty-Four-Bytes-x: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nCONTENT-LENGTH: 5\r\n\r\n",
}

// compareWithReadRequest checks that parseHead reads a head leanHead admits exactly as
// http.ReadRequest does.
func compareWithReadRequest(t *testing.T, head []byte) {
	t.Helper()
	want, wantErr := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	var got http.Request
	gotErr := parseHead(&got, head)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("%q: parseHead error %v, ReadRequest error %v", head, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if want.Body != http.NoBody {
		io.Copy(io.Discard, want.Body) // compared by length below
	}
	type view struct {
		Method, URL, RequestURI, Proto, Host string
		Major, Minor                         int
		URLFields                            [6]string
		Header                               http.Header
		Close                                bool
		Length                               int64
	}
	describe := func(r *http.Request) view {
		return view{
			Method: r.Method, URL: r.URL.String(), RequestURI: r.RequestURI, Proto: r.Proto, Host: r.Host,
			Major: r.ProtoMajor, Minor: r.ProtoMinor,
			URLFields: [6]string{r.URL.Scheme, r.URL.Host, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.URL.Fragment},
			Header:    r.Header, Close: r.Close, Length: r.ContentLength,
		}
	}
	if g, w := describe(&got), describe(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%q:\nparseHead   %+v\nReadRequest %+v", head, g, w)
	}
}

func TestParseHeadMatchesReadRequest(t *testing.T) {
	for _, s := range parseHeadSeeds {
		if !leanHead([]byte(s)) {
			t.Fatalf("seed not lean: %q", s)
		}
		compareWithReadRequest(t, []byte(s))
	}
}

// FuzzParseHead: for every head the lean loop admits, parseHead and http.ReadRequest
// agree (and parseHead never panics).
func FuzzParseHead(f *testing.F) {
	for _, s := range parseHeadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := headEnd(b)
		if end == 0 || !leanHead(b[:end]) {
			return
		}
		compareWithReadRequest(t, b[:end])
	})
}

func TestBodyReader(t *testing.T) {
	r := &bodyReader{br: bufio.NewReader(strings.NewReader("hello world")), left: 5}
	b, err := io.ReadAll(r)
	if string(b) != "hello" || err != nil {
		t.Fatalf("read %q, %v", b, err)
	}
	r = &bodyReader{br: bufio.NewReader(strings.NewReader("abc")), left: 5}
	b, err = io.ReadAll(r)
	if string(b) != "abc" || err != io.ErrUnexpectedEOF {
		t.Fatalf("cut short: read %q, %v; want io.ErrUnexpectedEOF", b, err)
	}
}
