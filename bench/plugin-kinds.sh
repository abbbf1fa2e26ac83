#!/usr/bin/env bash
# What one trivial plugin of each kind costs per request, under load:
#
#   bench/plugin-kinds.sh [ROUNDS] [SECONDS]
#
# Four gateways (target/release/weir, one worker thread each) run at once
# in front of one nginx backend, each with the router alone plus:
#   router       nothing more (the baseline)
#   component    a weir:plugin component (examples/hello-header: one
#                response header)
#   proxy-wasm   a proxy-wasm filter built with the Rust SDK
#                (tests/proxy-wasm/trivial: one request header)
#   wasi-http    a wasi:http middleware (tests/fixtures/http-middleware:
#                forwards the request to the next stage, one header each
#                way, body streamed through)
# wrk (1 thread, 32 connections) drives them in turns of SECONDS (default
# 1), ROUNDS times (default 10), the order rotating every round, and each
# gateway's requests and CPU time (user + system, from /proc) are summed
# over its turns, so the machine's drift falls on all alike.
# Printed: CPU microseconds per request, what the plugin adds over the
# router alone, and requests served.
#
# Needs: cargo build --release (builds the plugins too), nginx, wrk, curl.
set -u
ROUNDS=${1:-10}
S=${2:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
WEIR=${WEIR:-$root/target/release/weir}
WASM=$root/target/wasm
declare -A EXTRA=(
    [router]=""
    [component]="$WASM/wasm32-wasip2/plugin/hello_header.wasm"
    [proxy-wasm]="$WASM/wasm32-wasip1/release/pw_trivial.wasm"
    [wasi-http]="$WASM/wasm32-wasip2/plugin/fixture_http_middleware.wasm"
)
KINDS=(router component proxy-wasm wasi-http)
for tool in nginx wrk curl; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed (apt-get install nginx wrk curl)" >&2; exit 1; }
done
[ -x "$WEIR" ] || { echo "error: $WEIR is missing: cargo build --release" >&2; exit 1; }
for kind in "${KINDS[@]}"; do
    [ -z "${EXTRA[$kind]}" ] || [ -f "${EXTRA[$kind]}" ] || { echo "error: ${EXTRA[$kind]} is missing: cargo build --release" >&2; exit 1; }
done
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
BACKEND=127.0.0.1:$(free_port)
# shellcheck source=bench/gateway.sh
. "$root/bench/gateway.sh"
nginx_backend "$tmp"; pids+=("$NGINX_BACKEND_PID")

declare -A PORT PID
for kind in "${KINDS[@]}"; do
    PORT[$kind]=$(free_port)
    # shellcheck disable=SC2086 # an optional file
    WEIR_WORKERS=1 weir_gateway "$WEIR" "$tmp/$kind" "${PORT[$kind]}" 0 ${EXTRA[$kind]}
    "$WEIR" run --config "$tmp/$kind/weir.toml" >"$tmp/$kind.log" 2>&1 &
    pids+=($!); PID[$kind]=$!
done
for kind in "${KINDS[@]}"; do
    for _ in $(seq 100); do curl -fs -m 2 -o /dev/null "http://127.0.0.1:${PORT[$kind]}/service1/hello" && break; sleep 0.1; done
    curl -fs -m 2 -o /dev/null "http://127.0.0.1:${PORT[$kind]}/service1/hello" || { echo "error: the $kind gateway does not answer:" >&2; cat "$tmp/$kind.log" >&2; exit 1; }
done

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
declare -A reqs ticks
for kind in "${KINDS[@]}"; do reqs[$kind]=0; ticks[$kind]=0; done
turn() { # kind
    local c0 n
    c0=$(cpu_ticks "${PID[$1]}")
    n=$(wrk -t1 -c32 -d"${S}s" "http://127.0.0.1:${PORT[$1]}/service1/hello" | awk '/requests in/ {print $1}')
    reqs[$1]=$((reqs[$1] + ${n:-0}))
    ticks[$1]=$((ticks[$1] + $(cpu_ticks "${PID[$1]}") - c0))
}
for i in $(seq "$ROUNDS"); do
    for j in 0 1 2 3; do turn "${KINDS[$(( (i + j) % 4 ))]}"; done
done
tck=$(getconf CLK_TCK)
base=$(awk -v t="${ticks[router]}" -v n="${reqs[router]}" -v hz="$tck" 'BEGIN { print (n ? t * 1e6 / hz / n : 0) }')
for kind in "${KINDS[@]}"; do
    awk -v t="${ticks[$kind]}" -v n="${reqs[$kind]}" -v hz="$tck" -v name="$kind" -v base="$base" \
        'BEGIN { us = (n ? t * 1e6 / hz / n : 0); printf "%-12s %6.1f cpu_us/req  %+6.1f over the router  %9d requests\n", name, us, us - base, n }'
done
