package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// writtenAs describes what a server reads from the request build makes, written by w.
func writtenAs(t *testing.T, w func(*bufio.Writer, *http.Request) error, build func() *http.Request) (string, error) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	if err := w(bw, build()); err != nil {
		return "", err
	}
	bw.Flush()
	req, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(req.Method + " " + req.RequestURI + " " + req.Proto + " host=" + req.Host)
	b.WriteString(" length=" + strconv.FormatInt(req.ContentLength, 10) + " close=" + strconv.FormatBool(req.Close))
	b.WriteString(" te=" + strings.Join(req.TransferEncoding, ","))
	b.WriteString(" body=" + string(body) + "\n")
	keys := make([]string, 0, len(req.Header))
	for k := range req.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(k + ": " + strings.Join(req.Header[k], " | ") + "\n")
	}
	return b.String(), nil
}

type reqShape struct {
	method, host, path, query, body string
	header                          map[string][]string
	close                           bool
	length                          int64 // -2: len(body)
}

func (s reqShape) build() *http.Request {
	u := &url.URL{Scheme: "http", Host: "10.0.0.1:8080", Path: s.path, RawQuery: s.query}
	r := &http.Request{Method: s.method, URL: u, Host: s.host, Header: http.Header{}, Close: s.close}
	for k, v := range s.header {
		r.Header[k] = append([]string(nil), v...)
	}
	if s.body != "" {
		r.Body = io.NopCloser(strings.NewReader(s.body))
		r.ContentLength = int64(len(s.body))
	}
	if s.length != -2 && s.length != 0 {
		r.ContentLength = s.length
	}
	return r
}

func TestWriteRequestMatchesNetHTTP(t *testing.T) {
	cases := []reqShape{
		{method: "GET", host: "example.com", path: "/a b", query: "x=1&y=%20", header: map[string][]string{"Accept": {"*/*"}, "X-Multi": {"1", "2"}}},
		{method: "POST", host: "example.com", path: "/upload", body: "hello world", header: map[string][]string{"Content-Type": {"text/plain"}}},
		{method: "POST", host: "h", path: "/empty"},
		{method: "DELETE", host: "h", path: "/thing"},
		{method: "PUT", host: "h", path: "/x", body: "abc", close: true},
		{method: "GET", host: "h", path: "/ua", header: map[string][]string{"User-Agent": {"curl/8", "second"}}},
		{method: "GET", host: "h", path: "/no-ua", header: map[string][]string{"User-Agent": {""}}},
		{method: "GET", host: "", path: "/url-host"},
		{method: "GET", host: "h", path: "/ws", header: map[string][]string{"X-Spaces": {"  padded\t"}, "X-Break": {"a\r\nInjected: 1"}}},
		{method: "GET", host: "h", path: "/bad-name", header: map[string][]string{"Bad Name": {"v"}, "Good": {"v"}}},
		{method: "GET", host: "h", path: "/framing", header: map[string][]string{"Content-Length": {"99"}, "Transfer-Encoding": {"chunked"}, "Host": {"other"}}},
		{method: "", host: "h", path: "/default-method"},
		{method: "GET", host: "bad host", path: "/"},
		{method: "POST", host: "h", path: "/short", body: "abc", length: 5},
	}
	for _, c := range cases {
		mine, myErr := writtenAs(t, writeRequest, c.build)
		std, stdErr := writtenAs(t, func(w *bufio.Writer, r *http.Request) error { return r.Write(w) }, c.build)
		if (myErr != nil) != (stdErr != nil) || mine != std {
			t.Errorf("%s %s:\nlean: %v\n%s\nnet/http: %v\n%s", c.method, c.path, myErr, mine, stdErr, std)
		}
	}
}

// FuzzWriteRequest: for any method, target, header and body, a server reads the same
// request from the lean writer as from net/http's.
func FuzzWriteRequest(f *testing.F) {
	f.Add("GET", "h", "/p", "q=1", "X-A", "v", "", false)
	f.Add("POST", "example.com:8080", "/u", "", "Content-Type", "text/plain", "body", true)
	f.Fuzz(func(t *testing.T, method, host, path, query, hk, hv, body string, close bool) {
		if strings.ContainsAny(method, " \r\n") || method == "CONNECT" {
			t.Skip()
		}
		s := reqShape{method: method, host: host, path: "/" + path, query: query, body: body, close: close, header: map[string][]string{hk: {hv}}}
		mine, myErr := writtenAs(t, writeRequest, s.build)
		std, stdErr := writtenAs(t, func(w *bufio.Writer, r *http.Request) error { return r.Write(w) }, s.build)
		if (myErr != nil) != (stdErr != nil) || mine != std {
			t.Errorf("%+v:\nlean: %v\n%s\nnet/http: %v\n%s", s, myErr, mine, stdErr, std)
		}
	})
}
