package filter

import (
	"net/http"

	"github.com/portico-gw/portico/internal/ir"
)

// Rewrite changes the outbound request's host and path.
type Rewrite struct {
	hostname string
	path     *ir.PathModifier
	prefix   string
}

// CompileRewrite returns nil for a nil rewrite.
func CompileRewrite(r *ir.Rewrite, matchPrefix string) *Rewrite {
	if r == nil {
		return nil
	}
	return &Rewrite{hostname: r.Hostname, path: r.Path, prefix: normalizePrefix(matchPrefix)}
}

// Apply rewrites out (the request about to be forwarded); in is the original.
func (rw *Rewrite) Apply(in, out *http.Request) {
	if rw == nil {
		return
	}
	if rw.hostname != "" {
		out.Host = rw.hostname
	}
	if rw.path != nil {
		out.URL.Path, out.URL.RawPath = applyPath(in.URL, rw.path, rw.prefix)
	}
}
