CONTROLLER_GEN ?= go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0

.PHONY: test lint fmt generate

# Everything CI runs.
test:
	scripts/test.sh

# gofmt check, go vet, staticcheck.
lint:
	scripts/test.sh lint

fmt:
	go fmt ./...

# DeepCopy methods and CRD YAML for api/ (Portico's own kinds).
generate:
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/portico

# The Helm chart's copies of the CRDs: Portico's own (config/crd/portico -> crds/) and
# the Gateway API's from the pinned module (-> files/gateway-api-crds.yaml, rendered
# when gatewayAPI.installCRDs is on). test/chart fails while they are stale.
.PHONY: chart-crds
chart-crds:
	go run ./test/chart/cmd/chart-crds

# Side-by-side performance lab (bench/lab): Portico, nginx, haproxy, caddy and the
# backend directly, every scenario; writes bench/results/latest.md. Installs what is
# missing from Debian.
.PHONY: bench
bench:
	go run ./bench/lab

# The official Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance v1.6.3)
# on a local API server, controller manager and node agent (test/conformance): profiles
# GATEWAY-HTTP, -GRPC, -TLS, -TCP and -UDP with the features the GatewayClass claims;
# writes conformance/report.yaml. Needs root (network namespaces).
.PHONY: conformance conformance-core
conformance:
	scripts/test.sh conformance

# Only the core GATEWAY-HTTP tests (what CI runs).
conformance-core:
	scripts/test.sh conformance-core
