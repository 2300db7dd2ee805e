package chart

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portico-gw/portico/test/kube"
)

// TestCRDCopiesMatchSources: the chart's crds/ holds exactly config/crd/portico, and
// files/gateway-api-crds.yaml exactly the pinned gateway-api module's CRDs. Run
// "make chart-crds" after changing either source.
func TestCRDCopiesMatchSources(t *testing.T) {
	own, err := PorticoCRDs()
	if err != nil {
		t.Fatal(err)
	}
	for src, dst := range own {
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		have, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(have, want) {
			t.Errorf("%s is not a copy of %s (run: make chart-crds)", dst, src)
		}
	}
	entries, err := os.ReadDir(ChartDir() + "/crds")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(own) {
		t.Errorf("the chart's crds/ has %d files, config/crd/portico %d (run: make chart-crds)", len(entries), len(own))
	}

	want, err := GatewayAPICRDs()
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(GatewayAPICRDsFile())
	if err != nil || !bytes.Equal(have, want) {
		t.Errorf("%s differs from the gateway-api module's CRDs (run: make chart-crds)", GatewayAPICRDsFile())
	}
	if v := readChartMeta(t).Annotations["gateway-api-version"]; v != kube.GatewayAPIVersion {
		t.Errorf("Chart.yaml says gateway-api-version %q; the repository pins %s", v, kube.GatewayAPIVersion)
	}
	if !bytes.Contains(want, []byte("sigs.k8s.io/gateway-api "+kube.GatewayAPIVersion+",")) {
		t.Errorf("the generated CRDs' header does not name gateway-api %s:\n%s", kube.GatewayAPIVersion, want[:200])
	}
}

// TestRequiredValues: without an image or an address pool, and with several replicas
// but no leader election, rendering fails with a message that says what to set.
func TestRequiredValues(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"image.repository=r/p"}, "gatewayAddresses is required"},
		{[]string{"gatewayAddresses=192.0.2.0/24"}, "image.repository is required: there is no published Portico image yet"},
		{append(slices.Clone(required), "leaderElection.enabled=false"), "leaderElection.enabled=false needs replicas: 1"},
	} {
		out, err := Template(ctx, helmBin(t), releaseName, releaseNS, kube.KubernetesVersion, c.set...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %v: err = %v, want one saying %q\n%s", c.set, err, c.want, out)
		}
	}
	if out, err := Lint(ctx, helmBin(t), required...); err != nil {
		t.Errorf("helm lint --strict: %v\n%s", err, out)
	}
}

// TestRenderedManifests checks each value set's manifests by content: least-privilege
// RBAC, the Deployment's flags, probes and security, the PodDisruptionBudget, and the
// CRDs the chart carries.
func TestRenderedManifests(t *testing.T) {
	for _, c := range standardCases() {
		t.Run(c.name, func(t *testing.T) {
			r := render(t, c)
			checkRBAC(t, r)
			checkDeployment(t, r)
			checkPDBAndService(t, r)
			checkCRDs(t, r)
		})
	}
}

