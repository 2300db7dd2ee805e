package translate

import (
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/resource"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current output")

// TestGolden translates every testdata/*.yaml case and compares IR and status with
// NAME.golden.yaml. Besides the golden file, each case states what it checks in
// "# expect..." comment lines (see checkExpectation), so a case keeps asserting its rule
// even when goldens are regenerated with -update.
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases = slices.DeleteFunc(cases, func(p string) bool { return strings.HasSuffix(p, ".golden.yaml") })
	if len(cases) == 0 {
		t.Fatal("no golden cases found")
	}
	for _, path := range cases {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			input := readCase(t, path)
			snap, err := resource.Load(path, input)
			if err != nil {
				t.Fatalf("loading input: %v", err)
			}
			cfg, status := Translate(snap)
			got := renderGolden(t, cfg, status)

			// Deterministic: translating again (maps iterate in a new order) gives the same bytes.
			for range 3 {
				cfg2, status2 := Translate(snap)
				if again := renderGolden(t, cfg2, status2); !bytes.Equal(got, again) {
					t.Fatalf("translation is not deterministic")
				}
			}

			expects := expectations(input)
			if len(expects) == 0 {
				t.Fatalf("case has no '# expect' lines: say what it checks")
			}
			for _, e := range expects {
				if err := checkExpectation(e, cfg, status); err != nil {
					t.Errorf("expectation %q: %v", e, err)
				}
			}

			goldenPath := strings.TrimSuffix(path, ".yaml") + ".golden.yaml"
			if *update {
				if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("reading golden file (run go test ./internal/translate -run TestGolden -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (review, then regenerate with -update):\n%s", goldenPath, lineDiff(string(want), string(got)))
			}
		})
	}
}

// readCase reads a case, substituting the shared test certificate for {{CERT}},
// {{KEY}} and {{CA}} (base64 for Secret data; {{CA_PEM}} indented for ConfigMaps).
func readCase(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "certs", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ca := read("ca.crt")
	r := strings.NewReplacer(
		"{{CERT}}", base64.StdEncoding.EncodeToString(read("tls.crt")),
		"{{KEY}}", base64.StdEncoding.EncodeToString(read("tls.key")),
		"{{CA}}", base64.StdEncoding.EncodeToString(ca),
		"{{CA_PEM}}", strings.ReplaceAll(strings.TrimSpace(string(ca)), "\n", "\n    "),
	)
	return []byte(r.Replace(string(data)))
}

// renderGolden renders the output with PEM bodies shortened so goldens stay readable.
func renderGolden(t *testing.T, cfg *ir.Config, status *Status) []byte {
	t.Helper()
	shown := *cfg
	shown.Gateways = slices.Clone(cfg.Gateways)
	for gi := range shown.Gateways {
		g := &shown.Gateways[gi]
		g.Ports = slices.Clone(g.Ports)
		for pi := range g.Ports {
			p := &g.Ports[pi]
			p.Listeners = slices.Clone(p.Listeners)
			for li := range p.Listeners {
				l := &p.Listeners[li]
				if l.TLS == nil {
					continue
				}
				tlsCopy := *l.TLS
				if cv := tlsCopy.ClientValidation; cv != nil {
					shortCV := *cv
					shortCV.CACertificates = fmt.Sprintf("<%d bytes>", len(cv.CACertificates))
					tlsCopy.ClientValidation = &shortCV
				}
				tlsCopy.Certificates = slices.Clone(tlsCopy.Certificates)
				for ci := range tlsCopy.Certificates {
					c := &tlsCopy.Certificates[ci]
					c.CertPEM = fmt.Sprintf("<%d bytes>", len(c.CertPEM))
					c.KeyPEM = fmt.Sprintf("<%d bytes>", len(c.KeyPEM))
				}
				l.TLS = &tlsCopy
			}
		}
	}
	shown.Clusters = slices.Clone(cfg.Clusters)
	for i := range shown.Clusters {
		if tl := shown.Clusters[i].TLS; tl != nil {
			c := *tl
			if c.CACertificates != "" {
				c.CACertificates = fmt.Sprintf("<%d bytes>", len(c.CACertificates))
			}
			if cc := c.ClientCertificate; cc != nil {
				c.ClientCertificate = &ir.Certificate{Name: cc.Name,
					CertPEM: fmt.Sprintf("<%d bytes>", len(cc.CertPEM)), KeyPEM: fmt.Sprintf("<%d bytes>", len(cc.KeyPEM))}
			}
			shown.Clusters[i].TLS = &c
		}
	}
	out, err := yaml.Marshal(struct {
		IR     *ir.Config `json:"ir"`
		Status *Status    `json:"status"`
	}{&shown, status})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func expectations(input []byte) []string {
	var out []string
	for _, line := range strings.Split(string(input), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "# expect"); ok {
			out = append(out, "expect"+rest)
		}
	}
	return out
}

