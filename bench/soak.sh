#!/usr/bin/env bash
# The soak benchmark (not part of CI): the `weir` binary with the default
# chain (router, auth, rate-limit with its state in a real Redis) and a
# plugin that traps on 1% of requests, under a steady offered load, with a
# reload every 10 s, one Redis crash and restart half way, and 4 WebSocket
# and 4 gRPC streams open throughout (host/examples/soak/).
#
#   bench/soak.sh [MINUTES=30] [RATE=2000]
#
# Every 10 s it prints the gateway's RSS and open descriptors, the good
# requests' p50/p99/worst latency in that window and the running counts;
# then a summary. The whole output is kept in bench/soak-DATE.log. It
# exits non-zero if any good request, stream message or reload failed
# (rate limits fail open while Redis is down, so the crash may cost none).
#
# Needs: redis-server (Debian); builds the release binary and the example.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
minutes=${1:-30}
rate=${2:-2000}
command -v redis-server >/dev/null || { echo "error: redis-server is needed (apt-get install redis-server)" >&2; exit 1; }
cd "$root"
cargo build --release --bin weir --example soak
log="bench/soak-$(date -u +%Y%m%d-%H%M).log"
echo "writing $log"
target/release/examples/soak target/release/weir "$minutes" "$rate" | tee "$log"
