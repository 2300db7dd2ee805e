package kubernetes

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/api/v1alpha1"
	"github.com/portico-gw/portico/internal/resource"
	"github.com/portico-gw/portico/internal/translate"
)

// statusWriter publishes translate.Status to the API server. It runs only on the
// elected leader; every replica hands it each new result, and the leader writes the
// latest one (a new leader writes the latest at once).
//
// It writes an object only when its status differs from what the object has, sets
// conditions' lastTransitionTime only when their status changes, retries on conflicts
// with a fresh read, and never touches what other controllers own: route parents and
// policy ancestors of another controllerName are kept as they are.
type statusWriter struct {
	c              client.Client
	reader         client.Reader // uncached, for retries after a conflict
	controllerName gwv1.GatewayController
	log            *slog.Logger

	mu     sync.Mutex
	latest *published // not written yet
	last   *published // the newest published, written or not
	wake   chan struct{}

	writes atomic.Int64
	// sets are the ListenerSets whose status this writer last wrote: one that drops out
	// (its Gateway went, or is no longer ours) is reset to Pending once, since a
	// ListenerSet's status names no controller that later writers could recognise.
	sets map[resource.Key]bool
}

// published is one translation's status and the snapshot it came from (which lists
// every route, so that stale entries of ours can be removed from routes no longer
// attached).
type published struct {
	snap *resource.Snapshot
	st   *translate.Status
}

func newStatusWriter(c client.Client, r client.Reader, controllerName string, log *slog.Logger) *statusWriter {
	return &statusWriter{c: c, reader: r, controllerName: gwv1.GatewayController(controllerName), log: log, wake: make(chan struct{}, 1)}
}