// checkExpectation checks one line of the forms:
//
//	expect: GatewayClass NAME Type=Status Reason
//	expect: Gateway NS/NAME Type=Status Reason
//	expect: Gateway NS/NAME addresses=A,B
//	expect: Gateway NS/NAME attachedListenerSets=N   (or =nil: not reported)
//	expect: ListenerSet NS/NAME Type=Status Reason
//	expect: SetListener NS/SET/LISTENER ...          (as Listener, for a ListenerSet's listener)
//	expect: Listener NS/GW/LISTENER Type=Status Reason
//	expect: Listener NS/GW/LISTENER attachedRoutes=N
//	expect: Listener NS/GW/LISTENER supportedKinds=K1,K2
//	expect: KIND NS/NAME Type=Status Reason          (every owned parent of a route)
//	expect: KIND NS/NAME@GWNS/GW[/SECTION] Type=Status Reason   (one parent)
//	expect: KIND NS/NAME@ListenerSet:NS/SET[/SECTION] Type=Status Reason
//	expect: KIND NS/NAME no-status                   (no parent is ours)
//	expect: BackendTLSPolicy NS/NAME Type=Status Reason
//	expect-order: ROUTE1 < ROUTE2                    (both in one virtual host, ROUTE1 first)
//	expect-vhost: LISTENER HOST = ROUTE1,ROUTE2      (exact route names, in order)
//	expect-vhosts: LISTENER = HOST1,HOST2            (virtual hosts, in order)
//	expect-cluster: NAME endpoints=ADDR:PORT,...     (or endpoints=none; protocol=P; tls=SNI)
//	expect-absent: NAME                              (no route, listener or cluster has this name)
//	expect-l4: LISTENER = ROUTE@HOST,...              (stream routes in order; HOST empty for any)
//	expect-unavailable: LISTENER                     (in the IR only to reserve its hostname)
//	expect-tls: LISTENER = MINVERSION|CIPHER,...     (the listener's TLS bounds; empty parts: defaults)
//	expect-hsts: LISTENER = VALUE                    (its Strict-Transport-Security; a space is _)
//	expect-maxconns: GATEWAY:PORT = N                (the port's connection bound, 0: none)
//	expect-ratelimit: LISTENER = RPS|BURST|body<=N   (its rate limit per client, or none; body limit, 0: none)
//	expect: ListenerPolicy NS/NAME Type=Status Reason (every ancestor)
//	expect-route: ROUTE field=value                  (fields: see checkRoute; a space is written _)
func checkExpectation(e string, cfg *ir.Config, st *Status) error {
	kind, rest, _ := strings.Cut(e, ":")
	fields := strings.Fields(rest)
	switch kind {
	case "expect":
		return checkStatus(fields, st)
	case "expect-order":
		if len(fields) != 3 || fields[1] != "<" {
			return fmt.Errorf("want 'ROUTE1 < ROUTE2'")
		}
		for _, vh := range allVirtualHosts(cfg) {
			i := slices.IndexFunc(vh.Routes, func(r ir.Route) bool { return r.Name == fields[0] })
			j := slices.IndexFunc(vh.Routes, func(r ir.Route) bool { return r.Name == fields[2] })
			if i >= 0 && j >= 0 {
				if i < j {
					return nil
				}
				return fmt.Errorf("in virtual host %s, %s comes at %d, after %s at %d", vh.Hostname, fields[0], i, fields[2], j)
			}
		}
		return fmt.Errorf("no virtual host holds both routes")
	case "expect-vhost":
		if len(fields) != 4 || fields[2] != "=" {
			return fmt.Errorf("want 'LISTENER HOST = ROUTES'")
		}
		l := findListener(cfg, fields[0])
		if l == nil {
			return fmt.Errorf("listener %s not in IR", fields[0])
		}
		for _, vh := range l.VirtualHosts {
			if vh.Hostname == fields[1] {
				var names []string
				for _, r := range vh.Routes {
					names = append(names, r.Name)
				}
				if got := strings.Join(names, ","); got != fields[3] {
					return fmt.Errorf("routes are %s", got)
				}
				return nil
			}
		}
		return fmt.Errorf("listener %s has no virtual host %s", fields[0], fields[1])
	case "expect-vhosts":
		if len(fields) != 3 || fields[1] != "=" {
			return fmt.Errorf("want 'LISTENER = HOSTS'")
		}
		l := findListener(cfg, fields[0])
		if l == nil {
			return fmt.Errorf("listener %s not in IR", fields[0])
		}
		var hosts []string
		for _, vh := range l.VirtualHosts {
			hosts = append(hosts, vh.Hostname)
		}
		if got := strings.Join(hosts, ","); got != fields[2] {
			return fmt.Errorf("virtual hosts are %s", got)
		}
		return nil
	case "expect-cluster":
		return checkCluster(fields, cfg)
	case "expect-absent":
		if len(fields) != 1 {
			return fmt.Errorf("want one name")
		}
		if findListener(cfg, fields[0]) != nil || findRoute(cfg, fields[0]) != nil ||
			slices.ContainsFunc(cfg.Clusters, func(c ir.Cluster) bool { return c.Name == fields[0] }) {
			return fmt.Errorf("%s is present", fields[0])
		}
		return nil
	case "expect-route":
		return checkRoute(fields, cfg)
	case "expect-l4":
		if len(fields) != 3 || fields[1] != "=" {
			return fmt.Errorf("want 'LISTENER = ROUTE@HOST,...'")
		}
		l := findListener(cfg, fields[0])
		if l == nil {
			return fmt.Errorf("listener %s not in IR", fields[0])
		}
		var got []string
		for _, r := range l.L4Routes {
			got = append(got, r.Name+"@"+strings.Join(r.Hostnames, "+"))
		}
		if strings.Join(got, ",") != fields[2] {
			return fmt.Errorf("stream routes are %s", strings.Join(got, ","))
		}
		return nil
	case "expect-unavailable":
		if len(fields) != 1 {
			return fmt.Errorf("want one listener name")
		}
		l := findListener(cfg, fields[0])
		switch {
		case l == nil:
			return fmt.Errorf("listener %s not in IR", fields[0])
		case l.Unavailable == "" || len(l.VirtualHosts) > 0 || len(l.L4Routes) > 0:
			return fmt.Errorf("listener %s is served (unavailable=%q, %d virtual hosts)", fields[0], l.Unavailable, len(l.VirtualHosts))
		}
		return nil
	case "expect-hsts":
		if len(fields) != 3 || fields[1] != "=" {
			return fmt.Errorf("want 'LISTENER = VALUE' (a space written _, or none)")
		}
		l := findListener(cfg, fields[0])
		if l == nil {
			return fmt.Errorf("listener %s not in IR", fields[0])
		}
		got := strings.ReplaceAll(l.HSTS, " ", "_")
		if got == "" {
			got = "none"
		}
		if got != fields[2] {
			return fmt.Errorf("listener %s HSTS is %s", fields[0], got)
		}
		return nil
	case "expect-maxconns":
		if len(fields) != 3 || fields[1] != "=" {
			return fmt.Errorf("want 'GATEWAY:PORT = N'")
		}
		gw, port, _ := strings.Cut(fields[0], ":")
		for _, g := range cfg.Gateways {
			for _, p := range g.Ports {
				if g.Name == gw && strconv.Itoa(int(p.Number)) == port {
					if got := strconv.Itoa(int(p.MaxConnections)); got != fields[2] {
						return fmt.Errorf("port %s allows %s connections", fields[0], got)
					}
					return nil
				}
			}
		}
		return fmt.Errorf("port %s not in IR", fields[0])
	case "expect-ratelimit":
		if len(fields) != 3 || fields[1] != "=" {
			return fmt.Errorf("want 'LISTENER = RPS|BURST|body<=N' (or none|body<=N)")
		}
		l := findListener(cfg, fields[0])
		if l == nil {
			return fmt.Errorf("listener %s not in IR", fields[0])
		}
		got := "none"
		if rl := l.RateLimit; rl != nil {
			got = fmt.Sprintf("%d|%d", rl.RequestsPerSecond, rl.Burst)
		}
		got += fmt.Sprintf("|body<=%d", l.MaxRequestBodyBytes)
		if got != fields[2] {
			return fmt.Errorf("listener %s rate limit is %s", fields[0], got)
		}
		return nil
	case "expect-tls":
		if len(fields) != 3 || fields[1] != "=" {
			return fmt.Errorf("want 'LISTENER = MINVERSION|CIPHERS'")
		}
		l := findListener(cfg, fields[0])
		if l == nil || l.TLS == nil {
			return fmt.Errorf("listener %s with TLS not in IR", fields[0])
		}
		if got := l.TLS.MinVersion + "|" + strings.Join(l.TLS.CipherSuites, ","); got != fields[2] {
			return fmt.Errorf("listener %s TLS is %s", fields[0], got)
		}
		return nil
	}
	return fmt.Errorf("unknown expectation kind %q", kind)
}

