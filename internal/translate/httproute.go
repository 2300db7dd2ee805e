package translate

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/ir"
)

func (t *translator) translateHTTPRoute(r *gwv1.HTTPRoute) {
	rules := r.Spec.Rules
	if len(rules) == 0 {
		rules = []gwv1.HTTPRouteRule{{}} // the API server's default: one catch-all rule
	}
	t.translateHTTPFamilyRoute(httpFamilyRoute{
		info: routeInfo{
			kind: "HTTPRoute", meta: r.ObjectMeta, parentRefs: r.Spec.ParentRefs,
			hostnames: hostnameStrings(r.Spec.Hostnames), usesHostnames: true,
		},
		family: familyHTTP,
		rules:  len(rules),
		name:   func(i int) *gwv1.SectionName { return rules[i].Name },
		translate: func(i int, use routeUse, refs *problems) ([]routeEntry, error) {
			return t.httpRule(r, i, &rules[i], use, refs)
		},
	})
}

// httpFamilyRoute is what HTTPRoutes and GRPCRoutes share in translation.
type httpFamilyRoute struct {
	info      routeInfo
	family    routeFamily
	rules     int
	name      func(rule int) *gwv1.SectionName
	translate func(rule int, use routeUse, refs *problems) ([]routeEntry, error)
}

// translateHTTPFamilyRoute attaches a route, translates its rules, and programs the
// valid ones on every listener and hostname it attached to. Invalid rules are dropped
// and reported with PartiallyInvalid; a route whose every rule is invalid is not
// accepted. Hostnames are claimed (against the other route family) only by routes that
// end up serving something.
func (t *translator) translateHTTPFamilyRoute(r httpFamilyRoute) {
	info := r.info
	parents := t.attach(info)
	if len(parents) == 0 {
		return
	}
	use := routeUse{from: refFrom{gatewayGroup, info.kind, info.meta.Namespace}, gateways: gatewaysOf(parents), originateTLS: true}
	if r.family == familyGRPC {
		use.want = ir.UpstreamH2C
	}
	var resolved, invalid problems
	var entries []routeEntry
	invalidRules := 0
	for i := range r.rules {
		// A rule that turns out invalid is dropped whole: its references must not
		// count towards ResolvedRefs, so they are collected per rule.
		var ruleRefs problems
		es, err := r.translate(i, use, &ruleRefs)
		if err != nil {
			invalidRules++
			invalid.add(ruleErrorReason(err), "rule %s: %v", ruleLabel(i, r.name(i)), err)
			continue
		}
		resolved.merge(&ruleRefs)
		entries = append(entries, es...)
	}
	gen := info.meta.Generation
	if invalidRules == r.rules {
		for _, p := range parents {
			for _, a := range p.attachments {
				delete(a.listener.attached, info.id())
			}
			if p.accepted() {
				p.attachments = nil
				p.status.Conditions = setCondition(p.status.Conditions, condition(string(gwv1.RouteConditionAccepted), false,
					invalid.reason, gen, "no rule is valid: "+invalid.message()))
			}
		}
		t.finishRoute(info, parents, resolved)
		return
	}
	claimHostnames(info, parents, r.family)
	// Two parentRefs can select the same listener (by name and by port, say): add the
	// route's entries once per listener and hostname.
	type target struct {
		l    *listenerState
		host string
	}
	done := map[target]bool{}
	for _, p := range parents {
		if p.accepted() && invalidRules > 0 {
			p.status.Conditions = append(p.status.Conditions, condition(string(gwv1.RouteConditionPartiallyInvalid), true,
				string(gwv1.RouteReasonUnsupportedValue), gen, "Dropped Rule(s): "+invalid.message()))
		}
		for _, a := range p.attachments {
			for _, h := range a.hostnames {
				if !done[target{a.listener, h}] {
					done[target{a.listener, h}] = true
					a.listener.addRoutes(h, entries)
				}
			}
		}
	}
	t.finishRoute(info, parents, resolved)
}

