// Package telemetry is Portico's view of its own traffic: the access log, Prometheus
// metrics and OpenTelemetry tracing. The data plane fills an Entry per request; the
// access log writes it, metrics count it, and the span it belongs to carries it.
package telemetry

import "strings"

// Flags are response flags in Envoy's vocabulary: what, besides the status code, went
// wrong with a request. They are a bit set; String lists them comma-separated, or "-".
type Flags uint32

const (
	FlagNoRoute              Flags = 1 << iota // NR: no route matched (or no listener for the host)
	FlagUpstreamConnFailure                    // UF: no connection to the upstream could be made
	FlagNoHealthyUpstream                      // UH: the cluster has no endpoint to try
	FlagUpstreamOverflow                       // UO: a limit (connections, pending requests) refused it
	FlagUpstreamRetryLimit                     // URX: retries were exhausted
	FlagUpstreamTimeout                        // UT: the route's request or backend timeout fired
	FlagDownstreamTerminated                   // DC: the client went away before the response ended
	FlagUpstreamTerminated                     // UC: the upstream closed or reset mid-response
	FlagLocalReset                             // LR: the gateway reset the request
	FlagRateLimited                            // RL: a rate limit refused it
	FlagDownstreamProtocol                     // DPE: the client's request was malformed
	FlagUpstreamProtocol                       // UPE: the upstream's response was malformed
)

var flagNames = [...]string{"NR", "UF", "UH", "UO", "URX", "UT", "DC", "UC", "LR", "RL", "DPE", "UPE"}

func (f Flags) String() string {
	if f == 0 {
		return "-"
	}
	var b strings.Builder
	for i, name := range flagNames {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(name)
		}
	}
	return b.String()
}

// Set is the telemetry a data plane reports to; any part may be nil (off).
type Set struct {
	Log     *AccessLog
	Metrics *Metrics
	Tracing *Tracing
}

// Enabled reports whether anything is on.
func (s *Set) Enabled() bool {
	return s != nil && (s.Log != nil || s.Metrics != nil || s.Tracing != nil)
}