func checkStatus(f []string, st *Status) error {
	if len(f) < 3 {
		return fmt.Errorf("want 'KIND NAME WHAT'")
	}
	kind, name, what := f[0], f[1], f[2]
	reason := ""
	if len(f) > 3 {
		reason = f[3]
	}
	switch kind {
	case "GatewayClass":
		for _, c := range st.GatewayClasses {
			if c.Name == name {
				return checkCondition(c.Status.Conditions, what, reason)
			}
		}
		return fmt.Errorf("no status for GatewayClass %s", name)
	case "Gateway":
		for _, g := range st.Gateways {
			if g.Namespace+"/"+g.Name != name {
				continue
			}
			if v, ok := strings.CutPrefix(what, "addresses="); ok {
				var got []string
				for _, a := range g.Status.Addresses {
					got = append(got, a.Value)
				}
				if strings.Join(got, ",") != v {
					return fmt.Errorf("addresses are %v", got)
				}
				return nil
			}
			if v, ok := strings.CutPrefix(what, "attachedListenerSets="); ok {
				got := "nil"
				if n := g.Status.AttachedListenerSets; n != nil {
					got = strconv.Itoa(int(*n))
				}
				if got != v {
					return fmt.Errorf("attachedListenerSets is %s", got)
				}
				return nil
			}
			return checkCondition(g.Status.Conditions, what, reason)
		}
		return fmt.Errorf("no status for Gateway %s", name)
	case "Listener":
		for _, g := range st.Gateways {
			for _, l := range g.Status.Listeners {
				if g.Namespace+"/"+g.Name+"/"+string(l.Name) == name {
					return checkListener(l, what, reason)
				}
			}
		}
		return fmt.Errorf("no status for listener %s", name)
	case "ListenerSet":
		for _, ls := range st.ListenerSets {
			if ls.Namespace+"/"+ls.Name == name {
				return checkCondition(ls.Status.Conditions, what, reason)
			}
		}
		return fmt.Errorf("no status for ListenerSet %s", name)
	case "SetListener":
		for _, ls := range st.ListenerSets {
			for _, l := range ls.Status.Listeners {
				if ls.Namespace+"/"+ls.Name+"/"+string(l.Name) == name {
					return checkListener(gwv1.ListenerStatus(l), what, reason)
				}
			}
		}
		return fmt.Errorf("no status for ListenerSet listener %s", name)
	case "BackendTLSPolicy", "ListenerPolicy":
		policies := st.BackendTLSPolicies
		if kind == "ListenerPolicy" {
			policies = st.ListenerPolicies
		}
		for _, p := range policies {
			if p.Namespace+"/"+p.Name != name {
				continue
			}
			if what == "no-status" {
				return fmt.Errorf("policy has status")
			}
			if len(p.Status.Ancestors) == 0 {
				return fmt.Errorf("policy has no ancestors")
			}
			for _, a := range p.Status.Ancestors {
				if err := checkCondition(a.Conditions, what, reason); err != nil {
					return fmt.Errorf("ancestor %s: %w", a.AncestorRef.Name, err)
				}
			}
			return nil
		}
		if what == "no-status" {
			return nil
		}
		return fmt.Errorf("no status for %s %s", kind, name)
	}
	routeName, parent, _ := strings.Cut(name, "@")
	for _, r := range st.Routes {
		if r.Kind != kind || r.Namespace+"/"+r.Name != routeName {
			continue
		}
		if what == "no-status" {
			return fmt.Errorf("route has status")
		}
		checked := 0
		for _, p := range r.Status.Parents {
			pn := string(p.ParentRef.Name)
			ns := r.Namespace
			if p.ParentRef.Namespace != nil {
				ns = string(*p.ParentRef.Namespace)
			}
			id := ns + "/" + pn
			if p.ParentRef.Kind != nil && *p.ParentRef.Kind == "ListenerSet" {
				id = "ListenerSet:" + id
			}
			if p.ParentRef.SectionName != nil {
				id += "/" + string(*p.ParentRef.SectionName)
			}
			if parent != "" && id != parent {
				continue
			}
			checked++
			if err := checkCondition(p.Conditions, what, reason); err != nil {
				return fmt.Errorf("parent %s: %w", id, err)
			}
		}
		if checked == 0 {
			return fmt.Errorf("no matching parent in status")
		}
		return nil
	}
	if what == "no-status" {
		return nil
	}
	return fmt.Errorf("no status for %s %s", kind, routeName)
}

