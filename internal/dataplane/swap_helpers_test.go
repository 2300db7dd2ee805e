package dataplane

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

// Helpers of the swap tests (swap_test.go): backends, clients that record who closed
// their connections, and configs.

// swapBackend starts a backend that names itself in X-Backend and echoes the path in
// its body ("name path"). With h2c it also speaks prior-knowledge HTTP/2.
func swapBackend(t testing.TB, name string, h2c bool) ir.Endpoint {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Backend-Proto", r.Proto)
		io.WriteString(w, name+" "+r.URL.Path)
	}))
	if h2c {
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetHTTP1(true)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return swapEndpoint(srv)
}

func swapEndpoint(srv *httptest.Server) ir.Endpoint {
	addr := srv.Listener.Addr().(*net.TCPAddr)
	return ir.Endpoint{Address: "127.0.0.1", Port: uint32(addr.Port)}
}

// swapRoute is a prefix (or exact) route to one cluster that stamps its name on the
// response, so a client can tell which table served it.
func swapRoute(name string, pt ir.PathMatchType, path, cluster string) ir.Route {
	return ir.Route{
		Name:            name,
		Match:           ir.Match{Path: ir.PathMatch{Type: pt, Value: path}},
		Backends:        []ir.Backend{{Cluster: cluster, Weight: 1}},
		ResponseHeaders: &ir.HeaderModifier{Set: []ir.Header{{Name: "X-Route", Value: name}}},
	}
}

// swapGateway is one gateway on 127.0.0.1:port with one HTTP listener and the given
// virtual hosts.
func swapGateway(port uint32, vhosts ...ir.VirtualHost) ir.Gateway {
	return ir.Gateway{Name: "swap/gw", Addresses: []string{"127.0.0.1"}, Ports: []ir.Port{{
		Number: port, Protocol: ir.ProtocolHTTP,
		Listeners: []ir.Listener{{Name: "swap/gw/http", Protocol: ir.ProtocolHTTP, VirtualHosts: vhosts}},
	}}}
}

// swapServer applies cfg to a new Server and shuts it down at the end of the test.
func swapServer(t testing.TB, cfg *ir.Config) *Server {
	t.Helper()
	s, _ := swapServerLogged(t, cfg)
	return s
}

// safeBuffer is a buffer that goroutines may write to while a test reads it: the data
// plane's log (debug included) for failure messages, an access log.
type safeBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *safeBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *safeBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// swapServerLogged is swapServer with the data plane's log kept.
func swapServerLogged(t testing.TB, cfg *ir.Config) (*Server, *safeBuffer) {
	t.Helper()
	logs := &safeBuffer{}
	s := startServer(t, Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, cfg)
	return s, logs
}

// swapClient is a keep-alive client (HTTP/1.1, or h2c with prior knowledge) that counts
// the TCP connections it opens and notes how each one ended.
type swapClient struct {
	*http.Client
	dials atomic.Int64

	mu   sync.Mutex
	ends []swapConnEnd
}

// swapConnEnd is how one client connection ended: the client closed it (Go's transport
// drops a connection by itself in a few cases, see swapClient.serverEnds), or a read
// failed first (the server closed or reset it).
type swapConnEnd struct {
	byClient bool
	desc     string
}

// swapConn notes the first read error of a client connection, or that the client
// closed it first: the two tell a server-side close or reset from a client-side one.
type swapConn struct {
	net.Conn
	c    *swapClient
	once sync.Once
}

func (sc *swapConn) end(byClient bool, what string) {
	sc.once.Do(func() {
		sc.c.mu.Lock()
		sc.c.ends = append(sc.c.ends, swapConnEnd{byClient, fmt.Sprintf("%s->%s: %s at %s", sc.LocalAddr(), sc.RemoteAddr(), what, time.Now().Format("15:04:05.000000"))})
		sc.c.mu.Unlock()
	})
}

