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