// TestRBACCheckFindsExcess: the RBAC check is not vacuous: a wildcard, a write verb, a
// cluster-wide Lease and a stranger bound all fail it.
func TestRBACCheckFindsExcess(t *testing.T) {
	r := render(t, valueCase{"defaults", required})
	want := neededGrants(releaseNS, r.values.str(t, "leaderElection.id"))
	for _, c := range []struct {
		name   string
		mutate func(objs []*unstructured.Unstructured)
		want   string
	}{
		{"wildcard verb", func(objs []*unstructured.Unstructured) {
			addRule(objs, "ClusterRole", map[string]any{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": []any{"*"}})
		}, "wildcard"},
		{"write on a spec", func(objs []*unstructured.Unstructured) {
			addRule(objs, "ClusterRole", map[string]any{"apiGroups": []any{"gateway.networking.k8s.io"}, "resources": []any{"gateways"}, "verbs": []any{"update"}})
		}, "only status may be written cluster-wide"},
		{"leases cluster-wide", func(objs []*unstructured.Unstructured) {
			addRule(objs, "ClusterRole", map[string]any{"apiGroups": []any{"coordination.k8s.io"}, "resources": []any{"leases"}, "verbs": []any{"get"}})
		}, "Leases granted cluster-wide"},
		{"extra read", func(objs []*unstructured.Unstructured) {
			addRule(objs, "ClusterRole", map[string]any{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": []any{"list"}})
		}, "not needed: list pods cluster-wide"},
		{"missing read", func(objs []*unstructured.Unstructured) {
			for _, o := range objs {
				if o.GetKind() == "ClusterRole" {
					rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
					_ = unstructured.SetNestedSlice(o.Object, rules[1:], "rules")
				}
			}
		}, "missing: get gatewayclasses.gateway.networking.k8s.io cluster-wide"},
		{"stranger bound", func(objs []*unstructured.Unstructured) {
			for _, o := range objs {
				if o.GetKind() == "ClusterRoleBinding" {
					_ = unstructured.SetNestedSlice(o.Object, []any{map[string]any{"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"}}, "subjects")
				}
			}
		}, "is bound to Group"},
	} {
		objs := make([]*unstructured.Unstructured, len(r.objs))
		for i, o := range r.objs {
			objs[i] = o.DeepCopy()
		}
		c.mutate(objs)
		problems := rbacProblems(objs, releaseNS, releaseName, want)
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, c.want) }) {
			t.Errorf("%s: problems %q, want one containing %q", c.name, problems, c.want)
		}
	}
}

func addRule(objs []*unstructured.Unstructured, kind string, rule map[string]any) {
	for _, o := range objs {
		if o.GetKind() == kind {
			rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
			_ = unstructured.SetNestedSlice(o.Object, append(rules, rule), "rules")
		}
	}
}

// rbacProblems is everything wrong with objs' RBAC for the ServiceAccount, measured
// against want.
func rbacProblems(objs []*unstructured.Unstructured, namespace, sa string, want []grant) []string {
	have, problems := grantsOf(objs, namespace, sa)
	extra, missing := compareGrants(have, want)
	for _, e := range extra {
		problems = append(problems, "not needed: "+e)
	}
	for _, m := range missing {
		problems = append(problems, "missing: "+m)
	}
	return problems
}

func checkRBAC(t *testing.T, r *rendered) {
	t.Helper()
	sa := r.one(t, "ServiceAccount")
	if sa.GetNamespace() != releaseNS {
		t.Errorf("ServiceAccount in namespace %q, want %s", sa.GetNamespace(), releaseNS)
	}
	for _, p := range rbacProblems(r.objs, releaseNS, sa.GetName(), neededGrants(releaseNS, r.values.str(t, "leaderElection.id"))) {
		t.Error(p)
	}
	for _, kind := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
		r.one(t, kind)
	}
	if ns := r.one(t, "Role").GetNamespace(); ns != releaseNS {
		t.Errorf("Role in namespace %q, want the release namespace %s", ns, releaseNS)
	}
}

