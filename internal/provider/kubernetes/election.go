package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// elector decides which replica writes status. Unlike controller-runtime's leader
// election, which stops the whole manager when the Lease is lost, losing the Lease here
// only stops status writing: this process carries traffic, and an API server that cannot
// be reached for a few seconds must not take a gateway down. The replica then stands
// for election again.
type elector struct {
	p        *Provider
	cfg      *rest.Config
	identity string

	mu      sync.Mutex
	elected chan struct{} // closed at the first election
	leading bool
}

func newElector(p *Provider, cfg *rest.Config) *elector {
	host, _ := os.Hostname()
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	return &elector{p: p, cfg: cfg, identity: host + "_" + hex.EncodeToString(id), elected: make(chan struct{})}
}

func (e *elector) NeedLeaderElection() bool { return false }

func (e *elector) setLeading(v bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.leading = v
	if v {
		select {
		case <-e.elected:
		default:
			close(e.elected)
		}
	}
}

func (e *elector) Start(ctx context.Context) error {
	o := e.p.opts
	if !o.LeaderElection {
		e.setLeading(true)
		e.p.status.lead(ctx)
		return nil
	}
	cs, err := kubernetes.NewForConfig(e.cfg)
	if err != nil {
		return err
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, o.LeaseNamespace, o.LeaseName,
		cs.CoreV1(), cs.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: e.identity})
	if err != nil {
		return fmt.Errorf("leader election lock: %w", err)
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   o.LeaseDuration,
			RenewDeadline:   o.RenewDeadline,
			RetryPeriod:     o.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            o.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					e.setLeading(true)
					e.p.log.Info("elected: this replica writes status", "lease", o.LeaseNamespace+"/"+o.LeaseName, "identity", e.identity)
					e.p.status.lead(lctx)
				},
				OnStoppedLeading: func() {
					e.setLeading(false)
					if ctx.Err() == nil {
						e.p.log.Warn("lost the Lease: status writing stops; traffic is still served; standing for election again", "lease", o.LeaseNamespace+"/"+o.LeaseName)
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(o.RetryPeriod):
		}
	}
	return nil
}
