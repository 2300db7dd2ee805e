// Package kubernetes is the provider that reads Portico's inputs from a Kubernetes API
// server: controller-runtime informers fill a resource.Snapshot (the same type the file
// provider builds), the pipeline translates and applies it, and the elected leader
// writes status back.
//
// Every replica serves traffic from what it watches; only the leader (a Lease) writes
// status, and losing the Lease stops only that (see elector). Events are batched: a burst of changes (1,000 routes applied at once) causes a
// few translations, not one per event. A change of EndpointSlices alone skips
// translation: only the endpoints of the Services concerned are recomputed.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/api/v1alpha1"
	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/resource"
	"github.com/portico-gw/portico/internal/translate"
)

// Applier is the data plane, as far as the provider is concerned.
type Applier interface {
	Apply(*ir.Config) error
}

// Options configure a Provider.
type Options struct {
	// Translate carries the controller name and the address pool to the translator.
	Translate translate.Options
	// AddressPool is where Gateways get their addresses from (--gateway-addresses).
	// Required: every Gateway needs an address of its own.
	AddressPool netip.Prefix
	// Batch is how long the inputs must be quiet before a translation (default 50 ms);
	// MaxBatch bounds the wait under a steady stream of events (default 1 s).
	Batch, MaxBatch time.Duration

	// LeaderElection makes replicas elect the one that writes status (a Lease named
	// LeaseName in LeaseNamespace). Off: this process writes status.
	LeaderElection               bool
	LeaseNamespace, LeaseName    string
	LeaseDuration, RenewDeadline time.Duration
	RetryPeriod                  time.Duration

	Log *slog.Logger
	// OnApplied and OnFailed report each outcome (for the admin API); optional.
	OnApplied func(cfg *ir.Config, st *translate.Status)
	OnFailed  func(st *translate.Status, stage string, err error)
	// OnEndpoints reports a config whose only change is endpoints (no new status).
	OnEndpoints func(cfg *ir.Config)
}

// Provider watches the API server and drives the pipeline.
type Provider struct {
	opts    Options
	mgr     manager.Manager
	dp      Applier
	log     *slog.Logger
	addrs   *addressPool
	status  *statusWriter
	elector *elector

	wake chan struct{}
	mu   sync.Mutex
	// dirty collects what changed since the last build: any kind but EndpointSlices
	// needs a translation; EndpointSlice changes only name their Services.
	needTranslate bool
	dirtyServices map[resource.Key]bool

	lastCfg *ir.Config // the config last applied (nil before the first)
	kinds   []kind     // the watched kinds the API server serves

	translations, endpointRefreshes atomic.Int64
}

