package telemetry

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are Portico's Prometheus metrics, in a registry of their own (served by the
// admin API's /metrics). Labels are bounded by the config: gateway, listener, route
// (the HTTPRoute or GRPCRoute, not its rules or matches), cluster, and the response
// code's class; never a path, a host or a client.
type Metrics struct {
	Registry *prometheus.Registry

	requests         *prometheus.CounterVec   // gateway, listener, route, code_class
	duration         *prometheus.HistogramVec // gateway, listener, route
	upstreamDuration *prometheus.HistogramVec // gateway, listener
	upstreamSeconds  *prometheus.CounterVec   // gateway, listener, route
	upstreamRequests *prometheus.CounterVec   // gateway, listener, route
	requestBytes     *prometheus.CounterVec   // gateway, listener, route
	responseBytes    *prometheus.CounterVec   // gateway, listener, route
	retries          *prometheus.CounterVec   // gateway, listener, route
	timeouts         *prometheus.CounterVec   // gateway, listener, route
	active           *prometheus.GaugeVec     // gateway, listener
	connMu           sync.Mutex
	connCounters     map[*ConnCounter]struct{} // one per bound socket, summed by address at scrape

	// Control plane.
	applies         *prometheus.CounterVec // result
	translate       prometheus.Histogram
	propagation     prometheus.Histogram
	objects         *prometheus.GaugeVec // kind, status
	lastApply       prometheus.Gauge
	logDropped      prometheus.CounterFunc
	accessLog       atomic.Pointer[AccessLog]
	clusterSource   atomic.Pointer[func() []ClusterStats]
	routesMu        sync.Mutex
	routes          map[routeKey]*RouteMetrics
	listenersMu     sync.Mutex
	listenerMetrics map[listenerKey]*ListenerMetrics
}

// Buckets of the request duration histograms, in seconds: few enough to keep series
// per route low, spread over what a gateway sees (a cache hit to a slow report).
var durationBuckets = []float64{0.005, 0.025, 0.1, 0.5, 2.5, 10}

