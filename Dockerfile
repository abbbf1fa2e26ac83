# syntax=docker/dockerfile:1
#
# Weir's container image:   docker build -t weir .
# (BuildKit, Docker's default builder since 23.0: the cache mounts below
# need it.) docs/operations.md#docker describes the image and how to run it;
# deploy/kubernetes/ runs it on Kubernetes.

# ---- builder: the gateway, with its default plugins embedded -------------
FROM rust:1.95-bookworm AS builder

# rust-toolchain.toml asks for "stable", whatever is newest when the build
# runs; here the toolchain is the one this image's tag pins.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}
# host/build.rs compiles the workspace's Rust plugin crates (plugins/*,
# examples/*, tests/fixtures/* that have a Cargo.toml) for wasm32-wasip2 and
# embeds the default ones in the binary, and the proxy-wasm test filters for
# wasm32-wasip1. With clang, llvm-ar and wasi-libc it also builds the
# JavaScript runtime (QuickJS) that `weir build-js` fills with a plugin.
RUN rustup target add wasm32-wasip2 wasm32-wasip1 \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        clang llvm wasi-libc \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# The registry and target directories are cache mounts, so a rebuild after a
# source change recompiles only what changed; the binary is copied out of
# the mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p weir \
    && install -m 0755 target/release/weir /usr/local/bin/weir

# The image's gateway: `weir init`'s default plugins in /opt/weir/plugins,
# their configs beside weir.toml in /etc/weir (see the script), checked the
# way `weir run` loads them. The check fills the compiled-plugin cache;
# it is emptied so the image carries no machine code built for this host.
RUN sh deploy/docker/layout.sh / /usr/local/bin/weir \
    && weir check --config /etc/weir/weir.toml \
    && find /var/cache/weir -mindepth 1 -delete

# ---- runtime --------------------------------------------------------------
# distroless/cc: glibc, libgcc_s and libm (all the binary links: wasmtime,
# rustls on ring and mimalloc are compiled in), CA certificates (HTTPS
# upstreams and OTLP read the system store), tzdata, and a nonroot user
# (65532), from the same Debian 12 as the builder, so the glibc matches.
# No shell or package manager: less to patch and to attack than
# debian:bookworm-slim. For a shell while debugging, use the
# `:debug-nonroot` tag. Pin a digest (`@sha256:...`) for reproducible builds.
FROM gcr.io/distroless/cc-debian12:nonroot

COPY --from=builder /usr/local/bin/weir /usr/local/bin/weir
COPY --from=builder /opt/weir /opt/weir
COPY --from=builder /etc/weir /etc/weir
# cache_dir: the one path the gateway writes, owned by its user.
COPY --from=builder --chown=65532:65532 /var/cache/weir /var/cache/weir

# Numeric, so Kubernetes' runAsNonRoot can verify it without a runAsUser.
USER 65532:65532
# 8080: the proxy (listen = "0.0.0.0:8080"). 9901: the admin API, which the
# image's weir.toml keeps on loopback; a config that serves it to other
# hosts must set an admin token (docs/operations.md#docker).
EXPOSE 8080 9901
ENTRYPOINT ["weir"]
CMD ["run", "--config", "/etc/weir/weir.toml"]
