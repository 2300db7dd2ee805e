// Command chart-crds copies the CRDs into the Helm chart (charts/portico): Portico's own
// from config/crd/portico into crds/, and the Gateway API's from the pinned
// sigs.k8s.io/gateway-api module into files/gateway-api-crds.yaml. "make chart-crds"
// runs it; test/chart fails when the copies are stale.
package main

import (
	"fmt"
	"os"

	"github.com/portico-gw/portico/test/chart"
)

func main() {
	if err := chart.WriteCRDs(); err != nil {
		fmt.Fprintln(os.Stderr, "chart-crds:", err)
		os.Exit(1)
	}
}
