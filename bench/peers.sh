#!/usr/bin/env bash
# Weir beside nginx, haproxy and Caddy, on loopback, in one run.
#
#   bench/peers.sh [SECONDS]          (default 10 per peer and connection count)
#
# Every peer proxies GET /service1/hello to one nginx backend (1 worker)
# answering a fixed 64-byte JSON body, with the /service1 prefix stripped:
#   nginx      proxy_pass, 1 worker, keep-alive upstream
#   haproxy    1 thread, http-reuse always
#   caddy      reverse_proxy (skipped if Caddy is not installed)
#   weir-router  the default router plugin only
#   weir-chain   router + auth (API key) + rate-limit (one limit by consumer,
#                high enough never to refuse), the default chain
#   hyper-floor  host/examples/floor_proxy.rs: hyper's server and pooled
#                client on one single-threaded runtime, like Weir's, with no
#                plugins and none of Weir's checks: the floor under Weir
#                (skipped unless built: cargo build --release --example floor_proxy)
#   direct     the backend itself, for reference
# Load: wrk, 1 thread, at each of CONNS (default "32"; e.g. CONNS="1 4 32").
# Printed per peer: requests/s, p50, p99, non-2xx and cpu_us/req, the
# peer's own CPU time (user + system of its process tree, from /proc) per
# request served: on a shared machine the steadier figure.
#
# Needs: nginx haproxy wrk (caddy optional), from Debian; a release build
# of weir (cargo build --release), or WEIR=/path/to/weir. PERF=1 records a
# `perf record -g` profile of each peer run into bench/perf-NAME.data
# (weir-chain into perf-chain.data, weir-router into perf-router.data);
# PERF_ARGS replaces `-g -F 999`. bench/perf-split.py sorts a profile's
# samples into kernel, hyper, tokio, wasm, wasmtime, Weir, allocator...
# ONLY="nginx weir-chain" runs just those peers.
set -u
D=${1:-10}
CONNS=${CONNS:-32}
root=$(cd "$(dirname "$0")/.." && pwd)
WEIR=${WEIR:-$root/target/release/weir}
FLOOR=${FLOOR:-$root/target/release/examples/floor_proxy}
for tool in nginx haproxy wrk; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed (apt-get install nginx haproxy wrk)" >&2; exit 1; }
done
[ -x "$WEIR" ] || { echo "error: $WEIR is missing: cargo build --release" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

BACKEND=127.0.0.1:18101
# shellcheck source=bench/gateway.sh
. "$root/bench/gateway.sh"
nginx_backend "$tmp"; pids+=("$NGINX_BACKEND_PID")

cat >"$tmp/proxy.conf" <<CONF
worker_processes 1; daemon off; pid $tmp/p.pid; error_log $tmp/p.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream be { server $BACKEND; keepalive 64; }
  server { listen 127.0.0.1:18102;
    location /service1/ { proxy_pass http://be/; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
nginx -c "$tmp/proxy.conf" -p "$tmp" & pids+=($!); PID_nginx=$!

cat >"$tmp/haproxy.cfg" <<CONF
global
  nbthread 1
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend f
  bind 127.0.0.1:18103
  http-request set-path %[path,regsub(^/service1/,/)]
  default_backend b
backend b
  http-reuse always
  server s1 $BACKEND
CONF
haproxy -f "$tmp/haproxy.cfg" -db >/dev/null 2>&1 & pids+=($!); PID_haproxy=$!

if command -v caddy >/dev/null; then
    cat >"$tmp/Caddyfile" <<CONF
{
  admin off
  auto_https off
}
http://127.0.0.1:18107 {
  handle_path /service1/* {
    reverse_proxy $BACKEND
  }
}
CONF
    caddy run --config "$tmp/Caddyfile" --adapter caddyfile >/dev/null 2>&1 & pids+=($!); PID_caddy=$!
fi

if [ -x "$FLOOR" ]; then
    "$FLOOR" 127.0.0.1:18108 "$BACKEND" /service1 >/dev/null 2>&1 & pids+=($!); PID_hyper_floor=$!
fi

# Two Weir gateways from the default plugins, reconfigured like the peers
# (bench/gateway.sh).
weir_gateway "$WEIR" "$tmp/weir-router" 18104 0
weir_gateway "$WEIR" "$tmp/weir-chain" 18105 1
env ${WEIR_ENV:-} "$WEIR" run --config "$tmp/weir-router/weir.toml" >"$tmp/weir-router.log" 2>&1 & pids+=($!); PID_weir_router=$!
env ${WEIR_ENV:-} "$WEIR" run --config "$tmp/weir-chain/weir.toml" >"$tmp/weir-chain.log" 2>&1 & pids+=($!); PID_weir_chain=$!

# Wait until every peer answers.
for url in http://$BACKEND/ http://127.0.0.1:18102/service1/hello http://127.0.0.1:18103/service1/hello \
           http://127.0.0.1:18104/service1/hello ${PID_hyper_floor:+http://127.0.0.1:18108/service1/hello}; do
    for _ in $(seq 100); do curl -fs -m 2 -o /dev/null "$url" && break; sleep 0.1; done
done
for _ in $(seq 100); do curl -fs -m 2 -o /dev/null -H "x-api-key: $KEY" http://127.0.0.1:18105/service1/hello && break; sleep 0.1; done
PID_direct=$(cat "$tmp/b.pid" 2>/dev/null)

# CPU ticks (user + system) of a process and its children (nginx's worker).
cpu_ticks() {
    local t=0 p
    for p in $1 $(pgrep -P "$1" 2>/dev/null); do
        t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo $t
}
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
printf '%-12s %5s %10s %9s %9s %7s %11s\n' peer conns req/s p50 p99 non2xx cpu_us/req
run() { # name url conns [header]
    want "$1" || return 0
    local v="PID_${1//-/_}" pid c0 out rps p50 p99 non2xx reqs cpu perf_pid=
    pid=${!v:-}
    c0=$(cpu_ticks "$pid")
    if [ "${PERF:-0}" = 1 ]; then
        perf record ${PERF_ARGS:--g -F 999} -p "$pid" -o "$root/bench/perf-${1#weir-}.data" -- sleep "$D" >/dev/null 2>&1 & perf_pid=$!
    fi
    out=$(wrk -t1 -c"$3" -d"${D}s" --latency ${4:+-H "$4"} "$2" 2>&1)
    [ -n "$perf_pid" ] && wait "$perf_pid"
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    cpu=-
    [ "${reqs:-0}" -gt 0 ] && cpu=$(( ( $(cpu_ticks "$pid") - c0 ) * 1000000 / $(getconf CLK_TCK) / reqs ))
    printf '%-12s %5s %10s %9s %9s %7s %11s\n' "$1" "$3" "${rps:-0}" "${p50:--}" "${p99:--}" "${non2xx:-0}" "$cpu"
}
for c in $CONNS; do
    run direct      "http://$BACKEND/hello" "$c"
    run nginx       http://127.0.0.1:18102/service1/hello "$c"
    run haproxy     http://127.0.0.1:18103/service1/hello "$c"
    command -v caddy >/dev/null && run caddy http://127.0.0.1:18107/service1/hello "$c"
    [ -n "${PID_hyper_floor:-}" ] && run hyper-floor http://127.0.0.1:18108/service1/hello "$c"
    run weir-router http://127.0.0.1:18104/service1/hello "$c"
    run weir-chain  http://127.0.0.1:18105/service1/hello "$c" "x-api-key: $KEY"
done
exit 0
