package translate

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/ir"
)

// translateHTTPFamily translates HTTPRoutes and GRPCRoutes together, oldest first (then
// by namespace/name), so that where the two kinds claim the same hostname on a listener
// the older route wins, as the spec requires.
func (t *translator) translateHTTPFamily() {
	type item struct {
		meta *metav1.ObjectMeta
		kind string
		http *gwv1.HTTPRoute
		grpc *gwv1.GRPCRoute
	}
	var items []item
	for _, r := range t.snap.HTTPRoutes {
		items = append(items, item{meta: &r.ObjectMeta, kind: "HTTPRoute", http: r})
	}
	for _, r := range t.snap.GRPCRoutes {
		items = append(items, item{meta: &r.ObjectMeta, kind: "GRPCRoute", grpc: r})
	}
	slices.SortFunc(items, func(a, b item) int {
		return cmp.Or(a.meta.CreationTimestamp.Compare(b.meta.CreationTimestamp.Time),
			cmp.Compare(a.meta.Namespace+"/"+a.meta.Name, b.meta.Namespace+"/"+b.meta.Name),
			cmp.Compare(a.kind, b.kind))
	})
	for _, it := range items {
		if it.http != nil {
			t.translateHTTPRoute(it.http)
		} else {
			t.translateGRPCRoute(it.grpc)
		}
	}
}

func (t *translator) translateGRPCRoute(r *gwv1.GRPCRoute) {
	rules := r.Spec.Rules
	if len(rules) == 0 {
		rules = []gwv1.GRPCRouteRule{{}}
	}
	t.translateHTTPFamilyRoute(httpFamilyRoute{
		info: routeInfo{
			kind: "GRPCRoute", meta: r.ObjectMeta, parentRefs: r.Spec.ParentRefs,
			hostnames: hostnameStrings(r.Spec.Hostnames), usesHostnames: true,
		},
		family: familyGRPC,
		rules:  len(rules),
		name:   func(i int) *gwv1.SectionName { return rules[i].Name },
		translate: func(i int, use routeUse, refs *problems) ([]routeEntry, error) {
			return t.grpcRule(r, i, &rules[i], use, refs)
		},
	})
}

