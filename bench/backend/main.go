// Command backend is the bench lab's upstream: it answers every request with the same
// small body over HTTP/1.1 keep-alive, and nothing else, so that the proxies in front
// of it are what a run measures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// body is 32 bytes, about the size of a health or small JSON answer.
const body = "hello from the bench backend...\n"

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "listen address")
	flag.Parse()

	payload := []byte(body)
	length := []string{strconv.Itoa(len(payload))}
	contentType := []string{"text/plain"}
	srv := &http.Server{
		Addr: *addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.RawQuery != "" || r.ContentLength != 0 {
				sized(w, r)
				return
			}
			h := w.Header()
			h["Content-Type"] = contentType
			h["Content-Length"] = length
			_, _ = w.Write(payload)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

// big is the content of sized answers.
var big = []byte(strings.Repeat("0123456789abcdef", 64<<10)) // 1 MiB

// sized serves the lab's large-body scenarios: "?size=N" answers N bytes (up to 1 MiB per
// write, repeated), and a request body is read to its end and its length answered.
func sized(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	size, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
	if size <= 0 {
		_, _ = io.WriteString(w, "read "+strconv.FormatInt(n, 10)+" bytes\n")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	for size > 0 {
		chunk := min(size, int64(len(big)))
		if _, err := w.Write(big[:chunk]); err != nil {
			return
		}
		size -= chunk
	}
}
