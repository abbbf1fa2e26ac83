#!/usr/bin/env bash
# What each operator feature of issue 28 costs per request, under load:
#
#   bench/operators.sh [ROUNDS] [SECONDS]
#
# Gateways (target/release/weir, one worker thread each, the router alone
# plus one feature) run at once in front of one nginx backend that answers
# /hello with 64 bytes of JSON and /big with a 10 KB JSON document:
#   router           nothing more, /hello (the baseline of the plugins)
#   client-ip        trusted_proxies = ["127.0.0.1"], each request with a
#                    3-hop X-Forwarded-For, resolved by the host
#   ip-filter        the ip-filter plugin, 64 deny blocks, none matching
#   cors             the cors plugin, an allowed Origin on every request
#   forward-auth     the forward-auth plugin, a subrequest to the backend
#                    on every request (its 2xx allows)
#   forward-auth-kv  the same with the decision cache in kv (a hit)
#   big              the router alone on /big, no compression (the
#                    baseline of the compression rows)
#   gzip-N, br-N, zstd-N   /big compressed at level N (Accept-Encoding
#                    naming that coding only)
# wrk (1 thread, 16 connections) drives them in turns of SECONDS (default
# 1), ROUNDS times (default 5), the order rotating every round; each
# gateway's requests and CPU time (user + system, from /proc) are summed
# over its turns, so the machine's drift falls on all alike.
# Printed: CPU microseconds per request, what the feature adds over its
# baseline, requests served, and bytes per /big response on the wire.
#
# Needs: cargo build --release (builds the plugins too), nginx, wrk, curl.
set -u
ROUNDS=${1:-5}
S=${2:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
WEIR=${WEIR:-$root/target/release/weir}
P=$root/target/wasm/wasm32-wasip2/plugin
for tool in nginx wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed (apt-get install nginx wrk curl python3)" >&2; exit 1; }
done
[ -x "$WEIR" ] || { echo "error: $WEIR is missing: cargo build --release" >&2; exit 1; }
for p in ip_filter cors forward_auth; do
    [ -f "$P/weir_plugin_$p.wasm" ] || { echo "error: $P/weir_plugin_$p.wasm is missing: cargo build --release" >&2; exit 1; }
done
tmp=$(mktemp -d)
chmod 755 "$tmp"   # nginx workers run as nobody when started as root
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

# The backend: /hello (64 bytes), /big (10 KB of JSON), /verify (204).
python3 - "$tmp/big.json" <<'PY'
import json, sys
items = [{"id": i, "name": f"item {i}", "price": i * 1.5, "tags": ["a", "b"], "in_stock": i % 3 == 0} for i in range(150)]
open(sys.argv[1], "w").write(json.dumps({"items": items}))
PY
cat >"$tmp/backend.conf" <<CONF
worker_processes 1; daemon off; pid $tmp/b.pid; error_log $tmp/b.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen $BACKEND;
    location = /big { default_type application/json; alias $tmp/big.json; }
    location = /verify { return 204; }
    location / { default_type application/json; return 200 '{"ok":true,"service":"one","pad":"xxxxxxxxxxxxxxxxxxxx"}'; } } }
CONF
nginx -c "$tmp/backend.conf" -p "$tmp" &
pids+=($!)

KINDS=(router client-ip ip-filter cors forward-auth forward-auth-kv big
       gzip-1 gzip-5 gzip-9 br-0 br-4 br-11 zstd-1 zstd-3 zstd-19)
