package upstream

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// writeRequest writes req as an HTTP/1.1 request to w. The common shapes a proxy sends
// (no body, or a body of known length; no trailers) are written directly; everything
// else goes through net/http's Request.Write. The bytes on the wire carry the same
// request either way: the same request line, Host, User-Agent rule, framing and
// fields, with header values trimmed and line breaks turned into spaces. Only the order
// of the fields differs (net/http sorts them).
func writeRequest(w *bufio.Writer, req *http.Request) error {
	if !leanWritable(req) {
		return req.Write(w)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return req.Write(w) // net/http's error wording
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(req.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	if ua, ok := req.Header["User-Agent"]; !ok {
		w.WriteString("User-Agent: Go-http-client/1.1\r\n")
	} else if len(ua) > 0 && ua[0] != "" {
		writeField(w, "User-Agent", ua[0])
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody || req.ContentLength > 0 || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		w.WriteString("Content-Length: ")
		var b [20]byte
		w.Write(strconv.AppendInt(b[:0], req.ContentLength, 10))
		w.WriteString("\r\n")
	}
	if req.Close && !httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close") {
		w.WriteString("Connection: close\r\n")
	}
	for k, vs := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			continue // as net/http's Header.Write
		}
		for _, v := range vs {
			writeField(w, k, v)
		}
	}
	w.WriteString("\r\n")
	if !hasBody {
		return nil
	}
	// As net/http: the head goes out before a body that may take its time, the body is
	// copied up to its length and then read to its end (so a body longer than declared
	// is an error, and the reader sees its EOF), and it is closed.
	if err := w.Flush(); err != nil {
		req.Body.Close()
		return err
	}
	n, err := io.Copy(w, io.LimitReader(req.Body, req.ContentLength))
	if err == nil {
		var extra int64
		extra, err = io.Copy(io.Discard, req.Body)
		if err == nil && n+extra != req.ContentLength {
			err = fmt.Errorf("http: ContentLength=%d with Body length %d", req.ContentLength, n+extra)
		}
	}
	if cerr := req.Body.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// leanWritable reports whether writeRequest can write req itself: an ordinary method
// and origin-form target, no Transfer-Encoding or trailers, and either no body or one
// whose length is known.
func leanWritable(req *http.Request) bool {
	if req.URL == nil || req.URL.Opaque != "" || req.Method == http.MethodConnect || len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 {
		return false
	}
	if req.Body == nil || req.Body == http.NoBody {
		return req.ContentLength == 0
	}
	return req.ContentLength > 0
}

// writeField writes "name: value\r\n" with value trimmed and CR/LF turned into spaces,
// as net/http's Header.Write does.
func writeField(w *bufio.Writer, name, v string) {
	w.WriteString(name)
	w.WriteString(": ")
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	w.WriteString(strings.Trim(v, " \t"))
	w.WriteString("\r\n")
}
