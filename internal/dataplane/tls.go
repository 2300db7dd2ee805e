package dataplane

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/portico-gw/portico/internal/dataplane/l4"
	"github.com/portico-gw/portico/internal/dataplane/upstream"
	"github.com/portico-gw/portico/internal/ir"
)

// certTable holds the certificates of one TLS port, chosen by SNI: first the listener
// (exact hostname, then the longest wildcard, then the listener without a hostname),
// then among its certificates the one valid for the name, else its first.
type certTable struct {
	exact    map[string]*tlsListener
	wildcard []*tlsListener // longest suffix first
	any      *tlsListener
	// hasL4 is set when a listener of the port is a TLS one (TLSRoutes): connections
	// are then sorted by their ClientHello before TLS is terminated, if it is.
	hasL4 bool
	// clientCAs, when set, is the port's client certificate validation (Gateway
	// tls.frontend): HTTPS handshakes ask for a certificate, and clientAuth says
	// whether it must verify against clientCAs.
	clientCAs  *x509.CertPool
	clientAuth tls.ClientAuthType
	clientKey  string // the validation's identity (mode and CA bundle); "" without

	httpOnce sync.Once
	httpCfg  *tls.Config // serverConfig's result
}

// serverConfig is the TLS config of an HTTPS handshake under this table: certificates
// and client certificate validation both come from t, never from a newer table, and
// the TLS versions and cipher suites from the listener the hello's SNI selects.
func (t *certTable) serverConfig(base *tls.Config, hello *tls.ClientHelloInfo) *tls.Config {
	cfg := t.tableConfig(base)
	if l := t.listener(hello.ServerName); l != nil && (l.minVersion != 0 || len(l.ciphers) > 0) {
		l.cfgOnce.Do(func() { l.cfg = l.limits(cfg.Clone()) })
		return l.cfg
	}
	return cfg
}

// limits applies the listener's TLS version and cipher suite bounds to cfg.
func (l *tlsListener) limits(cfg *tls.Config) *tls.Config {
	if l.minVersion != 0 {
		cfg.MinVersion = l.minVersion
	}
	if len(l.ciphers) > 0 {
		cfg.CipherSuites = l.ciphers
	}
	return cfg
}

func (t *certTable) tableConfig(base *tls.Config) *tls.Config {
	t.httpOnce.Do(func() {
		cfg := base.Clone()
		cfg.GetConfigForClient = nil
		cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return certificate(t, hello, false)
		}
		if t.clientCAs != nil {
			cfg.ClientAuth, cfg.ClientCAs = t.clientAuth, t.clientCAs
		}
		t.httpCfg = cfg
	})
	return t.httpCfg
}

type tlsListener struct {
	hostname string
	mode     ir.TLSMode
	certs    []*tls.Certificate
	// unavailable listeners keep their hostname reserved: handshakes for it fail.
	unavailable bool
	// tlsProto marks a TLS listener (protocol TLS), which forwards streams to l4, its
	// TLSRoutes by SNI, instead of serving HTTP.
	tlsProto bool
	l4       []l4.Route
	// minVersion and ciphers bound the handshakes of a terminating listener (0 and nil:
	// TLS 1.2 and Go's defaults); cfg is the HTTPS config with them, made once.
	minVersion uint16
	ciphers    []uint16
	cfgOnce    sync.Once
	cfg        *tls.Config
}

