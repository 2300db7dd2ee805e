package proxy

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

// maxClientBuckets bounds the client addresses the rate limits of a port's listeners
// track together (about 150 bytes each). Past it, clients whose buckets are full again
// are swept; if that frees nothing, a listener's new clients share one bucket with 64
// times a client's limit, so a flood from many addresses is held to that as a whole.
const maxClientBuckets = 1 << 16

// overflowFactor is how many clients' worth of limit the shared bucket has.
const overflowFactor = 64

// rateLimits holds the per-client rate limit state of a port's listeners. It outlives
// table swaps: a config change (a route edit, say) must not refill every bucket.
type rateLimits struct {
	m     sync.Map     // limitKey -> *clientBuckets
	n     atomic.Int64 // clients tracked, over every listener
	once  sync.Once
	epoch time.Time // times are nanoseconds since, from the monotonic clock
}

// now is the monotonic time in nanoseconds since the first use, plus one (so it is
// never zero): a wall clock stepped back must not hold every client back.
func (rl *rateLimits) now() int64 {
	rl.once.Do(func() { rl.epoch = time.Now() })
	return int64(time.Since(rl.epoch)) + 1
}

// limitKey is one listener's limit; a listener whose settings change starts afresh.
type limitKey struct {
	listener string
	limit    ir.RateLimit
}

// clientBuckets is one listener's buckets, by client address.
type clientBuckets struct {
	interval  int64 // nanoseconds between requests at the sustained rate
	tolerance int64 // how far ahead of now a client's schedule may run (the burst)
	clients   sync.Map
	n         *atomic.Int64 // shared by the port's listeners
	sweeping  sync.Mutex
	lastSweep atomic.Int64 // Unix nanoseconds; sweeps are at most one a second
	overflow  bucket
}

// bucket is a client's schedule (GCRA): the earliest time, in Unix nanoseconds, at
// which its next request would be on time at the sustained rate.
type bucket struct{ tat atomic.Int64 }

func (b *bucket) allow(now, interval, tolerance int64) bool {
	for {
		old := b.tat.Load()
		tat := max(old, now)
		if tat-now > tolerance {
			return false
		}
		if b.tat.CompareAndSwap(old, tat+interval) {
			return true
		}
	}
}

func newClientBuckets(l ir.RateLimit, n *atomic.Int64) *clientBuckets {
	interval := int64(time.Second) / int64(max(l.RequestsPerSecond, 1))
	burst := int64(max(l.Burst, 1))
	return &clientBuckets{interval: interval, tolerance: interval * (burst - 1), n: n}
}

// allow reports whether listener's limit lets the request from client through now.
func (rl *rateLimits) allow(listener string, l ir.RateLimit, client string) bool {
	return rl.allowAt(listener, l, client, rl.now())
}

func (rl *rateLimits) allowAt(listener string, l ir.RateLimit, client string, now int64) bool {
	key := limitKey{listener, l}
	v, ok := rl.m.Load(key)
	if !ok {
		v, _ = rl.m.LoadOrStore(key, newClientBuckets(l, &rl.n))
	}
	return v.(*clientBuckets).allow(client, now)
}

func (cb *clientBuckets) allow(client string, now int64) bool {
	if v, ok := cb.clients.Load(client); ok {
		return v.(*bucket).allow(now, cb.interval, cb.tolerance)
	}
	if cb.n.Load() >= maxClientBuckets && !cb.sweep(now) {
		return cb.overflow.allow(now, cb.interval/overflowFactor, cb.tolerance*overflowFactor)
	}
	v, loaded := cb.clients.LoadOrStore(client, &bucket{})
	if !loaded {
		cb.n.Add(1)
	}
	return v.(*bucket).allow(now, cb.interval, cb.tolerance)
}

// sweep forgets clients whose schedule has caught up with now (their bucket is full
// again, so forgetting them changes nothing), and reports whether there is room. It
// walks the buckets at most once a second, so a flood of new addresses cannot make
// every request pay for a walk.
func (cb *clientBuckets) sweep(now int64) bool {
	cb.sweeping.Lock()
	defer cb.sweeping.Unlock()
	if cb.n.Load() < maxClientBuckets {
		return true
	}
	if last := cb.lastSweep.Load(); last != 0 && now-last < int64(time.Second) {
		return false
	}
	cb.lastSweep.Store(now)
	cb.clients.Range(func(k, v any) bool {
		if v.(*bucket).tat.Load() <= now {
			if _, deleted := cb.clients.LoadAndDelete(k); deleted {
				cb.n.Add(-1)
			}
		}
		return true
	})
	return cb.n.Load() < maxClientBuckets
}

// keep forgets the limits of listeners no longer in t (or whose settings changed).
func (rl *rateLimits) keep(t *Table) {
	live := map[limitKey]bool{}
	if t != nil {
		for _, l := range t.Listeners() {
			if l.IR != nil && l.IR.RateLimit != nil {
				live[limitKey{l.Name, *l.IR.RateLimit}] = true
			}
		}
	}
	rl.m.Range(func(k, v any) bool {
		if !live[k.(limitKey)] {
			if _, deleted := rl.m.LoadAndDelete(k); deleted {
				v.(*clientBuckets).forget()
			}
		}
		return true
	})
}

// forget drops every client of a listener that is gone, giving back their count.
func (cb *clientBuckets) forget() {
	cb.clients.Range(func(k, _ any) bool {
		if _, deleted := cb.clients.LoadAndDelete(k); deleted {
			cb.n.Add(-1)
		}
		return true
	})
}

// clientAddress is who a rate limit counts: the IPv4 address of r's peer, without
// allocating, or the /64 of an IPv6 one (a single host may own a whole /64, and must
// not get a bucket per address in it).
func clientAddress(r *http.Request) string {
	a := r.RemoteAddr
	if i := strings.LastIndexByte(a, ':'); i >= 0 {
		a = a[:i]
	}
	a = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]")
	if strings.IndexByte(a, ':') < 0 {
		return a
	}
	ip, err := netip.ParseAddr(a)
	if err != nil || ip.Is4In6() {
		return a
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return a
	}
	return p.String()
}
