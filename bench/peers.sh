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
#   weir-six     weir-chain plus validate, cache and aggregate with the configs
#                `weir init` writes: the six plugins a new user's chain runs.
#                Their configs concern other routes, which they declare
#                (contract 0.5.0), so the gateway does not call them for
#                /service1
#   weir-six-scoped  weir-six with the operator also scoping those three to
#                the routes their configs name (`[plugins.NAME] routes`):
#                before 0.5.0, the only way not to call them
#   hyper-floor  host/examples/floor_proxy.rs: hyper's server and pooled
#                client on one single-threaded runtime, like Weir's, with no
#                plugins and none of Weir's checks: the floor under Weir
#                (skipped unless built: cargo build --release --example floor_proxy)
#   direct     the backend itself, for reference
# Load: each of LOADS (default "sat"), at each of CONNS (default "32"):
#   sat        closed loop, saturated: wrk, 1 thread, CONNS connections
#   N          open loop at a fixed offered rate of N req/s: Debian's hey with
#              CONNS workers at ceil(N/CONNS) req/s each (`-q`), the way
#              operators run gateways (e.g. LOADS="sat 5000 15000")
# ROUNDS=R (default 1) repeats every load R times, the peers in alternating
# order (forwards, then backwards), so drift on a shared machine falls on
# all of them alike; with R > 1 a summary follows: per load and peer the
# median cpu_us/req, its range, and the median's ratio to nginx's median.
# Single open-loop rounds move by +-30% here: use ROUNDS=3 or more.
# Printed per run: requests/s, p50, p99, non-2xx and cpu_us/req, the
# peer's own CPU time (user + system of its process tree, from /proc) per
# request served: on a shared machine the steadier figure.
#
# Needs: nginx haproxy wrk hey (caddy optional), from Debian; a release build
# of weir (cargo build --release), or WEIR=/path/to/weir. PERF=1 records a
# `perf record -g` profile of each peer run into bench/perf-NAME[RATE].data
# (weir-chain saturated into perf-chain.data, at 5000 req/s into
# perf-chain5000.data); PERF_ARGS replaces `-g -F 999`. bench/perf-split.py
# sorts a profile's samples into kernel, hyper, tokio, wasm, wasmtime, Weir,
# allocator... PERF=stat counts instead (`perf stat` on the peer's
# threads): system calls, context switches and page faults per request.
# ONLY="nginx weir-chain" runs just those peers.
set -u
D=${1:-10}
CONNS=${CONNS:-32}
root=$(cd "$(dirname "$0")/.." && pwd)
WEIR=${WEIR:-$root/target/release/weir}
FLOOR=${FLOOR:-$root/target/release/examples/floor_proxy}
LOADS=${LOADS:-sat}
ROUNDS=${ROUNDS:-1}
for tool in nginx haproxy wrk hey; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed (apt-get install nginx haproxy wrk hey)" >&2; exit 1; }
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
weir_gateway "$WEIR" "$tmp/weir-six" 18109 2
weir_gateway "$WEIR" "$tmp/weir-six-scoped" 18110 3
env ${WEIR_ENV:-} "$WEIR" run --config "$tmp/weir-router/weir.toml" >"$tmp/weir-router.log" 2>&1 & pids+=($!); PID_weir_router=$!
env ${WEIR_ENV:-} "$WEIR" run --config "$tmp/weir-chain/weir.toml" >"$tmp/weir-chain.log" 2>&1 & pids+=($!); PID_weir_chain=$!
env ${WEIR_ENV:-} "$WEIR" run --config "$tmp/weir-six/weir.toml" >"$tmp/weir-six.log" 2>&1 & pids+=($!); PID_weir_six=$!
env ${WEIR_ENV:-} "$WEIR" run --config "$tmp/weir-six-scoped/weir.toml" >"$tmp/weir-six-scoped.log" 2>&1 & pids+=($!); PID_weir_six_scoped=$!

# Wait until every peer answers.
for url in http://$BACKEND/ http://127.0.0.1:18102/service1/hello http://127.0.0.1:18103/service1/hello \
           http://127.0.0.1:18104/service1/hello ${PID_hyper_floor:+http://127.0.0.1:18108/service1/hello}; do
    for _ in $(seq 100); do curl -fs -m 2 -o /dev/null "$url" && break; sleep 0.1; done
done
for port in 18105 18109 18110; do
    for _ in $(seq 100); do curl -fs -m 2 -o /dev/null -H "x-api-key: $KEY" http://127.0.0.1:$port/service1/hello && break; sleep 0.1; done
