#!/usr/bin/env bash
# What metrics and tracing cost: four Weir gateways from one build, the same
# default chain (router + auth (API key) + rate-limit, like weir-chain in
# bench/peers.sh), differing only in telemetry:
#   off          [metrics] enabled = false, no [tracing]
#   metrics      [metrics] enabled = true (the default), no [tracing]
#   trace-0%     metrics, and [tracing] at sample_ratio 0.0
#   trace-1%     metrics, and [tracing] at sample_ratio 0.01
# Traces go over OTLP/HTTP to an nginx on loopback that answers 200 and
# discards them. The gateways take turns, ROUNDS times (default 8), each
# under wrk (1 thread, 32 connections, SECONDS each, default 5), in an order
# that rotates every round, so a drift in the machine's speed hits them
# alike.
#
#   bench/observability.sh [SECONDS] [ROUNDS]
#
# Prints, per round and in total per gateway: requests/s and cpu_us/req
# (the gateway's own user+system CPU per request served, from /proc).
# Needs: nginx wrk curl, and target/release/weir (cargo build --release).
set -u
D=${1:-5}
ROUNDS=${2:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
WEIR=${WEIR:-$root/target/release/weir}
for tool in nginx wrk curl; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 1; }
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

BACKEND=127.0.0.1:18401
SINK=127.0.0.1:18402
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $tmp/n.pid; error_log $tmp/n.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; client_max_body_size 64m;
  server { listen $BACKEND; location / { default_type application/json; return 200 '{"ok":true,"service":"one","pad":"xxxxxxxxxxxxxxxxxxxx"}'; } }
  server { listen $SINK; location / { return 200; } } }
CONF
# Every gateway runs on CPU 1, and nginx and wrk on CPU 0: left to the
# scheduler, each long-lived gateway process keeps whatever placement it
# first got (beside wrk or not), which biased one gateway against another
# by more than the effect measured.
PIN_GW="taskset -c 1"
PIN_LOAD="taskset -c 0"
command -v taskset >/dev/null || { PIN_GW=""; PIN_LOAD=""; }
$PIN_LOAD nginx -c "$tmp/nginx.conf" -p "$tmp" & pids+=($!)

KEY=bench-key
KEY_SHA=$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)
gateway() { # name port telemetry-toml
    local dir=$tmp/$1
    "$WEIR" init "$dir" >/dev/null
    rm -f "$dir"/plugins/{65-validate,75-cache,80-aggregate}.*
    cat >"$dir/weir.toml" <<TOML
listen = "127.0.0.1:$2"
plugins_dir = "plugins"
cache_dir = ".weir-cache"
[log]
access_log = false
level = "warn"
[admin]
enabled = false
[reload]
watch = false
[runtime]
worker_threads = ${WEIR_WORKERS:-1}
[upstreams.service1]
targets = ["http://$BACKEND"]
$3
TOML
    cat >"$dir/plugins/50-router.json" <<'JSON'
{"routes": [{"name": "service1", "match": {"path_prefix": "/service1"}, "upstream": "service1", "strip_prefix": true}]}
JSON
    cat >"$dir/plugins/60-auth.json" <<JSON
{"api_key": {"header": "x-api-key", "consumers": [{"id": "bench", "sha256": "$KEY_SHA"}]},
 "default": {"methods": ["api_key"]}}
JSON
    cat >"$dir/plugins/70-rate-limit.json" <<'JSON'
{"limits": [{"name": "per-consumer", "key": "consumer", "rate": 100000000, "per": "1s"}]}
JSON
    $PIN_GW "$WEIR" run --config "$dir/weir.toml" >"$dir.log" 2>&1 & pids+=($!)
    eval "PID_${1//[-%]/_}=$!"
    for _ in $(seq 100); do
        curl -fs -m 2 -o /dev/null -H "x-api-key: $KEY" "http://127.0.0.1:$2/service1/hello" && break
        sleep 0.1
    done
}
tracing_at() { printf '[tracing]\notlp_endpoint = "http://%s"\nsample_ratio = %s\n' "$SINK" "$1"; }
gateway off      18411 "$(printf '[metrics]\nenabled = false')"
gateway metrics  18412 ""
gateway trace-0% 18413 "$(tracing_at 0.0)"
gateway trace-1% 18414 "$(tracing_at 0.01)"

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
declare -A total_reqs total_ticks
printf '%-6s %-9s %10s %11s\n' round gateway req/s cpu_us/req
names=(off metrics trace-0% trace-1%)
for round in $(seq "$ROUNDS"); do
    # Each round starts one later in the list, so no gateway always runs
    # first (or right after the most expensive one).
    order=("${names[@]:$(( (round - 1) % 4 ))}" "${names[@]:0:$(( (round - 1) % 4 ))}")
    for name in "${order[@]}"; do
        case $name in off) port=18411;; metrics) port=18412;; trace-0%) port=18413;; trace-1%) port=18414;; esac
        v="PID_${name//[-%]/_}"; pid=${!v}
        c0=$(cpu_ticks "$pid")
        out=$($PIN_LOAD wrk -t1 -c32 -d"${D}s" -H "x-api-key: $KEY" "http://127.0.0.1:$port/service1/hello" 2>&1)
        ticks=$(( $(cpu_ticks "$pid") - c0 ))
        reqs=$(awk '/requests in/ {print $1}' <<<"$out")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
        [ -n "$non2xx" ] && echo "warning: $name answered $non2xx non-2xx" >&2
        total_reqs[$name]=$(( ${total_reqs[$name]:-0} + reqs ))
        total_ticks[$name]=$(( ${total_ticks[$name]:-0} + ticks ))
        printf '%-6s %-9s %10s %11s\n' "$round" "$name" "$rps" $(( ticks * 1000000 / $(getconf CLK_TCK) / (reqs > 0 ? reqs : 1) ))
    done
done
echo
printf '%-9s %11s %9s\n' gateway cpu_us/req vs-off
base=$(( total_ticks[off] * 1000000000 / $(getconf CLK_TCK) / total_reqs[off] ))
for name in off metrics trace-0% trace-1%; do
    ns=$(( total_ticks[$name] * 1000000000 / $(getconf CLK_TCK) / total_reqs[$name] ))
    printf '%-9s %11s %+8s%%\n' "$name" "$(awk -v n="$ns" 'BEGIN {printf "%.1f", n/1000}')" \
        "$(awk -v n="$ns" -v b="$base" 'BEGIN {printf "%.1f", (n-b)*100/b}')"
done
exit 0
