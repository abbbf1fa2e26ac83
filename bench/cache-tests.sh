#!/usr/bin/env bash
# RFC 9111 conformance of the `cache` plugin, measured with the HTTP cache
# test suite of cache-tests.fyi (npm `http-cache-tests`), the way it tests
# reverse proxies: its origin server behind a Weir gateway running the
# router and the cache with the default rule. Prints Weir's failures next to
# the suite's recorded results for nginx, Squid, Apache httpd, Traffic
# Server and Varnish.
#
#   bench/cache-tests.sh                 # all tests
#   bench/cache-tests.sh -v              # ... and list Weir's failures
#   CACHE_RULE='{"default_ttl_s": 60}' bench/cache-tests.sh   # another rule
#   CACHE_TEST_ID=age-parse-dup-0 bench/cache-tests.sh        # one test, verbose
#   CACHE_TESTS_DIR=path/to/cache-tests bench/cache-tests.sh  # a git checkout
#                                        # of http-tests/cache-tests (newer
#                                        # than the npm release)
#
# Needs node and npm; loopback only; about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
verbose=""
[[ "${1:-}" == "-v" ]] && verbose=1

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

suite="${CACHE_TESTS_DIR:-target/cache-tests/node_modules/http-cache-tests}"
if [[ -z "${CACHE_TESTS_DIR:-}" && ! -d "$suite" ]]; then
    mkdir -p target/cache-tests
    (cd target/cache-tests && npm i --no-audit --no-fund --silent http-cache-tests@0.4.5)
fi

cargo build -q -p weir
# The npm release keeps its server and client at the top; the git tree
# keeps them under test-engine/.
engine="."
if [[ -d "$suite/test-engine" ]]; then
    engine="test-engine"
    [[ -d "$suite/node_modules" ]] || (cd "$suite" && npm i --no-audit --no-fund --silent)
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
origin_port="$(free_port)"
gateway_port="$(free_port)"

target/debug/weir init "$work/gw" >/dev/null
mkdir -p "$work/run/plugins"
cp "$work/gw/plugins/50-router.wasm" "$work/gw/plugins/75-cache.wasm" "$work/run/plugins/"
echo '{"routes": [{"name": "all", "match": {"path_prefix": "/"}, "upstream": "origin"}]}' \
    > "$work/run/plugins/50-router.json"
echo "{\"default\": ${CACHE_RULE:-{\}}}" > "$work/run/plugins/75-cache.json"
cat > "$work/run/weir.toml" <<TOML
listen = "127.0.0.1:${gateway_port}"
plugins_dir = "plugins"
cache_dir = ".weir-cache"
[admin]
listen = "127.0.0.1:0"
[upstreams.origin]
targets = ["http://127.0.0.1:${origin_port}"]
TOML

(cd "$suite" && npm_config_protocol=http npm_config_port="$origin_port" \
    npm_config_pidfile="$work/origin.pid" node $engine/server/server.mjs >"$work/origin.log" 2>&1) &
pids+=($!)
target/debug/weir run --config "$work/run/weir.toml" >"$work/weir.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:${gateway_port}/" && break
    sleep 0.1
done

if [[ -n "${CACHE_TEST_ID:-}" ]]; then
    # One test, with the suite's own account of each request.
    (cd "$suite" && npm_config_id="$CACHE_TEST_ID" npm_config_base="http://127.0.0.1:${gateway_port}" \
        node --no-warnings $engine/cli.mjs)
    exit 0
fi

mkdir -p target/cache-tests
results="target/cache-tests/weir.json"
(cd "$suite" && npm_config_id="" npm_package_config_id="" npm_config_base="http://127.0.0.1:${gateway_port}" \
    node --no-warnings $engine/cli.mjs) > "$results"

cp bench/cache-tests-score.mjs "$suite/weir-score.mjs"
(cd "$suite" && VERBOSE="$verbose" node weir-score.mjs \
    results/nginx.json results/squid.json results/apache.json \
    results/trafficserver.json results/varnish.json \
    $(ls results/caddy.json results/haproxy.json 2>/dev/null) \
    "$OLDPWD/$results")