func ruleLabel(i int, name *gwv1.SectionName) string {
	if name != nil && *name != "" {
		return fmt.Sprintf("%d (%s)", i, *name)
	}
	return fmt.Sprint(i)
}

func gatewaysOf(parents []*parentResult) []*gatewayState {
	var out []*gatewayState
	for _, p := range parents {
		for _, a := range p.attachments {
			if len(out) == 0 || out[len(out)-1] != a.listener.gw {
				out = append(out, a.listener.gw)
			}
		}
	}
	return out
}

// errIncompatibleFilters marks rule errors caused by filters that cannot be combined.
var errIncompatibleFilters = errors.New("incompatible filters")

func ruleErrorReason(err error) string {
	if errors.Is(err, errIncompatibleFilters) {
		return string(gwv1.RouteReasonIncompatibleFilters)
	}
	return string(gwv1.RouteReasonUnsupportedValue)
}

// httpRule translates one rule into one route entry per match. Backend problems go to
// resolved (the rule still serves, with 500 for the unresolved share); an error means
// the rule cannot be served at all.
func (t *translator) httpRule(r *gwv1.HTTPRoute, idx int, rule *gwv1.HTTPRouteRule, use routeUse, resolved *problems) ([]routeEntry, error) {
	base := ir.Route{}
	if rule.Name != nil {
		base.RuleName = string(*rule.Name)
	}
	matches := rule.Matches
	if len(matches) == 0 {
		matches = []gwv1.HTTPRouteMatch{{}}
	}
	irMatches := make([]ir.Match, len(matches))
	for i := range matches {
		m, err := httpMatch(&matches[i])
		if err != nil {
			return nil, fmt.Errorf("matches[%d]: %w", i, err)
		}
		irMatches[i] = m
	}
	if err := t.applyHTTPFilters(&base, rule.Filters, use, resolved, irMatches); err != nil {
		return nil, err
	}
	if rule.SessionPersistence != nil {
		return nil, errors.New("sessionPersistence is not supported")
	}
	if err := applyTimeouts(&base, rule.Timeouts); err != nil {
		return nil, err
	}
	if err := applyRetry(&base, rule.Retry); err != nil {
		return nil, err
	}
	if base.Redirect != nil && len(rule.BackendRefs) > 0 {
		return nil, fmt.Errorf("a RequestRedirect filter cannot be combined with backendRefs: %w", errIncompatibleFilters)
	}
	for i, br := range rule.BackendRefs {
		b, err := t.httpBackend(br, use, resolved)
		if err != nil {
			return nil, fmt.Errorf("backendRefs[%d]: %w", i, err)
		}
		base.Backends = append(base.Backends, b)
	}
	if base.Redirect == nil && base.DirectResponse == nil && len(base.Backends) == 0 {
		base.DirectResponse = &ir.DirectResponse{StatusCode: http.StatusInternalServerError, Body: "no backend for this rule"}
	}
	return t.expandMatches(base, &r.ObjectMeta, "httproute", idx, irMatches), nil
}

// expandMatches makes one IR route per match of a rule.
func (t *translator) expandMatches(base ir.Route, meta metaLike, kind string, ruleIdx int, matches []ir.Match) []routeEntry {
	out := make([]routeEntry, len(matches))
	for i, m := range matches {
		rt := base
		rt.Match = m
		rt.Name = fmt.Sprintf("%s/%s/%s/rule/%d/match/%d", kind, meta.GetNamespace(), meta.GetName(), ruleIdx, i)
		out[i] = routeEntry{route: rt, key: precedence{
			pathRank: pathRank(m.Path.Type),
			pathLen:  len(m.Path.Value),
			method:   m.Method != "",
			headers:  len(m.Headers),
			query:    len(m.QueryParams),
			created:  meta.GetCreationTimestamp().Unix(),
			route:    meta.GetNamespace() + "/" + meta.GetName(),
			rule:     ruleIdx,
			match:    i,
		}}
	}
	return out
}

