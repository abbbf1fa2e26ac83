//! Builds every wasm crate of the workspace (default plugins, examples, test
//! fixtures) for `wasm32-wasip2` with the size-optimised `plugin` profile, so
//! a plain `cargo build` yields the gateway and its plugins, and the binary
//! can embed the default plugins for `weir init`.
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
    if env::var_os("WEIR_SKIP_WASM_BUILD").is_some() {
        println!("cargo:rustc-env=WEIR_WASM_DIR={}", out_dir.display());
        let filters = wasm_target_dir.join("wasm32-wasip1").join("release");
        println!("cargo:rustc-env=WEIR_PROXY_WASM_DIR={}", filters.display());
        return;
    }
    check_installed(TARGET);

    let packages = wasm_packages(&workspace);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target")
        .arg(TARGET)
        .arg("--profile")
        .arg(PROFILE)
        .arg("--target-dir")
        .arg(&wasm_target_dir);
    for package in &packages {
        cmd.arg("-p").arg(package);
    }
    for var in OUTER_BUILD_VARS {
        cmd.env_remove(var);
    }
    // Keep build-script output off cargo's stdout protocol.
    cmd.stdout(std::process::Stdio::inherit());
    let status = cmd
        .status()
        .expect("run the nested `cargo build` for wasm32-wasip2");
    if !status.success() {
        panic!("building the wasm plugins failed (see the output above); packages: {packages:?}");
    }

    println!("cargo:rustc-env=WEIR_WASM_DIR={}", out_dir.display());

    let filters_dir = build_proxy_wasm_filters(&workspace, &wasm_target_dir);
    println!(
        "cargo:rustc-env=WEIR_PROXY_WASM_DIR={}",
        filters_dir.display()
    );
}

/// The proxy-wasm filters the tests run (`tests/proxy-wasm`, a workspace of
/// its own), built with the proxy-wasm SDK for wasm32-wasip1: they are core
/// modules, as Envoy's filters are.
fn build_proxy_wasm_filters(workspace: &Path, wasm_target_dir: &Path) -> PathBuf {
    const FILTER_TARGET: &str = "wasm32-wasip1";
    let dir = workspace.join("tests/proxy-wasm");
    println!("cargo:rerun-if-changed={}", dir.display());
    check_installed(FILTER_TARGET);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target")
        .arg(FILTER_TARGET)
        .arg("--release")
        .arg("--target-dir")
        .arg(wasm_target_dir);
    for var in OUTER_BUILD_VARS {
        cmd.env_remove(var);
    }
    cmd.stdout(std::process::Stdio::inherit());
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
