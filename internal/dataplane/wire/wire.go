// Package wire holds the small pieces of HTTP/1.1 syntax that Portico's own parsers
// (the lean server loop's request heads, the upstream pool's response heads) share.
package wire

import (
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// IsTokenChar reports whether b may appear in an RFC 9110 token (a method or a header
// name).
func IsTokenChar(b byte) bool {
	return tokenChars[b]
}

var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// IsValueChar reports whether b may appear in a header value: anything but control
// characters other than tab (obs-text, bytes 0x80 and up, is allowed, as net/http does).
func IsValueChar(b byte) bool {
	return b >= ' ' && b != 0x7f || b == '\t'
}

// CanonicalKey returns the canonical form of a header name made of token characters,
// as textproto.CanonicalMIMEHeaderKey does, without allocating when the name is
// already canonical (the name itself is returned, typically cut from a head's string)
// or is a common one.
func CanonicalKey(name string) string {
	const max = 64
	if len(name) > max {
		return textproto.CanonicalMIMEHeaderKey(name)
	}
	var buf [max]byte
	same := true
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		buf[i] = c
		same = same && c == name[i]
		upper = c == '-'
	}
	if same {
		return name
	}
	if k, ok := commonKeys[string(buf[:len(name)])]; ok {
		return k
	}
	return string(buf[:len(name)])
}

// commonKeys interns the canonical names of common headers, for peers that send them in
// lower case.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
		"Access-Control-Allow-Origin", "Age", "Authorization", "Cache-Control", "Connection",
		"Content-Encoding", "Content-Length", "Content-Type", "Cookie", "Date", "Etag",
		"Expires", "Host", "If-Modified-Since", "If-None-Match", "Keep-Alive", "Last-Modified",
		"Location", "Origin", "Pragma", "Referer", "Server", "Set-Cookie", "Te",
		"Traceparent", "Tracestate", "Transfer-Encoding", "User-Agent", "Vary", "Via",
		"X-Content-Type-Options", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Real-Ip", "X-Request-Id",
	} {
		m[k] = k
	}
	return m
}()

// ParseFields builds the header map of a head's field lines, each ending in CRLF, up to
// an empty line or the end of block. The lines must already have been checked (token
// names, a colon, no control characters in values). As net/http does, names are made
// canonical, values trimmed, repeated names collected in order, and "Pragma: no-cache"
// implies "Cache-Control: no-cache". Values and already-canonical names are cut from
// block, so the map costs no string copies. ok is false when a line has no colon.
func ParseFields(block string) (hdr http.Header, ok bool) {
	n := strings.Count(block, "\r\n")
	hdr = make(http.Header, n)
	strs := make([]string, n) // value storage for single-valued headers
	for block != "" {
		var line string
		line, block, _ = strings.Cut(block, "\r\n")
		if line == "" {
			break
		}
		name, value, found := strings.Cut(line, ":")
		if !found {
			return nil, false
		}
		key := CanonicalKey(name)
		value = strings.Trim(value, " \t")
		if vv, seen := hdr[key]; seen || len(strs) == 0 {
			hdr[key] = append(vv, value)
		} else {
			vv, strs = strs[:1:1], strs[1:]
			vv[0] = value
			hdr[key] = vv
		}
	}
	if pragma := hdr["Pragma"]; len(pragma) > 0 && pragma[0] == "no-cache" {
		if _, set := hdr["Cache-Control"]; !set {
			hdr["Cache-Control"] = []string{"no-cache"}
		}
	}
	return hdr, true
}

// ReadLength reads from r into p at most *left bytes of a body of known length and
// counts them off: io.EOF comes with the body's last bytes, io.ErrUnexpectedEOF when the
// stream ends first.
func ReadLength(r io.Reader, p []byte, left *int64) (int, error) {
	if *left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > *left {
		p = p[:*left]
	}
	n, err := r.Read(p)
	*left -= int64(n)
	switch {
	case *left == 0:
		err = io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
