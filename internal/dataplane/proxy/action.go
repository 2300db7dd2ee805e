// Package proxy serves HTTP requests for one port: it finds the route, applies its
// filters, and forwards to a weighted backend with timeouts, retries and mirrors.
package proxy

import (
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/portico-gw/portico/internal/dataplane/filter"
	"github.com/portico-gw/portico/internal/dataplane/upstream"
	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/telemetry"
)

// Action is a compiled IR route: everything ServeHTTP needs, resolved at Apply time.
type Action struct {
	Name     string
	RuleName string

	reqHeaders  *filter.Headers
	respHeaders *filter.Headers
	redirect    *filter.Redirect
	rewrite     *filter.Rewrite
	cors        *filter.CORS
	direct      *ir.DirectResponse

	backends []backend
	total    uint64   // sum of weights
	schedule []uint16 // backend index per request, repeating (see buildSchedule)
	next     atomic.Uint64
	mirrors  []mirror

	requestTimeout time.Duration
	backendTimeout time.Duration
	retry          *retryPolicy
	grpc           bool

	metrics *telemetry.RouteMetrics // nil when metrics are off
}

type backend struct {
	cluster     *upstream.Cluster // nil: the reference is invalid, answer 500
	invalid     string
	upTo        uint64 // cumulative weight
	reqHeaders  *filter.Headers
	respHeaders *filter.Headers
}

type mirror struct {
	cluster     *upstream.Cluster
	numerator   uint64
	denominator uint64
	counter     *atomic.Uint64
}

type retryPolicy struct {
	attempts int
	codes    [6]uint64 // bitset over 0..383 for status-200 (4xx and 5xx)
	backoff  time.Duration
}

func (p *retryPolicy) retriable(code int) bool {
	i := code - 200
	if i < 0 || i >= 64*6 {
		return false
	}
	return p.codes[i/64]&(1<<(i%64)) != 0
}

// Compile builds the action of one IR route against the config's clusters.
//
// With metrics on, the route's metric handles are resolved here, once per config.
func Compile(l *ir.Listener, r *ir.Route, clusters upstream.Set, met *telemetry.Metrics) (*Action, error) {
	a := &Action{
		Name:        r.Name,
		RuleName:    r.RuleName,
		reqHeaders:  filter.CompileHeaders(r.RequestHeaders),
		respHeaders: filter.CompileHeaders(r.ResponseHeaders),
		cors:        filter.CompileCORS(r.CORS),
		direct:      r.DirectResponse,
		grpc:        r.GRPC,
	}
	prefix := ""
	if r.Match.Path.Type == ir.PathPrefix {
		prefix = r.Match.Path.Value
	}
	a.redirect = filter.CompileRedirect(r.Redirect, prefix)
	a.rewrite = filter.CompileRewrite(r.Rewrite, prefix)
	for _, b := range r.Backends {
		if b.Weight == 0 {
			continue
		}
		be := backend{invalid: b.Invalid, reqHeaders: filter.CompileHeaders(b.RequestHeaders), respHeaders: filter.CompileHeaders(b.ResponseHeaders)}
		if b.Cluster != "" {
			c, ok := clusters[b.Cluster]
			if !ok {
				return nil, fmt.Errorf("backend cluster %q is not defined", b.Cluster)
			}
			be.cluster = c
		} else if be.invalid == "" {
			be.invalid = "invalid backend reference"
		}
		a.total += uint64(b.Weight)
		be.upTo = a.total
		a.backends = append(a.backends, be)
	}
	a.buildSchedule()
	for _, m := range r.Mirrors {
		c, ok := clusters[m.Cluster]
		if !ok {
			return nil, fmt.Errorf("mirror cluster %q is not defined", m.Cluster)
		}
		if m.Denominator <= 0 || m.Numerator < 0 {
			return nil, fmt.Errorf("mirror fraction %d/%d is invalid", m.Numerator, m.Denominator)
		}
		a.mirrors = append(a.mirrors, mirror{cluster: c, numerator: uint64(m.Numerator), denominator: uint64(m.Denominator), counter: new(atomic.Uint64)})
	}
	if t := r.Timeouts; t != nil {
		var err error
		if a.requestTimeout, err = parseDuration(t.Request); err != nil {
			return nil, fmt.Errorf("timeouts.request: %w", err)
		}
		if a.backendTimeout, err = parseDuration(t.BackendRequest); err != nil {
			return nil, fmt.Errorf("timeouts.backendRequest: %w", err)
		}
	}
	if rt := r.Retry; rt != nil && rt.Attempts > 0 {
		p := &retryPolicy{attempts: rt.Attempts}
		for _, c := range rt.Codes {
			if i := c - 200; i >= 0 && i < 64*6 {
				p.codes[i/64] |= 1 << (i % 64)
			}
		}
		var err error
		if p.backoff, err = parseDuration(rt.Backoff); err != nil {
			return nil, fmt.Errorf("retry.backoff: %w", err)
		}
		a.retry = p
	}
	if met != nil {
		a.metrics = met.Route(l.Name, r.Name)
	}
	return a, nil
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %s", s)
	}
	return d, nil
}

// pickBackend chooses a backend by weight, spreading requests evenly: the counter walks
// a schedule built at compile time (smooth weighted round robin over the weights reduced
// by their common divisor), so 80/20 sends exactly 4 of every 5 requests to the first,
// interleaved rather than in bursts.
func (a *Action) pickBackend() *backend {
	switch len(a.backends) {
	case 0:
		return nil
	case 1:
		return &a.backends[0]
	}
	n := a.next.Add(1) - 1
	if len(a.schedule) > 0 {
		return &a.backends[a.schedule[n%uint64(len(a.schedule))]]
	}
	n %= a.total
	i := sort.Search(len(a.backends), func(i int) bool { return a.backends[i].upTo > n })
	return &a.backends[i]
}

// maxSchedule bounds the precomputed schedule; beyond it (weights with no common
// divisor summing past it) picks walk the cumulative weights instead.
const maxSchedule = 4096

// buildSchedule computes the smooth weighted round robin order of the backends.
func (a *Action) buildSchedule() {
	if len(a.backends) < 2 {
		return
	}
	weights := make([]uint64, len(a.backends))
	var prev uint64
	g := uint64(0)
	for i, b := range a.backends {
		weights[i] = b.upTo - prev
		prev = b.upTo
		g = gcd(g, weights[i])
	}
	var total uint64
	for i := range weights {
		weights[i] /= g
		total += weights[i]
	}
	if total > maxSchedule {
		return
	}
	current := make([]int64, len(weights))
	a.schedule = make([]uint16, total)
	for s := range a.schedule {
		best := 0
		for i, w := range weights {
			current[i] += int64(w)
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= int64(total)
		a.schedule[s] = uint16(best)
	}
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// mirrorThis reports whether this request is among the mirror's fraction.
func (m *mirror) mirrorThis() bool {
	if m.numerator >= m.denominator {
		return true
	}
	if m.numerator == 0 {
		return false
	}
	n := (m.counter.Add(1) - 1) % m.denominator
	// Spread the chosen requests: request n is mirrored when the running share crosses
	// an integer (Bresenham), rather than mirroring a burst and then nothing.
	return (n+1)*m.numerator/m.denominator != n*m.numerator/m.denominator
}

// Metrics returns the route's metric handles (nil when metrics are off).
func (a *Action) Metrics() *telemetry.RouteMetrics { return a.metrics }
