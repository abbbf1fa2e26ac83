#!/bin/sh
# Lays the gateway out as the container image ships it, under ROOT: `/` in
# the image (the Dockerfile's builder stage runs it), a temporary directory
# in tests/integration/deploy.rs, which checks the result.
#
#   ROOT/etc/weir/weir.toml             weir init's sample, edited for a container
#   ROOT/etc/weir/NN-name.json          each default plugin's config
#   ROOT/opt/weir/plugins/NN-name.wasm  the default plugins
#   ROOT/opt/weir/plugins/NN-name.json  -> ../../../etc/weir/NN-name.json
#   ROOT/var/cache/weir/                compiled plugins (must be writable)
#
# The configs live beside weir.toml so that one directory (a ConfigMap, a
# bind mount) replaces all of them while the plugins stay in the image; the
# gateway reads NAME.json beside NAME.wasm, so the plugin directory links
# each one there. Relative links resolve the same under any ROOT.
#
# usage: layout.sh ROOT [WEIR]   (WEIR: the weir binary, default `weir`)
set -eu

root=${1:?usage: layout.sh ROOT [WEIR]}
root=${root%/}
weir=${2:-weir}
conf="$root/etc/weir"
plugins="$root/opt/weir/plugins"

"$weir" init "$conf" >/dev/null
mkdir -p "$root/opt/weir" "$root/var/cache/weir"
mv "$conf/plugins" "$plugins"
for json in "$plugins"/*.json; do
    name=$(basename "$json")
    mv "$json" "$conf/$name"
    ln -s "../../../etc/weir/$name" "$json"
done

# The sample listens on loopback, which nothing outside a container reaches;
# its relative plugin and cache directories would be under /etc/weir, where a
# mounted config hides them. The admin API stays on loopback: serving it to
# other hosts needs a token (docs/operations.md#docker).
toml="$conf/weir.toml"
sed -i \
    -e 's|^listen = "127\.0\.0\.1:8080"|listen = "0.0.0.0:8080"|' \
    -e 's|^plugins_dir = "plugins"|plugins_dir = "/opt/weir/plugins"|' \
    -e 's|^cache_dir = "\.weir-cache"|cache_dir = "/var/cache/weir"|' \
    "$toml"
for line in 'listen = "0.0.0.0:8080"' 'plugins_dir = "/opt/weir/plugins"' \
    'cache_dir = "/var/cache/weir"'; do
    grep -qxF "$line" "$toml" || {
        echo "layout.sh: weir init's weir.toml changed: could not set $line" >&2
        exit 1
    }
done
{
    echo '# The weir container image'"'"'s config. The plugins are in /opt/weir/plugins;'
    echo '# their configs, NAME.json, are beside this file (the plugin directory'
    echo '# links to them), so mounting one directory of weir.toml and NAME.json'
    echo '# files at /etc/weir replaces all of them. docs/operations.md#docker'
    echo '#'
    cat "$toml"
} >"$toml.new"
mv "$toml.new" "$toml"
