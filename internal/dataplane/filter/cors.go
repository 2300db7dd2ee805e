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
	origins     map[string]bool // exact "scheme://host[:port]"
	wildcards   []originPattern // "scheme://*.suffix"
	credentials bool
	methods     string // joined, or "*"
	headers     string
	expose      string
	maxAge      string
}

type originPattern struct {
	scheme string // "https://"
	suffix string // ".example.com" (with port, if given)
}

// CompileCORS returns nil for a nil policy.
func CompileCORS(c *ir.CORS) *CORS {
	if c == nil {
		return nil
	}
	out := &CORS{origins: map[string]bool{}, credentials: c.AllowCredentials}
	for _, o := range c.AllowOrigins {
		o = strings.ToLower(o)
		switch {
		case o == "*":
			out.anyOrigin = true
		case strings.Contains(o, "://*."):
			scheme, rest, _ := strings.Cut(o, "://")
			out.wildcards = append(out.wildcards, originPattern{scheme: scheme + "://", suffix: rest[1:]})
		default:
			out.origins[o] = true
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

func (c *CORS) allows(origin string) bool {
	if c.anyOrigin {
		return true
	}
	o := strings.ToLower(origin)
	if c.origins[o] {
		return true
	}
	for _, p := range c.wildcards {
		if strings.HasPrefix(o, p.scheme) {
			host := o[len(p.scheme):]
			if len(host) > len(p.suffix) && strings.HasSuffix(host, p.suffix) {
				return true
			}
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
		if c.maxAge != "" {
			h.Set("Access-Control-Max-Age", c.maxAge)
		}
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}

// Decorate adds CORS headers to the response of an actual (non-preflight) request.
func (c *CORS) Decorate(h http.Header, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || !c.allows(origin) {
		return
	}
	c.setOrigin(h, origin)
	if c.expose != "" {
		if c.expose == "*" && c.credentials {
			return // "*" is not a wildcard with credentials; expose nothing extra
		}
		h.Set("Access-Control-Expose-Headers", c.expose)
	}
}

func (c *CORS) setOrigin(h http.Header, origin string) {
	if c.anyOrigin && !c.credentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	}
	if c.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}