// NewMetrics creates the metrics and registers them, with Go runtime and process
// collectors, in a new registry.
func NewMetrics() *Metrics {
	route := []string{"gateway", "listener", "route"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: counter("portico_http_requests_total", "HTTP requests answered, by route and response code class (1xx..5xx). Requests no route matched have route=\"\".", append(route, "code_class")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "portico_http_request_duration_seconds", Help: "Time from a request's arrival to the end of its response.", Buckets: durationBuckets,
		}, route),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "portico_http_upstream_duration_seconds", Help: "Time from sending a request upstream to the end of the upstream's response, per listener.", Buckets: durationBuckets,
		}, []string{"gateway", "listener"}),
		upstreamSeconds:  counter("portico_http_upstream_seconds_total", "Total upstream time of forwarded requests, per route (divide by portico_http_upstream_requests_total for the mean).", route),
		upstreamRequests: counter("portico_http_upstream_requests_total", "Requests forwarded upstream (each counted once, whatever its retries), per route.", route),
		requestBytes:     counter("portico_http_request_body_bytes_total", "Request body bytes received from clients.", route),
		responseBytes:    counter("portico_http_response_body_bytes_total", "Response body bytes sent to clients.", route),
		retries:          counter("portico_http_retries_total", "Upstream attempts beyond the first.", route),
		timeouts:         counter("portico_http_timeouts_total", "Requests ended by the route's request or backend timeout.", route),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portico_http_active_requests", Help: "Requests being served.",
		}, []string{"gateway", "listener"}),
		connCounters: map[*ConnCounter]struct{}{},
		applies:      counter("portico_config_applies_total", "Configs applied to the data plane (result=ok) or refused (result=error).", []string{"result"}),
		translate: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "portico_translate_duration_seconds", Help: "Time to translate the inputs into routing config and status.",
			Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.5, 1, 5},
		}),
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "portico_config_propagation_seconds", Help: "Time from an input change being noticed to its config serving traffic.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 5},
		}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portico_objects", Help: "Input objects by kind and status (accepted, not_accepted, unresolved_refs).",
		}, []string{"kind", "status"}),
		lastApply: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portico_config_last_apply_timestamp_seconds", Help: "When the last config was applied successfully (Unix time).",
		}),
		routes:          map[routeKey]*RouteMetrics{},
		listenerMetrics: map[listenerKey]*ListenerMetrics{},
	}
	m.logDropped = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "portico_access_log_dropped_total", Help: "Access log entries dropped because the writer fell behind.",
	}, func() float64 {
		if l := m.accessLog.Load(); l != nil {
			return float64(l.Dropped())
		}
		return 0
	})
	m.Registry.MustRegister(m.requests, m.duration, m.upstreamDuration, m.upstreamSeconds, m.upstreamRequests,
		m.requestBytes, m.responseBytes, m.retries, m.timeouts, m.active,
		m.applies, m.translate, m.propagation, m.objects, m.lastApply, m.logDropped,
		clusterCollector{m}, connCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchAccessLog makes portico_access_log_dropped_total follow l.
func (m *Metrics) WatchAccessLog(l *AccessLog) { m.accessLog.Store(l) }

// SetClusterSource sets what the per-cluster gauges read at scrape time.
func (m *Metrics) SetClusterSource(f func() []ClusterStats) { m.clusterSource.Store(&f) }

// ClusterStats is a cluster's state at scrape time.
type ClusterStats struct {
	Name      string
	Endpoints int
	// Pooled connections of Portico's HTTP/1.1 pool; -1 for clusters on net/http's
	// transport, which does not tell.
	IdleConns, ActiveConns int
}

type routeKey struct{ gateway, listener, route string }
type listenerKey struct{ gateway, listener string }

// RouteMetrics are one route's metric handles on one listener, resolved once at config
// time so that a request costs a few atomic adds.
type RouteMetrics struct {
	key              routeKey
	m                *Metrics
	dead             bool                                  // removed by Retain; guarded by m.routesMu
	classes          [6]atomic.Pointer[prometheus.Counter] // by code class (0: other), resolved on first use
	retries          atomic.Pointer[prometheus.Counter]
	timeouts         atomic.Pointer[prometheus.Counter]
	duration         prometheus.Observer
	upstreamSeconds  prometheus.Counter
	upstreamRequests prometheus.Counter
	requestBytes     prometheus.Counter
	responseBytes    prometheus.Counter
	listener         *ListenerMetrics
}

// ListenerMetrics are one listener's handles.
type ListenerMetrics struct {
	Active           prometheus.Gauge
	upstreamDuration prometheus.Observer
	noRoute          *RouteMetrics
}

// RouteName is the metrics label for an IR route name: the route object, without its
// rule and match ("httproute/ns/name/rule/0/match/1" -> "httproute/ns/name").
func RouteName(irName string) string {
	if i := strings.Index(irName, "/rule/"); i >= 0 {
		return irName[:i]
	}
	return irName
}

// SplitListener splits an IR listener name "ns/gateway/listener" into the gateway
// ("ns/gateway") and listener labels.
func SplitListener(irName string) (gateway, listener string) {
	if i := strings.LastIndexByte(irName, '/'); i >= 0 {
		return irName[:i], irName[i+1:]
	}
	return "", irName
}

// Listener returns the handles of a listener (IR name), creating them once.
func (m *Metrics) Listener(irName string) *ListenerMetrics {
	gw, l := SplitListener(irName)
	k := listenerKey{gw, l}
	m.listenersMu.Lock()
	defer m.listenersMu.Unlock()
	if lm := m.listenerMetrics[k]; lm != nil {
		return lm
	}
	lm := &ListenerMetrics{
		Active:           m.active.WithLabelValues(gw, l),
		upstreamDuration: m.upstreamDuration.WithLabelValues(gw, l),
	}
	m.listenerMetrics[k] = lm
	lm.noRoute = m.route(routeKey{gw, l, ""}, lm)
	return lm
}

// NoRoute returns the handles that count the listener's requests no route matched.
func (l *ListenerMetrics) NoRoute() *RouteMetrics { return l.noRoute }

// Route returns the handles of a route (IR name) on a listener (IR name).
func (m *Metrics) Route(listenerIRName, routeIRName string) *RouteMetrics {
	lm := m.Listener(listenerIRName)
	gw, l := SplitListener(listenerIRName)
	return m.route(routeKey{gw, l, RouteName(routeIRName)}, lm)
}

func (m *Metrics) route(k routeKey, lm *ListenerMetrics) *RouteMetrics {
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	if rm := m.routes[k]; rm != nil {
		return rm
	}
	rm := &RouteMetrics{
		key: k, m: m, listener: lm,
		duration:         m.duration.WithLabelValues(k.gateway, k.listener, k.route),
		upstreamSeconds:  m.upstreamSeconds.WithLabelValues(k.gateway, k.listener, k.route),
		upstreamRequests: m.upstreamRequests.WithLabelValues(k.gateway, k.listener, k.route),
		requestBytes:     m.requestBytes.WithLabelValues(k.gateway, k.listener, k.route),
		responseBytes:    m.responseBytes.WithLabelValues(k.gateway, k.listener, k.route),
	}
	m.routes[k] = rm
	return rm
}

// Retain drops the series of routes and listeners that are no longer served (after a
// config change), so removed routes do not leave series behind forever. live are the
// served routes' handles; listeners the served listeners' IR names (a listener without
// routes still counts its unrouted requests), plus "gateway/" for each Gateway's requests
// that match no listener.
func (m *Metrics) Retain(live []*RouteMetrics, listeners []string) {
	keep := make(map[routeKey]bool, len(live))
	keepL := map[listenerKey]bool{}
	for _, rm := range live {
		keep[rm.key] = true
		keepL[listenerKey{rm.key.gateway, rm.key.listener}] = true
	}
	for _, name := range listeners {
		gw, l := SplitListener(name)
		keepL[listenerKey{gw, l}] = true
	}
	m.listenersMu.Lock()
	for k, lm := range m.listenerMetrics {
		if keepL[k] {
			keep[lm.noRoute.key] = true
			continue
		}
		delete(m.listenerMetrics, k)
		labels := prometheus.Labels{"gateway": k.gateway, "listener": k.listener}
		m.active.DeletePartialMatch(labels)
		m.upstreamDuration.DeletePartialMatch(labels)
	}
	m.listenersMu.Unlock()
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	for k, rm := range m.routes {
		if keep[k] {
			continue
		}
		rm.dead = true
		delete(m.routes, k)
		labels := prometheus.Labels{"gateway": k.gateway, "listener": k.listener, "route": k.route}
		for _, v := range []interface {
			DeletePartialMatch(prometheus.Labels) int
		}{m.requests, m.duration, m.upstreamSeconds, m.upstreamRequests, m.requestBytes, m.responseBytes, m.retries, m.timeouts} {
			v.DeletePartialMatch(labels)
		}
	}
}

var classNames = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// lazy returns the counter in slot, resolving it from vec on first use. A route removed
// by Retain gets a detached counter, so that a request still finishing on it does not
// bring its series back.
func (rm *RouteMetrics) lazy(slot *atomic.Pointer[prometheus.Counter], vec *prometheus.CounterVec, extra ...string) prometheus.Counter {
	if c := slot.Load(); c != nil {
		return *c
	}
	rm.m.routesMu.Lock()
	defer rm.m.routesMu.Unlock()
	if c := slot.Load(); c != nil {
		return *c
	}
	var c prometheus.Counter
	if rm.dead {
		c = prometheus.NewCounter(prometheus.CounterOpts{Name: "detached"})
	} else {
		c = vec.WithLabelValues(append([]string{rm.key.gateway, rm.key.listener, rm.key.route}, extra...)...)
	}
	slot.Store(&c)
	return c
}

// Observe counts a finished request.
func (rm *RouteMetrics) Observe(e *Entry) {
	class := e.Status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	rm.lazy(&rm.classes[class], rm.m.requests, classNames[class]).Inc()
	rm.duration.Observe(e.Duration.Seconds())
	if e.BytesReceived > 0 {
		rm.requestBytes.Add(float64(e.BytesReceived))
	}
	if e.BytesSent > 0 {
		rm.responseBytes.Add(float64(e.BytesSent))
	}
	if e.Attempts > 0 {
		rm.upstreamRequests.Inc()
		if e.UpstreamTime >= 0 {
			s := e.UpstreamTime.Seconds()
			rm.upstreamSeconds.Add(s)
			rm.listener.upstreamDuration.Observe(s)
		}
		if e.Attempts > 1 {
			rm.lazy(&rm.retries, rm.m.retries).Add(float64(e.Attempts - 1))
		}
	}
	if e.Flags&FlagUpstreamTimeout != 0 {
		rm.lazy(&rm.timeouts, rm.m.timeouts).Inc()
	}
}

// ConnCounter counts one bound socket's open client connections. A socket being drained
// and its replacement on the same address count separately; the metric is their sum.
type ConnCounter struct {
	gateway, address string
	open             atomic.Int64
}

// Add changes the count by d.
func (c *ConnCounter) Add(d int64) { c.open.Add(d) }

// Connections registers a counter for a newly bound socket.
func (m *Metrics) Connections(gateway, address string) *ConnCounter {
	c := &ConnCounter{gateway: gateway, address: address}
	m.connMu.Lock()
	m.connCounters[c] = struct{}{}
	m.connMu.Unlock()
	return c
}

// ForgetConnections unregisters the counter of a socket that has finished draining.
func (m *Metrics) ForgetConnections(c *ConnCounter) {
	m.connMu.Lock()
	delete(m.connCounters, c)
	m.connMu.Unlock()
}

var connectionsDesc = prometheus.NewDesc("portico_downstream_connections", "Open client connections, per bound address.", []string{"gateway", "address"}, nil)

type connCollector struct{ m *Metrics }

func (c connCollector) Describe(ch chan<- *prometheus.Desc) { ch <- connectionsDesc }

func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ gateway, address string }
	sums := map[key]int64{}
	c.m.connMu.Lock()
	for cc := range c.m.connCounters {
		sums[key{cc.gateway, cc.address}] += cc.open.Load()
	}
	c.m.connMu.Unlock()
	for k, n := range sums {
		ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(n), k.gateway, k.address)
	}
}

