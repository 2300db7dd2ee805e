package dataplane

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/portico-gw/portico/internal/ir"
)

// defenceBackend counts requests that reach it, and those whose body it read in full.
type defenceBackend struct {
	reached  atomic.Int64
	complete atomic.Int64
	paths    chan string
}

func (b *defenceBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.reached.Add(1)
	select {
	case b.paths <- r.URL.Path:
	default:
	}
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		http.Error(w, "bad body: "+err.Error(), http.StatusBadRequest)
		return
	}
	b.complete.Add(1)
	io.WriteString(w, "reached")
}

func defenceStart(t *testing.T, opts Options) (*fwdGateway, *defenceBackend) {
	t.Helper()
	b := &defenceBackend{paths: make(chan string, 64)}
	srv := fwdBackend(t, b, nil)
	gw := fwdStart(t, opts, []ir.Route{fwdRoute("d", "/", "d")},
		fwdCluster("d", ir.UpstreamHTTP1, fwdEndpoint(t, srv.Listener.Addr().String())))
	return gw, b
}

// defenceDial opens a raw connection that gives up after 10 seconds.
func defenceDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

// defenceWaitClosed reads until the peer closes the connection; it fails the test if
// the connection is still open at its deadline, and returns what was read.
func defenceWaitClosed(t *testing.T, conn net.Conn, r io.Reader) []byte {
	t.Helper()
	rest, err := io.ReadAll(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after its deadline (read %q)", rest)
	}
	return rest
}

func TestDefencesSlowloris(t *testing.T) {
	gw, b := defenceStart(t, Options{ReadHeaderTimeout: 300 * time.Millisecond})
	conn := defenceDial(t, gw.addr)
	if _, err := io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: slow.example\r\n"); err != nil {
		t.Fatal(err)
	}
	// Trickle one header line at a time, never finishing, until the gateway hangs up.
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := io.WriteString(conn, "X-Drip: 1\r\n"); err != nil {
				return
			}
		}
	}()
	got := defenceWaitClosed(t, conn, conn)
	close(stop)
	<-trickled
	if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 408")) {
		t.Errorf("gateway answered %q to an unfinished request", got)
	}
	if n := b.reached.Load(); n != 0 {
		t.Errorf("backend saw %d requests", n)
	}
	// The gateway still serves well-behaved clients.
	if code, _, body := fwdGet(t, fwdClient(t), gw.base+"/ok"); code != 200 || body != "reached" {
		t.Errorf("after the slow client: status %d body %q", code, body)
	}
}

func TestDefencesMaxHeaderBytes(t *testing.T) {
	gw, b := defenceStart(t, Options{MaxHeaderBytes: 4 << 10})
	send := func(c *http.Client, size int) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, gw.base+"/h", nil)
		req.Header.Set("X-Big", strings.Repeat("a", size))
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	h1 := fwdClient(t)
	if code, err := send(h1, 2<<10); err != nil || code != 200 {
		t.Fatalf("2 KiB header: %d %v, want 200", code, err)
	}
	// Go's server allows 4 KiB of slack over MaxHeaderBytes; 64 KiB is well past it.
	if code, err := send(h1, 64<<10); err != nil || code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB header over HTTP/1.1: %d %v, want 431", code, err)
	}
	// HTTP/2 advertises the limit; the client refuses to send, or the gateway answers 431.
	if code, err := send(fwdH2CClient(t), 64<<10); err == nil && code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB header over h2c: %d, want 431 or a client-side refusal", code)
	}
	if n := b.reached.Load(); n != 1 {
		t.Errorf("backend saw %d requests, want only the small one", n)
	}
}

