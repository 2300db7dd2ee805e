// Package upstream holds the runtime side of IR clusters: endpoints with round-robin
// selection, and one tuned HTTP transport (connection pool) per cluster.
package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

// Cluster is a compiled IR cluster. It is immutable once built; only the round-robin
// counter moves.
type Cluster struct {
	Name      string
	Protocol  ir.Protocol
	Scheme    string // "http" or "https"
	Transport *http.Transport
	// Fast serves plain-text HTTP/1.1 requests (not upgrades) when set; Transport
	// serves everything else.
	Fast *H1Pool
	// Invalid, when set, means requests to the cluster answer 500 (see ir.Cluster.Invalid).
	Invalid string
	// StreamTLS, for stream clusters with TLS, is the client side of the TLS that
	// forwarded connections are wrapped in towards the backend.
	StreamTLS *tls.Config

	endpoints []string // "host:port"
	next      atomic.Uint64
	key       string // identity of the config, to reuse transports across applies
}

// ErrNoEndpoints is returned by Pick when a cluster has no endpoint.
var ErrNoEndpoints = errors.New("no healthy upstream")

// Pick returns the next endpoint, round robin.
func (c *Cluster) Pick() (string, error) {
	n := len(c.endpoints)
	if n == 0 {
		return "", ErrNoEndpoints
	}
	if n == 1 {
		return c.endpoints[0], nil
	}
	i := c.next.Add(1) - 1
	return c.endpoints[i%uint64(n)], nil
}

// Endpoints returns the endpoint addresses ("host:port").
func (c *Cluster) Endpoints() []string { return c.endpoints }

// Options tune the transports of every cluster.
type Options struct {
	DialTimeout         time.Duration
	MaxIdleConnsPerHost int
	IdleConnTimeout     time.Duration
	// SystemRoots replaces the host's CA store for clusters that trust "the system"
	// (tests use it to trust their own CA); nil means the host's store.
	SystemRoots *x509.CertPool
}

func (o *Options) defaults() {
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.MaxIdleConnsPerHost == 0 {
		o.MaxIdleConnsPerHost = 512
	}
	if o.IdleConnTimeout == 0 {
		o.IdleConnTimeout = 90 * time.Second
	}
}

// Set is the clusters of one config, by name.
type Set map[string]*Cluster

// IdleCloser is a connection pool whose idle connections can be closed.
type IdleCloser interface{ CloseIdleConnections() }

// Build compiles clusters, reusing the transports (and their warm connections) of any
// cluster in prev whose configuration is unchanged. The returned list holds the pools
// of prev that are no longer used, for the caller to close once the new set is live.
func Build(clusters []ir.Cluster, prev Set, opts Options) (Set, []IdleCloser, error) {
	opts.defaults()
	out := make(Set, len(clusters))
	for i := range clusters {
		c, err := build(&clusters[i], prev, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster %s: %w", clusters[i].Name, err)
		}
		out[c.Name] = c
	}
	var unused []IdleCloser
	for name, old := range prev {
		if c, ok := out[name]; !ok || c.Transport != old.Transport {
			if old.Transport != nil {
				unused = append(unused, old.Transport)
			}
			if old.Fast != nil {
				unused = append(unused, old.Fast)
			}
		}
	}
	return out, unused, nil
}

func build(ic *ir.Cluster, prev Set, opts Options) (*Cluster, error) {
	c := &Cluster{Name: ic.Name, Protocol: ic.Protocol, Scheme: "http", Invalid: ic.Invalid}
	for _, e := range ic.Endpoints {
		if e.Port == 0 || e.Port > 65535 {
			return nil, fmt.Errorf("endpoint %s: port %d out of range", e.Address, e.Port)
		}
		c.endpoints = append(c.endpoints, net.JoinHostPort(e.Address, strconv.Itoa(int(e.Port))))
	}
	if ic.TLS != nil {
		c.Scheme = "https"
	}
	c.key = transportKey(ic)
	if old, ok := prev[ic.Name]; ok && old.key == c.key && old.Transport != nil {
		c.Transport, c.Fast = old.Transport, old.Fast
		return c, nil
	}
	switch ic.Protocol {
	case ir.UpstreamHTTP1, ir.UpstreamH2C, ir.UpstreamWebSocket, "":
	default:
		// Stream clusters have no HTTP transport; a TCP one with TLS (a TLSRoute on a
		// terminating listener, re-encrypted by a BackendTLSPolicy) wraps each
		// connection in TLS with this config.
		if ic.TLS != nil {
			cfg, err := clientTLS(ic.TLS, opts)
			if err != nil {
				return nil, err
			}
			c.StreamTLS = cfg
		}
		return c, nil
	}
	t, err := newTransport(ic, opts)
	if err != nil {
		return nil, err
	}
	c.Transport = t
	if ic.Protocol == ir.UpstreamHTTP1 && ic.TLS == nil {
		c.Fast = NewH1Pool(opts.DialTimeout, opts.MaxIdleConnsPerHost, opts.IdleConnTimeout)
	}
	return c, nil
}