// httpMatch validates and converts one match.
func httpMatch(m *gwv1.HTTPRouteMatch) (ir.Match, error) {
	out := ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}}
	if p := m.Path; p != nil {
		if p.Type != nil {
			out.Path.Type = ir.PathMatchType(*p.Type)
		}
		if p.Value != nil {
			out.Path.Value = *p.Value
		}
		switch out.Path.Type {
		case ir.PathExact, ir.PathPrefix:
			if !strings.HasPrefix(out.Path.Value, "/") {
				return ir.Match{}, fmt.Errorf("path %q must start with /", out.Path.Value)
			}
			if err := validatePath(out.Path.Value); err != nil {
				return ir.Match{}, err
			}
			if out.Path.Type == ir.PathPrefix && len(out.Path.Value) > 1 {
				out.Path.Value = strings.TrimSuffix(out.Path.Value, "/")
			}
		case ir.PathRegex:
			if _, err := regexp.Compile(out.Path.Value); err != nil {
				return ir.Match{}, fmt.Errorf("path regex %q: %w", out.Path.Value, err)
			}
		default:
			return ir.Match{}, fmt.Errorf("path match type %q is not supported", out.Path.Type)
		}
	}
	headers, err := headerMatches(len(m.Headers), func(i int) (string, *string, string) {
		return string(m.Headers[i].Name), (*string)(m.Headers[i].Type), m.Headers[i].Value
	})
	if err != nil {
		return ir.Match{}, err
	}
	out.Headers = headers
	seenQ := map[string]bool{}
	for _, q := range m.QueryParams {
		name := string(q.Name)
		if seenQ[name] {
			continue
		}
		seenQ[name] = true
		sm, err := stringMatch(name, (*string)(q.Type), q.Value)
		if err != nil {
			return ir.Match{}, fmt.Errorf("query parameter %s: %w", q.Name, err)
		}
		out.QueryParams = append(out.QueryParams, sm)
	}
	if m.Method != nil {
		out.Method = string(*m.Method)
	}
	return out, nil
}

// validPathChars is the character set the API allows in Exact and PathPrefix values.
var validPathChars = regexp.MustCompile(`^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$`)

// validatePath applies the API server's checks on Exact and PathPrefix values, so a
// folder of YAML is held to the same rules as a cluster.
func validatePath(p string) error {
	for _, bad := range []string{"//", "/./", "/../", "%2f", "%2F", "#"} {
		if strings.Contains(p, bad) {
			return fmt.Errorf("path %q must not contain %q", p, bad)
		}
	}
	if strings.HasSuffix(p, "/..") || strings.HasSuffix(p, "/.") {
		return fmt.Errorf("path %q must not end with %q or %q", p, "/.", "/..")
	}
	if !validPathChars.MatchString(p) {
		return fmt.Errorf("path %q has characters that are not allowed in a URL path", p)
	}
	return nil
}

// headerMatches converts header matches (HTTP or gRPC); only the first match for a
// header name counts, as the API says.
func headerMatches(n int, get func(i int) (name string, typ *string, value string)) ([]ir.StringMatch, error) {
	var out []ir.StringMatch
	seen := map[string]bool{}
	for i := range n {
		raw, typ, value := get(i)
		name := http.CanonicalHeaderKey(raw)
		if seen[name] {
			continue
		}
		seen[name] = true
		sm, err := stringMatch(name, typ, value)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", raw, err)
		}
		out = append(out, sm)
	}
	return out, nil
}

func stringMatch(name string, typ *string, value string) (ir.StringMatch, error) {
	t := ir.MatchExact
	if typ != nil {
		t = ir.StringMatchType(*typ)
	}
	switch t {
	case ir.MatchExact:
	case ir.MatchRegex:
		if _, err := regexp.Compile(value); err != nil {
			return ir.StringMatch{}, fmt.Errorf("regex %q: %w", value, err)
		}
	default:
		return ir.StringMatch{}, fmt.Errorf("match type %q is not supported", t)
	}
	if name == "" {
		return ir.StringMatch{}, errors.New("name is empty")
	}
	return ir.StringMatch{Name: name, Type: t, Value: value}, nil
}

