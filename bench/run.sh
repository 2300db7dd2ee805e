#!/usr/bin/env bash
# The performance lab is a Go program (bench/lab); this wrapper runs it from the
# repository root with the given flags, e.g.
#   bench/run.sh                        every scenario, report in bench/results/latest.md
#   bench/run.sh -scenarios h1 -runs 3  one scenario
#   bench/run.sh -scenarios profile     a CPU profile of Portico under the h1 load
# See go run ./bench/lab -h for every flag.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec go run ./bench/lab "$@"
