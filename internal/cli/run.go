package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/portico-gw/portico/internal/admin"
	"github.com/portico-gw/portico/internal/dataplane"
	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/provider/file"
	"github.com/portico-gw/portico/internal/resource"
	"github.com/portico-gw/portico/internal/telemetry"
	"github.com/portico-gw/portico/internal/translate"
)

type runFlags struct {
	config         string
	adminAddress   string
	logFormat      string
	logLevel       string
	defaultAddress string
	drainTimeout   time.Duration
	reloadDebounce time.Duration
	echoBackends   bool
	netHTTP1       bool
	accessLog      string
	accessLogFmt   string
	tracing        telemetry.TracingOptions
	opts           translate.Options
}

func newRunCommand() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run --config DIR|FILE",
		Short: "Serve the Gateways defined in a file or folder of YAML, reloading it on every change",
		Long: `run is standalone Portico: it reads Gateway API objects from a file or a folder,
serves them, and watches the folder. A change takes effect as soon as it is saved; a change
that does not load or translate cleanly is reported (log and admin /status) while the last
good config keeps serving. SIGTERM or SIGINT drain in-flight requests and exit 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.config == "" {
				return &exitError{code: 2, err: errors.New("--config is required")}
			}
			log, err := newLogger(cmd.ErrOrStderr(), f.logFormat, f.logLevel)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runGateway(ctx, f, cmd.OutOrStdout(), log)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "file or folder of Gateway API YAML to serve (required)")
	fl.StringVar(&f.defaultAddress, "default-address", "0.0.0.0", "address bound by Gateways that list none")
	fl.DurationVar(&f.reloadDebounce, "reload-debounce", file.DefaultDebounce, "how long the config folder must be quiet before a change is loaded")
	fl.BoolVar(&f.echoBackends, "echo-backends", false, "also serve an echo backend on every loopback endpoint of the config's Backend objects (demos)")
	addServeFlags(fl, &f)
	return cmd
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func runGateway(ctx context.Context, f runFlags, stdout io.Writer, log *slog.Logger) error {
	tel, stopTelemetry, err := startTelemetry(ctx, f, stdout, log)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer stopTelemetry()
	dp := dataplane.New(dataplane.Options{DefaultAddress: f.defaultAddress, DrainTimeout: f.drainTimeout, NetHTTP1: f.netHTTP1, Telemetry: tel, Logger: log})
	state := &runState{}

	adminSrv, adminAddr, err := startAdmin(f.adminAddress, state, tel, log)
	if err != nil {
		return err
	}

	var echoServers []*http.Server
	if f.echoBackends {
		if echoServers, err = startEchoBackends(f.config, log); err != nil {
			_ = adminSrv.Close()
			return &exitError{code: 2, err: err}
		}
	}

	announced := false
	p := &file.Provider{Path: f.config, Log: log, Debounce: f.reloadDebounce}
	runErr := p.Run(ctx, func(snap *resource.Snapshot) {
		start := time.Now()
		cfg, status := translate.TranslateWith(snap, f.opts)
		translated := time.Since(start)
		tel.Metrics.Translated(translated)
		tel.Metrics.SetObjects(status.ObjectCounts())
		err := dp.Apply(cfg)
		tel.Metrics.Applied(err, p.ChangedAt())
		if err != nil {
			log.Error("config rejected by the data plane; the previous config keeps serving", "error", err)
			status.MarkNotProgrammed(err)
			state.failed(status, "apply", err)
			return
		}
		state.applied(cfg, status)
		log.Info("config applied", "gateways", len(cfg.Gateways), "clusters", len(cfg.Clusters),
			"objects", snap.Len(), "translate", translated.Round(time.Microsecond), "total", time.Since(start).Round(time.Microsecond))
		for _, pr := range status.Problems() {
			log.Warn("object not fully working", "object", pr.Object, "condition", pr.Condition, "reason", pr.Reason, "message", pr.Message)
		}
		if !announced {
			announced = true
			announce(stdout, cfg, f.defaultAddress, adminAddr)
		}
	}, func(err error) {
		tel.Metrics.Applied(err, time.Time{})
		log.Error("config not loaded; the previous config keeps serving", "error", err)
		state.failed(nil, "load", err)
	})
	if runErr != nil {
		log.Error("watching the config failed", "error", runErr)
	}

	return drainAndStop(log, dp, adminSrv, f.drainTimeout, runErr, func() { shutdownAll(echoServers, time.Second) })
}

// startAdmin serves the admin API (health, config, status, metrics) on address.
func startAdmin(address string, state *runState, tel *telemetry.Set, log *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, "", &exitError{code: 2, err: fmt.Errorf("admin API: %w", err)}
	}
	srv := &http.Server{Handler: admin.Handler(state, telemetry.MetricsHandler(tel.Metrics)), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("admin API listening", "address", ln.Addr().String())
	return srv, ln.Addr().String(), nil
}

// drainAndStop ends a serving process ("run" or "controller"): in-flight requests drain
// (at most timeout), then the rest stops. runErr, what stopped serving, decides the exit.
func drainAndStop(log *slog.Logger, dp *dataplane.Server, adminSrv *http.Server, timeout time.Duration, runErr error, more func()) error {
	log.Info("shutting down: draining in-flight requests", "timeout", timeout)
	drainCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	drainErr := dp.Shutdown(drainCtx)
	if more != nil {
		more()
	}
	_ = adminSrv.Shutdown(drainCtx)
	if runErr != nil {
		return &exitError{code: 2, err: runErr}
	}
	if drainErr != nil {
		log.Warn("drain timed out; remaining connections were closed", "error", drainErr)
	}
	log.Info("stopped")
	return nil
}

// startTelemetry sets up the access log, metrics and tracing the flags ask for. The
// returned stop flushes and closes them; call it after the data plane has shut down.
func startTelemetry(ctx context.Context, f runFlags, stdout io.Writer, log *slog.Logger) (*telemetry.Set, func(), error) {
	tel := &telemetry.Set{Metrics: telemetry.NewMetrics()}
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	switch f.accessLog {
	case "off", "":
	default:
		opts := telemetry.AccessLogOptions{Path: f.accessLog, Format: f.accessLogFmt}
		if f.accessLog == "stdout" {
			opts.Path, opts.Writer = "", stdout
		}
		l, err := telemetry.NewAccessLog(opts)
		if err != nil {
			return nil, nil, fmt.Errorf("--access-log: %w", err)
		}
		tel.Log = l
		tel.Metrics.WatchAccessLog(l)
		stops = append(stops, func() { _ = l.Close() })
	}
	// SIGHUP reopens a file access log (after logrotate moved it). It is always caught,
	// so that a rotation script's "kill -HUP" never stops a Portico without one.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				if tel.Log == nil || f.accessLog == "stdout" {
					log.Info("SIGHUP: no access log file to reopen")
					continue
				}
				if err := tel.Log.Reopen(); err != nil {
					log.Error("reopening the access log failed", "error", err)
				} else {
					log.Info("access log reopened", "path", f.accessLog)
				}
			case <-done:
				return
			}
		}
	}()
	stops = append(stops, func() {
		signal.Stop(hup)
		close(done)
	})
	tr, err := telemetry.NewTracing(ctx, f.tracing)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	if tr != nil {
		tel.Tracing = tr
		stops = append(stops, func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tr.Shutdown(sctx); err != nil {
				log.Warn("flushing traces failed", "error", err)
			}
		})
		log.Info("tracing", "endpoint", f.tracing.Endpoint, "protocol", f.tracing.Protocol, "sample_ratio", f.tracing.SampleRatio)
	}
	return tel, stop, nil
}

// addServeFlags registers the flags "run" and "controller" share: logging, the admin
// API, the data plane and telemetry.
func addServeFlags(fl *pflag.FlagSet, f *runFlags) {
	fl.StringVar(&f.adminAddress, "admin-address", "127.0.0.1:19000", "address of the admin API (/healthz /readyz /config /status)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second, "how long a shutdown waits for in-flight requests")
	fl.BoolVar(&f.netHTTP1, "net-http1", false, "serve plain-text HTTP/1.x with Go's net/http server instead of Portico's lean loop (slower; an escape hatch)")
	fl.StringVar(&f.accessLog, "access-log", "stdout", "where the access log goes: stdout, off, or a file (reopened on SIGHUP, for rotation)")
	fl.StringVar(&f.accessLogFmt, "access-log-format", "json", "access log format: json or text")
	fl.StringVar(&f.tracing.Endpoint, "otlp-endpoint", "", "OTLP trace receiver: host:port for gRPC, a URL for HTTP (empty: no tracing; trace context is passed through)")
	fl.StringVar(&f.tracing.Protocol, "otlp-protocol", "grpc", "OTLP protocol: grpc or http")
	fl.BoolVar(&f.tracing.Insecure, "otlp-insecure", false, "send OTLP without TLS")
	fl.Float64Var(&f.tracing.SampleRatio, "trace-sample-ratio", 0.01, "share of new traces recorded (requests with a sampled trace context are always recorded)")
	fl.StringVar(&f.opts.ControllerName, "controller-name", translate.DefaultControllerName, "GatewayClass controllerName to serve")
	fl.BoolVar(&f.opts.AllowExternalNameServices, "allow-external-name-services", false, "let routes use ExternalName Services")
}

// announce prints where the Gateways listen, so the user knows what to curl.
func announce(w io.Writer, cfg *ir.Config, defaultAddress, adminAddress string) {
	for _, g := range cfg.Gateways {
		addrs := g.Addresses
		if len(addrs) == 0 {
			addrs = []string{defaultAddress}
		}
		for _, p := range g.Ports {
			scheme := "http"
			if p.Protocol == ir.ProtocolTLS {
				scheme = "https"
			}
			for _, a := range addrs {
				host := a
				if host == "0.0.0.0" || host == "::" {
					host = "127.0.0.1"
				}
				fmt.Fprintf(w, "Gateway %s serving %s://%s\n", g.Name, scheme, net.JoinHostPort(host, strconv.Itoa(int(p.Number))))
			}
		}
	}
	fmt.Fprintf(w, "Admin API: http://%s/status\n", adminAddress)
}

// startEchoBackends serves an echo backend on every loopback endpoint of the config's
// Backend objects, each answering with its Backend's name.
func startEchoBackends(path string, log *slog.Logger) ([]*http.Server, error) {
	snap, err := resource.LoadPath(path)
	if err != nil {
		return nil, fmt.Errorf("--echo-backends: %w", err)
	}
	names := map[string]string{}
	for _, b := range resource.Sorted(snap.Backends) {
		for _, ep := range b.Spec.Endpoints {
			ip := net.ParseIP(ep.Address)
			if ip == nil || !ip.IsLoopback() {
				continue
			}
			addr := net.JoinHostPort(ep.Address, strconv.Itoa(int(ep.Port)))
			if _, dup := names[addr]; !dup {
				names[addr] = b.Namespace + "/" + b.Name
			}
		}
	}
	addrs := make([]string, 0, len(names))
	for a := range names {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	servers, err := startEchoServers(addrs, func(a string) string { return names[a] })
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		log.Info("echo backend listening", "address", a, "backend", names[a])
	}
	return servers, nil
}

// runState is what the admin API shows; updated by the provider callbacks.
type runState struct {
	mu        sync.Mutex
	ready     bool
	cfg       *ir.Config
	status    *translate.Status
	appliedAt time.Time
	errors    []admin.Error
}

func (s *runState) applied(cfg *ir.Config, status *translate.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	status.StampTransitions(s.status, metav1.Now())
	s.ready, s.cfg, s.status, s.appliedAt, s.errors = true, cfg, status, time.Now(), nil
}

func (s *runState) failed(status *translate.Status, stage string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status != nil {
		status.StampTransitions(s.status, metav1.Now())
		s.status = status
	}
	s.errors = []admin.Error{{Time: time.Now(), Stage: stage, Message: err.Error()}}
}

// endpoints records a config whose only change is endpoints (status unchanged).
func (s *runState) endpoints(cfg *ir.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = cfg
}

func (s *runState) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

func (s *runState) Snapshot() admin.View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return admin.View{Config: s.cfg, Status: s.status, AppliedAt: s.appliedAt, Errors: append([]admin.Error(nil), s.errors...)}
}
