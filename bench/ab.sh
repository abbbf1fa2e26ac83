#!/usr/bin/env bash
# Two Weir builds side by side, for a before/after figure on a noisy machine.
#
#   A=/path/to/weir-before B=/path/to/weir-after bench/ab.sh [ROUNDS] [SECONDS]
#
# Both gateways run at once (the default chain like bench/peers.sh's
# weir-chain, or the router alone with CHAIN=0), one worker thread each, in
# front of one nginx backend. wrk (1 thread, 32 connections) then drives
# them in turns of SECONDS (default 1), ROUNDS times (default 20), A then B
# in odd rounds and B then A in even ones, and each gateway's requests and
# CPU time (user + system, from /proc) are summed over all its turns. A
# drift in the machine's speed, which on these shared machines moves a
# 10-second figure by 1.5x, then falls on both alike.
# Printed: CPU microseconds per request and requests served, per build.
#
# RATE=N drives each turn open loop instead, at a fixed N req/s (Debian's
# hey, 32 workers at ceil(N/32) req/s each): the cost at a moderate load,
# where requests arrive spread out (see bench/peers.sh's LOADS). Use turns
# of a few seconds (e.g. `RATE=5000 bench/ab.sh 10 3`): hey needs a moment
# to reach its rate.
#
# EXTRA_B="a.wasm b.wasm" adds plugins to B's chain (copied in as
# 91-a.wasm, 92-b.wasm, ..., after the default ones, with a .json beside
# them when one sits beside the original). With A and B the same binary,
# that measures what those plugins add per request, e.g.
#   hello=target/wasm/wasm32-wasip2/plugin/hello_header.wasm
#   A=target/release/weir B=target/release/weir CHAIN=0 \
#     EXTRA_B="$hello $hello $hello $hello" bench/ab.sh
#
# A may also be the floor proxy (target/release/examples/floor_proxy, built
# by `cargo build --release --example floor_proxy`: hyper's server and
# client alone, see bench/peers.sh): Weir's own cost above it, e.g.
#   A=target/release/examples/floor_proxy B=target/release/weir bench/ab.sh
# (a link to it named floor_proxy_pinned runs it with a connection per
# client connection instead of the shared pool).
set -u
ROUNDS=${1:-20}
S=${2:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
A=${A:?A=path to the first weir binary}
B=${B:?B=path to the second weir binary}
CHAIN=${CHAIN:-1}
for tool in nginx wrk curl ${RATE:+hey}; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed (apt-get install nginx wrk curl)" >&2; exit 1; }
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

gateway() { # binary dir port [extra wasm...]
    if [[ "$(basename "$1")" == floor_proxy* ]]; then
        "$1" "127.0.0.1:$3" "$BACKEND" /service1 >"$2.log" 2>&1 &
        return
    fi
    WEIR_WORKERS=1 weir_gateway "$1" "$2" "$3" "$CHAIN" "${@:4}"
    "$1" run --config "$2/weir.toml" >"$2.log" 2>&1 &
}
PORT_A=$(free_port); gateway "$A" "$tmp/a" "$PORT_A"; pids+=($!); PID_A=$!
# shellcheck disable=SC2086 # a list of files
PORT_B=$(free_port); gateway "$B" "$tmp/b" "$PORT_B" ${EXTRA_B:-}; pids+=($!); PID_B=$!
for port in $PORT_A $PORT_B; do
    for _ in $(seq 100); do curl -fs -m 2 -o /dev/null -H "x-api-key: $KEY" "http://127.0.0.1:$port/service1/hello" && break; sleep 0.1; done
done

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
declare -A reqs=([a]=0 [b]=0) ticks=([a]=0 [b]=0)
turn() { # a|b pid port
    local c0 n
    c0=$(cpu_ticks "$2")
    if [ -n "${RATE:-}" ]; then
        n=$(hey -z "${S}s" -c 32 -q $(((RATE + 31) / 32)) -H "x-api-key: $KEY" "http://127.0.0.1:$3/service1/hello" |
            awk '/^[[:space:]]*\[[0-9]+\][[:space:]]+[0-9]+ responses/ {gsub(/[^0-9 ]/, " "); n += $2} END {print n + 0}')
    else
        n=$(wrk -t1 -c32 -d"${S}s" -H "x-api-key: $KEY" "http://127.0.0.1:$3/service1/hello" | awk '/requests in/ {print $1}')
    fi
    reqs[$1]=$((reqs[$1] + ${n:-0}))
    ticks[$1]=$((ticks[$1] + $(cpu_ticks "$2") - c0))
}
for i in $(seq "$ROUNDS"); do
    if ((i % 2)); then turn a "$PID_A" "$PORT_A"; turn b "$PID_B" "$PORT_B"
    else turn b "$PID_B" "$PORT_B"; turn a "$PID_A" "$PORT_A"; fi
done
tck=$(getconf CLK_TCK)
for k in a b; do
    bin=$A; [ $k = b ] && bin=$B
    awk -v t="${ticks[$k]}" -v n="${reqs[$k]}" -v hz="$tck" -v name="$bin" \
        'BEGIN { printf "%-40s %6.1f cpu_us/req  %9d requests\n", name, (n ? t * 1e6 / hz / n : 0), n }'
done
