// Package ir is the contract between Portico's control plane and its data plane.
//
// Everything here is plain data: no pointers into Kubernetes objects, no methods with
// side effects, and a stable JSON/YAML shape so the whole config can be shown on the
// admin API and compared in golden tests. Names are human-readable and stable across
// translations (for example "httproute/default/shop/rule/0/match/1") because they end up
// in logs and metric labels.
//
// The data plane's contract, in short:
//   - Each Gateway binds every (address, Port.Number) pair it lists.
//   - On one port, a request (or TLS handshake, by SNI) selects the Listener whose
//     Hostname matches most specifically; Listeners are already ordered most specific
//     first, so the first match wins.
//   - Within an HTTP Listener the VirtualHosts are ordered most specific first; the
//     request is tried against each matching VirtualHost in turn, and within one
//     VirtualHost the first Route whose Match matches wins. No match anywhere: 404.
package ir

// Protocol is what a listener speaks to clients, or what a cluster speaks to its endpoints.
type Protocol string

// Listener (client-facing) protocols.
const (
	ProtocolHTTP  Protocol = "HTTP"
	ProtocolHTTPS Protocol = "HTTPS"
	ProtocolTLS   Protocol = "TLS"
	ProtocolTCP   Protocol = "TCP"
	ProtocolUDP   Protocol = "UDP"
)

// Upstream (cluster) protocols, from Service appProtocol or Backend.appProtocol.
const (
	UpstreamHTTP1     Protocol = "HTTP1"
	UpstreamH2C       Protocol = "H2C"
	UpstreamWebSocket Protocol = "WS"
	UpstreamTCP       Protocol = "TCP"
	UpstreamUDP       Protocol = "UDP"
)

// Config is the complete desired state of the data plane.
type Config struct {
	Gateways []Gateway `json:"gateways,omitempty"`
	// Clusters are shared by all routes that reference them, sorted by Name.
	Clusters []Cluster `json:"clusters,omitempty"`
}

// Gateway is one Gateway API Gateway: a set of addresses and the ports bound on each.
type Gateway struct {
	// Name is "namespace/name".
	Name string `json:"name"`
	// Addresses are the IPs or hostnames the Gateway binds; empty means the data plane's
	// default address.
	Addresses []string `json:"addresses,omitempty"`
	Ports     []Port   `json:"ports,omitempty"`
}

// Port is one socket per address: all Gateway listeners that share a port number.
type Port struct {
	Number uint32 `json:"number"`
	// Protocol is the socket's kind: HTTP (plain text, HTTP/1.1 and h2c), TLS (every
	// listener on the port is HTTPS or TLS, selected by SNI), TCP or UDP.
	Protocol  Protocol   `json:"protocol"`
	Listeners []Listener `json:"listeners"`
	// MaxConnections, when above zero, bounds the open client connections of each of
	// the port's sockets (HTTP and TLS ports): connections over it are closed at once.
	MaxConnections uint32 `json:"maxConnections,omitempty"`
}

// Listener is one Gateway API listener that is programmed.
type Listener struct {
	// Name is "namespace/gateway/listener".
	Name string `json:"name"`
	// Hostname is the listener's hostname ("", an exact name, or "*.suffix").
	Hostname string   `json:"hostname,omitempty"`
	Protocol Protocol `json:"protocol"`
	// TLS is set for HTTPS (terminate) and TLS (passthrough or terminate) listeners.
	TLS *ListenerTLS `json:"tls,omitempty"`
	// VirtualHosts serve HTTP and HTTPS listeners, most specific hostname first.
	VirtualHosts []VirtualHost `json:"virtualHosts,omitempty"`
	// L4Routes serve TLS, TCP and UDP listeners (see L4Route for the order).
	L4Routes []L4Route `json:"l4Routes,omitempty"`
	// HSTS, when set, is the Strict-Transport-Security header every response of this
	// (HTTPS) listener carries, set last: neither routes nor upstreams change it.
	HSTS string `json:"hsts,omitempty"`
	// RateLimit, when set, bounds the requests each client address may send to this
	// listener (per data plane instance); requests over it get 429.
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
	// MaxRequestBodyBytes, when above zero, bounds a request body: a larger one is
	// answered 413 (at once when its Content-Length says so, else when it gets there).
	MaxRequestBodyBytes int64 `json:"maxRequestBodyBytes,omitempty"`
	// Unavailable, when set, says why the listener serves nothing (for example its only
	// certificate is missing). It is listed anyway so that its hostname stays reserved:
	// handshakes for it fail and requests for it get 404, rather than falling through to
	// a less specific listener on the same port.
	Unavailable string `json:"unavailable,omitempty"`
}

