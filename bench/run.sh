#!/usr/bin/env bash
# Side-by-side lab, scenario 1: HTTP/1.1 keep-alive proxying of a small response.
#
#   bench/run.sh            direct-to-backend, nginx and Portico under the same wrk load,
#                           RUNS runs of DURATION each (interleaved); writes
#                           bench/results/latest.md and prints it
#   bench/run.sh profile    one Portico run under the same load with a CPU profile; writes
#                           bench/results/portico-cpu.pprof and bench/results/profile-top.txt
#
# Installs what is missing (wrk, nginx) from Debian, builds bench/backend and
# bench/portico, and stops everything it started when it ends, however it ends.
#
# Pinning (the machine has 2 cores): each proxy runs alone on PROXY_CPU (0), with one
# worker (nginx worker_processes 1, Portico GOMAXPROCS=1); the backend and wrk share
# LOAD_CPU (1). The proxy's core then measures the proxy only, and its CPU time over a
# run is read from /proc/PID/stat.
#
# Settings (environment): RUNS=5 DURATION=10 (seconds) CONNS=64 WARMUP=2 (seconds)
# PROXY_CPU=0 LOAD_CPU=1 BACKEND_PORT=18080 NGINX_PORT=18081 PORTICO_PORT=18082
# PORTICO_NET_PORT=18083 (Portico with net/http's HTTP/1.1 server instead of its lean loop,
# target "portico-nethttp", for comparison) PORTICO_TEL_PORT=18084 (Portico with its JSON
# access log, to a file, and metrics on: target "portico-telemetry")
# RESULTS (directory for the reports, default bench/results)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RESULTS=${RESULTS:-$ROOT/bench/results}

RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BACKEND_PORT=${BACKEND_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
PORTICO_PORT=${PORTICO_PORT:-18082}
PORTICO_NET_PORT=${PORTICO_NET_PORT:-18083}
PORTICO_TEL_PORT=${PORTICO_TEL_PORT:-18084}
MODE=${1:-run}

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/portico-bench.XXXXXX")
PIDS=()

# cleanup stops every process this script started (TERM, then KILL after 5 s) and
# removes the work directory.
cleanup() {
	local pid i
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# install_missing installs the Debian packages whose command is missing, running
# apt-get update at most once.
APT_UPDATED=0
install_missing() {
	local cmd pkg missing=()
	while (($#)); do
		cmd=$1 pkg=$2
		shift 2
		command -v "$cmd" >/dev/null || missing+=("$pkg")
	done
	((${#missing[@]})) || return 0
	local sudo=""
	((EUID == 0)) || sudo=sudo
	if ((APT_UPDATED == 0)); then
		log "apt-get update"
		$sudo apt-get update -qq
		APT_UPDATED=1
	fi
	log "installing ${missing[*]}"
	# The package's own service is not wanted (and is not started where policy-rc.d
	# forbids it); this script runs nginx itself from a temporary config.
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port waits up to 10 s for something to accept on 127.0.0.1:$1.
wait_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		port_open "$1" && return 0
		sleep 0.1
	done
	die "nothing is listening on 127.0.0.1:$1 (see $2)"
}

# cpu_ticks prints the user+system clock ticks used so far by the given processes and
# their children (nginx's worker).
cpu_ticks() {
	local want=" $* " f stat rest total=0 pid ppid
	for f in /proc/[0-9]*/stat; do
		stat=$(<"$f") 2>/dev/null || continue
		pid=${stat%% *}
		rest=${stat##*) } # fields from 3 (state) on; comm may hold spaces
		read -r _ ppid _ _ _ _ _ _ _ _ _ utime stime _ <<<"$rest"
		if [[ $want == *" $pid "* || $want == *" $ppid "* ]]; then
			total=$((total + utime + stime))
		fi
	done 2>/dev/null
	echo "$total"
}

# start NAME CPU CMD... runs CMD pinned to CPU in the background; its pid is recorded
# for cleanup and left in STARTED.
STARTED=
start() {
	local name=$1 cpu=$2
	shift 2
	taskset -c "$cpu" "$@" >"$WORK/$name.log" 2>&1 &
	STARTED=$!
	PIDS+=("$STARTED")
}

# to_ms converts a wrk duration ("812.00us", "1.23ms", "1.02s") to milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000
		else if (v ~ /ms$/) n = n
		else if (v ~ /m$/) n *= 60000
		else if (v ~ /s$/) n *= 1000
		printf "%.3f", n
	}'
}

# busy_ticks prints the clock ticks all CPUs spent busy so far (steal included).
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# child_seconds prints the CPU seconds (user+sys) of the calling shell's finished
# children. (The builtin must run in that shell, not in a command substitution.)
child_seconds() {
	times >"$WORK/times.$BASHPID"
	awk 'NR == 2 {
		n = 0
		for (i = 1; i <= 2; i++) { split($i, p, "m"); n += p[1] * 60 + p[2] }
		printf "%.2f", n
	}' "$WORK/times.$BASHPID"
}

# measure TARGET PORT SECONDS PIDS... runs wrk against the port and prints
# "req/s p99-ms requests errors seconds proxy-cpu-s other-cpu-s": the CPU time of the
# given pids (the proxy), and the CPU time of everything on the machine that was not
# the proxy, the backend or wrk (other work sharing the cores).
measure() {
	local target=$1 port=$2 secs=$3
	shift 3
	local out=$WORK/wrk-$target-$RANDOM.txt before=0 after=0 back0 back1 busy0 busy1 wrk0 wrk1
	(($#)) && before=$(cpu_ticks "$@")
	back0=$(cpu_ticks "$BACKEND_PID")
	busy0=$(busy_ticks)
	child_seconds >"$WORK/wrk0.$BASHPID"
	wrk0=$(<"$WORK/wrk0.$BASHPID")
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${secs}s" --latency "http://127.0.0.1:$port/" >"$out" 2>&1 ||
		die "wrk against $target failed: $(cat "$out")"
	child_seconds >"$WORK/wrk1.$BASHPID"
	wrk1=$(<"$WORK/wrk1.$BASHPID")
	busy1=$(busy_ticks)
	back1=$(cpu_ticks "$BACKEND_PID")
	(($#)) && after=$(cpu_ticks "$@")
	local rps p99 reqs took errs
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
	reqs=$(awk '/ requests in / {print $1}' "$out")
	took=$(awk '/ requests in / {sub(/s,$/, "", $4); print $4}' "$out")
	errs=$(awk '/Socket errors:/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} /Non-2xx or 3xx responses:/ {n += $5} END {print n + 0}' "$out")
	[[ -n $rps && -n $reqs ]] || die "could not read wrk's output for $target: $(cat "$out")"
	awk -v hz="$CLK_TCK" -v proxy=$((after - before)) -v back=$((back1 - back0)) -v busy=$((busy1 - busy0)) -v wrk0="$wrk0" -v wrk1="$wrk1" \
		-v head="$rps $p99 $reqs $errs $took" 'BEGIN {
			other = (busy - proxy - back) / hz - (wrk1 - wrk0)
			if (other < 0) other = 0
			printf "%s %.2f %.2f\n", head, proxy / hz, other
		}'
}

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# --- setup -------------------------------------------------------------------------

command -v go >/dev/null || die "go is not on PATH (the module needs the Go toolchain named in go.mod)"
command -v nginx >/dev/null || export PATH=$PATH:/usr/sbin
install_missing wrk wrk nginx nginx taskset util-linux
CLK_TCK=$(getconf CLK_TCK)
(($(nproc) >= 2)) || log "warning: fewer than 2 CPUs; proxy and load share a core"

for p in "$BACKEND_PORT" "$NGINX_PORT" "$PORTICO_PORT"; do
	port_open "$p" && die "port $p is already in use (set BACKEND_PORT, NGINX_PORT, PORTICO_PORT)"
done

log "building bench/backend and bench/portico"
go build -o "$WORK/backend" ./bench/backend
go build -o "$WORK/portico" ./bench/portico

mkdir -p "$WORK/nginx/tmp" "$RESULTS"
# nginx's worker drops root privileges: let it reach its temp directories.
chmod 755 "$WORK" "$WORK/nginx"
chmod 1777 "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    # Keep client and upstream connections for the whole run, as Portico and the Go
    # backend do (nginx's default closes them every 1000 requests).
    keepalive_requests 10000000;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 10000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

log "starting the backend on CPU $LOAD_CPU"
start backend "$LOAD_CPU" env GOMAXPROCS=1 "$WORK/backend" -addr "127.0.0.1:$BACKEND_PORT"
BACKEND_PID=$STARTED
wait_port "$BACKEND_PORT" "$WORK/backend.log"

# --- profile mode ------------------------------------------------------------------

if [[ $MODE == profile ]]; then
	log "starting Portico on CPU $PROXY_CPU with a CPU profile"
	start portico "$PROXY_CPU" env GOMAXPROCS=1 "$WORK/portico" -listen "127.0.0.1:$PORTICO_PORT" \
		-backend "127.0.0.1:$BACKEND_PORT" -cpuprofile "$WORK/portico-cpu.pprof"
	portico_pid=$STARTED
	wait_port "$PORTICO_PORT" "$WORK/portico.log"
	measure portico "$PORTICO_PORT" "$WARMUP" >/dev/null
	line=$(measure portico "$PORTICO_PORT" "$DURATION" "$portico_pid")
	read -r rps p99 _ errs took cpu other <<<"$line"
	kill -TERM "$portico_pid"
	wait "$portico_pid" || die "portico exited with an error: $(cat "$WORK/portico.log")"
	cp "$WORK/portico-cpu.pprof" "$RESULTS/portico-cpu.pprof"
	{
		echo "# Portico CPU profile: $rps req/s, p99 ${p99} ms, $errs errors, Portico used $cpu CPU-s in ${took}s while other jobs used $other CPU-s (the profile includes the warm-up)"
		echo
		echo "## flat"
		go tool pprof -top -nodecount=35 "$RESULTS/portico-cpu.pprof" 2>/dev/null
		echo
		echo "## cumulative"
		go tool pprof -top -cum -nodecount=45 "$RESULTS/portico-cpu.pprof" 2>/dev/null
	} >"$RESULTS/profile-top.txt"
	cat "$RESULTS/profile-top.txt"
	log "wrote bench/results/portico-cpu.pprof and bench/results/profile-top.txt"
	exit 0
fi
[[ $MODE == run ]] || die "usage: $0 [run|profile]"

# --- the run -----------------------------------------------------------------------

log "starting nginx and Portico on CPU $PROXY_CPU"
start nginx "$PROXY_CPU" nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
nginx_pid=$STARTED
start portico "$PROXY_CPU" env GOMAXPROCS=1 "$WORK/portico" -listen "127.0.0.1:$PORTICO_PORT" -backend "127.0.0.1:$BACKEND_PORT"
portico_pid=$STARTED
start portico-nethttp "$PROXY_CPU" env GOMAXPROCS=1 "$WORK/portico" -nethttp -listen "127.0.0.1:$PORTICO_NET_PORT" -backend "127.0.0.1:$BACKEND_PORT"
portico_net_pid=$STARTED
start portico-telemetry "$PROXY_CPU" env GOMAXPROCS=1 "$WORK/portico" -access-log /dev/null -listen "127.0.0.1:$PORTICO_TEL_PORT" -backend "127.0.0.1:$BACKEND_PORT"
portico_tel_pid=$STARTED
wait_port "$NGINX_PORT" "$WORK/nginx.log"
wait_port "$PORTICO_PORT" "$WORK/portico.log"
wait_port "$PORTICO_NET_PORT" "$WORK/portico-nethttp.log"
wait_port "$PORTICO_TEL_PORT" "$WORK/portico-telemetry.log"

TARGETS=(direct nginx portico portico-nethttp portico-telemetry)
declare -A PORT=([direct]=$BACKEND_PORT [nginx]=$NGINX_PORT [portico]=$PORTICO_PORT [portico-nethttp]=$PORTICO_NET_PORT [portico-telemetry]=$PORTICO_TEL_PORT)
declare -A PROC=([direct]="" [nginx]=$nginx_pid [portico]=$portico_pid [portico-nethttp]=$portico_net_pid [portico-telemetry]=$portico_tel_pid)

for t in "${TARGETS[@]}"; do
	log "warm-up $t (${WARMUP}s)"
	measure "$t" "${PORT[$t]}" "$WARMUP" >/dev/null
done
for ((run = 1; run <= RUNS; run++)); do
	for t in "${TARGETS[@]}"; do
		# shellcheck disable=SC2086 # PROC is empty for direct
		line=$(measure "$t" "${PORT[$t]}" "$DURATION" ${PROC[$t]})
		echo "$line" >>"$WORK/$t.runs"
		log "run $run/$RUNS $t: $line (req/s p99-ms requests errors seconds proxy-cpu-s other-cpu-s)"
	done
done

# --- report ------------------------------------------------------------------------

col() { awk -v c="$2" '{print $c}' "$WORK/$1.runs"; }
declare -A RPS P99 PERCPU BUSY ERRS OTHER
for t in "${TARGETS[@]}"; do
	RPS[$t]=$(col "$t" 1 | median)
	P99[$t]=$(col "$t" 2 | median)
	ERRS[$t]=$(col "$t" 4 | awk '{n += $1} END {print n + 0}')
	OTHER[$t]=$(awk '$5 > 0 {printf "%.0f\n", 100 * $7 / $5}' "$WORK/$t.runs" | median)
	if [[ -n ${PROC[$t]} ]]; then
		PERCPU[$t]=$(awk '$6 > 0 {printf "%.0f\n", $3 / $6}' "$WORK/$t.runs" | median)
		BUSY[$t]=$(awk '$5 > 0 {printf "%.0f\n", 100 * $6 / $5}' "$WORK/$t.runs" | median)
	fi
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
fmt0() { awk -v a="$1" 'BEGIN {printf "%.0f", a}'; }

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Uncommitted or untracked sources change what was measured.
[[ -z $(git status --porcelain -- internal go.mod go.sum 2>/dev/null | grep -v "_test.go$") ]] || commit="$commit (with uncommitted changes)"
{
	echo "# Bench: HTTP/1.1 keep-alive, small response"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit."
	echo "Machine: $(nproc) × $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r)."
	echo "$(go version | awk '{print $3}'), $(nginx -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}')."
	echo
	echo "wrk -t1 -c$CONNS -d${DURATION}s --latency, $RUNS runs per target (interleaved, after a ${WARMUP}s warm-up each);"
	echo "proxy alone on CPU $PROXY_CPU with one worker (nginx worker_processes 1, Portico GOMAXPROCS=1);"
	echo "backend (Go net/http, 32-byte body) and wrk share CPU $LOAD_CPU. Medians over the runs."
	echo
	echo "| target | req/s | p99 latency | requests per proxy CPU-second | proxy CPU busy | errors | other load |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	for t in "${TARGETS[@]}"; do
		if [[ -n ${PROC[$t]} ]]; then
			echo "| $t | $(fmt0 "${RPS[$t]}") | ${P99[$t]} ms | $(fmt0 "${PERCPU[$t]}") | ${BUSY[$t]} % | ${ERRS[$t]} | ${OTHER[$t]} % |"
		else
			echo "| $t | $(fmt0 "${RPS[$t]}") | ${P99[$t]} ms | – | – | ${ERRS[$t]} | ${OTHER[$t]} % |"
		fi
	done
	echo
	echo "Portico / nginx: req/s $(ratio "${RPS[portico]}" "${RPS[nginx]}"), p99 $(ratio "${P99[portico]}" "${P99[nginx]}"), requests per CPU-second $(ratio "${PERCPU[portico]}" "${PERCPU[nginx]}")."
	echo "Portico with its access log and metrics on (portico-telemetry) / Portico: req/s $(ratio "${RPS[portico-telemetry]}" "${RPS[portico]}"), p99 $(ratio "${P99[portico-telemetry]}" "${P99[portico]}"), requests per CPU-second $(ratio "${PERCPU[portico-telemetry]}" "${PERCPU[portico]}")."
	echo "Portico with net/http's HTTP/1.1 server (portico-nethttp) / nginx: req/s $(ratio "${RPS[portico-nethttp]}" "${RPS[nginx]}"), p99 $(ratio "${P99[portico-nethttp]}" "${P99[nginx]}"), requests per CPU-second $(ratio "${PERCPU[portico-nethttp]}" "${PERCPU[nginx]}")."
	echo
	echo "\"proxy CPU busy\" is the proxy's CPU time over the run's length (100 % = its core saturated)."
	echo "\"other load\" is CPU time used during the run by anything but the proxy, backend and wrk"
	echo "(other jobs on the machine), in % of one core: above a few % the numbers are contended."
	echo
	echo "Every run (req/s, p99 ms, requests, errors, seconds, proxy CPU-s, other CPU-s):"
	echo
	echo '```'
	for t in "${TARGETS[@]}"; do
		awk -v t="$t" '{printf "%-17s %s\n", t, $0}' "$WORK/$t.runs"
	done
	echo '```'
} >"$RESULTS/latest.md"
cat "$RESULTS/latest.md"
log "wrote bench/results/latest.md"
