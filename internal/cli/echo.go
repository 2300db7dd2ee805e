package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// echoReply is what the echo backend answers: enough to see what the gateway forwarded.
type echoReply struct {
	Name       string              `json:"name"`
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Query      string              `json:"query,omitempty"`
	Host       string              `json:"host"`
	Proto      string              `json:"proto"`
	RemoteAddr string              `json:"remoteAddr"`
	Headers    map[string][]string `json:"headers"`
	TLS        *echoTLS            `json:"tls,omitempty"`
}

type echoTLS struct {
	Version            string `json:"version"`
	ServerName         string `json:"serverName,omitempty"`
	NegotiatedProtocol string `json:"negotiatedProtocol,omitempty"`
}

// maxEchoDelay bounds the delay a request may ask for.
const maxEchoDelay = time.Minute

// echoHandler answers every request with a JSON description of it. Query parameters
// shape the answer for demos and tests: status=CODE sets the status, delay=DURATION
// (at most a minute) waits before answering.
func echoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if d := q.Get("delay"); d != "" {
			delay, err := time.ParseDuration(d)
			if err != nil || delay < 0 || delay > maxEchoDelay {
				http.Error(w, "delay must be a duration up to 1m", http.StatusBadRequest)
				return
			}
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		status := http.StatusOK
		if s := q.Get("status"); s != "" {
			code, err := strconv.Atoi(s)
			if err != nil || code < 200 || code > 599 {
				http.Error(w, "status must be 200-599", http.StatusBadRequest)
				return
			}
			status = code
		}
		reply := echoReply{
			Name: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host,
			Proto: r.Proto, RemoteAddr: r.RemoteAddr, Headers: r.Header,
		}
		if r.TLS != nil {
			reply.TLS = &echoTLS{Version: tlsVersionName(r.TLS.Version), ServerName: r.TLS.ServerName, NegotiatedProtocol: r.TLS.NegotiatedProtocol}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo-Name", name)
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(reply)
	})
}

func tlsVersionName(v uint16) string {
	switch v {
	case 0x0304:
		return "TLS1.3"
	case 0x0303:
		return "TLS1.2"
	}
	return fmt.Sprintf("0x%04x", v)
}

func newEchoCommand() *cobra.Command {
	var listen []string
	var name string
	cmd := &cobra.Command{
		Use:   "echo --listen ADDR [--listen ADDR ...] [--name NAME]",
		Short: "Run a small echo backend that answers with a JSON description of each request",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			servers, err := startEchoServers(listen, func(string) string { return name })
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			addrs := make([]string, 0, len(servers))
			for _, s := range servers {
				addrs = append(addrs, s.Addr)
			}
			sort.Strings(addrs)
			fmt.Fprintf(cmd.OutOrStdout(), "echo %q listening on %v\n", name, addrs)
			<-ctx.Done()
			shutdownAll(servers, 5*time.Second)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&listen, "listen", []string{"127.0.0.1:9001"}, "address to listen on (repeatable)")
	cmd.Flags().StringVar(&name, "name", "echo", "name to report in answers")
	return cmd
}

// startEchoServers starts one echo server per address; nameOf names each.
func startEchoServers(addrs []string, nameOf func(addr string) string) ([]*http.Server, error) {
	var servers []*http.Server
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			shutdownAll(servers, time.Second)
			return nil, fmt.Errorf("echo: listen %s: %w", addr, err)
		}
		srv := &http.Server{Addr: ln.Addr().String(), Handler: echoHandler(nameOf(addr)), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				_ = err // the server's owner sees the failure as refused connections
			}
		}()
		servers = append(servers, srv)
	}
	return servers, nil
}

func shutdownAll(servers []*http.Server, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(ctx)
	}
}