func TestDefencesIdleTimeout(t *testing.T) {
	gw, _ := defenceStart(t, Options{IdleTimeout: 300 * time.Millisecond})

	t.Run("http1", func(t *testing.T) {
		conn := defenceDial(t, gw.addr)
		br := bufio.NewReader(conn)
		for range 2 { // the connection is kept alive between requests...
			if _, err := io.WriteString(conn, "GET /idle HTTP/1.1\r\nHost: idle.example\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Close {
				t.Fatalf("status %d close %v, want a kept-alive 200", resp.StatusCode, resp.Close)
			}
		}
		// ...and closed once it has been idle for IdleTimeout.
		if rest := defenceWaitClosed(t, conn, br); len(rest) != 0 {
			t.Errorf("idle connection received %q", rest)
		}
	})

	t.Run("h2c", func(t *testing.T) {
		fr, conn := defenceH2C(t, gw.addr)
		defenceH2Request(t, fr, 1, "/idle")
		var goaway *http2.GoAwayFrame
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("idle HTTP/2 connection still open after its deadline")
				}
				break
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				goaway = g
			}
		}
		if goaway == nil || goaway.ErrCode != http2.ErrCodeNo || goaway.LastStreamID != 1 {
			t.Errorf("idle connection closed with GOAWAY %+v, want NO_ERROR after stream 1", goaway)
		}
		conn.Close()
	})
}

// defenceH2C opens an HTTP/2 connection with prior knowledge and exchanges SETTINGS;
// it returns the framer and the server's first SETTINGS frame's values.
func defenceH2C(t *testing.T, addr string) (*http2.Framer, net.Conn) {
	t.Helper()
	conn := defenceDial(t, addr)
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return fr, conn
}

// defenceServerSettings reads frames until the server's (non-ACK) SETTINGS.
func defenceServerSettings(t *testing.T, fr *http2.Framer) map[http2.SettingID]uint32 {
	t.Helper()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading server SETTINGS: %v", err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			continue
		}
		out := map[http2.SettingID]uint32{}
		_ = sf.ForeachSetting(func(s http2.Setting) error { out[s.ID] = s.Val; return nil })
		if err := fr.WriteSettingsAck(); err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// defenceH2Request opens stream id with a GET for path and ends it.
func defenceH2Request(t *testing.T, fr *http2.Framer, id uint32, path string) {
	t.Helper()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "h2.example"}, {":path", path}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true}); err != nil {
		t.Fatal(err)
	}
}

func TestDefencesHTTP2MaxConcurrentStreams(t *testing.T) {
	for _, c := range []struct {
		opt, want int
	}{{0, 250}, {7, 7}} {
		gw, _ := defenceStart(t, Options{MaxConcurrentStreams: c.opt})
		fr, _ := defenceH2C(t, gw.addr)
		settings := defenceServerSettings(t, fr)
		if got, ok := settings[http2.SettingMaxConcurrentStreams]; !ok || int(got) != c.want {
			t.Errorf("MaxConcurrentStreams option %d: server advertised %d (present %v), want %d", c.opt, got, ok, c.want)
		}
		if got := settings[http2.SettingMaxHeaderListSize]; got == 0 {
			t.Errorf("server advertised no header list limit")
		}
	}

	// Streams over the limit are refused, and never reach the backend.
	var arrivals atomic.Int64
	hold := fwdBackend(t, fwdHold(t, &arrivals), nil)
	gw := fwdStart(t, Options{MaxConcurrentStreams: 2}, []ir.Route{fwdRoute("hold", "/", "hold")},
		fwdCluster("hold", ir.UpstreamHTTP1, fwdEndpoint(t, hold.Listener.Addr().String())))
	fr, _ := defenceH2C(t, gw.addr)
	defenceServerSettings(t, fr)
	for _, id := range []uint32{1, 3, 5} {
		defenceH2Request(t, fr, id, "/held")
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for the third stream to be refused: %v", err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			if rst.StreamID != 5 || (rst.ErrCode != http2.ErrCodeRefusedStream && rst.ErrCode != http2.ErrCodeProtocol) {
				t.Fatalf("RST_STREAM %d %v, want stream 5 refused", rst.StreamID, rst.ErrCode)
			}
			break
		}
	}
	if n := arrivals.Load(); n > 2 {
		t.Errorf("backend saw %d requests, want at most 2", n)
	}
}

