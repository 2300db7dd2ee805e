package ir

// Cluster is a set of endpoints that serve one backend port, and how to talk to them.
type Cluster struct {
	// Name is "service/namespace/name/port" or "backend/namespace/name[/port]", with a
	// suffix ("/h2c", "/tcp", "/tls", ...) when routes use the port with a protocol other
	// than its own (gRPC over a plain port, a TCPRoute, re-encrypted TLS).
	Name string `json:"name"`
	// Protocol is spoken to the endpoints; with TLS set, HTTP1 and WS run over TLS
	// (https, wss) and H2C becomes HTTP/2 negotiated by ALPN.
	Protocol Protocol `json:"protocol"`
	// Endpoints are the ready endpoints, sorted. An empty list is valid: requests to the
	// cluster then answer 503 (no healthy upstream).
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// TLS, when set, makes the data plane originate TLS to the endpoints.
	TLS *UpstreamTLS `json:"tls,omitempty"`
	// Invalid, when set, says why the cluster must not be used (for example its
	// BackendTLSPolicy cannot be loaded): requests to it answer 500.
	Invalid string `json:"invalid,omitempty"`
}

// Endpoint is an IP address or DNS name and a port.
type Endpoint struct {
	Address string `json:"address"`
	Port    uint32 `json:"port"`
}

// UpstreamTLS is the client side TLS towards a cluster (from a BackendTLSPolicy).
type UpstreamTLS struct {
	// SNI is sent in the ClientHello and, unless SubjectAltNames is set, is the name the
	// server certificate must be valid for.
	SNI string `json:"sni"`
	// CACertificates is a PEM bundle of trusted roots; empty with SystemRoots false is
	// not produced by the translator.
	CACertificates string `json:"caCertificates,omitempty"`
	// SystemRoots trusts the host's CA store.
	SystemRoots bool `json:"systemRoots,omitempty"`
	// SubjectAltNames, when set, replace SNI as the names to verify: DNS names (with an
	// optional leading "*.") or URIs.
	SubjectAltNames []SubjectAltName `json:"subjectAltNames,omitempty"`
	// ClientCertificate, when set, is presented to the backend (the Gateway's
	// tls.backend.clientCertificateRef).
	ClientCertificate *Certificate `json:"clientCertificate,omitempty"`
}

// SubjectAltName is one acceptable name in the server certificate.
type SubjectAltName struct {
	Hostname string `json:"hostname,omitempty"`
	URI      string `json:"uri,omitempty"`
}