func checkListener(l gwv1.ListenerStatus, what, reason string) error {
	if v, ok := strings.CutPrefix(what, "attachedRoutes="); ok {
		if strconv.Itoa(int(l.AttachedRoutes)) != v {
			return fmt.Errorf("attachedRoutes is %d", l.AttachedRoutes)
		}
		return nil
	}
	if v, ok := strings.CutPrefix(what, "supportedKinds="); ok {
		var got []string
		for _, k := range l.SupportedKinds {
			got = append(got, string(k.Kind))
		}
		if strings.Join(got, ",") != v {
			return fmt.Errorf("supportedKinds are %v", got)
		}
		return nil
	}
	return checkCondition(l.Conditions, what, reason)
}

func checkCondition(conds []metav1.Condition, what, reason string) error {
	typ, status, ok := strings.Cut(what, "=")
	if !ok {
		return fmt.Errorf("want Type=Status")
	}
	for _, c := range conds {
		if c.Type != typ {
			continue
		}
		if string(c.Status) != status || (reason != "" && c.Reason != reason) {
			return fmt.Errorf("condition %s is %s/%s (%s)", typ, c.Status, c.Reason, c.Message)
		}
		if c.Message == "" {
			return fmt.Errorf("condition %s has no message", typ)
		}
		return nil
	}
	if status == "absent" {
		return nil
	}
	return fmt.Errorf("no condition %s", typ)
}

