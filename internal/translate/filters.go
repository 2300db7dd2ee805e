package translate

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/ir"
)

// applyHTTPFilters converts a rule's filters onto base. Mirror backends that cannot be
// resolved are dropped and reported in resolved; filters that cannot be honoured make
// the whole rule answer 500 (never skipped: a skipped auth or rewrite filter would send
// traffic somewhere the author did not intend). An error means the rule is invalid.
func (t *translator) applyHTTPFilters(base *ir.Route, filters []gwv1.HTTPRouteFilter, use routeUse, resolved *problems, matches []ir.Match) error {
	seen := map[gwv1.HTTPRouteFilterType]bool{}
	for i, f := range filters {
		if f.Type != gwv1.HTTPRouteFilterRequestMirror && f.Type != gwv1.HTTPRouteFilterExtensionRef {
			if seen[f.Type] {
				return fmt.Errorf("filters[%d]: %s appears more than once: %w", i, f.Type, errIncompatibleFilters)
			}
			seen[f.Type] = true
		}
		if err := t.applyHTTPFilter(base, f, use, resolved, matches); err != nil {
			return fmt.Errorf("filters[%d] (%s): %w", i, f.Type, err)
		}
	}
	if base.Redirect != nil && base.Rewrite != nil {
		return fmt.Errorf("RequestRedirect and URLRewrite cannot be used together: %w", errIncompatibleFilters)
	}
	return nil
}

func (t *translator) applyHTTPFilter(base *ir.Route, f gwv1.HTTPRouteFilter, use routeUse, resolved *problems, matches []ir.Match) error {
	switch f.Type {
	case gwv1.HTTPRouteFilterRequestHeaderModifier:
		if f.RequestHeaderModifier == nil {
			return errors.New("requestHeaderModifier is not set")
		}
		base.RequestHeaders = headerModifier(f.RequestHeaderModifier)
	case gwv1.HTTPRouteFilterResponseHeaderModifier:
		if f.ResponseHeaderModifier == nil {
			return errors.New("responseHeaderModifier is not set")
		}
		base.ResponseHeaders = headerModifier(f.ResponseHeaderModifier)
	case gwv1.HTTPRouteFilterRequestRedirect:
		if f.RequestRedirect == nil {
			return errors.New("requestRedirect is not set")
		}
		r, err := redirect(f.RequestRedirect, matches)
		if err != nil {
			return err
		}
		base.Redirect = r
	case gwv1.HTTPRouteFilterURLRewrite:
		if f.URLRewrite == nil {
			return errors.New("urlRewrite is not set")
		}
		rw := &ir.Rewrite{}
		if f.URLRewrite.Hostname != nil {
			rw.Hostname = string(*f.URLRewrite.Hostname)
		}
		if f.URLRewrite.Path != nil {
			pm, err := pathModifier(f.URLRewrite.Path, matches)
			if err != nil {
				return err
			}
			rw.Path = pm
		}
		base.Rewrite = rw
	case gwv1.HTTPRouteFilterRequestMirror:
		if f.RequestMirror == nil {
			return errors.New("requestMirror is not set")
		}
		m, err := mirrorFraction(f.RequestMirror)
		if err != nil {
			return err
		}
		cluster, rerr := t.backends.resolve(use, f.RequestMirror.BackendRef)
		if rerr != nil {
			resolved.add(rerr.reason, "mirror %s", rerr.msg)
			return nil
		}
		m.Cluster = cluster
		base.Mirrors = append(base.Mirrors, m)
	case gwv1.HTTPRouteFilterCORS:
		if f.CORS == nil {
			return errors.New("cors is not set")
		}
		c, err := cors(f.CORS)
		if err != nil {
			return err
		}
		base.CORS = c
	case gwv1.HTTPRouteFilterExtensionRef:
		ref := f.ExtensionRef
		what := "extensionRef"
		if ref != nil {
			what = fmt.Sprintf("extensionRef %s %s", groupKind(string(ref.Group), string(ref.Kind)), ref.Name)
		}
		resolved.add(string(gwv1.RouteReasonInvalidKind), "%s: Portico has no extension filters; matching requests answer 500", what)
		base.DirectResponse = &ir.DirectResponse{StatusCode: http.StatusInternalServerError, Body: "filter not available"}
	default:
		return fmt.Errorf("filter type %q is not supported", f.Type)
	}
	return nil
}

