# Sourced by bench/peers.sh, bench/ab.sh and bench/tls.sh: the nginx backend
# every peer proxies to, and a Weir gateway directory from
# the default plugins (`weir init`), set up like the other peers: one worker
# thread (nginx runs 1 worker, haproxy 1 thread; WEIR_WORKERS=0 gives
# Weir's default, one per core), no access log (nginx's is off too), the
# admin API off, one route `/service1` to the upstream at $BACKEND.
#
#   weir_gateway WEIR DIR PORT CHAIN [EXTRA.wasm ...]
#
# CHAIN=1 keeps auth (API key $KEY, stored as its SHA-256) and rate-limit
# (one limit by consumer, too high to refuse): the default chain. CHAIN=2
# also keeps validate, cache and aggregate with the configs `weir init`
# writes, which concern other routes (and declare them, contract 0.5.0,
# so the gateway does not call them for /service1): the six plugins a new
# user's chain runs (ip-filter, cors and forward-auth, off until
# configured, are removed). CHAIN=3 is CHAIN=2 with those three also
# scoped by the operator to the routes their configs name (`[plugins.NAME]
# routes`, docs/plugins.md), the only way not to call them before 0.5.0.
# CHAIN=0 keeps the router alone. Extra plugins are copied in after them as
# 91-NAME.wasm, 92-..., with the .json beside each when there is one.
# Needs BACKEND (host:port) set.

# nginx_backend DIR: nginx (1 worker) on $BACKEND answering every request
# with a fixed 64-byte JSON body; config, pid file (b.pid) and log in DIR.
# Its process id is left in NGINX_BACKEND_PID.
nginx_backend() {
    cat >"$1/backend.conf" <<CONF
worker_processes 1; daemon off; pid $1/b.pid; error_log $1/b.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen $BACKEND; location / { default_type application/json; return 200 '{"ok":true,"service":"one","pad":"xxxxxxxxxxxxxxxxxxxx"}'; } } }
CONF
    nginx -c "$1/backend.conf" -p "$1" &
    NGINX_BACKEND_PID=$!
}

KEY=bench-key
KEY_SHA=$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)

weir_gateway() {
    local weir=$1 dir=$2 port=$3 chain=$4
    "$weir" init "$dir" >/dev/null
    cat >"$dir/weir.toml" <<TOML
listen = "127.0.0.1:$port"
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
TOML
    cat >"$dir/plugins/50-router.json" <<'JSON'
{"routes": [{"name": "service1", "match": {"path_prefix": "/service1"}, "upstream": "service1", "strip_prefix": true}]}
JSON
    rm -f "$dir"/plugins/{52-ip-filter,55-cors,62-forward-auth}.*
    case $chain in
        2) ;;
        3) cat >>"$dir/weir.toml" <<'TOML'
[plugins.65-validate]
routes = ["orders"]
[plugins.75-cache]
routes = ["user"]
[plugins.80-aggregate]
routes = ["user-summary"]
TOML
           ;;
        *) rm -f "$dir"/plugins/{65-validate,75-cache,80-aggregate}.* ;;
    esac
    if [ "$chain" != 0 ]; then
        cat >"$dir/plugins/60-auth.json" <<JSON
{"api_key": {"header": "x-api-key", "consumers": [{"id": "bench", "sha256": "$KEY_SHA"}]},
 "default": {"methods": ["api_key"]}}
JSON
        cat >"$dir/plugins/70-rate-limit.json" <<'JSON'
{"limits": [{"name": "per-consumer", "key": "consumer", "rate": 100000000, "per": "1s"}]}
JSON
    else
        rm -f "$dir"/plugins/60-auth.* "$dir"/plugins/70-rate-limit.*
    fi
    local i=0 extra
    for extra in "${@:5}"; do
        i=$((i + 1))
        cp "$extra" "$dir/plugins/9$i-$(basename "$extra")"
        if [ -f "${extra%.wasm}.json" ]; then
            cp "${extra%.wasm}.json" "$dir/plugins/9$i-$(basename "${extra%.wasm}").json"
        fi
    done
}
