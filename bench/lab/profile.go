package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// scenarioProfile runs the h1 load through a Portico started with -cpuprofile and writes
// the profile and its top entries (flat and cumulative) next to the report.
func (l *lab) scenarioProfile(port int, backend *proc, o options) error {
	prof := filepath.Join(filepath.Dir(o.out), "portico-cpu.pprof")
	t, err := l.startPortico("portico-profiled", port, 1, false, "-cpuprofile", prof)
	if err != nil {
		return err
	}
	if err := t.procs[0].waitPort(fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		return err
	}
	spec := loadSpec{conns: o.conns, d: o.duration, path: "/"}
	s, err := l.measure(t, backend, spec)
	if err != nil {
		return err
	}
	t.procs[0].stop() // SIGTERM: the profile is written on the way out
	var b strings.Builder
	fmt.Fprintf(&b, "# Portico CPU profile: %.0f req/s, p99 %.2f ms, Portico used %.2f CPU-s in %.2f s while other jobs used %.2f CPU-s\n\n",
		s.rps, s.p99, s.proxyCPU, s.seconds, s.otherCPU)
	for _, mode := range [][]string{{"flat", "-top", "-nodecount=35"}, {"cumulative", "-top", "-cum", "-nodecount=45"}} {
		out, err := exec.Command("go", append([]string{"tool", "pprof"}, append(mode[1:], l.portico, prof)...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof: %v: %s", err, out)
		}
		fmt.Fprintf(&b, "## %s\n\n%s\n", mode[0], out)
	}
	top := filepath.Join(filepath.Dir(o.out), "profile-top.txt")
	if err := os.WriteFile(top, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(b.String())
	return nil
}
