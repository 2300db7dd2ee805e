package translate

import (
	"os"
	"testing"

	"github.com/portico-gw/portico/internal/resource"
)

// TestExternalNameOption: with the opt-in, an ExternalName Service becomes a cluster
// whose one endpoint is the external name on the backendRef's port.
func TestExternalNameOption(t *testing.T) {
	data, err := os.ReadFile("testdata/endpoints-externalname-service.yaml")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := resource.Load("externalname.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	cfg, status := TranslateWith(snap, Options{AllowExternalNameServices: true})
	if len(cfg.Clusters) != 1 || cfg.Clusters[0].Name != "service/default/web/80" {
		t.Fatalf("clusters = %+v, want service/default/web/80", cfg.Clusters)
	}
	eps := cfg.Clusters[0].Endpoints
	if len(eps) != 1 || eps[0].Address != "api.external.example" || eps[0].Port != 80 {
		t.Fatalf("endpoints = %+v, want api.external.example:80", eps)
	}
	if err := checkStatus([]string{"HTTPRoute", "default/web", "ResolvedRefs=True", "ResolvedRefs"}, status); err != nil {
		t.Fatal(err)
	}
}

// TestControllerNameOption: only GatewayClasses naming the configured controller are served.
func TestControllerNameOption(t *testing.T) {
	data, err := os.ReadFile("testdata/httproute-basic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := resource.Load("basic.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	cfg, status := TranslateWith(snap, Options{ControllerName: "example.com/other"})
	if len(cfg.Gateways) != 0 || len(status.GatewayClasses) != 0 || len(status.Routes) != 0 {
		t.Fatalf("another controller's objects were served: %d gateways, %d classes, %d routes",
			len(cfg.Gateways), len(status.GatewayClasses), len(status.Routes))
	}
}