// Scheme is every type the provider reads and writes.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, gwv1.Install, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// New sets up the manager (not started yet).
func New(cfg *rest.Config, dp Applier, o Options) (*Provider, error) {
	if !o.AddressPool.IsValid() {
		return nil, errors.New("an address pool (--gateway-addresses) is required: every Gateway gets an address of its own")
	}
	if o.Translate.ControllerName == "" {
		o.Translate.ControllerName = translate.DefaultControllerName
	}
	o.Translate.AddressPool = o.AddressPool.Masked()
	if o.Batch <= 0 {
		o.Batch = 50 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.LeaseName == "" {
		o.LeaseName = "portico-controller"
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.RenewDeadline <= 0 {
		o.RenewDeadline = 10 * time.Second
	}
	if o.RetryPeriod <= 0 {
		o.RetryPeriod = 2 * time.Second
	}
	if o.LeaderElection && o.LeaseNamespace == "" {
		return nil, errors.New("leader election needs the Lease's namespace")
	}
	if o.LeaderElection && (o.LeaseDuration <= o.RenewDeadline || float64(o.RenewDeadline) <= 1.2*float64(o.RetryPeriod)) {
		return nil, fmt.Errorf("leader election: the lease duration (%s) must exceed the renew deadline (%s), which must exceed 1.2 × the retry period (%s)",
			o.LeaseDuration, o.RenewDeadline, o.RetryPeriod)
	}
	// The manager's own leader election is off: see elector.
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Scheme:                 scheme,
		Logger:                 logr.FromSlogHandler(o.Log.Handler()),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	p := &Provider{
		opts:          o,
		mgr:           mgr,
		dp:            dp,
		log:           o.Log,
		addrs:         newAddressPool(o.AddressPool),
		wake:          make(chan struct{}, 1),
		needTranslate: true,
		dirtyServices: map[resource.Key]bool{},
	}
	p.status = newStatusWriter(mgr.GetClient(), mgr.GetAPIReader(), o.Translate.ControllerName, o.Log)
	if err := mgr.Add(&pipeline{p}); err != nil {
		return nil, err
	}
	p.elector = newElector(p, cfg)
	if err := mgr.Add(p.elector); err != nil {
		return nil, err
	}
	return p, nil
}

// Run starts watching and serving, and returns when ctx ends.
func (p *Provider) Run(ctx context.Context) error {
	return p.mgr.Start(ctx)
}

// Elected is closed once this replica has been elected (at once without leader
// election); Leading says whether it leads now.
func (p *Provider) Elected() <-chan struct{} { return p.elector.elected }

// Leading reports whether this replica holds the Lease (and writes status) now.
func (p *Provider) Leading() bool {
	p.elector.mu.Lock()
	defer p.elector.mu.Unlock()
	return p.elector.leading
}

// Translations counts full translations; EndpointRefreshes counts EndpointSlice-only
// updates that skipped translation.
func (p *Provider) Translations() int64      { return p.translations.Load() }
func (p *Provider) EndpointRefreshes() int64 { return p.endpointRefreshes.Load() }

// StatusWrites counts status updates sent to the API server.
func (p *Provider) StatusWrites() int64 { return p.status.writes.Load() }

// pipeline is the runnable every replica runs, leader or not: watch, translate, apply.
type pipeline struct{ p *Provider }

func (r *pipeline) NeedLeaderElection() bool { return false }

func (r *pipeline) Start(ctx context.Context) error {
	p := r.p
	c := p.mgr.GetCache()
	for _, k := range kinds() {
		obj := k.obj
		inf, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if meta.IsNoMatchError(err) {
			// An older or partial Gateway API install: serve what exists rather than
			// stop (and take the data plane down with us).
			p.log.Warn("the API server does not serve this kind (is its CRD installed?); it is ignored until Portico restarts", "kind", fmt.Sprintf("%T", obj))
			continue
		}
		if err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
		p.kinds = append(p.kinds, k)
		_, isSlice := obj.(*discoveryv1.EndpointSlice)
		if _, err := inf.AddEventHandler(p.handler(isSlice)); err != nil {
			return err
		}
	}
	if !c.WaitForCacheSync(ctx) {
		return ctx.Err()
	}
	p.log.Info("caches synced; serving from the API server")
	p.build(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		}
		// Batch: wait until the inputs are quiet for Batch, at most MaxBatch.
		deadline := time.NewTimer(p.opts.MaxBatch)
	quiet:
		for {
			select {
			case <-ctx.Done():
				deadline.Stop()
				return nil
			case <-p.wake:
				continue
			case <-time.After(p.opts.Batch):
				break quiet
			case <-deadline.C:
				break quiet
			}
		}
		deadline.Stop()
		p.build(ctx)
	}
}

func (p *Provider) handler(endpointSlices bool) toolscache.ResourceEventHandler {
	mark := func(obj any) {
		if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		p.mu.Lock()
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok && endpointSlices && s.Labels[discoveryv1.LabelServiceName] != "" {
			p.dirtyServices[resource.Key{Namespace: s.Namespace, Name: s.Labels[discoveryv1.LabelServiceName]}] = true
		} else {
			p.needTranslate = true
		}
		p.mu.Unlock()
		p.poke()
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { mark(obj) },
		UpdateFunc: func(old, obj any) {
			if statusOnly(old, obj) {
				return
			}
			mark(obj)
			if o, ok := old.(*discoveryv1.EndpointSlice); ok && endpointSlices {
				// A slice moved to another Service: the one it left loses endpoints.
				mark(o)
			}
		},
		DeleteFunc: mark,
	}
}

// statusOnly reports an update that changed only an object's status (its generation,
// labels and annotations are the same): the translator reads no status, and the status
// writer's own updates must not cause translations.
func statusOnly(old, obj any) bool {
	o, ok1 := old.(client.Object)
	n, ok2 := obj.(client.Object)
	if !ok1 || !ok2 || n.GetGeneration() == 0 {
		return false // kinds without a generation (Secrets, ConfigMaps, ...) are all spec
	}
	if og, ok := o.(*gwv1.Gateway); ok {
		// The address in a Gateway's status is the leader's choice, which every
		// replica takes (see addressPool).
		if ng, ok := n.(*gwv1.Gateway); ok && !equality.Semantic.DeepEqual(og.Status.Addresses, ng.Status.Addresses) {
			return false
		}
	}
	return o.GetGeneration() == n.GetGeneration() &&
		maps.Equal(o.GetLabels(), n.GetLabels()) && maps.Equal(o.GetAnnotations(), n.GetAnnotations())
}

// poke wakes the pipeline (a no-op when it is already due to run).
func (p *Provider) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// build runs the pipeline once for what changed.
func (p *Provider) build(ctx context.Context) {
	p.mu.Lock()
	full := p.needTranslate || p.lastCfg == nil
	services := make([]resource.Key, 0, len(p.dirtyServices))
	for k := range p.dirtyServices {
		services = append(services, k)
	}
	p.needTranslate, p.dirtyServices = false, map[resource.Key]bool{}
	p.mu.Unlock()

	snap, err := p.snapshot(ctx, !full)
	if err != nil {
		p.log.Error("reading the inputs from the cache failed; the previous config keeps serving; retrying", "error", err)
		p.mu.Lock()
		p.needTranslate = true
		p.mu.Unlock()
		time.AfterFunc(time.Second, p.poke)
		return
	}
	if !full {
		cfg, changed := translate.RefreshEndpoints(p.lastCfg, snap, services)
		p.endpointRefreshes.Add(1)
		if !changed {
			return
		}
		if err := p.dp.Apply(cfg); err != nil {
			p.log.Error("endpoint update rejected by the data plane; the previous config keeps serving", "error", err)
			return
		}
		p.lastCfg = cfg
		if p.opts.OnEndpoints != nil {
			p.opts.OnEndpoints(cfg)
		}
		p.log.Debug("endpoints updated", "services", len(services))
		return
	}

	start := time.Now()
	topts := p.opts.Translate
	topts.AddressProblems = p.addrs.assign(snap, topts.ControllerName)
	cfg, st := translate.TranslateWith(snap, topts)
	p.translations.Add(1)
	translated := time.Since(start)
	if err := p.dp.Apply(cfg); err != nil {
		p.log.Error("config rejected by the data plane; the previous config keeps serving", "error", err)
		st.MarkNotProgrammed(err)
		// The hooks run first: they may stamp st's conditions, and once published the
		// status writer reads st from its own goroutine.
		if p.opts.OnFailed != nil {
			p.opts.OnFailed(st, "apply", err)
		}
		p.status.publish(snap, st)
		return
	}
	p.lastCfg = cfg
	if p.opts.OnApplied != nil {
		p.opts.OnApplied(cfg, st)
	}
	p.status.publish(snap, st)
	p.log.Info("config applied", "gateways", len(cfg.Gateways), "clusters", len(cfg.Clusters), "objects", snap.Len(),
		"translate", translated.Round(time.Microsecond), "total", time.Since(start).Round(time.Microsecond))
}
