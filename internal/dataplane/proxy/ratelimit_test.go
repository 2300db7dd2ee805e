package proxy

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-gw/portico/internal/ir"
)

// TestBucketRateAndBurst: a client gets its burst at once, then one request per
// interval; a client that stays away gets its burst back.
func TestBucketRateAndBurst(t *testing.T) {
	var rl rateLimits
	limit := ir.RateLimit{RequestsPerSecond: 10, Burst: 3}
	now := time.Unix(1000, 0).UnixNano()
	allowed := func(client string, at int64) bool { return rl.allowAt("l", limit, client, at) }
	for i := range 3 {
		if !allowed("a", now) {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	if allowed("a", now) {
		t.Fatal("a fourth request at once was allowed (burst 3)")
	}
	if !allowed("b", now) {
		t.Fatal("another client was refused")
	}
	if allowed("a", now+int64(99*time.Millisecond)) {
		t.Fatal("allowed before the interval (100ms at 10/s) passed")
	}
	if !allowed("a", now+int64(100*time.Millisecond)) {
		t.Fatal("refused once the interval passed")
	}
	later := now + int64(time.Second)
	for i := range 3 {
		if !allowed("a", later) {
			t.Fatalf("after a pause, request %d of the burst refused", i+1)
		}
	}
	// Another listener, or the same one with another limit, has buckets of its own.
	if !rl.allowAt("other", limit, "a", later) || !rl.allowAt("l", ir.RateLimit{RequestsPerSecond: 10, Burst: 4}, "a", later) {
		t.Fatal("limits of other listeners or settings shared a bucket")
	}
}

// TestBucketConcurrent: concurrent requests of one client never get more than the
// burst at one instant.
func TestBucketConcurrent(t *testing.T) {
	var rl rateLimits
	limit := ir.RateLimit{RequestsPerSecond: 1, Burst: 50}
	now := time.Now().UnixNano()
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if rl.allowAt("l", limit, "c", now) {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != 50 {
		t.Fatalf("%d of 800 simultaneous requests allowed, want the burst of 50", ok.Load())
	}
}

// TestBucketsBounded: past maxClientBuckets, clients whose buckets are full again are
// forgotten; when none is, new clients share one bucket instead of growing the map.
func TestBucketsBounded(t *testing.T) {
	cb := newClientBuckets(ir.RateLimit{RequestsPerSecond: 1, Burst: 1}, new(atomic.Int64))
	now := time.Now().UnixNano()
	for i := range maxClientBuckets {
		if !cb.allow("10.0."+strconv.Itoa(i), now) {
			t.Fatalf("client %d refused", i)
		}
	}
	if !cb.allow("new-1", now) {
		t.Fatal("the first client past the bound was refused (the shared bucket is full)")
	}
	if cb.allow("new-2", now) {
		t.Fatal("a second new client got through the shared bucket at once")
	}
	if n := cb.n.Load(); n != maxClientBuckets {
		t.Fatalf("%d buckets, want the bound %d", n, maxClientBuckets)
	}
	// The shared bucket has 64 clients' worth of rate: 1/64 s later it lets one more in.
	if !cb.allow("new-4", now+int64(time.Second/overflowFactor)) {
		t.Fatal("the shared bucket did not refill at 64 times a client's rate")
	}
	// The sweep that found nothing to forget is not repeated within the second.
	if cb.n.Load() != maxClientBuckets {
		t.Fatal("a new client got its own bucket less than a second after a fruitless sweep")
	}
	// A second later every bucket is full again: sweeping makes room.
	if !cb.allow("new-3", now+int64(2*time.Second)) {
		t.Fatal("a new client was refused after the sweep")
	}
	if n := cb.n.Load(); n != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", n)
	}
}

func TestClientAddress(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000": "127.0.0.1", "[::1]:80": "::/64", "pipe": "pipe",
		"[2001:db8:1:2:aaaa::1]:443": "2001:db8:1:2::/64", "[2001:db8:1:2:bbbb::7%eth0]:443": "2001:db8:1:2::/64",
		"[::ffff:10.0.0.1]:80": "::ffff:10.0.0.1",
	} {
		if got := clientAddress(&http.Request{RemoteAddr: in}); got != want {
			t.Errorf("clientAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPortLimitsShareTheBound: the listeners of one port count their clients together,
// and a listener that goes gives its clients back.
func TestPortLimitsShareTheBound(t *testing.T) {
	var rl rateLimits
	limit := ir.RateLimit{RequestsPerSecond: 1, Burst: 1}
	now := rl.now()
	for i := range 10 {
		rl.allowAt("a", limit, "10.0.0."+strconv.Itoa(i), now)
		rl.allowAt("b", limit, "10.0.1."+strconv.Itoa(i), now)
	}
	if n := rl.n.Load(); n != 20 {
		t.Fatalf("%d clients counted, want 20", n)
	}
	rl.keep(nil) // no table: every listener gone
	if n := rl.n.Load(); n != 0 {
		t.Fatalf("%d clients counted after their listeners went, want 0", n)
	}
}
