// Package filter applies the IR's request and response filters: header modifiers,
// redirects, URL rewrites and CORS. Everything is compiled once per config.
package filter

import (
	"net/http"

	"github.com/portico-gw/portico/internal/ir"
)

// Headers is a compiled header modifier with canonical names.
type Headers struct {
	set    []ir.Header
	add    []ir.Header
	remove []string
}

// CompileHeaders returns nil for a nil modifier.
func CompileHeaders(m *ir.HeaderModifier) *Headers {
	if m == nil {
		return nil
	}
	h := &Headers{}
	for _, x := range m.Set {
		h.set = append(h.set, ir.Header{Name: http.CanonicalHeaderKey(x.Name), Value: x.Value})
	}
	for _, x := range m.Add {
		h.add = append(h.add, ir.Header{Name: http.CanonicalHeaderKey(x.Name), Value: x.Value})
	}
	for _, x := range m.Remove {
		h.remove = append(h.remove, http.CanonicalHeaderKey(x))
	}
	return h
}

// Apply modifies hdr: set replaces, add appends, remove deletes (in that order, so a
// header both added and removed ends up removed, as the API describes).
func (h *Headers) Apply(hdr http.Header) {
	if h == nil {
		return
	}
	for _, x := range h.set {
		hdr[x.Name] = []string{x.Value}
	}
	for _, x := range h.add {
		// Clipped, so that the append never writes into a value array hdr shares with
		// another header map (the proxy shares values between inbound and outbound).
		vv := hdr[x.Name]
		hdr[x.Name] = append(vv[:len(vv):len(vv)], x.Value)
	}
	for _, name := range h.remove {
		delete(hdr, name)
	}
}