declare -A PORT PID PATHQ HEADER BASE
deny=$(python3 -c 'print(", ".join(f"\"10.{i}.0.0/16\"" for i in range(64)))')
for kind in "${KINDS[@]}"; do
    PORT[$kind]=$(free_port)
    dir=$tmp/$kind
    WEIR_WORKERS=1 weir_gateway "$WEIR" "$dir" "${PORT[$kind]}" 0
    PATHQ[$kind]=/service1/hello; HEADER[$kind]="x-bench: 1"; BASE[$kind]=router
    case $kind in
    client-ip)
        sed -i '1i trusted_proxies = ["127.0.0.1"]' "$dir/weir.toml"
        HEADER[$kind]="X-Forwarded-For: 203.0.113.9, 198.51.100.7, 127.0.0.1" ;;
    ip-filter)
        cp "$P/weir_plugin_ip_filter.wasm" "$dir/plugins/52-ip-filter.wasm"
        echo "{\"default\": {\"deny\": [$deny]}}" >"$dir/plugins/52-ip-filter.json" ;;
    cors)
        cp "$P/weir_plugin_cors.wasm" "$dir/plugins/55-cors.wasm"
        echo '{"default": {"origins": ["https://app.example.com"], "expose_headers": ["x-id"]}}' >"$dir/plugins/55-cors.json"
        HEADER[$kind]="Origin: https://app.example.com" ;;
    forward-auth|forward-auth-kv)
        cp "$P/weir_plugin_forward_auth.wasm" "$dir/plugins/62-forward-auth.wasm"
        ttl=0; [ "$kind" = forward-auth-kv ] && ttl=60000
        echo "{\"upstream\": \"auth\", \"path\": \"/verify\", \"request_headers\": [\"authorization\"], \"cache_ttl_ms\": $ttl}" >"$dir/plugins/62-forward-auth.json"
        printf '[upstreams.auth]\ntargets = ["http://%s"]\n' "$BACKEND" >>"$dir/weir.toml"
        HEADER[$kind]="Authorization: Bearer bench" ;;
    big)
        PATHQ[$kind]=/service1/big ;;
    gzip-*|br-*|zstd-*)
        coding=${kind%-*}; level=${kind##*-}
        printf '[compression]\nenabled = true\nalgorithms = ["%s"]\n%s_level = %s\n' \
            "$coding" "$([ "$coding" = br ] && echo brotli || echo "$coding")" "$level" >>"$dir/weir.toml"
        PATHQ[$kind]=/service1/big; BASE[$kind]=big
        HEADER[$kind]="Accept-Encoding: $coding" ;;
    esac
    "$WEIR" run --config "$dir/weir.toml" >"$tmp/$kind.log" 2>&1 &
    pids+=($!); PID[$kind]=$!
done
declare -A WIRE
for kind in "${KINDS[@]}"; do
    url="http://127.0.0.1:${PORT[$kind]}${PATHQ[$kind]}"
    for _ in $(seq 100); do curl -fs -m 2 -o /dev/null "$url" && break; sleep 0.1; done
    WIRE[$kind]=$(curl -fs -m 2 -H "${HEADER[$kind]}" -o /dev/null -w '%{size_download}' "$url") \
        || { echo "error: the $kind gateway does not answer:" >&2; cat "$tmp/$kind.log" >&2; exit 1; }
done

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
declare -A reqs ticks
for kind in "${KINDS[@]}"; do reqs[$kind]=0; ticks[$kind]=0; done
turn() { # kind
    local c0 n
    c0=$(cpu_ticks "${PID[$1]}")
    n=$(wrk -t1 -c16 -d"${S}s" -H "${HEADER[$1]}" "http://127.0.0.1:${PORT[$1]}${PATHQ[$1]}" | awk '/requests in/ {print $1}')
    reqs[$1]=$((reqs[$1] + ${n:-0}))
    ticks[$1]=$((ticks[$1] + $(cpu_ticks "${PID[$1]}") - c0))
}
n=${#KINDS[@]}
for i in $(seq "$ROUNDS"); do
    for j in $(seq 0 $((n - 1))); do turn "${KINDS[$(( (i + j) % n ))]}"; done
done
tck=$(getconf CLK_TCK)
us() { awk -v t="${ticks[$1]}" -v n="${reqs[$1]}" -v hz="$tck" 'BEGIN { print (n ? t * 1e6 / hz / n : 0) }'; }
for kind in "${KINDS[@]}"; do
    awk -v us="$(us "$kind")" -v base="$(us "${BASE[$kind]}")" -v n="${reqs[$kind]}" -v name="$kind" \
        -v b="${BASE[$kind]}" -v wire="${WIRE[$kind]}" \
        'BEGIN { printf "%-16s %7.1f cpu_us/req  %+7.1f over %-6s %9d requests  %6d bytes\n", name, us, us - base, b, n, wire }'
done