func checkDeployment(t *testing.T, r *rendered) {
	t.Helper()
	v := r.values
	d := r.one(t, "Deployment")
	spec := func(path ...string) any {
		x, _, _ := unstructured.NestedFieldNoCopy(d.Object, append([]string{"spec", "template", "spec"}, path...)...)
		return x
	}
	if n, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); n != v.num(t, "replicas") {
		t.Errorf("replicas %d, want %d", n, v.num(t, "replicas"))
	}
	containers, _ := spec("containers").([]any)
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1", len(containers))
	}
	ctr := &unstructured.Unstructured{Object: containers[0].(map[string]any)}
	field := func(path ...string) any {
		x, _, _ := unstructured.NestedFieldNoCopy(ctr.Object, path...)
		return x
	}

	wantImage := v.str(t, "image.repository") + ":" + v.str(t, "image.tag")
	if v.str(t, "image.tag") == "" {
		wantImage = v.str(t, "image.repository") + ":" + readChartMeta(t).AppVersion
	}
	if got := field("image"); got != wantImage {
		t.Errorf("image %v, want %s", got, wantImage)
	}

	// The flags the values set.
	args, _, _ := unstructured.NestedStringSlice(ctr.Object, "args")
	if len(args) == 0 || args[0] != "controller" {
		t.Fatalf("args %q do not start with the controller command", args)
	}
	flags := parseArgs(t, args[1:])
	adminPort := v.num(t, "admin.port")
	want := map[string]string{
		"gateway-addresses": v.str(t, "gatewayAddresses"),
		"controller-name":   v.str(t, "controllerName"),
		"admin-address":     fmt.Sprintf("0.0.0.0:%d", adminPort),
		"drain-timeout":     fmt.Sprintf("%ds", v.num(t, "drainTimeoutSeconds")),
		"log-level":         v.str(t, "logLevel"),
		"log-format":        v.str(t, "logFormat"),
		"leader-elect":      fmt.Sprint(v.flag(t, "leaderElection.enabled")),
	}
	if v.flag(t, "leaderElection.enabled") {
		want["leader-election-namespace"] = releaseNS
		want["leader-election-id"] = v.str(t, "leaderElection.id")
		want["lease-duration"] = v.str(t, "leaderElection.leaseDuration")
		want["renew-deadline"] = v.str(t, "leaderElection.renewDeadline")
		want["retry-period"] = v.str(t, "leaderElection.retryPeriod")
	}
	for name, val := range want {
		if got, ok := flags[name]; !ok || got != val {
			t.Errorf("--%s=%q, want %q (args %q)", name, got, val, args)
		}
	}

	// POD_NAMESPACE from the downward API.
	env, _ := field("env").([]any)
	var podNS bool
	for _, e := range env {
		m := e.(map[string]any)
		if m["name"] == "POD_NAMESPACE" {
			p, _, _ := unstructured.NestedString(m, "valueFrom", "fieldRef", "fieldPath")
			podNS = p == "metadata.namespace"
		}
	}
	if !podNS {
		t.Errorf("no POD_NAMESPACE from metadata.namespace in env %v", env)
	}

	// Probes on the admin port: liveness /healthz, readiness /readyz.
	ports, _ := field("ports").([]any)
	portOf := map[string]int64{}
	for _, p := range ports {
		m := p.(map[string]any)
		portOf[fmt.Sprint(m["name"])], _, _ = unstructured.NestedInt64(m, "containerPort")
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		got, _, _ := unstructured.NestedString(ctr.Object, probe, "httpGet", "path")
		port, _, _ := unstructured.NestedFieldNoCopy(ctr.Object, probe, "httpGet", "port")
		n, named := portOf[fmt.Sprint(port)]
		if !named {
			n, _ = port.(int64)
		}
		if got != path || n != adminPort {
			t.Errorf("%s: GET %s on port %v (%d), want %s on %d", probe, got, port, n, path, adminPort)
		}
	}

	// Host networking, and cluster DNS with it.
	host, _ := spec("hostNetwork").(bool)
	dns, _ := spec("dnsPolicy").(string)
	if host != v.flag(t, "hostNetwork") || (host != (dns == "ClusterFirstWithHostNet")) {
		t.Errorf("hostNetwork %v, dnsPolicy %q; want hostNetwork %v, with ClusterFirstWithHostNet exactly when it is on", host, dns, v.flag(t, "hostNetwork"))
	}

	// The kubelet waits for the drain.
	grace, _ := spec("terminationGracePeriodSeconds").(int64)
	if grace <= v.num(t, "drainTimeoutSeconds") {
		t.Errorf("terminationGracePeriodSeconds %d, not above the drain timeout %ds", grace, v.num(t, "drainTimeoutSeconds"))
	}

	// Least privilege in the container: root only with NET_BIND_SERVICE, and only then.
	sc, _ := field("securityContext").(map[string]any)
	if sc["allowPrivilegeEscalation"] != false || sc["readOnlyRootFilesystem"] != true {
		t.Errorf("securityContext %v: want allowPrivilegeEscalation false, readOnlyRootFilesystem true", sc)
	}
	drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop")
	add, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "add")
	if !slices.Equal(drop, []string{"ALL"}) {
		t.Errorf("capabilities drop %q, want [ALL]", drop)
	}
	privileged := v.flag(t, "bindPrivilegedPorts")
	wantAdd := []string(nil)
	if privileged {
		wantAdd = []string{"NET_BIND_SERVICE"}
	}
	if !slices.Equal(add, wantAdd) {
		t.Errorf("capabilities add %q, want %q", add, wantAdd)
	}
	if nonRoot, _ := sc["runAsNonRoot"].(bool); nonRoot == privileged {
		t.Errorf("runAsNonRoot %v with bindPrivilegedPorts %v: root only to bind ports below 1024", sc["runAsNonRoot"], privileged)
	}

	if got := field("resources"); !reflect.DeepEqual(normalizeAll(got), normalizeAll(v.get(t, "resources"))) {
		t.Errorf("resources %v, want the values' %v", got, v.get(t, "resources"))
	}
	if got, _ := spec("serviceAccountName").(string); got != r.one(t, "ServiceAccount").GetName() {
		t.Errorf("serviceAccountName %q, want the chart's ServiceAccount %q", got, r.one(t, "ServiceAccount").GetName())
	}
}