// tlsVersions are the versions a ListenerPolicy may set as the minimum.
var tlsVersions = map[string]uint16{"": 0, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// cipherSuiteIDs maps the secure TLS 1.2 suites' IANA names to their IDs.
var cipherSuiteIDs = func() map[string]uint16 {
	m := map[string]uint16{}
	for _, s := range tls.CipherSuites() {
		m[s.Name] = s.ID
	}
	return m
}()

func compileCerts(listeners []ir.Listener, clusters upstream.Set) (*certTable, error) {
	t := &certTable{exact: map[string]*tlsListener{}}
	for i := range listeners {
		l := &listeners[i]
		if l.TLS == nil {
			return nil, fmt.Errorf("listener %s: no TLS settings on a TLS port", l.Name)
		}
		tl := &tlsListener{hostname: strings.ToLower(l.Hostname), mode: l.TLS.Mode}
		var ok bool
		if tl.minVersion, ok = tlsVersions[l.TLS.MinVersion]; !ok {
			return nil, fmt.Errorf("listener %s: TLS minimum version %q is not supported (1.2 or 1.3)", l.Name, l.TLS.MinVersion)
		}
		for _, name := range l.TLS.CipherSuites {
			id, ok := cipherSuiteIDs[name]
			if !ok {
				return nil, fmt.Errorf("listener %s: cipher suite %q is not supported", l.Name, name)
			}
			tl.ciphers = append(tl.ciphers, id)
		}
		for _, c := range l.TLS.Certificates {
			pair, err := tls.X509KeyPair([]byte(c.CertPEM), []byte(c.KeyPEM))
			if err != nil {
				return nil, fmt.Errorf("listener %s certificate %s: %w", l.Name, c.Name, err)
			}
			if pair.Leaf == nil {
				if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
					return nil, fmt.Errorf("listener %s certificate %s: %w", l.Name, c.Name, err)
				}
			}
			tl.certs = append(tl.certs, &pair)
		}
		if cv := l.TLS.ClientValidation; cv != nil && t.clientCAs != nil {
			if key := fmt.Sprintf("%v|%s", cv.AllowInsecureFallback, cv.CACertificates); key != t.clientKey {
				// Validation is per port (Gateway tls.frontend): listeners of one port
				// that disagree would make it depend on which SNI a client sends.
				return nil, fmt.Errorf("listener %s: client validation differs from another listener's on the same port", l.Name)
			}
		} else if cv != nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(cv.CACertificates)) {
				return nil, fmt.Errorf("listener %s: client validation has no PEM CA certificate", l.Name)
			}
			t.clientCAs, t.clientAuth = pool, tls.RequireAndVerifyClientCert
			if cv.AllowInsecureFallback {
				t.clientAuth = tls.RequestClientCert
			}
			t.clientKey = fmt.Sprintf("%v|%s", cv.AllowInsecureFallback, cv.CACertificates)
		}
		tl.unavailable = l.Unavailable != ""
		if l.Protocol == ir.ProtocolTLS {
			tl.tlsProto, t.hasL4 = true, true
			tl.l4 = l4.CompileRoutes(l.L4Routes, clusters)
		}
		if tl.mode == ir.TLSTerminate && len(tl.certs) == 0 && !tl.unavailable {
			return nil, fmt.Errorf("listener %s: TLS termination without a certificate", l.Name)
		}
		switch {
		case tl.hostname == "" || tl.hostname == "*":
			if t.any == nil {
				t.any = tl
			}
		case strings.HasPrefix(tl.hostname, "*."):
			t.wildcard = append(t.wildcard, tl)
		default:
			t.exact[tl.hostname] = tl
		}
	}
	for i := 1; i < len(t.wildcard); i++ {
		for j := i; j > 0 && len(t.wildcard[j].hostname) > len(t.wildcard[j-1].hostname); j-- {
			t.wildcard[j], t.wildcard[j-1] = t.wildcard[j-1], t.wildcard[j]
		}
	}
	return t, nil
}

func (t *certTable) listener(sni string) *tlsListener {
	sni = strings.ToLower(strings.TrimSuffix(sni, "."))
	if sni != "" {
		if l, ok := t.exact[sni]; ok {
			return l
		}
		for _, l := range t.wildcard {
			if suffix := l.hostname[1:]; len(sni) > len(suffix) && strings.HasSuffix(sni, suffix) {
				return l
			}
		}
	}
	return t.any
}

// certificate picks, among the listener's certificates, the first that is valid for the
// SNI and usable by the client (a listener may hold an ECDSA and an RSA certificate for
// the same names, for clients that support only one), then the first valid for the SNI,
// then the first usable, then the first.
func (l *tlsListener) certificate(hello *tls.ClientHelloInfo) *tls.Certificate {
	sni := hello.ServerName
	var named, usable *tls.Certificate
	for _, c := range l.certs {
		nameOK := sni != "" && c.Leaf.VerifyHostname(sni) == nil
		clientOK := hello.SupportsCertificate(c) == nil
		switch {
		case nameOK && clientOK:
			return c
		case nameOK && named == nil:
			named = c
		case clientOK && usable == nil:
			usable = c
		}
	}
	switch {
	case named != nil:
		return named
	case usable != nil:
		return usable
	}
	return l.certs[0]
}

// certStore is a TLS socket's current certTable, swapped by Apply.
type certStore struct {
	p atomic.Pointer[certTable]
}

func (s *certStore) store(t *certTable) { s.p.Store(t) }

var errNoListener = errors.New("tls: no listener for this server name")