// defenceSmuggle describes a raw request and what the gateway must do with it.
type defenceSmuggle struct {
	name string
	raw  string
	// codes are the acceptable statuses (400, or 501 for transfer codings the gateway
	// does not implement, as RFC 9112 section 6.1 asks).
	codes []int
	// headOK: the head is well formed and the error is in the body, which is streamed;
	// the backend may see the request start but must never see it complete.
	headOK bool
}

const (
	defenceHost   = "Host: smuggle.example\r\n"
	defenceFollow = "GET /smuggled HTTP/1.1\r\n" + defenceHost + "\r\n"
)

// defenceSmuggleRun sends each raw request, followed on the same connection by a
// well-formed GET /smuggled, and checks the gateway's answer and what the backend saw.
func defenceSmuggleRun(t *testing.T, gw *fwdGateway, b *defenceBackend, cases []defenceSmuggle) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for len(b.paths) > 0 {
				<-b.paths
			}
			reached, complete := b.reached.Load(), b.complete.Load()
			conn := defenceDial(t, gw.addr)
			if _, err := io.WriteString(conn, c.raw+defenceFollow); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			ok := false
			for _, code := range c.codes {
				ok = ok || resp.StatusCode == code
			}
			if !ok {
				t.Errorf("status %d body %q, want one of %v", resp.StatusCode, body, c.codes)
			}
			// The connection is closed after the error; nothing else is read from it.
			if rest := defenceWaitClosed(t, conn, br); len(rest) != 0 {
				t.Errorf("after the error the gateway sent %q", rest)
			}
			if got := b.complete.Load() - complete; got != 0 {
				t.Errorf("backend received %d complete requests", got)
			}
			if got := b.reached.Load() - reached; !c.headOK && got != 0 {
				t.Errorf("backend saw %d requests, want none", got)
			}
			for len(b.paths) > 0 {
				if p := <-b.paths; p == "/smuggled" {
					t.Errorf("the request after the malformed one reached the backend")
				}
			}
		})
	}
}

func TestDefencesSmuggling(t *testing.T) {
	const host = defenceHost
	bad := []int{400}
	badTE := []int{400, 501}
	gw, b := defenceStart(t, Options{})
	defenceSmuggleRun(t, gw, b, []defenceSmuggle{
		{"differing content-lengths", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 5\r\n\r\nabc", bad, false},
		{"content-length list", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 3, 5\r\n\r\nabc", bad, false},
		{"signed content-length", "POST /a HTTP/1.1\r\n" + host + "Content-Length: +3\r\n\r\nabc", bad, false},
		{"hex content-length", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 0x3\r\n\r\nabc", bad, false},
		{"space before colon", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", bad, false},
		{"two transfer-encoding lines", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", badTE, false},
		{"unknown transfer coding", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", badTE, false},
		{"chunked not last", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", badTE, false},
		// Body errors: the head was fine and has been forwarded (bodies stream), so the
		// backend may see the request begin, but never complete; the client gets 400.
		{"invalid chunk size", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", bad, true},
		{"chunk size overflow", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n", bad, true},
		{"chunk data too long", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", bad, true},
		{"negative chunk size", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n", bad, true},
	})

	// Sanity: a well-formed chunked request and the GET after it are both served.
	conn := defenceDial(t, gw.addr)
	if _, err := io.WriteString(conn, "POST /a HTTP/1.1\r\n"+host+"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"+defenceFollow); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for i := range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "reached" {
			t.Fatalf("well-formed request %d: status %d body %q", i, resp.StatusCode, body)
		}
	}
}

// TestDefencesSmugglingLengthAndChunked sends requests with both Content-Length and
// Transfer-Encoding. RFC 9112 section 6.1 lets a server either reject them or use
// the chunked framing alone, but then it must close the connection after responding;
// the gateway rejects them (as nginx and Envoy do).
func TestDefencesSmugglingLengthAndChunked(t *testing.T) {
	const host = defenceHost
	gw, b := defenceStart(t, Options{})
	defenceSmuggleRun(t, gw, b, []defenceSmuggle{
		{"content-length then chunked", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{400}, false},
		{"chunked then content-length", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n", []int{400}, false},
	})
}
