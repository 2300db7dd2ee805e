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

	// term is held by the status writer for as long as it writes in one term, so that
	// a new term's writer starts only after the last one has stopped.
	term sync.Mutex
}

func newElector(p *Provider, cfg *rest.Config) *elector {
	host, _ := os.Hostname()
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	return &elector{p: p, cfg: cfg, identity: host + "_" + hex.EncodeToString(id), elected: make(chan struct{})}
}

func (e *elector) NeedLeaderElection() bool { return false }

// setLeading records whether this replica leads. A term's start is recorded only while
// its context is live: client-go cancels a term before it reports the term's end, so a
// late start never overrides the end.
func (e *elector) setLeading(term context.Context, v bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v && term.Err() != nil {
		return
	}
	e.leading = v
	if v {
		select {
		case <-e.elected:
		default:
			close(e.elected)
		}
	}
}

// lead writes status for one term.
func (e *elector) lead(term context.Context) {
	e.term.Lock()
	defer e.term.Unlock()
	e.setLeading(term, true)
	e.p.status.lead(term)
}

func (e *elector) Start(ctx context.Context) error {
	o := e.p.opts
	if !o.LeaderElection {
		e.lead(ctx)
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
					e.p.log.Info("elected: this replica writes status", "lease", o.LeaseNamespace+"/"+o.LeaseName, "identity", e.identity)
					e.lead(lctx)
				},
				OnStoppedLeading: func() {
					e.setLeading(ctx, false)
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
