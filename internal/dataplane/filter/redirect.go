package filter

import (
	"net"
	"net/http"
	"net/url"
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
	return &Redirect{ir: *r, prefix: normalizePrefix(matchPrefix)}
}

// Location computes the redirect target. scheme is how the request arrived, listenerPort
// the port of the listener that took it.
func (rd *Redirect) Location(r *http.Request, scheme string, listenerPort uint32) string {
	host, _ := splitHost(r.Host)
	outScheme := scheme
	if rd.ir.Scheme != "" {
		outScheme = rd.ir.Scheme
	}
	if rd.ir.Hostname != "" {
		host = rd.ir.Hostname
	}
	// Port, as the Gateway API specifies: explicit; else the well-known port of the
	// redirect's scheme when it sets one; else the listener's port (not the port in the
	// Host header, which a load balancer in front may have set to anything).
	var port uint32
	switch {
	case rd.ir.Port != 0:
		port = rd.ir.Port
	case rd.ir.Scheme != "":
		port = wellKnownPort(outScheme)
	default:
		port = listenerPort
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
	if p := rd.ir.Path; p != nil {
		var u url.URL
		u.Path, u.RawPath = applyPath(r.URL, p, rd.prefix)
		b.WriteString(u.EscapedPath())
	} else {
		// The path as the client spelled it (escapes such as %2F kept).
		b.WriteString(r.URL.EscapedPath())
	}
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

// normalizePrefix drops a PathPrefix match's trailing slash: the API ignores it when
// matching ("/foo/" matches like "/foo"), so replacements must too.
func normalizePrefix(p string) string {
	if len(p) > 1 {
		return strings.TrimSuffix(p, "/")
	}
	return p
}

// applyPath returns the new path of u (decoded, and escaped when that differs from the
// default escaping). A prefix replacement works on the escaped path when the request
// used escapes that decoding would lose (such as %2F), so the rest of the path is
// forwarded as the client sent it.
func applyPath(u *url.URL, m *ir.PathModifier, prefix string) (path, rawPath string) {
	if m.Type == ir.PrefixPath && u.RawPath != "" {
		if esc := u.EscapedPath(); hasPathPrefix(esc, prefix) {
			raw := rewritePath(esc, m, prefix)
			if p, err := url.PathUnescape(raw); err == nil {
				return p, raw
			}
		}
	}
	return rewritePath(u.Path, m, prefix), ""
}

// hasPathPrefix reports whether prefix matches path element by element.
func hasPathPrefix(path, prefix string) bool {
	if prefix == "/" || prefix == "" {
		return true
	}
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
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
