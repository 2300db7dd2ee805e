package filter

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/portico-gw/portico/internal/ir"
)

// CORS is a compiled cross-origin policy.
type CORS struct {
	anyOrigin   bool
	origins     map[originKey]bool // exact origins
	wildcards   []originPattern    // hosts "*.suffix" or "*"
	credentials bool
	methods     string // joined, or "*"
	headers     string
	expose      string
	maxAge      string
}

// originKey is an origin in canonical form: lower case, with its port.
type originKey struct{ scheme, host, port string }

// originPattern is an allowed origin whose host holds the wildcard: "*" alone (any
// host) or "*.suffix" (one or more labels in front of the suffix).
type originPattern struct {
	scheme string
	suffix string // ".example.com"; "" for any host
	port   string // explicit, or the scheme's default
}

// CompileCORS returns nil for a nil policy.
func CompileCORS(c *ir.CORS) *CORS {
	if c == nil {
		return nil
	}
	out := &CORS{origins: map[originKey]bool{}, credentials: c.AllowCredentials}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			out.anyOrigin = true
			continue
		}
		scheme, host, port, ok := parseOrigin(o)
		if !ok {
			continue // the API validates origins; an unparsable one allows nothing
		}
		switch {
		case host == "*":
			out.wildcards = append(out.wildcards, originPattern{scheme: scheme, port: port})
		case strings.HasPrefix(host, "*."):
			out.wildcards = append(out.wildcards, originPattern{scheme: scheme, suffix: host[1:], port: port})
		default:
			out.origins[originKey{scheme, host, port}] = true
		}
	}
	out.methods = strings.Join(c.AllowMethods, ", ")
	out.headers = strings.Join(c.AllowHeaders, ", ")
	out.expose = strings.Join(c.ExposeHeaders, ", ")
	if c.MaxAgeSeconds > 0 {
		out.maxAge = strconv.Itoa(int(c.MaxAgeSeconds))
	}
	return out
}

// parseOrigin splits "scheme://host[:port]" (lower-cased), filling in the scheme's
// default port: the API says http origins without a port mean port 80, https 443.
func parseOrigin(o string) (scheme, host, port string, ok bool) {
	o = strings.ToLower(o)
	scheme, hostport, ok := strings.Cut(o, "://")
	if !ok || scheme == "" || hostport == "" || strings.ContainsAny(hostport, "/?#") {
		return "", "", "", false
	}
	host = hostport
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && i > strings.LastIndexByte(hostport, ']') {
		host, port = hostport[:i], hostport[i+1:]
		if port == "" {
			return "", "", "", false
		}
	}
	if host == "" {
		return "", "", "", false
	}
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme, host, port, true
}

func (c *CORS) allows(origin string) bool {
	if c.anyOrigin {
		return true
	}
	scheme, host, port, ok := parseOrigin(origin)
	if !ok {
		return false
	}
	if c.origins[originKey{scheme, host, port}] {
		return true
	}
	for _, p := range c.wildcards {
		if p.scheme == scheme && p.port == port && len(host) > len(p.suffix) && strings.HasSuffix(host, p.suffix) {
			return true
		}
	}
	return false
}

// IsPreflight reports whether r is a CORS preflight request.
func IsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// Preflight answers a preflight request. A disallowed origin gets a response without
// CORS headers, which browsers treat as a refusal.
func (c *CORS) Preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	h := w.Header()
	if c.allows(origin) {
		c.setOrigin(h, origin)
		switch {
		case c.methods == "*" && c.credentials:
			h.Set("Access-Control-Allow-Methods", r.Header.Get("Access-Control-Request-Method"))
		case c.methods != "":
			h.Set("Access-Control-Allow-Methods", c.methods)
		}
		switch {
		case c.headers == "*" && c.credentials:
			if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
				h.Set("Access-Control-Allow-Headers", req)
			}
		case c.headers != "":
			h.Set("Access-Control-Allow-Headers", c.headers)
		}
		// The conformance suite expects the exposed headers on the preflight answer too.
		c.setExpose(h)
		if c.maxAge != "" {
			h.Set("Access-Control-Max-Age", c.maxAge)
		}
	} else {
		addVary(h, "Origin")
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}

// Decorate adds CORS headers to the response of an actual (non-preflight) request.
func (c *CORS) Decorate(h http.Header, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	if !c.allows(origin) {
		// The answer depends on the origin: caches must not serve it to another.
		addVary(h, "Origin")
		return
	}
	c.setOrigin(h, origin)
	c.setExpose(h)
}

func (c *CORS) setExpose(h http.Header) {
	if c.expose == "" || c.expose == "*" && c.credentials {
		return // "*" is not a wildcard with credentials; expose nothing extra
	}
	h.Set("Access-Control-Expose-Headers", c.expose)
}

func (c *CORS) setOrigin(h http.Header, origin string) {
	if c.anyOrigin && !c.credentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
		addVary(h, "Origin")
	}
	if c.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// addVary adds name to the Vary header unless it is already listed there.
func addVary(h http.Header, name string) {
	for _, v := range h["Vary"] {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.TrimSpace(tok); tok == "*" || strings.EqualFold(tok, name) {
				return
			}
		}
	}
	h.Add("Vary", name)
}