// Control-plane recording.

// Applied records a config apply: its result and, when it worked, how long it took
// from the input change (changed) to serving.
func (m *Metrics) Applied(err error, changed time.Time) {
	if err != nil {
		m.applies.WithLabelValues("error").Inc()
		return
	}
	m.applies.WithLabelValues("ok").Inc()
	now := time.Now()
	m.lastApply.Set(float64(now.UnixNano()) / 1e9)
	if !changed.IsZero() {
		m.propagation.Observe(now.Sub(changed).Seconds())
	}
}

// Translated records a translation's duration.
func (m *Metrics) Translated(d time.Duration) { m.translate.Observe(d.Seconds()) }

// SetObjects replaces the object counts: counts[kind][status].
func (m *Metrics) SetObjects(counts map[string]map[string]int) {
	m.objects.Reset()
	for kind, byStatus := range counts {
		for status, n := range byStatus {
			m.objects.WithLabelValues(kind, status).Set(float64(n))
		}
	}
}

// clusterCollector reports per-cluster gauges from the live clusters at scrape time.
type clusterCollector struct{ m *Metrics }

var (
	endpointsDesc = prometheus.NewDesc("portico_cluster_endpoints", "Endpoints of a cluster (Portico has no health checks yet: all are used).", []string{"cluster"}, nil)
	poolDesc      = prometheus.NewDesc("portico_upstream_connections", "Pooled upstream connections by state (idle, active), for clusters on Portico's HTTP/1.1 pool.", []string{"cluster", "state"}, nil)
)

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- endpointsDesc
	ch <- poolDesc
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.m.clusterSource.Load()
	if f == nil {
		return
	}
	for _, s := range (*f)() {
		ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, float64(s.Endpoints), s.Name)
		if s.IdleConns >= 0 {
			ch <- prometheus.MustNewConstMetric(poolDesc, prometheus.GaugeValue, float64(s.IdleConns), s.Name, "idle")
			ch <- prometheus.MustNewConstMetric(poolDesc, prometheus.GaugeValue, float64(s.ActiveConns), s.Name, "active")
		}
	}
}

// Listener returns the handles of the route's listener.
func (rm *RouteMetrics) Listener() *ListenerMetrics { return rm.listener }

// MetricsHandler serves m in the Prometheus text format (for the admin API's /metrics).
func MetricsHandler(m *Metrics) http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
