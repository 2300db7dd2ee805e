// Command portico is the bench lab's Portico: the real data plane (dataplane.Server)
// serving a hand-built ir.Config with one HTTP port and one route to the backend, the
// shape "portico run" produces for a single HTTPRoute. It runs until SIGINT or SIGTERM;
// -cpuprofile writes a CPU profile of the whole run.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/portico-gw/portico/internal/dataplane"
	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/telemetry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "portico bench:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:18082", "address the data plane binds")
	backend := flag.String("backend", "127.0.0.1:18080", "the backend's address")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	netHTTP := flag.Bool("nethttp", false, "serve HTTP/1.1 with net/http's server instead of the lean loop")
	accessLog := flag.String("access-log", "", "turn telemetry on: JSON access log to this file, and metrics")
	routes := flag.Int("routes", 1, "routes in the table: 1 is a catch-all; N > 1 are N path prefixes /svc-0 ... /svc-(N-1), each with its own cluster")
	tlsCert := flag.String("tls-cert", "", "serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this PEM certificate chain (and -tls-key)")
	tlsKey := flag.String("tls-key", "", "the PEM private key of -tls-cert")
	flag.Parse()

	cfg, err := config(*listen, *backend, *routes)
	if err != nil {
		return err
	}
	if *tlsCert != "" {
		if err := serveTLS(cfg, *tlsCert, *tlsKey); err != nil {
			return err
		}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	var tel *telemetry.Set
	if *accessLog != "" {
		l, err := telemetry.NewAccessLog(telemetry.AccessLogOptions{Path: *accessLog})
		if err != nil {
			return err
		}
		defer l.Close()
		tel = &telemetry.Set{Log: l, Metrics: telemetry.NewMetrics()}
	}
	s := dataplane.New(dataplane.Options{NetHTTP1: *netHTTP, Telemetry: tel, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err := s.Apply(cfg); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(shutdown)
}

// config is one Gateway on listen with a catch-all HTTPRoute to one cluster, or with
// routes path-prefix routes, each to a cluster of its own.
func config(listen, backend string, routes int) (*ir.Config, error) {
	lhost, lport, err := splitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("-listen: %w", err)
	}
	bhost, bport, err := splitHostPort(backend)
	if err != nil {
		return nil, fmt.Errorf("-backend: %w", err)
	}
	if routes > 1 {
		return manyRoutes(lhost, lport, bhost, bport, routes), nil
	}
	const cluster = "service/bench/backend/80"
	return &ir.Config{
		Gateways: []ir.Gateway{{
			Name:      "bench/gateway",
			Addresses: []string{lhost},
			Ports: []ir.Port{{
				Number:   lport,
				Protocol: ir.ProtocolHTTP,
				Listeners: []ir.Listener{{
					Name:     "bench/gateway/http",
					Protocol: ir.ProtocolHTTP,
					VirtualHosts: []ir.VirtualHost{{
						Hostname: "*",
						Routes: []ir.Route{{
							Name:     "httproute/bench/backend/rule/0/match/0",
							Match:    ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}},
							Backends: []ir.Backend{{Cluster: cluster, Weight: 1}},
						}},
					}},
				}},
			}},
		}},
		Clusters: []ir.Cluster{{
			Name:      cluster,
			Protocol:  ir.UpstreamHTTP1,
			Endpoints: []ir.Endpoint{{Address: bhost, Port: bport}},
		}},
	}, nil
}

// manyRoutes is the shape of a shared Gateway with many HTTPRoutes: n path prefixes on
// one listener, each to its own cluster (all with the same endpoint).
func manyRoutes(lhost string, lport uint32, bhost string, bport uint32, n int) *ir.Config {
	cfg := &ir.Config{}
	var rs []ir.Route
	for i := range n {
		cluster := fmt.Sprintf("service/bench/svc-%d/80", i)
		rs = append(rs, ir.Route{
			Name:     fmt.Sprintf("httproute/bench/svc-%d/rule/0/match/0", i),
			Match:    ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: fmt.Sprintf("/svc-%d", i)}},
			Backends: []ir.Backend{{Cluster: cluster, Weight: 1}},
		})
		cfg.Clusters = append(cfg.Clusters, ir.Cluster{Name: cluster, Protocol: ir.UpstreamHTTP1,
			Endpoints: []ir.Endpoint{{Address: bhost, Port: bport}}})
	}
	// In precedence order, as the translator emits routes: longer prefixes first.
	sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].Match.Path.Value) > len(rs[j].Match.Path.Value) })
	cfg.Gateways = []ir.Gateway{{
		Name: "bench/gateway", Addresses: []string{lhost},
		Ports: []ir.Port{{Number: lport, Protocol: ir.ProtocolHTTP, Listeners: []ir.Listener{{
			Name: "bench/gateway/http", Protocol: ir.ProtocolHTTP,
			VirtualHosts: []ir.VirtualHost{{Hostname: "*", Routes: rs}},
		}}}},
	}}
	return cfg
}

// serveTLS turns cfg's port into an HTTPS listener terminating TLS with the given key
// pair, as a Gateway's HTTPS listener with one certificateRef is translated.
func serveTLS(cfg *ir.Config, certFile, keyFile string) error {
	if keyFile == "" {
		return fmt.Errorf("-tls-cert needs -tls-key")
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	for gi := range cfg.Gateways {
		for pi := range cfg.Gateways[gi].Ports {
			p := &cfg.Gateways[gi].Ports[pi]
			p.Protocol = ir.ProtocolTLS
			for li := range p.Listeners {
				p.Listeners[li].Protocol = ir.ProtocolHTTPS
				p.Listeners[li].TLS = &ir.ListenerTLS{Mode: ir.TLSTerminate, Certificates: []ir.Certificate{{
					Name: "secret/bench/tls", CertPEM: string(certPEM), KeyPEM: string(keyPEM)}}}
			}
		}
	}
	return nil
}

func splitHostPort(addr string) (string, uint32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("bad port %q", port)
	}
	return host, uint32(n), nil
}
