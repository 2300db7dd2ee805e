// Package wire holds the small pieces of HTTP/1.1 syntax that Portico's own parsers
// (the lean server loop's request heads, the upstream pool's response heads) share.
package wire

import "net/textproto"

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