done
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
results=$tmp/results
printf '%-12s %5s %6s %10s %9s %9s %7s %11s\n' peer conns load req/s p50 p99 non2xx cpu_us/req
run() { # name url conns load [header]
    want "$1" || return 0
    local v="PID_${1//-/_}" pid c0 out rps p50 p99 non2xx reqs cpu perf_pid=
    pid=${!v:-}
    c0=$(cpu_ticks "$pid")
    if [ "${PERF:-0}" = stat ]; then
        perf stat -x, -e raw_syscalls:sys_enter,context-switches,page-faults -p "$({ echo "$pid"; pgrep -P "$pid"; } | paste -sd,)" -o "$tmp/stat" -- sleep "$D" >/dev/null 2>&1 & perf_pid=$!
    elif [ "${PERF:-0}" = 1 ]; then
        perf record ${PERF_ARGS:--g -F 999} -p "$pid" -o "$root/bench/perf-${1#weir-}${4/#sat/}.data" -- sleep "$D" >/dev/null 2>&1 & perf_pid=$!
    fi
    if [ "$4" = sat ]; then
        out=$(wrk -t1 -c"$3" -d"${D}s" --latency ${5:+-H "$5"} "$2" 2>&1)
        p50=$(awk '$1=="50%" {print $2}' <<<"$out")
        p99=$(awk '$1=="99%" {print $2}' <<<"$out")
        non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
        reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    else
        # Open loop: hey's -q is per worker.
        out=$(hey -z "${D}s" -c "$3" -q $(( ($4 + $3 - 1) / $3 )) ${5:+-H "$5"} "$2" 2>&1)
        p50=$(awk '$1=="50%" && $2=="in" {printf "%.2fms", $3 * 1000}' <<<"$out")
        p99=$(awk '$1=="99%" && $2=="in" {printf "%.2fms", $3 * 1000}' <<<"$out")
        reqs=$(awk '/^[[:space:]]*\[[0-9]+\][[:space:]]+[0-9]+ responses/ {gsub(/[^0-9 ]/, " "); n += $2} END {print n + 0}' <<<"$out")
        non2xx=$(awk '/^[[:space:]]*\[[0-9]+\][[:space:]]+[0-9]+ responses/ && $1 !~ /^\[2/ {gsub(/[^0-9 ]/, " "); n += $2} END {print n + 0}' <<<"$out")
    fi
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    [ -n "$perf_pid" ] && wait "$perf_pid"
    cpu=-
    if [ "${reqs:-0}" -gt 0 ]; then
        cpu=$(( ( $(cpu_ticks "$pid") - c0 ) * 1000000 / $(getconf CLK_TCK) / reqs ))
        echo "$4 $1 $cpu" >>"$results"
        if [ "${PERF:-0}" = stat ]; then
            cpu="$cpu $(awk -F, -v n="$reqs" '$3 ~ /sys_enter/ {s=$1} $3=="context-switches" {c=$1} $3=="page-faults" {f=$1}
                END {printf "syscalls/req=%.2f cs/req=%.3f faults/req=%.3f", s/n, c/n, f/n}' "$tmp/stat")"
        fi
    fi
    printf '%-12s %5s %6s %10s %9s %9s %7s %11s\n' "$1" "$3" "$4" "${rps:-0}" "${p50:--}" "${p99:--}" "${non2xx:-0}" "$cpu"
}
peers=(direct nginx haproxy)
command -v caddy >/dev/null && peers+=(caddy)
[ -n "${PID_hyper_floor:-}" ] && peers+=(hyper-floor)
peers+=(weir-router weir-chain weir-six weir-six-scoped)
declare -A url=(
    [direct]="http://$BACKEND/hello"
    [nginx]=http://127.0.0.1:18102/service1/hello
    [haproxy]=http://127.0.0.1:18103/service1/hello
    [caddy]=http://127.0.0.1:18107/service1/hello
    [hyper-floor]=http://127.0.0.1:18108/service1/hello
    [weir-router]=http://127.0.0.1:18104/service1/hello
    [weir-chain]=http://127.0.0.1:18105/service1/hello
    [weir-six]=http://127.0.0.1:18109/service1/hello
    [weir-six-scoped]=http://127.0.0.1:18110/service1/hello
)
for round in $(seq "$ROUNDS"); do
    order=("${peers[@]}")
    if [ $((round % 2)) = 0 ]; then
        order=(); for ((i = ${#peers[@]} - 1; i >= 0; i--)); do order+=("${peers[$i]}"); done
    fi
    for c in $CONNS; do
        for load in $LOADS; do
            for peer in "${order[@]}"; do
                header=
                [[ $peer == weir-chain || $peer == weir-six* ]] && header="x-api-key: $KEY"
                run "$peer" "${url[$peer]}" "$c" "$load" "$header"
            done
        done
    done
done
if [ "$ROUNDS" -gt 1 ] && [ -s "$results" ]; then
    echo
    echo "median of $ROUNDS rounds (cpu_us/req; x nginx = the peer's median over nginx's median)"
    printf '%-12s %6s %9s %11s %8s\n' peer load median range "x nginx"
    for load in $LOADS; do
        base=$(awk -v l="$load" '$1==l && $2=="nginx" {print $3}' "$results" | sort -n | awk '{a[NR]=$1} END {if (NR) print (NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
        for peer in "${peers[@]}"; do
            awk -v l="$load" -v p="$peer" '$1==l && $2==p {print $3}' "$results" | sort -n |
                awk -v p="$peer" -v l="$load" -v b="${base:-0}" '{a[NR]=$1} END {
                    if (!NR) exit
                    m = NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2
                    printf "%-12s %6s %9s %11s %8s\n", p, l, m, a[1] "-" a[NR], (b > 0 ? sprintf("%.2f", m / b) : "-")
                }'
        done
    done
fi
exit 0
