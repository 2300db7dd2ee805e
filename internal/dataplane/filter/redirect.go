package filter

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/portico-gw/portico/internal/ir"
)

// Redirect answers with a Location built from the request and the IR redirect.
type Redirect struct {
	ir     ir.Redirect
	prefix string // the route's PathPrefix match, for ReplacePrefixMatch
}

// CompileRedirect returns nil for a nil redirect. matchPrefix is the route's path
// prefix (used by ReplacePrefixMatch).
func CompileRedirect(r *ir.Redirect, matchPrefix string) *Redirect {
	if r == nil {
		return nil
	}
	return &Redirect{ir: *r, prefix: matchPrefix}
}

// Location computes the redirect target. scheme and port are how the request arrived.
func (rd *Redirect) Location(r *http.Request, scheme string, listenerPort uint32) string {
	host, reqPort := splitHost(r.Host)
	outScheme := scheme
	if rd.ir.Scheme != "" {
		outScheme = rd.ir.Scheme
	}
	if rd.ir.Hostname != "" {
		host = rd.ir.Hostname
	}
	// Port: explicit; else the scheme's well-known port when the scheme changes; else
	// the port the request arrived on.
	var port uint32
	switch {
	case rd.ir.Port != 0:
		port = rd.ir.Port
	case rd.ir.Scheme != "":
		port = wellKnownPort(outScheme)
	case reqPort != 0:
		port = reqPort
	default:
		port = listenerPort
	}
	path := r.URL.Path
	if p := rd.ir.Path; p != nil {
		path = rewritePath(path, p, rd.prefix)
	}
	var b strings.Builder
	b.WriteString(outScheme)
	b.WriteString("://")
	if strings.Contains(host, ":") {
		b.WriteString("[" + host + "]")
	} else {
		b.WriteString(host)
	}
	if port != 0 && port != wellKnownPort(outScheme) {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(int(port)))
	}
	u := *r.URL
	u.Path, u.RawPath = path, ""
	b.WriteString(u.EscapedPath())
	if r.URL.RawQuery != "" {
		b.WriteString("?")
		b.WriteString(r.URL.RawQuery)
	}
	return b.String()
}

// StatusCode is the redirect's HTTP status.
func (rd *Redirect) StatusCode() int { return rd.ir.StatusCode }

func wellKnownPort(scheme string) uint32 {
	if scheme == "https" {
		return 443
	}
	return 80
}

func splitHost(hostport string) (string, uint32) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return strings.Trim(hostport, "[]"), 0
	}
	p, _ := strconv.Atoi(port)
	return host, uint32(p)
}

// rewritePath applies a full or prefix replacement. For a prefix replacement the matched
// prefix is replaced whole-segment, and a replacement of "/" never leaves a double slash.
func rewritePath(path string, m *ir.PathModifier, prefix string) string {
	if m.Type == ir.FullPath {
		return m.Value
	}
	rest := path
	if prefix != "/" {
		rest = strings.TrimPrefix(path, prefix)
	} else {
		rest = path
	}
	repl := m.Value
	switch {
	case rest == "" || rest == "/":
		if repl == "" {
			return "/"
		}
		if rest == "/" && !strings.HasSuffix(repl, "/") {
			return repl + "/"
		}
		return repl
	case strings.HasSuffix(repl, "/"):
		return repl + strings.TrimPrefix(rest, "/")
	default:
		if !strings.HasPrefix(rest, "/") {
			rest = "/" + rest
		}
		return repl + rest
	}
}
