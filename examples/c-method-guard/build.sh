#!/usr/bin/env bash
# Builds plugin.c into a Weir plugin component:
#
#   ./build.sh [OUT.wasm]          (default: c_method_guard.wasm here)
#
# Needs clang with the wasm32-wasi target and wasi-libc (Debian: clang lld
# wasi-libc libclang-rt-14-dev-wasm32), `wit-bindgen` and `wasm-tools`
# (crates.io). tools/setup-plugin-toolchains installs the last two into
# target/tools/bin, which is searched first. Override with $CLANG,
# $WIT_BINDGEN, $WASM_TOOLS; point $WASI_SYSROOT at another wasi-libc.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(realpath -m "${1:-$here/c_method_guard.wasm}")"
export PATH="$root/target/tools/bin:$PATH"

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "error: $1 is not installed; $2" >&2
        exit 1
    }
}
clang="${CLANG:-$(command -v clang || command -v clang-14 || echo clang)}"
wit_bindgen="${WIT_BINDGEN:-wit-bindgen}"
wasm_tools="${WASM_TOOLS:-wasm-tools}"
need "$clang" "install clang, lld and wasi-libc (Debian: apt install clang lld wasi-libc libclang-rt-14-dev-wasm32)"
need "$wit_bindgen" "run tools/setup-plugin-toolchains (cargo install wit-bindgen-cli)"
need "$wasm_tools" "run tools/setup-plugin-toolchains (cargo install wasm-tools)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/gen"
if ! log="$("$wit_bindgen" c "$root/wit" --world weir:plugin/plugin --out-dir "$work/gen" 2>&1)"; then
    echo "$log" >&2
    exit 1
fi
# plugin.c includes "gen/plugin.h": compile it from the scratch directory.
cp "$here/plugin.c" "$work/"
# A reactor module: no `main`, exports called by the host. Using no WASI
# functions (no stdio, files or clocks) keeps the module free of WASI
# imports, so no preview1 adapter is needed.
cc=("$clang" --target=wasm32-wasi -Os ${WASI_SYSROOT:+--sysroot="$WASI_SYSROOT"})
"${cc[@]}" -Wall -Wextra -Werror -c "$work/plugin.c" -o "$work/plugin.o"
"${cc[@]}" -c "$work/gen/plugin.c" -o "$work/bindings.o"
"${cc[@]}" -mexec-model=reactor -o "$work/plugin.core.wasm" \
    "$work/plugin.o" "$work/bindings.o" "$work/gen/plugin_component_type.o"
"$wasm_tools" component new "$work/plugin.core.wasm" -o "$out"
echo "wrote $out ($(stat -c %s "$out") bytes)"
