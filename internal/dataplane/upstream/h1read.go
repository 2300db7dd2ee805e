package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/portico-gw/portico/internal/dataplane/wire"
)

// readLeanResponse reads the response to req when its head is already buffered in br
// and has the plain shape most backends answer with: CRLF lines; "HTTP/1.1" or
// "HTTP/1.0" and a final status with a body (not 1xx, 204 or 304); well-formed header
// lines without folding; exactly one all-digits Content-Length; no Transfer-Encoding;
// and a request other than HEAD. The result is what http.ReadResponse returns for the
// same bytes, except that the body is left for the caller to read (length bytes from
// br; resp.Body is nil). It costs less: the head is copied into one string that every
// value and already-canonical name is cut from.
//
// ok is false, with nothing consumed, for any other response: the caller then uses
// http.ReadResponse, which has the rules for everything else.
func readLeanResponse(br *bufio.Reader, req *http.Request) (resp *http.Response, length int64, ok bool) {
	if req.Method == http.MethodHead {
		return nil, 0, false
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, 0, false
	}
	head := buf[:end+2] // through the last header line's CRLF
	code, lines, ok := leanStatus(head)
	if !ok {
		return nil, 0, false
	}
	length, ok = leanFields(lines)
	if !ok {
		return nil, 0, false
	}

	s := string(head)
	statusLine, rest, _ := strings.Cut(s, "\r\n")
	hdr, ok := wire.ParseFields(rest)
	if !ok {
		return nil, 0, false
	}
	minor := 1
	if statusLine[7] == '0' {
		minor = 0
	}
	conn := hdr["Connection"]
	closing := httpguts.HeaderValuesContainsToken(conn, "close")
	switch {
	case minor == 0:
		closing = closing || !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	case closing:
		delete(hdr, "Connection") // as net/http: the close is in Response.Close
	}
	br.Discard(end + 4)
	var body io.ReadCloser = http.NoBody
	if length > 0 {
		body = nil // the caller's
	}
	return &http.Response{
		Status:        statusLine[9:],
		StatusCode:    code,
		Proto:         statusLine[:8],
		ProtoMajor:    1,
		ProtoMinor:    minor,
		Header:        hdr,
		Body:          body,
		ContentLength: length,
		Close:         closing,
		Request:       req,
	}, length, true
}

// leanStatus checks the status line at the start of head ("HTTP/1.x DDD[ reason]") for
// a final status that has a body, and returns the code and the header lines after it.
func leanStatus(head []byte) (code int, lines []byte, ok bool) {
	eol := bytes.Index(head, []byte("\r\n"))
	if eol < 12 {
		return 0, nil, false
	}
	line := head[:eol]
	if !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[7] != '0' && line[7] != '1' || line[8] != ' ' {
		return 0, nil, false
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, nil, false
		}
		code = code*10 + int(c-'0')
	}
	if len(line) > 12 && line[12] != ' ' || code < 200 || code == 204 || code == 304 {
		return 0, nil, false
	}
	for _, c := range line[12:] {
		if !wire.IsValueChar(c) {
			return 0, nil, false
		}
	}
	return code, head[eol+2:], true
}

// leanFields checks the header lines (each ending in CRLF) and returns the one
// Content-Length.
func leanFields(lines []byte) (length int64, ok bool) {
	lengths := 0
	for len(lines) > 0 {
		eol := bytes.Index(lines, []byte("\r\n"))
		if eol < 0 {
			return 0, false
		}
		line := lines[:eol]
		lines = lines[eol+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return 0, false
		}
		name, value := line[:colon], line[colon+1:]
		for _, c := range name {
			if !wire.IsTokenChar(c) {
				return 0, false
			}
		}
		for _, c := range value {
			if !wire.IsValueChar(c) {
				return 0, false
			}
		}
		switch {
		case len(name) == 17 && bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, false
		case len(name) == 14 && bytes.EqualFold(name, []byte("Content-Length")):
			lengths++
			digits := bytes.Trim(value, " \t")
			if len(digits) == 0 || len(digits) > 18 {
				return 0, false
			}
			n, err := strconv.ParseInt(string(digits), 10, 64)
			if err != nil || digits[0] == '+' || digits[0] == '-' {
				return 0, false
			}
			length = n
		}
	}
	return length, lengths == 1
}