func (sc *swapConn) Read(p []byte) (int, error) {
	n, err := sc.Conn.Read(p)
	if err != nil {
		sc.end(false, "read: "+err.Error())
	}
	return n, err
}

func (sc *swapConn) Close() error {
	sc.end(true, "closed by the client")
	return sc.Conn.Close()
}

// serverEnds lists the connections the server closed or reset (a read failed before the
// client closed them), and counts those the client closed by itself. An HTTP/1.1 Go
// transport closes a healthy connection instead of reusing it when its write goroutine
// has not reported the request written within 50 ms of the response's end (net/http
// maxWriteWaitBeforeConnReuse), which happens on a starved CPU: that is the client's
// doing, not a reset.
func (c *swapClient) serverEnds() (server []string, byClient int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.ends {
		if e.byClient {
			byClient++
		} else {
			server = append(server, e.desc)
		}
	}
	return server, byClient
}

func newSwapClient(t testing.TB, h2c bool) *swapClient {
	c := &swapClient{}
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c.dials.Add(1)
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &swapConn{Conn: conn, c: c}, nil
		},
		MaxIdleConnsPerHost: 4,
		DisableCompression:  true,
	}
	tr.Protocols = new(http.Protocols)
	if h2c {
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	c.Client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

// swapResult is what a client saw for one request.
type swapResult struct {
	status  int
	backend string
	route   string
	body    string
	reused  bool
	close   bool // the response asked for the connection to be closed
	local   string
}

// get sends GET url and reads the whole answer, with a trace of the connection used.
func (c *swapClient) get(ctx context.Context, url string) (swapResult, error) {
	var res swapResult
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		res.reused = info.Reused
		res.local = info.Conn.LocalAddr().String()
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		return res, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return res, err
	}
	res.status = resp.StatusCode
	res.backend = resp.Header.Get("X-Backend")
	res.route = resp.Header.Get("X-Route")
	res.close = resp.Close
	res.body = string(body)
	return res, nil
}

func swapURL(port uint32, path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(int(port)) + path
}

// swapCert returns a certificate for host and a pool that trusts it (see lfNewCA).
func swapCert(t *testing.T, host string) (certPEM, keyPEM string, pool *x509.CertPool) {
	t.Helper()
	ca := lfNewCA(t)
	c := ca.leaf(t, host, false, host)
	return c.CertPEM, c.KeyPEM, ca.pool
}

// swapTLSPort is a TLS port with one HTTPS listener for host routing "/" to cluster.
func swapTLSPort(port uint32, host, certPEM, keyPEM, cluster string) ir.Port {
	return ir.Port{Number: port, Protocol: ir.ProtocolTLS, Listeners: []ir.Listener{{
		Name: "swap/gw/https", Hostname: host, Protocol: ir.ProtocolHTTPS,
		TLS:          &ir.ListenerTLS{Mode: ir.TLSTerminate, Certificates: []ir.Certificate{{Name: "secret/swap/cert", CertPEM: certPEM, KeyPEM: keyPEM}}},
		VirtualHosts: []ir.VirtualHost{{Hostname: host, Routes: []ir.Route{swapRoute("tls/"+cluster, ir.PathPrefix, "/", cluster)}}},
	}}}
}

// swapHoldBackend answers only after releaseAll is called, and tells arrivals when a
// request is waiting.
func swapHoldBackend(t testing.TB, name string, h2c bool) (ep ir.Endpoint, arrivals <-chan struct{}, releaseAll func()) {
	t.Helper()
	arrived, release := make(chan struct{}, 16), make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("X-Backend", name)
		io.WriteString(w, name+" "+r.URL.Path)
	}))
	if h2c {
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetHTTP1(true)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	srv.Start()
	var once sync.Once
	releaseAll = func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() {
		releaseAll()
		srv.Close()
	})
	return swapEndpoint(srv), arrived, releaseAll
}
