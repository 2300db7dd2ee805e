package h1

import (
	"bytes"

	"github.com/portico-gw/portico/internal/dataplane/wire"
)

// leanHead reports whether a complete request head (through its empty line) has the
// plain shape the lean loop serves: CRLF line endings, a request line with an ordinary
// method and HTTP/1.0 or HTTP/1.1, well-formed header lines without folding or control
// characters, exactly one Host, at most one all-digits Content-Length, and none of
// Transfer-Encoding, Upgrade or Expect, and an origin-form target ("/path?query"). Anything else goes to net/http, which either
// serves it (upgrades, chunked bodies, 100-continue, HTTP/2) or answers the error.
func leanHead(h []byte) bool {
	line, rest, ok := cutLine(h)
	if !ok || !requestLine(line) {
		return false
	}
	hosts, lengths := 0, 0
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return false
		}
		if len(line) == 0 {
			return len(rest) == 0 && hosts == 1 && lengths <= 1
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return false
		}
		name, value := line[:colon], line[colon+1:]
		for _, b := range name {
			if !isTokenChar(b) {
				return false
			}
		}
		for _, b := range value {
			if b < ' ' && b != '\t' || b == 0x7f {
				return false
			}
		}
		switch len(name) {
		case 4:
			if bytes.EqualFold(name, []byte("Host")) {
				hosts++
			}
		case 6:
			if bytes.EqualFold(name, []byte("Expect")) {
				return false
			}
		case 7:
			if bytes.EqualFold(name, []byte("Upgrade")) {
				return false
			}
		case 14:
			if bytes.EqualFold(name, []byte("Content-Length")) {
				lengths++
				if !allDigits(bytes.Trim(value, " \t")) {
					return false
				}
			}
		case 17:
			if bytes.EqualFold(name, []byte("Transfer-Encoding")) {
				return false
			}
		}
	}
}

// cutLine splits off the first CRLF-terminated line; a bare LF fails.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	return b[:i-1], b[i+1:], true
}

// requestLine checks "METHOD SP target SP HTTP/1.x" with a method other than CONNECT
// and PRI (the HTTP/2 preface) and an origin-form target (absolute-form and "*" go to
// net/http, which has its own rules for them).
func requestLine(l []byte) bool {
	sp1 := bytes.IndexByte(l, ' ')
	sp2 := bytes.LastIndexByte(l, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		return false
	}
	method, target, version := l[:sp1], l[sp1+1:sp2], l[sp2+1:]
	if string(version) != "HTTP/1.1" && string(version) != "HTTP/1.0" {
		return false
	}
	if string(method) == "CONNECT" || string(method) == "PRI" || target[0] != '/' {
		return false
	}
	for _, b := range method {
		if !isTokenChar(b) {
			return false
		}
	}
	for _, b := range target {
		if b <= ' ' || b == 0x7f {
			return false
		}
	}
	return true
}

func allDigits(b []byte) bool {
	if len(b) == 0 || len(b) > 18 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isTokenChar reports whether b may appear in an RFC 9110 token.
func isTokenChar(b byte) bool { return wire.IsTokenChar(b) }
