package dataplane

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
)

// framingListener guards plain-text HTTP/1.x connections against requests that carry
// both Content-Length and Transfer-Encoding. RFC 9112 section 6.1 says such a message
// "ought to be handled as an error"; net/http instead drops Content-Length, uses the
// chunked framing and keeps the connection open. The guard follows each request's
// framing to find the next head, holds a head back until it is complete, and hands the
// server a head it rejects with 400 (and closes) in place of an ambiguous one. It stops
// watching, and passes bytes through untouched, at anything it does not follow: HTTP/2,
// upgrades, CONNECT, malformed framing (net/http rejects that itself), oversized heads.
//
// TLS ports cannot be guarded this way: net/http needs the *tls.Conn itself.
type framingListener struct {
	net.Listener
	maxHead int
}

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c, maxHead: l.maxHead}, nil
}

type framingState uint8

const (
	fsHead      framingState = iota // collecting a request head
	fsBody                          // left bytes of a Content-Length body
	fsChunkSize                     // a chunk-size line
	fsChunkData                     // left bytes of chunk data
	fsChunkCRLF                     // the line ending after chunk data
	fsTrailers                      // trailer lines up to the empty line
	fsOff                           // not following: pass everything through
)

// rejectedHead is what the server gets instead of an ambiguous head: it answers
// 400 Bad Request and closes the connection.
const rejectedHead = "POST / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n"

type framingConn struct {
	net.Conn
	maxHead int
	state   framingState
	left    int64
	line    []byte // head, chunk-size or trailer bytes being collected
	out     []byte // bytes ready for the server
	outOff  int
}

// CloseWrite keeps net/http's graceful close working.
func (c *framingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *framingConn) Read(p []byte) (int, error) {
	for {
		if c.outOff < len(c.out) {
			n := copy(p, c.out[c.outOff:])
			c.outOff += n
			if c.outOff == len(c.out) {
				c.out, c.outOff = c.out[:0], 0
			}
			return n, nil
		}
		switch c.state {
		case fsOff:
			return c.Conn.Read(p)
		case fsBody, fsChunkData:
			// Body bytes go straight to the server.
			if int64(len(p)) > c.left {
				p = p[:c.left]
			}
			n, err := c.Conn.Read(p)
			c.left -= int64(n)
			if c.left == 0 {
				if c.state == fsBody {
					c.state = fsHead
				} else {
					c.state = fsChunkCRLF
				}
			}
			return n, err
		}
		// Collecting a line or a head: read into p, scan, and hand back what is
		// released.
		n, err := c.Conn.Read(p)
		c.scan(p[:n])
		if err != nil {
			if c.outOff < len(c.out) {
				continue // deliver what is ready; the error comes again on the next read
			}
			if len(c.line) > 0 && errors.Is(err, io.EOF) {
				c.release() // a cut-short head: let the server see what there is
				c.state = fsOff
				continue
			}
			return 0, err
		}
	}
}

// scan feeds received bytes through the state machine, appending to out what may be
// handed to the server.
func (c *framingConn) scan(b []byte) {
	for len(b) > 0 {
		switch c.state {
		case fsOff:
			c.out = append(c.out, b...)
			return
		case fsBody, fsChunkData:
			k := int64(len(b))
			if k > c.left {
				k = c.left
			}
			c.out = append(c.out, b[:k]...)
			b = b[k:]
			c.left -= k
			if c.left == 0 {
				if c.state == fsBody {
					c.state = fsHead
				} else {
					c.state = fsChunkCRLF
				}
			}
		case fsHead:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.line = append(c.line, b...)
				b = nil
			} else {
				c.line = append(c.line, b[:i+1]...)
				b = b[i+1:]
				if end := headEnd(c.line); end {
					c.endHead()
					continue
				}
			}
			if len(c.line) > c.maxHead {
				c.release()
				c.state = fsOff
			}
		default: // chunk-size line, CRLF after data, trailers: one line at a time
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.line = append(c.line, b...)
				c.out = append(c.out, b...)
				b = nil
				if len(c.line) > 4096 {
					c.state = fsOff
				}
				continue
			}
			c.line = append(c.line, b[:i+1]...)
			c.out = append(c.out, b[:i+1]...)
			b = b[i+1:]
			c.endLine()
		}
	}
}

// headEnd reports whether the collected head ends with an empty line.
func headEnd(h []byte) bool {
	return bytes.HasSuffix(h, []byte("\n\r\n")) || bytes.HasSuffix(h, []byte("\n\n")) || string(h) == "\r\n" || string(h) == "\n"
}

func (c *framingConn) release() {
	c.out = append(c.out, c.line...)
	c.line = c.line[:0]
}

// endHead decides on a complete head: reject it, or release it and follow its body.
func (c *framingConn) endHead() {
	head := c.line
	if string(head) == "\r\n" || string(head) == "\n" {
		c.release() // a stray empty line between requests
		return
	}
	lines := bytes.Split(head, []byte("\n"))
	method, _, _ := bytes.Cut(bytes.TrimRight(lines[0], "\r"), []byte(" "))
	var cl, te, upgrade bool
	var clValue, teValue []byte
	for _, l := range lines[1:] {
		name, value, ok := bytes.Cut(bytes.TrimRight(l, "\r"), []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			cl, clValue = true, value
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te, teValue = true, value
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = true
		}
	}
	if cl && te {
		c.line = c.line[:0]
		c.out = append(c.out, rejectedHead...)
		c.state = fsOff // the server closes the connection after its 400
		return
	}
	c.release()
	switch {
	case string(method) == "PRI" || string(method) == "CONNECT" || upgrade:
		c.state = fsOff
	case te:
		if !bytes.EqualFold(teValue, []byte("chunked")) {
			c.state = fsOff // net/http answers 501
			return
		}
		c.state = fsChunkSize
	case cl:
		n, err := strconv.ParseInt(string(clValue), 10, 64)
		if err != nil || n < 0 {
			c.state = fsOff // net/http answers 400
			return
		}
		if n > 0 {
			c.state, c.left = fsBody, n
		}
	}
}

// endLine handles a complete chunk-size line, data terminator or trailer line.
func (c *framingConn) endLine() {
	l := bytes.TrimRight(c.line, "\r\n")
	c.line = c.line[:0]
	switch c.state {
	case fsChunkSize:
		size, _, _ := bytes.Cut(l, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		switch {
		case err != nil || n < 0:
			c.state = fsOff // net/http rejects the body
		case n == 0:
			c.state = fsTrailers
		default:
			c.state, c.left = fsChunkData, n
		}
	case fsChunkCRLF:
		if len(l) != 0 {
			c.state = fsOff
			return
		}
		c.state = fsChunkSize
	case fsTrailers:
		if len(l) == 0 {
			c.state = fsHead
		}
	}
}
