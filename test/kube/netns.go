package kube

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// NetNS is a network namespace of a test's own, joined to the host by a veth pair on a
// /30 of 10.250.0.0/16: the host side has HostIP, the namespace side IP. It stands in for
// a pod: the Kubernetes API refuses loopback addresses in EndpointSlices, so backends
// a Gateway reaches through EndpointSlices listen on IP, inside the namespace. Nothing
// is routed off the machine: the /30 exists only on the pair. Needs root (CAP_NET_ADMIN).
type NetNS struct {
	Name   string
	IP     netip.Addr // the namespace's side
	HostIP netip.Addr // the host's side
	host   string     // the host side's link name
	once   sync.Once
}

var (
	netnsSeq   atomic.Uint32
	netnsMu    sync.Mutex // one creation at a time in this process (the /30 check)
	sweepOnce  sync.Once
	netnsNamed = regexp.MustCompile(`^portico-(\d+)-[0-9a-f]+$`)
)

// NewNetNS creates a namespace and its veth pair. Close removes both. Namespaces are
// named after the test process ("portico-PID-TAG"); the first call removes those of
// processes that died without cleaning up (a test binary killed by its timeout).
func NewNetNS() (*NetNS, error) {
	sweepOnce.Do(sweepNetNS)
	netnsMu.Lock()
	defer netnsMu.Unlock()
	id := make([]byte, 3)
	_, _ = rand.Read(id)
	tag := hex.EncodeToString(id)
	// A /30 per namespace, one not on this host already (Linux would accept the same
	// address on two links and route by whichever came first).
	var base netip.Addr
	for try := 0; ; try++ {
		n := ((uint32(id[0])<<8|uint32(id[1]))%16384 + netnsSeq.Add(1)) % 16384
		base = netip.AddrFrom4([4]byte{10, 250, byte(n >> 6), byte(n&63) << 2})
		out, err := exec.Command("ip", "-4", "addr", "show", "to", base.String()+"/30").Output()
		if err == nil && len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if try == 50 {
			return nil, errors.New("no free /30 in 10.250.0.0/16 for a network namespace")
		}
	}
	ns := &NetNS{Name: fmt.Sprintf("portico-%d-%s", os.Getpid(), tag), HostIP: base.Next(), IP: base.Next().Next(), host: "pth" + tag}
	peer := "ptp" + tag
	steps := [][]string{
		{"netns", "add", ns.Name},
		{"link", "add", ns.host, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", ns.Name},
		{"addr", "add", ns.HostIP.String() + "/30", "dev", ns.host},
		{"link", "set", ns.host, "up"},
		{"-n", ns.Name, "addr", "add", ns.IP.String() + "/30", "dev", peer},
		{"-n", ns.Name, "link", "set", peer, "up"},
		{"-n", ns.Name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			ns.Close()
			return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return ns, nil
}

// Listen opens a listening socket inside the namespace (on its IP, or any address
// there); the socket stays in the namespace while the process uses it from anywhere.
func (n *NetNS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// do runs fn on an OS thread that has joined the namespace, then returns the thread to
// the host's namespace (or, if that fails, lets it end with its goroutine).
func (n *NetNS) do(fn func() error) error {
	target, err := os.Open("/var/run/netns/" + n.Name)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("joining %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread ends with this goroutine, never reused.
			errc <- fmt.Errorf("leaving %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// sweepNetNS removes the namespaces (and so their veth pairs) of test processes that
// no longer exist.
func sweepNetNS() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := netnsNamed.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		_ = exec.Command("ip", "netns", "del", f[0]).Run()
	}
}

// Close removes the namespace (which removes the veth pair with it).
func (n *NetNS) Close() {
	n.once.Do(func() {
		_ = exec.Command("ip", "link", "del", n.host).Run()
		_ = exec.Command("ip", "netns", "del", n.Name).Run()
	})
}