func headerModifier(f *gwv1.HTTPHeaderFilter) *ir.HeaderModifier {
	out := &ir.HeaderModifier{}
	for _, h := range f.Set {
		out.Set = append(out.Set, ir.Header{Name: string(h.Name), Value: h.Value})
	}
	for _, h := range f.Add {
		out.Add = append(out.Add, ir.Header{Name: string(h.Name), Value: h.Value})
	}
	out.Remove = append(out.Remove, f.Remove...)
	return out
}

func redirect(f *gwv1.HTTPRequestRedirectFilter, matches []ir.Match) (*ir.Redirect, error) {
	r := &ir.Redirect{StatusCode: http.StatusFound}
	if f.StatusCode != nil {
		switch *f.StatusCode {
		case 301, 302, 303, 307, 308:
			r.StatusCode = *f.StatusCode
		default:
			return nil, fmt.Errorf("statusCode %d is not a redirect code (301, 302, 303, 307, 308)", *f.StatusCode)
		}
	}
	if f.Scheme != nil {
		s := strings.ToLower(*f.Scheme)
		if s != "http" && s != "https" {
			return nil, fmt.Errorf("scheme %q must be http or https", *f.Scheme)
		}
		r.Scheme = s
	}
	if f.Hostname != nil {
		r.Hostname = string(*f.Hostname)
	}
	if f.Port != nil {
		r.Port = uint32(*f.Port)
	}
	if f.Path != nil {
		pm, err := pathModifier(f.Path, matches)
		if err != nil {
			return nil, err
		}
		r.Path = pm
	}
	return r, nil
}

func pathModifier(p *gwv1.HTTPPathModifier, matches []ir.Match) (*ir.PathModifier, error) {
	switch p.Type {
	case gwv1.FullPathHTTPPathModifier:
		if p.ReplaceFullPath == nil {
			return nil, errors.New("path.replaceFullPath is not set")
		}
		return &ir.PathModifier{Type: ir.FullPath, Value: *p.ReplaceFullPath}, nil
	case gwv1.PrefixMatchHTTPPathModifier:
		if p.ReplacePrefixMatch == nil {
			return nil, errors.New("path.replacePrefixMatch is not set")
		}
		if len(matches) != 1 || matches[0].Path.Type != ir.PathPrefix {
			return nil, errors.New("path.replacePrefixMatch needs the rule to have exactly one match, a PathPrefix match")
		}
		return &ir.PathModifier{Type: ir.PrefixPath, Value: *p.ReplacePrefixMatch}, nil
	}
	return nil, fmt.Errorf("path type %q is not supported", p.Type)
}

func mirrorFraction(m *gwv1.HTTPRequestMirrorFilter) (ir.Mirror, error) {
	out := ir.Mirror{Numerator: 1, Denominator: 1}
	switch {
	case m.Percent != nil && m.Fraction != nil:
		return out, errors.New("set percent or fraction, not both")
	case m.Percent != nil:
		if *m.Percent < 0 || *m.Percent > 100 {
			return out, fmt.Errorf("percent %d is outside 0-100", *m.Percent)
		}
		out.Numerator, out.Denominator = *m.Percent, 100
	case m.Fraction != nil:
		den := int32(100)
		if m.Fraction.Denominator != nil {
			den = *m.Fraction.Denominator
		}
		if den <= 0 || m.Fraction.Numerator < 0 || m.Fraction.Numerator > den {
			return out, fmt.Errorf("fraction %d/%d must be between 0 and 1", m.Fraction.Numerator, den)
		}
		out.Numerator, out.Denominator = m.Fraction.Numerator, den
	}
	return out, nil
}

func cors(f *gwv1.HTTPCORSFilter) (*ir.CORS, error) {
	out := &ir.CORS{MaxAgeSeconds: f.MaxAge}
	if f.MaxAge == 0 {
		out.MaxAgeSeconds = 5 // the API's default
	}
	for _, o := range f.AllowOrigins {
		out.AllowOrigins = append(out.AllowOrigins, string(o))
	}
	if f.AllowCredentials != nil {
		out.AllowCredentials = *f.AllowCredentials
	}
	for _, m := range f.AllowMethods {
		out.AllowMethods = append(out.AllowMethods, string(m))
	}
	for _, h := range f.AllowHeaders {
		out.AllowHeaders = append(out.AllowHeaders, string(h))
	}
	for _, h := range f.ExposeHeaders {
		out.ExposeHeaders = append(out.ExposeHeaders, string(h))
	}
	return out, nil
}
