// Package admin serves Portico's admin API: health, readiness, the current config and
// every object's status, as JSON.
package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/translate"
)

// State is what the admin API shows. Implementations must be safe for concurrent use.
type State interface {
	// Ready reports whether a config has been applied to the data plane.
	Ready() bool
	// Snapshot returns the current view.
	Snapshot() View
}

// View is one consistent reading of the gateway's state.
type View struct {
	// Config is the config the data plane serves (nil before the first apply).
	Config *ir.Config
	// Status is the status of every owned object, from the last translation.
	Status *translate.Status
	// AppliedAt is when Config was applied.
	AppliedAt time.Time
	// Errors explain why the newest inputs are not being served (a file that does not
	// load, a config the data plane rejected), with when they happened. Empty when the
	// newest inputs are live.
	Errors []Error
}

// Error is one problem with the newest inputs.
type Error struct {
	Time    time.Time `json:"time"`
	Stage   string    `json:"stage"` // "load" or "apply"
	Message string    `json:"message"`
}

// StatusDocument is the JSON served at /status.
type StatusDocument struct {
	Ready     bool              `json:"ready"`
	AppliedAt *time.Time        `json:"appliedAt,omitempty"`
	Errors    []Error           `json:"errors,omitempty"`
	Status    *translate.Status `json:"status,omitempty"`
}

// Handler returns the admin API's routes; metrics, when not nil, is served at /metrics.
func Handler(s State, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("no config applied yet\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		v := s.Snapshot()
		if v.Config == nil {
			http.Error(w, "no config applied yet", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, v.Config.Redacted())
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		v := s.Snapshot()
		doc := StatusDocument{Ready: s.Ready(), Errors: v.Errors, Status: v.Status}
		if !v.AppliedAt.IsZero() {
			doc.AppliedAt = &v.AppliedAt
		}
		writeJSON(w, doc)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
