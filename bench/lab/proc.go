package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a process the lab started, pinned to one CPU.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startProc runs argv pinned to cpu (taskset), with env added to the lab's environment
// and output to a log file in dir.
func startProc(dir, name string, cpu int, env []string, argv ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	args := append([]string{"-c", strconv.Itoa(cpu)}, argv...)
	cmd := exec.Command("taskset", args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its children stop with it
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// pid is the process's id (taskset execs the command, so it is the command's).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process group: TERM, then KILL after 5 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// waitPort waits up to 15 s for something to accept on addr, failing early if the
// process exits.
func (p *proc) waitPort(addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", p.name, tail(p.log))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: nothing accepts on %s after 15 s: %s", p.name, addr, tail(p.log))
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}

// procStat is what the lab reads from /proc/PID/stat.
type procStat struct {
	pid, ppid    int
	utime, stime int64 // clock ticks
}

// parseStat reads a /proc/PID/stat line; the command name (field 2) may hold spaces
// and parentheses, so fields are counted from its last ')'.
func parseStat(line string) (procStat, error) {
	open, close := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 1 || close < open {
		return procStat{}, errors.New("malformed stat line")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return procStat{}, err
	}
	f := strings.Fields(line[close+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return procStat{}, errors.New("short stat line")
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseInt(f[11], 10, 64)
	st, err3 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return procStat{}, err
	}
	return procStat{pid: pid, ppid: ppid, utime: ut, stime: st}, nil
}

// treeTicks returns the user+system clock ticks used so far by the processes in pids
// and their direct children (nginx's worker, for instance).
func treeTicks(pids ...int) int64 {
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	var total int64
	for _, st := range allStats() {
		if want[st.pid] || want[st.ppid] {
			total += st.utime + st.stime
		}
	}
	return total
}

// treePIDs returns pids and their direct children's pids.
func treePIDs(pids ...int) []int {
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	var out []int
	for _, st := range allStats() {
		if want[st.pid] || want[st.ppid] {
			out = append(out, st.pid)
		}
	}
	return out
}

// rssKB returns the resident memory, in KiB, of the processes pids.
func rssKB(pids []int) int64 {
	var total int64
	for _, p := range pids {
		total += statusKB(p, "VmRSS:")
	}
	return total
}

func allStats() []procStat {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	out := make([]procStat, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		if st, err := parseStat(string(b)); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// statusKB reads a "Name:   123 kB" line of /proc/PID/status.
func statusKB(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			n, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return n
		}
	}
	return 0
}

// busyTicks returns the clock ticks all CPUs have spent busy (user, nice, system, irq,
// softirq, steal) since boot.
func busyTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseBusy(line)
}

func parseBusy(cpuLine string) int64 {
	f := strings.Fields(cpuLine)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var n int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		n += v
	}
	return n
}

// clockTick is USER_HZ: 100 on every Linux the lab runs on.
const clockTick = 100

func selfPID() int { return os.Getpid() }
