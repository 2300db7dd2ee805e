package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"testing"
)

var leanResponseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200\r\ncontent-length: 0\r\n\r\n",
	"HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nnopNEXT",
	"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\nConnection: close\r\nX-A: 1\r\nx-a: 2\r\nX-Empty:\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: caf\xe9\r\nContent-Length: 0012\r\n\r\n0123456789ab",
	"HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\nContent-Length: 0\r\n\r\n",
}

// compareWithReadResponse checks that when readLeanResponse takes a response it reads it
// exactly as http.ReadResponse does, body included.
func compareWithReadResponse(t *testing.T, raw []byte, method string) {
	t.Helper()
	req := &http.Request{Method: method}
	br := bufio.NewReader(bytes.NewReader(raw))
	br.Peek(len(raw)) // what fits is buffered, as after the pool's first read
	buffered := br.Buffered()
	got, length, ok := readLeanResponse(br, req)
	if !ok {
		if n := br.Buffered(); n != buffered {
			t.Fatalf("%q: declined after consuming %d bytes", raw, buffered-n)
		}
		return
	}
	var gotBody []byte
	var gotErr error
	if length > 0 {
		b := &h1Body{c: &h1Conn{br: br}, left: length}
		gotBody, gotErr = io.ReadAll(readerFunc(b.readLength))
	}
	want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), req)
	if err != nil {
		t.Fatalf("%q: lean read took a response net/http refuses: %v", raw, err)
	}
	wantBody, wantErr := io.ReadAll(want.Body)
	type view struct {
		Status, Proto      string
		Code, Major, Minor int
		Header             http.Header
		Length             int64
		Close, NoBody      bool
		Body               string
		BodyErr            bool
	}
	g := view{got.Status, got.Proto, got.StatusCode, got.ProtoMajor, got.ProtoMinor, got.Header, got.ContentLength, got.Close, got.Body == http.NoBody, string(gotBody), gotErr != nil}
	w := view{want.Status, want.Proto, want.StatusCode, want.ProtoMajor, want.ProtoMinor, want.Header, want.ContentLength, want.Close, want.Body == http.NoBody, string(wantBody), wantErr != nil}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%q:\nlean     %+v\nnet/http %+v", raw, g, w)
	}
}

func TestLeanResponseMatchesReadResponse(t *testing.T) {
	taken := 0
	for _, s := range leanResponseSeeds {
		compareWithReadResponse(t, []byte(s), http.MethodGet)
		compareWithReadResponse(t, []byte(s), http.MethodHead)
		req := &http.Request{Method: http.MethodGet}
		br := bufio.NewReader(bytes.NewReader([]byte(s)))
		br.Peek(len(s))
		if _, _, ok := readLeanResponse(br, req); ok {
			taken++
		}
	}
	if taken != 7 {
		t.Fatalf("the lean reader took %d of the seeds, want 7 (all but two lengths, chunked, 204 and folding)", taken)
	}
}

// FuzzLeanResponse: whatever the lean reader takes, net/http reads the same way.
func FuzzLeanResponse(f *testing.F) {
	for _, s := range leanResponseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		compareWithReadResponse(t, raw, http.MethodGet)
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
