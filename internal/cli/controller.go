package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/portico-gw/portico/internal/dataplane"
	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/provider/kubernetes"
	"github.com/portico-gw/portico/internal/translate"
)

type controllerFlags struct {
	runFlags
	kubeconfig     string
	addresses      string
	leaderElect    bool
	leaseNamespace string
	leaseName      string
	leaseDuration  time.Duration
	renewDeadline  time.Duration
	retryPeriod    time.Duration
	batch          time.Duration
	qps            float32
	burst          int
}

func newControllerCommand() *cobra.Command {
	var f controllerFlags
	cmd := &cobra.Command{
		Use:   "controller --gateway-addresses CIDR",
		Short: "Serve the Gateways of a Kubernetes cluster: watch the API server, serve traffic, write status",
		Long: `controller is Portico in a cluster. It watches GatewayClasses whose controllerName is
--controller-name, their Gateways and routes, and what those refer to; it serves them with the
data plane in this process ("host" infrastructure: each Gateway gets its own address from
--gateway-addresses, or the one it asks for in spec.addresses if that is in the pool), and
writes status. With several replicas, all serve traffic and the one holding the Lease writes
status. SIGTERM or SIGINT drain in-flight requests and exit 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), f.logFormat, f.logLevel)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runController(ctx, f, log)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else the in-cluster service account)")
	fl.StringVar(&f.addresses, "gateway-addresses", "", "address pool (CIDR, e.g. 127.0.10.0/24) each Gateway's own address comes from (required)")
	fl.BoolVar(&f.leaderElect, "leader-elect", true, "elect one replica (a Lease) to write status; all replicas serve traffic")
	fl.StringVar(&f.leaseNamespace, "leader-election-namespace", "", "namespace of the Lease (default: $POD_NAMESPACE, else portico-system)")
	fl.StringVar(&f.leaseName, "leader-election-id", "portico-controller", "name of the Lease")
	fl.DurationVar(&f.leaseDuration, "lease-duration", 15*time.Second, "how long a standby waits before taking over a Lease that is not renewed")
	fl.DurationVar(&f.renewDeadline, "renew-deadline", 10*time.Second, "how long the leader retries renewing before it gives up leading")
	fl.DurationVar(&f.retryPeriod, "retry-period", 2*time.Second, "how often replicas try to acquire or renew the Lease")
	fl.DurationVar(&f.batch, "batch", 50*time.Millisecond, "how long the inputs must be quiet before a change is translated (bursts become one translation)")
	fl.Float32Var(&f.qps, "kube-api-qps", 50, "requests per second to the API server (status writes)")
	fl.IntVar(&f.burst, "kube-api-burst", 100, "burst of requests to the API server")
	addServeFlags(fl, &f.runFlags)
	return cmd
}

func kubeConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
}

func runController(ctx context.Context, f controllerFlags, log *slog.Logger) error {
	if f.addresses == "" {
		return &exitError{code: 2, err: errors.New("--gateway-addresses is required (e.g. 127.0.10.0/24): every Gateway gets an address of its own")}
	}
	pool, err := netip.ParsePrefix(f.addresses)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--gateway-addresses: %w", err)}
	}
	cfg, err := kubeConfig(f.kubeconfig)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("kubeconfig: %w", err)}
	}
	cfg.QPS, cfg.Burst = f.qps, f.burst
	if f.leaseNamespace == "" {
		f.leaseNamespace = os.Getenv("POD_NAMESPACE")
	}
	if f.leaseNamespace == "" {
		f.leaseNamespace = "portico-system"
	}

	tel, stopTelemetry, err := startTelemetry(ctx, f.runFlags, os.Stdout, log)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer stopTelemetry()
	dp := dataplane.New(dataplane.Options{DrainTimeout: f.drainTimeout, NetHTTP1: f.netHTTP1, Telemetry: tel, Logger: log})
	state := &runState{}
	adminSrv, _, err := startAdmin(f.adminAddress, state, tel, log)
	if err != nil {
		return err
	}

	p, err := kubernetes.New(cfg, dp, kubernetes.Options{
		Translate:      f.opts,
		AddressPool:    pool,
		Batch:          f.batch,
		LeaderElection: f.leaderElect,
		LeaseNamespace: f.leaseNamespace,
		LeaseName:      f.leaseName,
		LeaseDuration:  f.leaseDuration,
		RenewDeadline:  f.renewDeadline,
		RetryPeriod:    f.retryPeriod,
		Log:            log,
		OnApplied:      func(c *ir.Config, st *translate.Status) { state.applied(c, st) },
		OnFailed:       func(st *translate.Status, stage string, err error) { state.failed(st, stage, err) },
		OnEndpoints:    state.endpoints,
	})
	if err != nil {
		_ = adminSrv.Close()
		return &exitError{code: 2, err: err}
	}
	runErr := p.Run(ctx)
	if runErr != nil {
		log.Error("controller stopped", "error", runErr)
	}
	return drainAndStop(log, dp, adminSrv, f.drainTimeout, runErr, nil)
}
