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
	flag.Parse()

	cfg, err := config(*listen, *backend)
	if err != nil {
		return err
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

// config is one Gateway on listen with a catch-all HTTPRoute to one cluster.
func config(listen, backend string) (*ir.Config, error) {
	lhost, lport, err := splitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("-listen: %w", err)
	}
	bhost, bport, err := splitHostPort(backend)
	if err != nil {
		return nil, fmt.Errorf("-backend: %w", err)
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
