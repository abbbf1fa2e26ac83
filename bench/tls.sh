#!/usr/bin/env bash
# TLS termination, Weir beside nginx configured the same way, on loopback,
# in one run: the same ECDSA P-256 certificate, TLS 1.2/1.3, ALPN h2 and
# http/1.1, proxying GET /service1/hello to one nginx backend (64-byte JSON).
#
#   bench/tls.sh [SECONDS]      (default 10)
#
# Prints per peer and load:
#   handshakes  wrk with `Connection: close`: a new TLS connection per request
#   h1 keep-alive  wrk, 32 connections
#   h2          h2load, 32 connections x 10 streams
# with requests/s and cpu_us/req (the peer's user+system CPU per request).
# Needs: nginx wrk h2load (nghttp2-client) openssl, and target/release/weir.
set -u
D=${1:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
WEIR=${WEIR:-$root/target/release/weir}
for tool in nginx wrk h2load openssl curl; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 1; }
done
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; sleep 0.5; for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

BACKEND=127.0.0.1:18301
# shellcheck source=bench/gateway.sh
. "$root/bench/gateway.sh"
nginx_backend "$tmp"; pids+=("$NGINX_BACKEND_PID")

cat >"$tmp/proxy.conf" <<CONF
worker_processes 1; daemon off; pid $tmp/p.pid; error_log $tmp/p.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream be { server $BACKEND; keepalive 64; }
  server { listen 127.0.0.1:18302 ssl http2;
    ssl_certificate $tmp/cert.pem; ssl_certificate_key $tmp/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets off;
    location /service1/ { proxy_pass http://be/; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
nginx -c "$tmp/proxy.conf" -p "$tmp" 2>"$tmp/nginx.err" & pids+=($!); PID_nginx=$!

mkdir -p "$tmp/weir"
"$WEIR" init "$tmp/weir" >/dev/null
cat >"$tmp/weir/weir.toml" <<TOML
listen = "127.0.0.1:18303"
[log]
access_log = false
level = "warn"
[admin]
enabled = false
[reload]
watch = false
[runtime]
worker_threads = ${WEIR_WORKERS:-1}
[tls]
listen = "127.0.0.1:18304"
certificates = [{cert = "$tmp/cert.pem", key = "$tmp/key.pem"}]
[upstreams.service1]
targets = ["http://$BACKEND"]
TOML
echo '{"routes": [{"name": "service1", "match": {"path_prefix": "/service1"}, "upstream": "service1", "strip_prefix": true}]}' >"$tmp/weir/plugins/50-router.json"
rm -f "$tmp"/weir/plugins/{60-auth,65-validate,70-rate-limit,75-cache,80-aggregate}.*
"$WEIR" run --config "$tmp/weir/weir.toml" >"$tmp/weir.log" 2>&1 & pids+=($!); PID_weir=$!

for url in https://127.0.0.1:18302/service1/hello https://127.0.0.1:18304/service1/hello; do
    for _ in $(seq 100); do curl -fsk -m 2 -o /dev/null "$url" && break; sleep 0.1; done
done
cpu_ticks() { local t=0 p; for p in $1 $(pgrep -P "$1" 2>/dev/null); do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
per_req() { echo $(( ( $(cpu_ticks "$1") - $2 ) * 1000000 / $(getconf CLK_TCK) / ($3 > 0 ? $3 : 1) )); }
printf '%-7s %-14s %12s %11s\n' peer load req/s cpu_us/req
for peer in nginx weir; do
    v="PID_$peer"; pid=${!v}
    port=18302; [ "$peer" = weir ] && port=18304
    url="https://127.0.0.1:$port/service1/hello"
    c0=$(cpu_ticks "$pid")
    out=$(wrk -t1 -c16 -d"${D}s" -H 'Connection: close' "$url" 2>&1)
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    printf '%-7s %-14s %12s %11s\n' "$peer" handshakes "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(per_req "$pid" "$c0" "${reqs:-0}")"
    c0=$(cpu_ticks "$pid")
    out=$(wrk -t1 -c32 -d"${D}s" "$url" 2>&1)
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    printf '%-7s %-14s %12s %11s\n' "$peer" "h1 keep-alive" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(per_req "$pid" "$c0" "${reqs:-0}")"
    c0=$(cpu_ticks "$pid")
    out=$(h2load -D "$D" -c 32 -m 10 "$url" 2>&1)
    reqs=$(awk '/^requests:/ {print $8}' <<<"$out")
    rps=$(awk '/^finished in/ {print $4}' <<<"$out")
    printf '%-7s %-14s %12s %11s\n' "$peer" h2 "$rps" "$(per_req "$pid" "$c0" "${reqs:-0}")"
done