func checkCluster(f []string, cfg *ir.Config) error {
	if len(f) < 2 {
		return fmt.Errorf("want 'NAME key=value'")
	}
	i := slices.IndexFunc(cfg.Clusters, func(c ir.Cluster) bool { return c.Name == f[0] })
	if i < 0 {
		return fmt.Errorf("cluster %s not in IR", f[0])
	}
	c := cfg.Clusters[i]
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		var got string
		switch k {
		case "endpoints":
			var eps []string
			for _, e := range c.Endpoints {
				eps = append(eps, fmt.Sprintf("%s:%d", e.Address, e.Port))
			}
			got = strings.Join(eps, ",")
			if got == "" {
				got = "none"
			}
		case "protocol":
			got = string(c.Protocol)
		case "tls":
			got = "none"
			if c.TLS != nil {
				got = c.TLS.SNI
			}
		default:
			return fmt.Errorf("unknown cluster field %s", k)
		}
		if got != v {
			return fmt.Errorf("%s is %s", k, got)
		}
	}
	return nil
}

// checkRoute compares fields of a route rendered as JSON paths like
// redirect.statusCode=301 or backends=cluster:weight,...
func checkRoute(f []string, cfg *ir.Config) error {
	if len(f) < 2 {
		return fmt.Errorf("want 'ROUTE key=value'")
	}
	r := findRoute(cfg, f[0])
	if r == nil {
		return fmt.Errorf("route %s not in IR", f[0])
	}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		var got string
		switch k {
		case "backends":
			var bs []string
			for _, b := range r.Backends {
				c := b.Cluster
				if c == "" {
					c = "INVALID"
				}
				bs = append(bs, fmt.Sprintf("%s:%d", c, b.Weight))
			}
			got = strings.Join(bs, ",")
		case "directResponse":
			got = "none"
			if r.DirectResponse != nil {
				got = strconv.Itoa(r.DirectResponse.StatusCode)
			}
		case "redirect":
			got = "none"
			if d := r.Redirect; d != nil {
				got = fmt.Sprintf("%s|%s|%d|%d", d.Scheme, d.Hostname, d.Port, d.StatusCode)
				if d.Path != nil {
					got += "|" + string(d.Path.Type) + ":" + d.Path.Value
				}
			}
		case "rewrite":
			got = "none"
			if w := r.Rewrite; w != nil {
				got = w.Hostname
				if w.Path != nil {
					got += "|" + string(w.Path.Type) + ":" + w.Path.Value
				}
			}
		case "mirrors":
			var ms []string
			for _, m := range r.Mirrors {
				ms = append(ms, fmt.Sprintf("%s:%d/%d", m.Cluster, m.Numerator, m.Denominator))
			}
			got = strings.Join(ms, ",")
		case "path":
			got = string(r.Match.Path.Type) + ":" + r.Match.Path.Value
		case "timeouts":
			got = "none"
			if r.Timeouts != nil {
				got = r.Timeouts.Request + "|" + r.Timeouts.BackendRequest
			}
		case "retry":
			got = "none"
			if r.Retry != nil {
				codes := make([]string, len(r.Retry.Codes))
				for i, c := range r.Retry.Codes {
					codes[i] = strconv.Itoa(c)
				}
				got = fmt.Sprintf("%d|%s|%s", r.Retry.Attempts, strings.Join(codes, ","), r.Retry.Backoff)
			}
		case "match":
			m := r.Match
			got = string(m.Path.Type) + ":" + m.Path.Value
			for _, h := range m.Headers {
				got += "|h:" + h.Name + "=" + string(h.Type) + ":" + h.Value
			}
			for _, q := range m.QueryParams {
				got += "|q:" + q.Name + "=" + string(q.Type) + ":" + q.Value
			}
			if m.Method != "" {
				got += "|m:" + m.Method
			}
		case "ruleName":
			got = r.RuleName
		case "requestHeaders", "responseHeaders":
			hm := r.RequestHeaders
			if k == "responseHeaders" {
				hm = r.ResponseHeaders
			}
			got = "none"
			if hm != nil {
				var parts []string
				for _, h := range hm.Set {
					parts = append(parts, "set:"+h.Name+"="+h.Value)
				}
				for _, h := range hm.Add {
					parts = append(parts, "add:"+h.Name+"="+h.Value)
				}
				for _, h := range hm.Remove {
					parts = append(parts, "remove:"+h)
				}
				got = strings.Join(parts, ",")
			}
		case "cors":
			got = "none"
			if r.CORS != nil {
				got = strings.Join(r.CORS.AllowOrigins, ",")
			}
		default:
			return fmt.Errorf("unknown route field %s", k)
		}
		if got = strings.ReplaceAll(got, " ", "_"); got != v {
			return fmt.Errorf("%s is %s", k, got)
		}
	}
	return nil
}

func allVirtualHosts(cfg *ir.Config) []ir.VirtualHost {
	var out []ir.VirtualHost
	for _, g := range cfg.Gateways {
		for _, p := range g.Ports {
			for _, l := range p.Listeners {
				out = append(out, l.VirtualHosts...)
			}
		}
	}
	return out
}

func findListener(cfg *ir.Config, name string) *ir.Listener {
	for gi := range cfg.Gateways {
		for pi := range cfg.Gateways[gi].Ports {
			for li := range cfg.Gateways[gi].Ports[pi].Listeners {
				if l := &cfg.Gateways[gi].Ports[pi].Listeners[li]; l.Name == name {
					return l
				}
			}
		}
	}
	return nil
}

func findRoute(cfg *ir.Config, name string) *ir.Route {
	for _, vh := range allVirtualHosts(cfg) {
		for i := range vh.Routes {
			if vh.Routes[i].Name == name {
				return &vh.Routes[i]
			}
		}
	}
	return nil
}

// lineDiff shows the first differing lines, enough to review a change.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
