//! Builds every wasm crate of the workspace (default plugins, examples, test
//! fixtures) for `wasm32-wasip2` with the size-optimised `plugin` profile, so
//! a plain `cargo build` yields the gateway and its plugins, and the binary
//! can embed the default plugins for `weir init`.
//!
//! The JavaScript runtime (`runtimes/js`, QuickJS) is built the same way
//! when a C compiler for wasm is at hand (see [`build_js_runtime`]), and
//! embedded for `weir build-js`.
//!
//! The nested cargo uses its own target directory (`target/wasm`), so it does
//! not wait on the lock of the outer build, and is shared by every profile.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// Flags and wrappers meant for the outer (native) build, which must not
/// leak into the wasm builds: clippy's driver, host rustflags, the outer
/// target dir.
const OUTER_BUILD_VARS: [&str; 10] = [
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "CARGO_PRIMARY_PACKAGE",
];
const PROFILE: &str = "plugin";
/// Folders whose sub-folders with a `Cargo.toml` are wasm crates.
const WASM_CRATE_DIRS: &[&str] = &["plugins", "examples", "tests/fixtures"];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ lives in the workspace")
        .to_path_buf();

    // The old contracts' WIT too: the fixtures built for them read it.
    for dir in WASM_CRATE_DIRS.iter().chain(&[
        "sdk",
        "wit",
        "host/wit-0.1.0",
        "host/wit-0.2.0",
        "host/wit-0.3.0",
        "host/wit-0.4.0",
    ]) {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.toml").display()
    );
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let target_root = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace.join(p)
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    let wasm_target_dir = target_root.join("wasm");
    let out_dir = wasm_target_dir.join(TARGET).join(PROFILE);

    // `WEIR_SKIP_WASM_BUILD=1 cargo check`: check the host alone, with the
    // wasm from the last build, while a plugin is half-written.
    println!("cargo:rerun-if-env-changed=WEIR_SKIP_WASM_BUILD");
    println!("cargo::rustc-check-cfg=cfg(weir_js_runtime)");
    if env::var_os("WEIR_SKIP_WASM_BUILD").is_some() {
        println!("cargo:rustc-env=WEIR_WASM_DIR={}", out_dir.display());
        let runtime = out_dir.join(JS_RUNTIME_FILE);
        if runtime.exists() {
            embed_js_runtime(&runtime);
        }
        let filters = wasm_target_dir.join("wasm32-wasip1").join("release");
        println!("cargo:rustc-env=WEIR_PROXY_WASM_DIR={}", filters.display());
        return;
    }
    check_installed(TARGET);

    let packages = wasm_packages(&workspace);
    let mut cmd = nested_cargo(&workspace.join("Cargo.toml"), TARGET, &wasm_target_dir);
    cmd.args(["--profile", PROFILE]);
    for package in &packages {
        cmd.arg("-p").arg(package);
    }
    let status = cmd
        .status()
        .expect("run the nested `cargo build` for wasm32-wasip2");
    if !status.success() {
        panic!("building the wasm plugins failed (see the output above); packages: {packages:?}");
    }

    println!("cargo:rustc-env=WEIR_WASM_DIR={}", out_dir.display());

    if let Some(runtime) = build_js_runtime(&workspace, &wasm_target_dir) {
        embed_js_runtime(&runtime);
    }

    let filters_dir = build_proxy_wasm_filters(&workspace, &wasm_target_dir);
    println!(
        "cargo:rustc-env=WEIR_PROXY_WASM_DIR={}",
        filters_dir.display()
    );
}

const JS_RUNTIME_FILE: &str = "weir_js.wasm";

/// The clang wrapper of the WASI SDK stand-in: maps the `wasm32-wasip1/2`
/// triples to `wasm32-wasi` and drops the SDK's `--sysroot`.
const CLANG_SHIM: &str = r#"#!/bin/sh
# Made by host/build.rs: the system clang standing in for a WASI SDK's.
n=$#; i=0
while [ $i -lt $n ]; do
  a="$1"; shift; i=$((i+1))
  case "$a" in
    --target=wasm32-wasi*) set -- "$@" --target=wasm32-wasi ;;
    --sysroot=*) ;;
    *) set -- "$@" "$a" ;;
  esac
done
exec "@CLANG@"@SYSROOT@ "$@"
"#;

fn embed_js_runtime(runtime: &Path) {
    println!("cargo:rustc-cfg=weir_js_runtime");
    println!("cargo:rustc-env=WEIR_JS_RUNTIME={}", runtime.display());
}