// transportKey captures everything a transport depends on.
func transportKey(ic *ir.Cluster) string {
	var b strings.Builder
	b.WriteString(string(ic.Protocol))
	if t := ic.TLS; t != nil {
		fmt.Fprintf(&b, "|tls|%s|%v|%s", t.SNI, t.SystemRoots, t.CACertificates)
		for _, s := range t.SubjectAltNames {
			b.WriteString("|" + s.Hostname + "|" + s.URI)
		}
		if c := t.ClientCertificate; c != nil {
			b.WriteString("|client|" + c.CertPEM + "|" + c.KeyPEM)
		}
	}
	return b.String()
}

func newTransport(ic *ir.Cluster, opts Options) (*http.Transport, error) {
	dialer := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   opts.MaxIdleConnsPerHost,
		IdleConnTimeout:       opts.IdleConnTimeout,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 0, // bounded per route by the backend timeout
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
	protocols := new(http.Protocols)
	switch {
	case ic.Protocol == ir.UpstreamH2C && ic.TLS == nil:
		protocols.SetUnencryptedHTTP2(true)
	case ic.Protocol == ir.UpstreamH2C:
		protocols.SetHTTP2(true)
	default:
		protocols.SetHTTP1(true)
	}
	t.Protocols = protocols
	if ic.TLS != nil {
		cfg, err := clientTLS(ic.TLS, opts)
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig = cfg
	}
	return t, nil
}

// clientTLS builds the upstream TLS config: trust the policy's CAs (or the system's),
// send the SNI, and verify the server certificate against the SNI or the listed SANs.
func clientTLS(p *ir.UpstreamTLS, opts Options) (*tls.Config, error) {
	var roots *x509.CertPool
	switch {
	case p.SystemRoots && opts.SystemRoots != nil:
		roots = opts.SystemRoots.Clone()
	case p.SystemRoots:
		sys, err := x509.SystemCertPool()
		if err != nil {
			sys = x509.NewCertPool()
		}
		roots = sys
	default:
		roots = x509.NewCertPool()
	}
	if p.CACertificates != "" && !roots.AppendCertsFromPEM([]byte(p.CACertificates)) {
		return nil, errors.New("tls: no usable CA certificate")
	}
	cfg := &tls.Config{
		ServerName: p.SNI,
		RootCAs:    roots,
		MinVersion: tls.VersionTLS12,
	}
	if c := p.ClientCertificate; c != nil {
		pair, err := tls.X509KeyPair([]byte(c.CertPEM), []byte(c.KeyPEM))
		if err != nil {
			return nil, fmt.Errorf("tls: client certificate %s: %w", c.Name, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if len(p.SubjectAltNames) > 0 {
		sans := p.SubjectAltNames
		// Verify the chain ourselves so the names checked are the SANs, not the SNI.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifySANs(cs, roots, sans)
		}
	}
	return cfg, nil
}

func verifySANs(cs tls.ConnectionState, roots *x509.CertPool, sans []ir.SubjectAltName) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		return err
	}
	for _, san := range sans {
		if san.Hostname != "" && leaf.VerifyHostname(san.Hostname) == nil {
			return nil
		}
		if san.URI != "" {
			for _, u := range leaf.URIs {
				if u.String() == san.URI {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("tls: server certificate matches none of the expected subject alt names")
}

// DialContext is the dialer stream proxies use for TCP clusters.
func (c *Cluster) DialContext(ctx context.Context, timeout time.Duration) (net.Conn, error) {
	ep, err := c.Pick()
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: timeout}
	return d.DialContext(ctx, "tcp", ep)
}
