package h1

import (
	"bufio"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/portico-gw/portico/internal/dataplane/wire"
)

var errMalformed = errors.New("malformed request head")

// parseHead builds the request for a head that leanHead accepted (head is its bytes,
// through the empty line). The result is what http.ReadRequest returns for the same
// bytes: the same method, target, URL, protocol, header (canonical names, trimmed
// values, Pragma: no-cache implying Cache-Control), Host, Close and Content-Length. It
// costs less: the head is copied into one string that every value and already-canonical
// name is cut from, and the body is read by the connection's requestBody directly.
//
// req is the connection's template; the caller copies it (WithContext) before use.
func parseHead(req *http.Request, head []byte) error {
	s := string(head)
	line, rest, _ := strings.Cut(s, "\r\n")
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 {
		return errMalformed
	}
	var minor int
	switch proto {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return errMalformed
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return err
	}
	hdr, ok := wire.ParseFields(rest)
	if !ok {
		return errMalformed
	}
	length := int64(0)
	if cl := hdr["Content-Length"]; len(cl) > 0 {
		if length, err = strconv.ParseInt(cl[0], 10, 64); err != nil || length < 0 {
			return errMalformed
		}
	}
	conn := hdr["Connection"]
	closing := httpguts.HeaderValuesContainsToken(conn, "close")
	if minor == 0 && !httpguts.HeaderValuesContainsToken(conn, "keep-alive") {
		closing = true
	}
	host := ""
	if h := hdr["Host"]; len(h) > 0 {
		host = h[0]
		delete(hdr, "Host") // promoted to Request.Host, as net/http does
	}
	*req = http.Request{
		Method:        method,
		URL:           u,
		Proto:         proto,
		ProtoMajor:    1,
		ProtoMinor:    minor,
		Header:        hdr,
		Body:          http.NoBody,
		ContentLength: length,
		Close:         closing,
		Host:          host,
		RequestURI:    target,
	}
	return nil
}

// bodyReader reads a request body of a known length from the connection's reader.
type bodyReader struct {
	br   *bufio.Reader
	left int64
}

// Read returns io.EOF with the body's last bytes, and io.ErrUnexpectedEOF if the
// connection ends first.
func (r *bodyReader) Read(p []byte) (int, error) {
	return wire.ReadLength(r.br, p, &r.left)
}
