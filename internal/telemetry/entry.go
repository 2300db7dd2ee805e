package telemetry

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Entry is what is known about one request once it has been answered. The data plane
// fills it as the request goes; durations are -1 when the step did not happen.
type Entry struct {
	Start         time.Time
	Method        string
	Path          string // as received (path and query)
	ForwardedPath string // as sent upstream, after rewrites; empty when not forwarded
	Protocol      string
	Status        int
	Flags         Flags
	Details       string // who produced the status and why ("via_upstream", "route_not_found", ...)
	BytesReceived int64  // request body bytes read from the client
	BytesSent     int64  // response body bytes written to the client

	Duration        time.Duration // first byte of the request to the end of the response
	UpstreamConnect time.Duration // dialing the upstream connection; 0 when one was reused
	UpstreamTTFB    time.Duration // request sent upstream to the response head received
	UpstreamTime    time.Duration // request sent upstream to the response body's end
	UpstreamHost    string
	Attempts        int // upstream attempts (1 + retries); 0 when not forwarded

	Gateway  string
	Listener string
	Route    string // the IR route name (httproute/ns/name/rule/N/match/M); empty for NR
	Cluster  string

	RequestID     string
	TraceID       string
	ForwardedFor  string // X-Forwarded-For as received
	ClientAddress string
	UserAgent     string
	Authority     string
	TLSServerName string
	TLSVersion    string
}

var entries = sync.Pool{New: func() any { return new(Entry) }}

// NewEntry returns a cleared Entry from a pool; the access log (or Release) gives it back.
func NewEntry() *Entry {
	e := entries.Get().(*Entry)
	*e = Entry{UpstreamConnect: -1, UpstreamTTFB: -1, UpstreamTime: -1}
	return e
}

// Release returns e to the pool; e must not be used afterwards.
func Release(e *Entry) { entries.Put(e) }

// appendJSON appends e as one JSON object and a newline.
func (e *Entry) appendJSON(b []byte) []byte {
	b = append(b, `{"start_time":"`...)
	b = appendTime(b, e.Start)
	b = append(b, '"')
	b = jsonString(b, "method", e.Method)
	b = jsonString(b, "path", e.Path)
	b = jsonString(b, "forwarded_path", e.ForwardedPath)
	b = jsonString(b, "protocol", e.Protocol)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = jsonString(b, "response_flags", e.Flags.String())
	b = jsonString(b, "response_code_details", e.Details)
	b = append(b, `,"bytes_received":`...)
	b = strconv.AppendInt(b, e.BytesReceived, 10)
	b = append(b, `,"bytes_sent":`...)
	b = strconv.AppendInt(b, e.BytesSent, 10)
	b = jsonMillis(b, "duration_ms", e.Duration)
	b = jsonMillis(b, "upstream_connect_ms", e.UpstreamConnect)
	b = jsonMillis(b, "upstream_ttfb_ms", e.UpstreamTTFB)
	b = jsonMillis(b, "upstream_ms", e.UpstreamTime)
	b = jsonString(b, "upstream_host", e.UpstreamHost)
	b = append(b, `,"upstream_attempts":`...)
	b = strconv.AppendInt(b, int64(e.Attempts), 10)
	b = jsonString(b, "gateway", e.Gateway)
	b = jsonString(b, "listener", e.Listener)
	b = jsonString(b, "route", e.Route)
	b = jsonString(b, "cluster", e.Cluster)
	b = jsonString(b, "request_id", e.RequestID)
	b = jsonString(b, "trace_id", e.TraceID)
	b = jsonString(b, "x_forwarded_for", e.ForwardedFor)
	b = jsonString(b, "client_address", e.ClientAddress)
	b = jsonString(b, "user_agent", e.UserAgent)
	b = jsonString(b, "authority", e.Authority)
	b = jsonString(b, "tls_sni", e.TLSServerName)
	b = jsonString(b, "tls_version", e.TLSVersion)
	return append(b, "}\n"...)
}

// appendText appends e as one line of space-separated fields, "-" for empty ones, in
// the order of the JSON form (without field names, like a classic access log).
func (e *Entry) appendText(b []byte) []byte {
	b = e.Start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = textField(b, e.Method)
	b = textQuoted(b, e.Path)
	b = textField(b, e.Protocol)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = textField(b, e.Flags.String())
	b = textField(b, e.Details)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.BytesReceived, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.BytesSent, 10)
	b = append(b, ' ')
	b = appendMillis(b, e.Duration)
	b = append(b, ' ')
	b = appendMillis(b, e.UpstreamTTFB)
	b = textField(b, e.UpstreamHost)
	b = textField(b, e.Route)
	b = textQuoted(b, e.RequestID) // the client may set it: quoted, so it cannot add fields
	b = textField(b, e.TraceID)
	b = textField(b, e.ClientAddress)
	b = textQuoted(b, e.Authority)
	b = textQuoted(b, e.UserAgent)
	return append(b, '\n')
}

func textField(b []byte, s string) []byte {
	b = append(b, ' ')
	if s == "" {
		return append(b, '-')
	}
	return appendEscaped(b, s, false)
}

func textQuoted(b []byte, s string) []byte {
	b = append(b, ' ', '"')
	b = appendEscaped(b, s, false)
	return append(b, '"')
}

func jsonString(b []byte, key, s string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, `":"`...)
	b = appendEscaped(b, s, true)
	return append(b, '"')
}

func jsonMillis(b []byte, key string, d time.Duration) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, `":`...)
	return appendMillis(b, d)
}

// appendMillis writes d in milliseconds with microsecond precision ("2.254"); -1 when
// unset.
func appendMillis(b []byte, d time.Duration) []byte {
	if d < 0 {
		return append(b, "-1"...)
	}
	us := d.Microseconds()
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	if frac == 0 {
		return b
	}
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	for b[len(b)-1] == '0' {
		b = b[:len(b)-1]
	}
	return b
}

// appendTime writes t in UTC as RFC 3339 with microseconds; the part up to the seconds
// is formatted once a second.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	sec := t.Unix()
	p := secondPrefix.Load()
	if p == nil || p.sec != sec {
		p = &prefix{sec: sec, s: t.Truncate(time.Second).AppendFormat(nil, "2006-01-02T15:04:05.")}
		secondPrefix.Store(p)
	}
	b = append(b, p.s...)
	us := t.Nanosecond() / 1000
	for div := 100000; div > 0; div /= 10 {
		b = append(b, byte('0'+us/div%10))
	}
	return append(b, 'Z')
}

type prefix struct {
	sec int64
	s   []byte
}

var secondPrefix atomic.Pointer[prefix]

const hexDigits = "0123456789abcdef"

// appendEscaped writes s with quotes, backslashes, control characters and invalid
// UTF-8 escaped (JSON rules), so a client cannot forge log lines or fields.
func appendEscaped(b []byte, s string, json bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if json {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			}
		}
		i++
	}
	return b
}