// RateLimit is a token bucket per client address: RequestsPerSecond sustained, and up
// to Burst at once.
type RateLimit struct {
	RequestsPerSecond uint32 `json:"requestsPerSecond"`
	Burst             uint32 `json:"burst"`
}

// TLSMode says whether the gateway terminates TLS or forwards the encrypted stream.
type TLSMode string

// TLS modes.
const (
	TLSTerminate   TLSMode = "Terminate"
	TLSPassthrough TLSMode = "Passthrough"
)

// ListenerTLS is the server side TLS of a listener.
type ListenerTLS struct {
	Mode TLSMode `json:"mode"`
	// Certificates are PEM key pairs; the data plane picks one by SNI among them
	// (by the certificate's names), else the first.
	Certificates []Certificate `json:"certificates,omitempty"`
	// ClientValidation, when set, asks clients for a certificate (Gateway
	// tls.frontend). It is set per port, so every terminating listener of a port
	// carries the same.
	ClientValidation *ClientValidation `json:"clientValidation,omitempty"`
	// MinVersion is the lowest TLS version a terminating listener accepts: "1.2" when
	// empty, or "1.3" (a ListenerPolicy).
	MinVersion string `json:"minVersion,omitempty"`
	// CipherSuites are the TLS 1.2 suites accepted, by IANA name; empty: Go's defaults.
	CipherSuites []string `json:"cipherSuites,omitempty"`
}

// ClientValidation checks client certificates against CA certificates.
type ClientValidation struct {
	// CACertificates is a PEM bundle of the CAs a client certificate must chain to.
	CACertificates string `json:"caCertificates"`
	// AllowInsecureFallback accepts connections without a certificate, or with one
	// that does not verify (AllowInsecureFallback mode); otherwise they are refused.
	AllowInsecureFallback bool `json:"allowInsecureFallback,omitempty"`
}

// Certificate is a PEM-encoded certificate chain and private key.
type Certificate struct {
	// Name is where it came from: "secret/namespace/name".
	Name    string `json:"name"`
	CertPEM string `json:"certPEM"`
	KeyPEM  string `json:"keyPEM"`
}

// VirtualHost groups the routes that apply to one hostname pattern of a listener.
type VirtualHost struct {
	// Hostname is an exact name, "*.suffix" (matches one or more labels in front of the
	// suffix) or "*" (any host).
	Hostname string `json:"hostname"`
	// Routes are in precedence order: the first whose Match matches wins.
	Routes []Route `json:"routes"`
}

// Redacted returns a copy of c fit to show (admin API, CLI output): private keys are
// replaced by a placeholder. The rest is shared with c, so treat it as read-only.
func (c *Config) Redacted() *Config {
	out := *c
	out.Gateways = make([]Gateway, len(c.Gateways))
	for gi, g := range c.Gateways {
		g.Ports = append([]Port(nil), g.Ports...)
		for pi := range g.Ports {
			p := &g.Ports[pi]
			p.Listeners = append([]Listener(nil), p.Listeners...)
			for li := range p.Listeners {
				l := &p.Listeners[li]
				if l.TLS == nil || len(l.TLS.Certificates) == 0 {
					continue
				}
				t := *l.TLS
				t.Certificates = append([]Certificate(nil), t.Certificates...)
				for ci := range t.Certificates {
					t.Certificates[ci].KeyPEM = "<redacted>"
				}
				l.TLS = &t
			}
		}
		out.Gateways[gi] = g
	}
	out.Clusters = make([]Cluster, len(c.Clusters))
	for i, cl := range c.Clusters {
		if cl.TLS != nil && cl.TLS.ClientCertificate != nil {
			t := *cl.TLS
			cert := *t.ClientCertificate
			cert.KeyPEM = "<redacted>"
			t.ClientCertificate = &cert
			cl.TLS = &t
		}
		out.Clusters[i] = cl
	}
	return &out
}
