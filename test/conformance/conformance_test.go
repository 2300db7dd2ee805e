//go:build conformance

// The official Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance,
// unmodified) against "portico controller", on a real kube-apiserver, etcd and
// kube-controller-manager, with the suite's backend pods run by test/kube's node agent
// as the echo server built from the conformance module. Run it with "make conformance"
// (every profile; writes conformance/report.yaml) or "make conformance-core" (the core
// GATEWAY-HTTP tests, as CI does).
//
// Environment:
//
//	PORTICO_CONFORMANCE_MODE    "full" (default: profiles HTTP, GRPC, TLS, TCP, UDP with the
//	                            features the GatewayClass claims) or "core" (GATEWAY-HTTP
//	                            core features only)
//	PORTICO_CONFORMANCE_REPORT  where the suite's report goes (none if unset; "make
//	                            conformance" sets conformance/report.yaml)
//	PORTICO_CONFORMANCE_RUN     one test to run (its ShortName), for debugging
//	PORTICO_CONFORMANCE_SKIP    tests to skip, comma-separated
//	PORTICO_CONFORMANCE_DEBUG   "1": the suite's debug output
package conformance

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/apis/v1alpha2"
	"sigs.k8s.io/gateway-api/apis/v1alpha3"
	"sigs.k8s.io/gateway-api/apis/v1beta1"
	xv1alpha1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"

	"github.com/portico-gw/portico/internal/translate"
	"github.com/portico-gw/portico/test/kube"
)

// gatewayPool is where the controller takes each Gateway's address: loopback, so that
// the suite (in this process) reaches every Gateway on its own address and ports.
const gatewayPool = "127.77.0.0/24"

func TestConformance(t *testing.T) {
	ctx := context.Background()
	mode := os.Getenv("PORTICO_CONFORMANCE_MODE")
	if mode == "" {
		mode = "full"
	}
	if mode != "full" && mode != "core" {
		t.Fatalf("PORTICO_CONFORMANCE_MODE=%q: want full or core", mode)
	}
	work := t.TempDir()
	bins := buildPrograms(t, filepath.Join(work, "bin"))

	env, err := kube.Start(ctx, kube.Options{Log: t.Logf, ControllerManager: true, Dir: filepath.Join(work, "kube")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	node, err := kube.StartNode(ctx, env.Config, kube.NodeOptions{Dir: filepath.Join(work, "pods"), Log: t.Logf, Program: programs(bins)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Stop)

	scheme := client.Options{}
	c, err := client.New(env.Config, scheme)
	if err != nil {
		t.Fatal(err)
	}
	for _, add := range []func(*runtime.Scheme) error{gwv1.Install, v1beta1.Install, v1alpha2.Install, v1alpha3.Install, xv1alpha1.Install, apiextensionsv1.AddToScheme} {
		if err := add(c.Scheme()); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	const className = "portico"
	if err := c.Create(ctx, &gwv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: className},
		Spec:       gwv1.GatewayClassSpec{ControllerName: translate.DefaultControllerName},
	}); err != nil {
		t.Fatal(err)
	}
	startController(t, env, bins.portico, filepath.Join(work, "controller"))

	opts := suite.ConformanceOptions{
		ConfigurableOptions: suite.ConfigurableOptions{
			GatewayClassName:     className,
			Debug:                os.Getenv("PORTICO_CONFORMANCE_DEBUG") == "1",
			CleanupBaseResources: false, // the whole cluster goes away after the run
			CleanupTestResources: true,
			TimeoutConfig:        config.DefaultTimeoutConfig(),
			RunTest:              os.Getenv("PORTICO_CONFORMANCE_RUN"),
			// GatewayStaticAddresses: an address of the controller's pool that no other
			// Gateway holds (it hands out the lowest free ones), and one outside it.
			UsableNetworkAddresses:   []gwv1.GatewaySpecAddress{{Type: new(gwv1.IPAddressType), Value: "127.77.0.250"}},
			UnusableNetworkAddresses: []gwv1.GatewaySpecAddress{{Type: new(gwv1.IPAddressType), Value: "127.78.0.1"}},
			Mode:                     "default",
			Implementation: confv1.Implementation{
				Organization: "portico-gw",
				Project:      "portico",
				URL:          "https://github.com/portico-gw/portico",
				Version:      version(t),
				Contact:      []string{"https://github.com/portico-gw/portico/issues"},
			},
		},
		Client:     c,
		Clientset:  cs,
		RestConfig: env.Config,
		ManifestFS: []fs.FS{&conformance.Manifests},
	}
	if s := os.Getenv("PORTICO_CONFORMANCE_SKIP"); s != "" {
		opts.SkipTests = strings.Split(s, ",")
	}
	claimed := waitForClaims(t, ctx, c, className)
	switch mode {
	case "full":
		// Supported features come from the GatewayClass's status: what Portico claims.
		// The suite reads them itself ("inferred" in the report) unless one test is
		// chosen, when it would not; then they are passed as the same list. Mesh
		// features are never claimed, so the Mesh tests are skipped.
		if opts.RunTest != "" {
			opts.SupportedFeatures = claimed
		}
		opts.ConformanceProfiles = []suite.ConformanceProfileName{
			suite.GatewayHTTPConformanceProfileName, suite.GatewayGRPCConformanceProfileName, suite.GatewayTLSConformanceProfileName,
			suite.GatewayTCPConformanceProfileName, suite.GatewayUDPConformanceProfileName,
		}
	case "core":
		opts.ConformanceProfiles = []suite.ConformanceProfileName{suite.GatewayHTTPConformanceProfileName}
		opts.SupportedFeatures = features.SetsToNamesSet(features.GatewayCoreFeatures, features.HTTPRouteCoreFeatures, features.ReferenceGrantCoreFeatures).UnsortedList()
	}
	if r := os.Getenv("PORTICO_CONFORMANCE_REPORT"); r != "" {
		opts.ReportOutputPath = r
	}
	if opts.ReportOutputPath != "" {
		if err := os.MkdirAll(filepath.Dir(opts.ReportOutputPath), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conformance.RunConformanceWithOptions(t, opts)
}

// waitForClaims waits until the controller has accepted the GatewayClass and listed its
// supported features in status, and returns them.
func waitForClaims(t *testing.T, ctx context.Context, c client.Client, name string) []features.FeatureName {
	deadline := time.Now().Add(60 * time.Second)
	for {
		gc := &gwv1.GatewayClass{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, gc); err == nil && len(gc.Status.SupportedFeatures) > 0 {
			var out []features.FeatureName
			for _, f := range gc.Status.SupportedFeatures {
				out = append(out, features.FeatureName(f.Name))
			}
			t.Logf("GatewayClass %s claims %d features: %v", name, len(out), out)
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("GatewayClass %s lists no supportedFeatures after 60s", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func version(t *testing.T) string {
	out, err := exec.Command("git", "-C", kube.RepoRoot(), "describe", "--always", "--dirty").Output()
	if err != nil {
		return "v0.0.0-dev"
	}
	v := strings.TrimSpace(string(out))
	if !strings.HasPrefix(v, "v") {
		v = "v0.0.0-" + v
	}
	return v
}