func (t *translator) grpcRule(r *gwv1.GRPCRoute, idx int, rule *gwv1.GRPCRouteRule, use routeUse, resolved *problems) ([]routeEntry, error) {
	base := ir.Route{GRPC: true}
	if rule.Name != nil {
		base.RuleName = string(*rule.Name)
	}
	matches := rule.Matches
	if len(matches) == 0 {
		matches = []gwv1.GRPCRouteMatch{{}}
	}
	irMatches := make([]ir.Match, len(matches))
	ranks := make([][2]int, len(matches))
	for i := range matches {
		m, err := grpcMatch(&matches[i])
		if err != nil {
			return nil, fmt.Errorf("matches[%d]: %w", i, err)
		}
		irMatches[i] = m
		if mm := matches[i].Method; mm != nil {
			ranks[i] = [2]int{len(ptrValue(mm.Service)), len(ptrValue(mm.Method))}
		}
	}
	// GRPCRoute filters are a subset of HTTPRoute's with the same shapes.
	httpFilters := make([]gwv1.HTTPRouteFilter, len(rule.Filters))
	for i, f := range rule.Filters {
		switch f.Type {
		case gwv1.GRPCRouteFilterRequestHeaderModifier, gwv1.GRPCRouteFilterResponseHeaderModifier,
			gwv1.GRPCRouteFilterRequestMirror, gwv1.GRPCRouteFilterExtensionRef:
		default:
			return nil, fmt.Errorf("filters[%d]: filter type %q is not supported", i, f.Type)
		}
		httpFilters[i] = gwv1.HTTPRouteFilter{
			Type:                   gwv1.HTTPRouteFilterType(f.Type),
			RequestHeaderModifier:  f.RequestHeaderModifier,
			ResponseHeaderModifier: f.ResponseHeaderModifier,
			RequestMirror:          f.RequestMirror,
			ExtensionRef:           f.ExtensionRef,
		}
	}
	if err := t.applyHTTPFilters(&base, httpFilters, use, resolved, irMatches); err != nil {
		return nil, err
	}
	if rule.SessionPersistence != nil {
		return nil, errors.New("sessionPersistence is not supported")
	}
	for i, br := range rule.BackendRefs {
		hbr := gwv1.HTTPBackendRef{BackendRef: br.BackendRef}
		for _, f := range br.Filters {
			hbr.Filters = append(hbr.Filters, gwv1.HTTPRouteFilter{
				Type:                   gwv1.HTTPRouteFilterType(f.Type),
				RequestHeaderModifier:  f.RequestHeaderModifier,
				ResponseHeaderModifier: f.ResponseHeaderModifier,
			})
		}
		b, err := t.httpBackend(hbr, use, resolved)
		if err != nil {
			return nil, fmt.Errorf("backendRefs[%d]: %w", i, err)
		}
		base.Backends = append(base.Backends, b)
	}
	if base.DirectResponse == nil && len(base.Backends) == 0 {
		base.DirectResponse = &ir.DirectResponse{StatusCode: http.StatusInternalServerError, Body: "no backend for this rule"}
	}
	entries := t.expandMatches(base, &r.ObjectMeta, "grpcroute", idx, irMatches)
	// GRPCRoute precedence: service length, then method length, then headers; the
	// translated path says nothing useful about it.
	for i := range entries {
		k := &entries[i].key
		k.pathRank, k.pathLen = 0, 0
		k.grpcService, k.grpcMethod = ranks[i][0], ranks[i][1]
	}
	return entries, nil
}

func ptrValue(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// grpcMatch turns a gRPC service/method match into a path match on "/service/method".
func grpcMatch(m *gwv1.GRPCRouteMatch) (ir.Match, error) {
	out := ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}}
	if mm := m.Method; mm != nil {
		typ := gwv1.GRPCMethodMatchExact
		if mm.Type != nil {
			typ = *mm.Type
		}
		svc, method := "", ""
		if mm.Service != nil {
			svc = *mm.Service
		}
		if mm.Method != nil {
			method = *mm.Method
		}
		if svc == "" && method == "" {
			return ir.Match{}, errors.New("method match needs a service or a method")
		}
		switch typ {
		case gwv1.GRPCMethodMatchExact:
			switch {
			case svc != "" && method != "":
				out.Path = ir.PathMatch{Type: ir.PathExact, Value: "/" + svc + "/" + method}
			case svc != "":
				out.Path = ir.PathMatch{Type: ir.PathPrefix, Value: "/" + svc}
			default:
				out.Path = ir.PathMatch{Type: ir.PathRegex, Value: "/[^/]+/" + regexp.QuoteMeta(method)}
			}
		case gwv1.GRPCMethodMatchRegularExpression:
			if svc == "" {
				svc = "[^/]+"
			}
			if method == "" {
				method = "[^/]+"
			}
			for _, re := range []string{svc, method} {
				if _, err := regexp.Compile(re); err != nil {
					return ir.Match{}, fmt.Errorf("method regex %q: %w", re, err)
				}
			}
			out.Path = ir.PathMatch{Type: ir.PathRegex, Value: "/(?:" + svc + ")/(?:" + method + ")"}
		default:
			return ir.Match{}, fmt.Errorf("method match type %q is not supported", typ)
		}
	}
	headers, err := headerMatches(len(m.Headers), func(i int) (string, *string, string) {
		return string(m.Headers[i].Name), (*string)(m.Headers[i].Type), m.Headers[i].Value
	})
	if err != nil {
		return ir.Match{}, err
	}
	out.Headers = headers
	return out, nil
}
