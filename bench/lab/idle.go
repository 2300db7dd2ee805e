package main

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// idleResult is the memory a proxy holds for idle keep-alive client connections.
type idleResult struct {
	name          string
	conns         int
	before, after int64 // KiB
}

func (r idleResult) perConn() float64 { return float64(r.after-r.before) / float64(r.conns) }

// scenarioIdle opens n keep-alive connections to each proxy, sends one request on each
// (so that the proxy has served it and holds the connection as any idle client's), and
// reads the proxy's resident memory before and after.
func (l *lab) scenarioIdle(targets []*target, n int) ([]idleResult, error) {
	var out []idleResult
	for _, t := range targets {
		if len(t.procs) == 0 {
			continue
		}
		tree := treePIDs(t.pids()...)
		before := rssKB(tree)
		conns, err := openIdle(t.base(), n)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("idle connections to %s: %w", t.name, err)
		}
		time.Sleep(2 * time.Second) // let the proxy settle (deferred frees, GC)
		after := rssKB(treePIDs(t.pids()...))
		closeAll(conns)
		r := idleResult{name: t.name, conns: n, before: before, after: after}
		out = append(out, r)
		log.Printf("idle: %-18s %d connections: RSS %d -> %d KiB, %.1f KiB per connection", t.name, n, before, after, r.perConn())
		time.Sleep(2 * time.Second) // the closes reach the proxy before the next one
	}
	return out, nil
}

// openIdle opens n connections to base, 100 at a time, each having made one request.
func openIdle(base string, n int) ([]net.Conn, error) {
	addr := strings.TrimPrefix(base, "http://")
	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 100)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: lab\r\n\r\n"); err != nil {
				errs <- err
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Close {
				errs <- fmt.Errorf("status %d, close %v", resp.StatusCode, resp.Close)
				return
			}
			c.SetDeadline(time.Time{})
		}()
	}
	wg.Wait()
	close(errs)
	var live []net.Conn
	for _, c := range conns {
		if c != nil {
			live = append(live, c)
		}
	}
	if err := <-errs; err != nil {
		return live, err
	}
	return live, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

func idleMarkdown(b *strings.Builder, rs []idleResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(b, "## %d idle keep-alive connections\n\nEach connection made one request and then stays open; the proxy's resident memory before\nand 2 s after opening them.\n\n", rs[0].conns)
	b.WriteString("| target | RSS before | RSS with the connections | per connection |\n| --- | ---: | ---: | ---: |\n")
	for _, r := range rs {
		fmt.Fprintf(b, "| %s | %.1f MiB | %.1f MiB | %.1f KiB |\n", r.name, float64(r.before)/1024, float64(r.after)/1024, r.perConn())
	}
	b.WriteString("\n")
}