func (w *statusWriter) publish(snap *resource.Snapshot, st *translate.Status) {
	w.mu.Lock()
	w.latest = &published{snap: snap, st: st}
	w.last = w.latest
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// lead writes the latest published status, and every one published after, until ctx
// ends (the replica stops leading or stops).
func (w *statusWriter) lead(ctx context.Context) {
	w.mu.Lock()
	if w.last != nil && w.latest == nil {
		w.latest = w.last // a new term: write what is current, even if written before
	}
	w.mu.Unlock()
	for {
		w.mu.Lock()
		p := w.latest
		w.latest = nil
		w.mu.Unlock()
		if p != nil {
			w.write(ctx, p)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
	}
}

func (w *statusWriter) write(ctx context.Context, p *published) {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	for _, gc := range p.st.GatewayClasses {
		w.update(ctx, func() client.Object { return &gwv1.GatewayClass{} }, resource.Key{Name: gc.Name}, func(o client.Object) bool {
			obj := o.(*gwv1.GatewayClass)
			want := *gc.Status.DeepCopy()
			want.Conditions = stamp(want.Conditions, obj.Status.Conditions, now)
			if equality.Semantic.DeepEqual(obj.Status, want) {
				return false
			}
			obj.Status = want
			return true
		})
	}
	for _, g := range p.st.Gateways {
		w.update(ctx, func() client.Object { return &gwv1.Gateway{} }, resource.Key{Namespace: g.Namespace, Name: g.Name}, func(o client.Object) bool {
			obj := o.(*gwv1.Gateway)
			want := *g.Status.DeepCopy()
			want.Conditions = stamp(want.Conditions, obj.Status.Conditions, now)
			stampListeners(want.Listeners, obj.Status.Listeners, now)
			if equality.Semantic.DeepEqual(obj.Status, want) {
				return false
			}
			obj.Status = want
			return true
		})
	}

	sets := map[resource.Key]bool{}
	for _, ls := range p.st.ListenerSets {
		sets[resource.Key{Namespace: ls.Namespace, Name: ls.Name}] = true
		w.update(ctx, func() client.Object { return &gwv1.ListenerSet{} }, resource.Key{Namespace: ls.Namespace, Name: ls.Name}, func(o client.Object) bool {
			obj := o.(*gwv1.ListenerSet)
			want := *ls.Status.DeepCopy()
			want.Conditions = stamp(want.Conditions, obj.Status.Conditions, now)
			stampListeners(want.Listeners, obj.Status.Listeners, now)
			if equality.Semantic.DeepEqual(obj.Status, want) {
				return false
			}
			obj.Status = want
			return true
		})
	}

	for k := range w.sets {
		if !sets[k] && w.releasesListenerSet(p, k) {
			w.update(ctx, func() client.Object { return &gwv1.ListenerSet{} }, k, func(o client.Object) bool {
				obj := o.(*gwv1.ListenerSet)
				msg := "no Gateway of " + string(w.controllerName) + " is the parent of this ListenerSet any more"
				want := gwv1.ListenerSetStatus{Conditions: []metav1.Condition{
					{Type: string(gwv1.ListenerSetConditionAccepted), Status: metav1.ConditionUnknown, Reason: string(gwv1.ListenerSetReasonPending), Message: msg, ObservedGeneration: obj.Generation},
					{Type: string(gwv1.ListenerSetConditionProgrammed), Status: metav1.ConditionUnknown, Reason: string(gwv1.ListenerSetReasonPending), Message: msg, ObservedGeneration: obj.Generation},
				}}
				want.Conditions = stamp(want.Conditions, obj.Status.Conditions, now)
				if equality.Semantic.DeepEqual(obj.Status, want) {
					return false
				}
				obj.Status = want
				return true
			})
		}
	}
	w.sets = sets

	// Routes: ours are those with computed status, and any other that still carries a
	// parent entry of ours (its parentRef went away, or its Gateway did).
	ours := map[string]translate.RouteStatus{}
	for _, r := range p.st.Routes {
		ours[r.Kind+"/"+r.Namespace+"/"+r.Name] = r
	}
	for _, kr := range routesOf(p.snap) {
		r, computed := ours[kr.kind+"/"+kr.key.Namespace+"/"+kr.key.Name]
		if !computed && !w.hasOurParent(kr.status) {
			continue
		}
		w.update(ctx, func() client.Object { return newRoute(kr.kind) }, kr.key, func(o client.Object) bool {
			rs := routeStatusOf(o)
			want := w.mergeParents(rs.Parents, r.Status.Parents, now)
			if equality.Semantic.DeepEqual(rs.Parents, want) {
				return false
			}
			rs.Parents = want
			return true
		})
	}

	writePolicies(ctx, w, p.st.ListenerPolicies, p.snap.ListenerPolicies, now,
		func() *v1alpha1.ListenerPolicy { return &v1alpha1.ListenerPolicy{} },
		func(o *v1alpha1.ListenerPolicy) *[]gwv1.PolicyAncestorStatus { return &o.Status.Ancestors })
	writePolicies(ctx, w, p.st.BackendTLSPolicies, p.snap.BackendTLSPolicies, now,
		func() *gwv1.BackendTLSPolicy { return &gwv1.BackendTLSPolicy{} },
		func(o *gwv1.BackendTLSPolicy) *[]gwv1.PolicyAncestorStatus { return &o.Status.Ancestors })
}

// writePolicies writes the ancestors of ours in the status of every policy of one kind
// that has computed status, or still carries an ancestor entry of ours (read only:
// the snapshot's objects are the cache's).
func writePolicies[T client.Object](ctx context.Context, w *statusWriter, computed []translate.PolicyStatus, objs map[resource.Key]T,
	now metav1.Time, newObj func() T, ancestors func(T) *[]gwv1.PolicyAncestorStatus) {
	byKey := map[resource.Key]translate.PolicyStatus{}
	for _, ps := range computed {
		byKey[resource.Key{Namespace: ps.Namespace, Name: ps.Name}] = ps
	}
	for k, pol := range objs {
		ps, ok := byKey[k]
		if !ok && !w.hasOurAncestor(*ancestors(pol)) {
			continue
		}
		w.update(ctx, func() client.Object { return newObj() }, k, func(o client.Object) bool {
			have := ancestors(o.(T))
			want := w.mergeAncestors(*have, ps.Status.Ancestors, now)
			if equality.Semantic.DeepEqual(*have, want) {
				return false
			}
			*have = want
			return true
		})
	}
}

// stampListeners stamps the conditions of each listener in want (a Gateway's or a
// ListenerSet's) against those of the listener of the same name in have.
func stampListeners[L gwv1.ListenerStatus | gwv1.ListenerEntryStatus](want, have []L, now metav1.Time) {
	for i := range want {
		w := gwv1.ListenerStatus(want[i])
		var prev []metav1.Condition
		for _, h := range have {
			if hl := gwv1.ListenerStatus(h); hl.Name == w.Name {
				prev = hl.Conditions
			}
		}
		w.Conditions = stamp(w.Conditions, prev, now)
		want[i] = L(w)
	}
}

// releasesListenerSet reports whether the ListenerSet k, whose status this writer wrote
// before but has none for now, is still there and left to no other controller: its
// parent Gateway is gone or has no GatewayClass, rather than being another
// controller's (which then writes the set's status itself).
func (w *statusWriter) releasesListenerSet(p *published, k resource.Key) bool {
	ls, ok := p.snap.ListenerSets[k]
	if !ok {
		return false
	}
	ref := ls.Spec.ParentRef
	ns := ls.Namespace
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	gw, ok := p.snap.Gateways[resource.Key{Namespace: ns, Name: string(ref.Name)}]
	if !ok {
		return true
	}
	class, ok := p.snap.GatewayClasses[resource.Key{Name: string(gw.Spec.GatewayClassName)}]
	return !ok || class.Spec.ControllerName == w.controllerName
}

// update reads key's object (from the cache first), lets change edit its status (false:
// nothing to write) and writes it, reading afresh from the API server and editing again
// after a conflict. Every attempt works on a new object (newObj): the client decodes
// answers into the object it is given, reusing its pointers and slices, so an object
// must never be shared with the cache, the translator's Status or an earlier attempt.
func (w *statusWriter) update(ctx context.Context, newObj func() client.Object, key resource.Key, change func(client.Object) bool) {
	first := true
	var obj client.Object
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var err error
		obj = newObj()
		ok := client.ObjectKey{Namespace: key.Namespace, Name: key.Name}
		if first {
			err = w.c.Get(ctx, ok, obj)
			first = false
		} else {
			err = w.reader.Get(ctx, ok, obj)
		}
		if err != nil {
			return err
		}
		if !change(obj) {
			return nil
		}
		if err := w.c.Status().Update(ctx, obj); err != nil {
			return err
		}
		w.writes.Add(1)
		return nil
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		w.log.Warn("writing status failed", "kind", kindOf(obj), "object", key.String(), "error", err)
	}
}

// stamp gives each condition of want the lastTransitionTime of prev's condition of the
// same type if its status did not change, else now.
func stamp(want, prev []metav1.Condition, now metav1.Time) []metav1.Condition {
	out := make([]metav1.Condition, len(want))
	for i, c := range want {
		c.LastTransitionTime = now
		for _, p := range prev {
			if p.Type == c.Type && p.Status == c.Status && !p.LastTransitionTime.IsZero() {
				c.LastTransitionTime = p.LastTransitionTime
			}
		}
		out[i] = c
	}
	return out
}

// mergeParents keeps the parents other controllers wrote (in their place) and replaces
// ours by want (appended in want's order).
func (w *statusWriter) mergeParents(have, want []gwv1.RouteParentStatus, now metav1.Time) []gwv1.RouteParentStatus {
	var out []gwv1.RouteParentStatus
	for _, p := range have {
		if p.ControllerName != w.controllerName {
			out = append(out, *p.DeepCopy())
		}
	}
	for _, p := range want {
		p = *p.DeepCopy()
		var prev []metav1.Condition
		for _, h := range have {
			if h.ControllerName == w.controllerName && equality.Semantic.DeepEqual(h.ParentRef, p.ParentRef) {
				prev = h.Conditions
			}
		}
		p.Conditions = stamp(p.Conditions, prev, now)
		out = append(out, p)
	}
	if out == nil {
		out = []gwv1.RouteParentStatus{}
	}
	return out
}

func (w *statusWriter) mergeAncestors(have, want []gwv1.PolicyAncestorStatus, now metav1.Time) []gwv1.PolicyAncestorStatus {
	var out []gwv1.PolicyAncestorStatus
	for _, a := range have {
		if a.ControllerName != w.controllerName {
			out = append(out, *a.DeepCopy())
		}
	}
	for _, a := range want {
		a = *a.DeepCopy()
		var prev []metav1.Condition
		for _, h := range have {
			if h.ControllerName == w.controllerName && equality.Semantic.DeepEqual(h.AncestorRef, a.AncestorRef) {
				prev = h.Conditions
			}
		}
		a.Conditions = stamp(a.Conditions, prev, now)
		out = append(out, a)
	}
	if out == nil {
		out = []gwv1.PolicyAncestorStatus{}
	}
	return out
}

func (w *statusWriter) hasOurParent(rs *gwv1.RouteStatus) bool {
	for _, p := range rs.Parents {
		if p.ControllerName == w.controllerName {
			return true
		}
	}
	return false
}

func (w *statusWriter) hasOurAncestor(as []gwv1.PolicyAncestorStatus) bool {
	for _, a := range as {
		if a.ControllerName == w.controllerName {
			return true
		}
	}
	return false
}

// kindRoute is one route of any kind in a snapshot.
type kindRoute struct {
	kind   string
	key    resource.Key
	status *gwv1.RouteStatus
}

func routesOf(s *resource.Snapshot) []kindRoute {
	var out []kindRoute
	for k, r := range s.HTTPRoutes {
		out = append(out, kindRoute{"HTTPRoute", k, &r.Status.RouteStatus})
	}
	for k, r := range s.GRPCRoutes {
		out = append(out, kindRoute{"GRPCRoute", k, &r.Status.RouteStatus})
	}
	for k, r := range s.TLSRoutes {
		out = append(out, kindRoute{"TLSRoute", k, &r.Status.RouteStatus})
	}
	for k, r := range s.TCPRoutes {
		out = append(out, kindRoute{"TCPRoute", k, &r.Status.RouteStatus})
	}
	for k, r := range s.UDPRoutes {
		out = append(out, kindRoute{"UDPRoute", k, &r.Status.RouteStatus})
	}
	return out
}

func newRoute(kind string) client.Object {
	switch kind {
	case "GRPCRoute":
		return &gwv1.GRPCRoute{}
	case "TLSRoute":
		return &gwv1.TLSRoute{}
	case "TCPRoute":
		return &gwv1.TCPRoute{}
	case "UDPRoute":
		return &gwv1.UDPRoute{}
	}
	return &gwv1.HTTPRoute{}
}

func routeStatusOf(o client.Object) *gwv1.RouteStatus {
	switch r := o.(type) {
	case *gwv1.HTTPRoute:
		return &r.Status.RouteStatus
	case *gwv1.GRPCRoute:
		return &r.Status.RouteStatus
	case *gwv1.TLSRoute:
		return &r.Status.RouteStatus
	case *gwv1.TCPRoute:
		return &r.Status.RouteStatus
	case *gwv1.UDPRoute:
		return &r.Status.RouteStatus
	}
	return &gwv1.RouteStatus{}
}

func kindOf(o client.Object) string {
	switch o.(type) {
	case *gwv1.GatewayClass:
		return "GatewayClass"
	case *gwv1.Gateway:
		return "Gateway"
	case *gwv1.ListenerSet:
		return "ListenerSet"
	case *gwv1.BackendTLSPolicy:
		return "BackendTLSPolicy"
	case *v1alpha1.ListenerPolicy:
		return "ListenerPolicy"
	}
	return "route"
}