// applyTimeouts validates GEP-2257 durations; "0s" disables a timeout.
func applyTimeouts(rt *ir.Route, to *gwv1.HTTPRouteTimeouts) error {
	if to == nil {
		return nil
	}
	var req, backend time.Duration
	var err error
	out := &ir.Timeouts{}
	if to.Request != nil {
		if req, err = parseDuration(string(*to.Request)); err != nil {
			return fmt.Errorf("timeouts.request: %w", err)
		}
		out.Request = req.String() // "0s" (no timeout) is kept: a policy's default must not replace it
	}
	if to.BackendRequest != nil {
		if backend, err = parseDuration(string(*to.BackendRequest)); err != nil {
			return fmt.Errorf("timeouts.backendRequest: %w", err)
		}
		out.BackendRequest = backend.String()
	}
	if req > 0 && backend > req {
		return fmt.Errorf("timeouts.backendRequest %s is longer than timeouts.request %s", backend, req)
	}
	if *out != (ir.Timeouts{}) {
		rt.Timeouts = out
	}
	return nil
}

// gepDuration is the Gateway API duration format: units h, m, s, ms, no fractions.
var gepDuration = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

func parseDuration(s string) (time.Duration, error) {
	if !gepDuration.MatchString(s) {
		return 0, fmt.Errorf("%q is not a Gateway API duration (like 10s, 1m30s or 500ms)", s)
	}
	return time.ParseDuration(s)
}

func applyRetry(rt *ir.Route, r *gwv1.HTTPRouteRetry) error {
	if r == nil {
		return nil
	}
	out := &ir.Retry{Attempts: 1}
	if r.Attempts != nil {
		if *r.Attempts < 0 {
			return fmt.Errorf("retry.attempts must not be negative")
		}
		out.Attempts = *r.Attempts
	}
	for _, c := range r.Codes {
		if c < 400 || c > 599 {
			return fmt.Errorf("retry.codes: %d is not a 4xx or 5xx status", c)
		}
		out.Codes = append(out.Codes, int(c))
	}
	if r.Backoff != nil {
		d, err := parseDuration(string(*r.Backoff))
		if err != nil {
			return fmt.Errorf("retry.backoff: %w", err)
		}
		out.Backoff = d.String()
	}
	if out.Attempts > 0 {
		rt.Retry = out
	}
	return nil
}

// httpBackend resolves one backendRef. An unresolvable reference becomes a backend that
// answers 500, and its problem goes to resolved.
func (t *translator) httpBackend(br gwv1.HTTPBackendRef, use routeUse, resolved *problems) (ir.Backend, error) {
	weight := uint32(1)
	if br.Weight != nil {
		if *br.Weight < 0 {
			return ir.Backend{}, fmt.Errorf("weight must not be negative")
		}
		weight = uint32(*br.Weight)
	}
	b := ir.Backend{Weight: weight}
	for i, f := range br.Filters {
		switch f.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			if b.RequestHeaders != nil || f.RequestHeaderModifier == nil {
				return ir.Backend{}, fmt.Errorf("filters[%d]: RequestHeaderModifier must appear once and be set", i)
			}
			b.RequestHeaders = headerModifier(f.RequestHeaderModifier)
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			if b.ResponseHeaders != nil || f.ResponseHeaderModifier == nil {
				return ir.Backend{}, fmt.Errorf("filters[%d]: ResponseHeaderModifier must appear once and be set", i)
			}
			b.ResponseHeaders = headerModifier(f.ResponseHeaderModifier)
		default:
			return ir.Backend{}, fmt.Errorf("filters[%d]: %s is not supported on a backendRef (only header modifiers are)", i, f.Type)
		}
	}
	cluster, err := t.backends.resolve(use, br.BackendObjectReference)
	if err != nil {
		resolved.add(err.reason, "%s", err.msg)
		b.Invalid = err.msg
		return b, nil
	}
	b.Cluster = cluster
	return b, nil
}