/// A C compiler and archiver for wasm32-wasi, as `rquickjs-sys` wants them:
/// a WASI SDK directory (`bin/clang`, `bin/ar`, `share/wasi-sysroot`).
/// `$WASI_SDK` when set; otherwise one made of the system's clang, llvm-ar
/// and wasi-libc (Debian: `clang llvm wasi-libc`), whose clang is wrapped
/// to take the `wasm32-wasip2` triple older clangs do not know. `None`
/// when neither is there.
fn wasi_sdk(wasm_target_dir: &Path) -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed=WASI_SDK");
    println!("cargo:rerun-if-env-changed=WASI_SYSROOT");
    if let Some(sdk) = env::var_os("WASI_SDK") {
        return Some(PathBuf::from(sdk));
    }
    let find = |names: &[&str]| {
        names.iter().find_map(|name| {
            env::split_paths(&env::var_os("PATH")?)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    let versions = |tool: &str| -> Vec<String> {
        std::iter::once(tool.to_string())
            .chain((14..=22).rev().map(|v| format!("{tool}-{v}")))
            .collect()
    };
    let clang_names = versions("clang");
    let ar_names = versions("llvm-ar");
    let clang = find(&clang_names.iter().map(String::as_str).collect::<Vec<_>>())?;
    let ar = find(&ar_names.iter().map(String::as_str).collect::<Vec<_>>())?;
    let sysroot = env::var_os("WASI_SYSROOT").map(PathBuf::from);
    let libc_dir = match &sysroot {
        Some(root) => root.join("lib/wasm32-wasi"),
        None => PathBuf::from("/usr/lib/wasm32-wasi"),
    };
    if !libc_dir.join("libc.a").is_file() {
        return None;
    }
    let shim = wasm_target_dir.join("wasi-sdk-shim");
    fs::create_dir_all(shim.join("bin")).ok()?;
    fs::create_dir_all(shim.join("share/wasi-sysroot")).ok()?;
    let sysroot_flag = sysroot
        .map(|root| format!(" \"--sysroot={}\"", root.display()))
        .unwrap_or_default();
    let script = CLANG_SHIM
        .replace("@CLANG@", &clang.display().to_string())
        .replace("@SYSROOT@", &sysroot_flag);
    let clang_shim = shim.join("bin/clang");
    if fs::read_to_string(&clang_shim).ok().as_deref() != Some(script.as_str()) {
        fs::write(&clang_shim, script).ok()?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&clang_shim, fs::Permissions::from_mode(0o755)).ok()?;
        let ar_link = shim.join("bin/ar");
        if fs::read_link(&ar_link).ok().as_deref() != Some(ar.as_path()) {
            let _ = fs::remove_file(&ar_link);
            std::os::unix::fs::symlink(&ar, &ar_link).ok()?;
        }
    }
    Some(shim)
}

/// Build the JavaScript runtime (`runtimes/js`: QuickJS, whose C code needs
/// a wasm C compiler). Without one the gateway still builds, and
/// `weir build-js` says what to install.
fn build_js_runtime(workspace: &Path, wasm_target_dir: &Path) -> Option<PathBuf> {
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("runtimes/js").display()
    );
    let Some(sdk) = wasi_sdk(wasm_target_dir) else {
        println!(
            "cargo:warning=the JavaScript plugin runtime is not built: it needs clang, llvm-ar \
             and wasi-libc (Debian: apt install clang llvm wasi-libc), or $WASI_SDK \
             (then `touch runtimes/js/Cargo.toml` and build again). `weir build-js` will \
             say so; everything else works."
        );
        return None;
    };
    let mut cmd = nested_cargo(&workspace.join("Cargo.toml"), TARGET, wasm_target_dir);
    cmd.args(["--profile", PROFILE, "-p", "weir-js"])
        .env("WASI_SDK", &sdk);
    let status = cmd
        .status()
        .expect("run the nested `cargo build` for the JavaScript runtime");
    if !status.success() {
        panic!(
            "building the JavaScript runtime (runtimes/js) failed; see the output above \
             (WASI SDK: {})",
            sdk.display()
        );
    }
    Some(
        wasm_target_dir
            .join(TARGET)
            .join(PROFILE)
            .join(JS_RUNTIME_FILE),
    )
}

/// The proxy-wasm filters the tests run (`tests/proxy-wasm`, a workspace of
/// its own), built with the proxy-wasm SDK for wasm32-wasip1: they are core
/// modules, as Envoy's filters are.
fn build_proxy_wasm_filters(workspace: &Path, wasm_target_dir: &Path) -> PathBuf {
    const FILTER_TARGET: &str = "wasm32-wasip1";
    let dir = workspace.join("tests/proxy-wasm");
    println!("cargo:rerun-if-changed={}", dir.display());
    check_installed(FILTER_TARGET);
    let mut cmd = nested_cargo(&dir.join("Cargo.toml"), FILTER_TARGET, wasm_target_dir);
    cmd.arg("--release");
    let status = cmd
        .status()
        .expect("run the nested `cargo build` for wasm32-wasip1");
    if !status.success() {
        panic!(
            "building the proxy-wasm test filters (tests/proxy-wasm) failed; see the output above"
        );
    }
    wasm_target_dir.join(FILTER_TARGET).join("release")
}

/// `cargo build` of `manifest` for `target` into `target_dir`, without the
/// outer build's flags and wrappers.
fn nested_cargo(manifest: &Path, target: &str, target_dir: &Path) -> Command {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target")
        .arg(target)
        .arg("--target-dir")
        .arg(target_dir);
    for var in OUTER_BUILD_VARS {
        cmd.env_remove(var);
    }
    cmd.stdout(std::process::Stdio::inherit());
    cmd
}

/// Fail early, with the command that fixes it, when `target` is missing.
fn check_installed(target: &str) {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot
        && !sysroot.join("lib/rustlib").join(target).exists()
    {
        panic!(
            "the {target} Rust target is not installed; Weir builds plugins for it.\n\
             Install it with:  rustup target add {target}"
        );
    }
}

/// Package names of the wasm crates, read from their manifests.
fn wasm_packages(workspace: &Path) -> Vec<String> {
    let mut packages = Vec::new();
    for dir in WASM_CRATE_DIRS {
        let Ok(entries) = fs::read_dir(workspace.join(dir)) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        dirs.sort();
        for crate_dir in dirs {
            let manifest = crate_dir.join("Cargo.toml");
            let Ok(text) = fs::read_to_string(&manifest) else {
                continue;
            };
            if let Some(name) = package_name(&text) {
                packages.push(name);
            }
        }
    }
    packages
}

fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if in_package && let Some(rest) = line.strip_prefix("name") {
            let value = rest.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_string());
        }
    }
    None
}
