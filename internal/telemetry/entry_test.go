package telemetry

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestFlagsString(t *testing.T) {
	for f, want := range map[Flags]string{
		0: "-", FlagNoRoute: "NR", FlagUpstreamConnFailure | FlagUpstreamRetryLimit: "UF,URX",
		FlagDownstreamTerminated: "DC", FlagUpstreamTimeout: "UT", FlagUpstreamProtocol: "UPE",
	} {
		if got := f.String(); got != want {
			t.Errorf("%d: %q, want %q", f, got, want)
		}
	}
}

func TestTraceID(t *testing.T) {
	for in, want := range map[string]string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": "4bf92f3577b34da6a3ce929d0e0e4736",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01": "",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01": "",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": "",
		"garbage": "", "": "",
	} {
		if got := TraceID(in); got != want {
			t.Errorf("TraceID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTextLine(t *testing.T) {
	e := NewEntry()
	e.Start = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	e.Method, e.Path, e.Protocol, e.Status = "GET", "/a b\"c", "HTTP/1.1", 503
	e.Flags, e.Details, e.Duration = FlagUpstreamConnFailure, "upstream_connect_failure", 1500*time.Microsecond
	e.UserAgent = "curl\n/8"
	got := string(e.appendText(nil))
	want := "2026-11-29T10:00:00.000Z GET \"/a b\\\"c\" HTTP/1.1 503 UF upstream_connect_failure 0 0 1.5 -1 - - \"\" - - \"\" \"curl\\n/8\"\n"
	if got != want {
		t.Errorf("text line\n got %q\nwant %q", got, want)
	}
	// A request id from the client cannot add fields.
	e.RequestID = "x 203.0.113.1 forged"
	if line := string(e.appendText(nil)); !strings.Contains(line, ` "x 203.0.113.1 forged" `) {
		t.Errorf("the request id is not one quoted field: %q", line)
	}
}

// Whatever a client puts in the logged fields, a JSON line stays one valid JSON object
// on one line, and valid UTF-8 comes back unchanged.
func FuzzAccessLogJSON(f *testing.F) {
	f.Add("/path?q=1", "curl/8", "example.com")
	f.Add("/\"}\n{\"forged\":1", "\x00\x1f\x7f", "\xff\xfe")
	f.Fuzz(func(t *testing.T, path, ua, authority string) {
		e := NewEntry()
		e.Path, e.UserAgent, e.Authority = path, ua, authority
		line := e.appendJSON(nil)
		if n := strings.Count(string(line), "\n"); n != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("%d newlines in %q", n, line)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("invalid JSON %q: %v", line, err)
		}
		for k, v := range map[string]string{"path": path, "user_agent": ua, "authority": authority} {
			if utf8.ValidString(v) && m[k] != v {
				t.Errorf("%s: %q came back as %q", k, v, m[k])
			}
		}
	})
}

func TestTimeAndMillisFormats(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-1: "-1", 0: "0", 2254 * time.Microsecond: "2.254", 1500 * time.Microsecond: "1.5",
		2 * time.Second: "2000", 7 * time.Microsecond: "0.007", 999: "0",
	} {
		if got := string(appendMillis(nil, d)); got != want {
			t.Errorf("appendMillis(%v) = %q, want %q", d, got, want)
		}
	}
	for _, tm := range []time.Time{
		time.Date(2026, 11, 29, 13, 16, 59, 934356000, time.UTC),
		time.Date(2026, 11, 29, 13, 16, 59, 7000, time.FixedZone("x", 3600)),
		time.Date(2026, 11, 29, 13, 17, 0, 0, time.UTC),
	} {
		want := tm.UTC().Format("2006-01-02T15:04:05.000000Z")
		if got := string(appendTime(nil, tm)); got != want {
			t.Errorf("appendTime = %q, want %q", got, want)
		}
	}
}
