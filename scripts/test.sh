#!/usr/bin/env bash
# The project's one test command: formatting, vet, staticcheck, and every test with the
# race detector. Works on a fresh Debian machine with only Go installed (plus gcc for
# -race); tools come from the Go module proxy into ./bin.
#
#   scripts/test.sh          everything
#   scripts/test.sh lint     gofmt, go vet, staticcheck only
#   scripts/test.sh test     go test only
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

# staticcheck v0.8.2 is the newest release and the first line built for Go 1.26
# (its go.mod says go 1.26.0, golang.org/x/tools v0.51.0); older releases build but
# carry an x/tools that predates Go 1.26.
STATICCHECK_VERSION=v0.8.2

section() {
	printf '\n==> %s\n' "$*"
}

die() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

# apt_install installs the named Debian packages that are not installed yet, running
# apt-get update at most once per run. For later sections (etcd, nginx, ...).
APT_UPDATED=0
apt_install() {
	local missing=() pkg sudo=""
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$pkg")
		fi
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	if ((EUID != 0)); then
		sudo=sudo
	fi
	if ((APT_UPDATED == 0)); then
		$sudo apt-get update -qq
		APT_UPDATED=1
	fi
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# go_files lists the Go files gofmt must accept: everything but tool output, caches and
# testdata (which go build ignores too).
go_files() {
	find . \( -path ./bin -o -path ./.cache -o -path ./.git -o -path ./test/kube/.bin \
		-o -name testdata -o -name vendor \) -prune -o -type f -name '*.go' -print
}

install_tools() {
	section "tools"
	local have=""
	if [[ -x bin/staticcheck ]]; then
		have=$(go version -m bin/staticcheck | awk '$1 == "mod" && $2 == "honnef.co/go/tools" {print $3}')
	fi
	if [[ $have == "$STATICCHECK_VERSION" ]]; then
		echo "staticcheck $STATICCHECK_VERSION already in ./bin"
	else
		echo "installing staticcheck $STATICCHECK_VERSION into ./bin"
		GOBIN=$ROOT/bin go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	fi
}

check_gofmt() {
	section "gofmt"
	local unformatted
	unformatted=$(go_files | xargs -r gofmt -l)
	if [[ -n $unformatted ]]; then
		printf '%s\n' "$unformatted" >&2
		die "files above are not gofmt-formatted (run: make fmt)"
	fi
	echo "ok"
}

# check_generated regenerates what controller-gen makes from api/ (DeepCopy methods, the
# CRD YAML in config/crd/portico) into a scratch copy and fails if it differs from what is
# committed: generated files are never edited by hand, and never stale.
check_generated() {
	section "generated files (controller-gen)"
	local gen="go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0" tmp
	tmp=$(mktemp -d)
	$gen crd paths=./api/... output:crd:artifacts:config="$tmp/crd"
	# DeepCopy methods are generated in place: keep the committed file, regenerate,
	# compare, and put the committed one back.
	cp api/v1alpha1/zz_generated.deepcopy.go "$tmp/deepcopy.go"
	$gen object paths=./api/...
	local stale=""
	if ! cmp -s api/v1alpha1/zz_generated.deepcopy.go "$tmp/deepcopy.go"; then
		stale="api/v1alpha1/zz_generated.deepcopy.go"
		cp "$tmp/deepcopy.go" api/v1alpha1/zz_generated.deepcopy.go
	fi
	if ! diff -r config/crd/portico "$tmp/crd" >&2; then
		stale="$stale config/crd/portico"
	fi
	rm -rf "$tmp"
	[[ -z $stale ]] || die "stale generated files ($stale): run make generate"
	echo "ok"
}

run_vet() {
	section "go vet"
	go vet ./...
	go vet -tags conformance ./test/conformance/
	echo "ok"
}

run_staticcheck() {
	section "staticcheck $STATICCHECK_VERSION"
	./bin/staticcheck ./...
	./bin/staticcheck -tags conformance ./test/conformance/
	echo "ok"
}

run_tests() {
	section "go test -race"
	# The race detector needs cgo, and cgo needs a C compiler.
	if [[ $(go env CGO_ENABLED) != 1 ]] || ! command -v "$(go env CC)" >/dev/null; then
		die "go test -race needs cgo and a C compiler (apt-get install gcc)"
	fi
	go test -race -count=1 -timeout 30m ./...
}

# The official Gateway API conformance suite (test/conformance): every profile Portico
# runs (GATEWAY-HTTP, -GRPC, -TLS, -TCP, -UDP) with the features its GatewayClass
# claims, so that a claim that stops passing fails CI. The report goes to a temporary
# file; "make conformance" rewrites the committed conformance/report.yaml.
run_conformance_ci() {
	section "Gateway API conformance: GATEWAY-HTTP, -GRPC, -TLS, -TCP, -UDP"
	local report rc=0
	report=$(mktemp --suffix .yaml)
	PORTICO_CONFORMANCE_REPORT=$report go test -tags conformance -count=1 -timeout 30m ./test/conformance/ || rc=$?
	grep -E '^  name:|^  summary:' "$report" | paste - - | sed 's/^ *//' || true
	rm -f "$report"
	return $rc
}

# Only the core GATEWAY-HTTP tests (the issue's minimum; about 30 s).
run_conformance_core() {
	section "Gateway API conformance: core GATEWAY-HTTP"
	PORTICO_CONFORMANCE_MODE=core go test -tags conformance -count=1 -timeout 30m ./test/conformance/
}

# Every profile with the features Portico claims; writes conformance/report.yaml and the
# whole output to conformance/last-run.log (ignored).
run_conformance_full() {
	section "Gateway API conformance: GATEWAY-HTTP, -GRPC, -TLS, -TCP, -UDP"
	local rc=0
	PORTICO_CONFORMANCE_REPORT=$ROOT/conformance/report.yaml \
		go test -tags conformance -count=1 -timeout 60m -v ./test/conformance/ >conformance/last-run.log 2>&1 || rc=$?
	grep -E '^ {4}--- (PASS|FAIL|SKIP)' conformance/last-run.log || true
	echo "report: conformance/report.yaml; full output: conformance/last-run.log"
	return $rc
}

# prepare_kube installs and builds what the Kubernetes tests (test/kube and its users)
# need: etcd from Debian, iproute2 for the network namespaces standing in for pods, and
# kube-apiserver built from the pinned k8s.io/kubernetes module (about 15 minutes on a
# cold Go build cache, seconds after that).
prepare_kube() {
	section "Kubernetes test environment"
	apt_install etcd-server iproute2
	go run ./test/kube/cmd/prepare
}

lint() {
	install_tools
	check_gofmt
	check_generated
	run_vet
	run_staticcheck
}

main() {
	section "$(go version)"
	case "${1:-all}" in
	all)
		lint
		prepare_kube
		run_tests
		run_conformance_ci
		;;
	lint) lint ;;
	test)
		prepare_kube
		run_tests
		;;
	conformance-core)
		prepare_kube
		run_conformance_core
		;;
	conformance)
		prepare_kube
		run_conformance_full
		;;
	*) die "usage: $0 [all|lint|test|conformance|conformance-core]" ;;
	esac
	section "all passed"
}

main "$@"