func checkPDBAndService(t *testing.T, r *rendered) {
	t.Helper()
	v := r.values
	podLabels, _, _ := unstructured.NestedStringMap(r.one(t, "Deployment").Object, "spec", "template", "metadata", "labels")
	selects := func(sel map[string]string) bool {
		for k, val := range sel {
			if podLabels[k] != val {
				return false
			}
		}
		return len(sel) > 0
	}

	pdbs := r.all("PodDisruptionBudget")
	wantPDB := v.flag(t, "podDisruptionBudget.enabled") && v.num(t, "replicas") > 1
	switch {
	case wantPDB && len(pdbs) != 1:
		t.Errorf("%d PodDisruptionBudgets with %d replicas, want 1", len(pdbs), v.num(t, "replicas"))
	case !wantPDB && len(pdbs) != 0:
		t.Errorf("a PodDisruptionBudget with %d replica(s): it would block every drain of the node", v.num(t, "replicas"))
	case wantPDB:
		n, _, _ := unstructured.NestedInt64(pdbs[0].Object, "spec", "minAvailable")
		sel, _, _ := unstructured.NestedStringMap(pdbs[0].Object, "spec", "selector", "matchLabels")
		if n != v.num(t, "podDisruptionBudget.minAvailable") || n >= v.num(t, "replicas") || !selects(sel) {
			t.Errorf("PodDisruptionBudget minAvailable %d selector %v: want %d (below the %d replicas), selecting the pods", n, sel, v.num(t, "podDisruptionBudget.minAvailable"), v.num(t, "replicas"))
		}
	}

	svc := r.one(t, "Service")
	sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	if !selects(sel) || len(ports) != 1 {
		t.Fatalf("Service selector %v, ports %v: want the pods' admin port", sel, ports)
	}
	p := ports[0].(map[string]any)
	if n, _, _ := unstructured.NestedInt64(p, "port"); n != v.num(t, "admin.port") || p["targetPort"] != "admin" {
		t.Errorf("Service port %v, want %d to the admin port", p, v.num(t, "admin.port"))
	}
}

// checkCRDs: Portico's CRDs always (crds/), the Gateway API's exactly when
// gatewayAPI.installCRDs is on, each the same object as its source (the template
// re-serializes them and adds helm.sh/resource-policy: keep).
func checkCRDs(t *testing.T, r *rendered) {
	t.Helper()
	want := map[string]*unstructured.Unstructured{}
	own, err := kube.CRDFiles()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range own {
		objs, err := kube.ReadManifests(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			isGatewayAPI := strings.HasSuffix(o.GetName(), ".gateway.networking.k8s.io") || strings.HasSuffix(o.GetName(), ".gateway.networking.x-k8s.io")
			if o.GetKind() == "CustomResourceDefinition" && (!isGatewayAPI || r.values.flag(t, "gatewayAPI.installCRDs")) {
				want[o.GetName()] = o
			}
		}
	}
	have := map[string]bool{}
	for _, o := range r.all("CustomResourceDefinition") {
		name := o.GetName()
		have[name] = true
		src, ok := want[name]
		if !ok {
			t.Errorf("CRD %s rendered; not wanted with these values", name)
			continue
		}
		got := o.DeepCopy()
		if strings.Contains(name, ".gateway.networking.") {
			ann := got.GetAnnotations()
			if ann["helm.sh/resource-policy"] != "keep" {
				t.Errorf("CRD %s: no helm.sh/resource-policy: keep (helm uninstall would delete every %s)", name, got.GetName())
			}
			delete(ann, "helm.sh/resource-policy")
			got.SetAnnotations(ann)
		}
		if !reflect.DeepEqual(normalizeAll(got.Object), normalizeAll(src.Object)) {
			t.Errorf("CRD %s as rendered differs from its source", name)
		}
	}
	for name := range want {
		if !have[name] {
			t.Errorf("CRD %s not rendered", name)
		}
	}
}

// normalizeAll makes numbers comparable whatever decoded them (int64 or float64).
func normalizeAll(x any) any {
	switch x := x.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[k] = normalizeAll(v)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = normalizeAll(v)
		}
		return out
	case int64:
		return float64(x)
	}
	return x
}
