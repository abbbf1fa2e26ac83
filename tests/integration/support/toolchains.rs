//! The Python, JavaScript and C plugin toolchains, as installed in this
//! checkout by `tools/setup-plugin-toolchains` (which `.ci/run` runs), and
//! the example plugins built with them, once per test run. A missing
//! toolchain fails the test with what to install; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn missing(what: &str) -> ! {
    panic!(
        "{what} is not installed. The Python and JavaScript example plugins are built with \
         their real toolchains; run `tools/setup-plugin-toolchains` (needs python3, node and \
         npm) first"
    )
}

/// `componentize-py`: `$WEIR_COMPONENTIZE_PY`, the checkout's toolchain, or `PATH`.
pub fn componentize_py() -> PathBuf {
    if let Some(path) = std::env::var_os("WEIR_COMPONENTIZE_PY") {
        return PathBuf::from(path);
    }
    let local = workspace().join("target/tools/python/bin/componentize-py");
    if local.exists() {
        return local;
    }
    match Command::new("componentize-py").arg("--version").output() {
        Ok(out) if out.status.success() => PathBuf::from("componentize-py"),
        _ => missing("componentize-py"),
    }
}

/// `node_modules` holding ComponentizeJS.
pub fn componentize_js_modules() -> PathBuf {
    let modules = workspace().join("examples/js-security-headers/node_modules");
    if !modules.join("@bytecodealliance/componentize-js").exists() {
        missing("ComponentizeJS");
    }
    modules
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Build a Python plugin from `dir` (app.py, wit at `wit`) into `out`.
pub fn build_python(dir: &Path, wit: &Path, out: &Path) {
    build_python_world(dir, wit, "weir:plugin/plugin", out);
}

/// Build a Python component of `world` from `dir` (app.py) into `out`.
pub fn build_python_world(dir: &Path, wit: &Path, world: &str, out: &Path) {
    run(
        Command::new(componentize_py())
            .current_dir(dir)
            .arg("-d")
            .arg(wit)
            .args(["-w", world, "componentize", "app", "-o"])
            .arg(out),
        "componentize-py",
    );
}

/// `tests/fixtures/python-http`: a standard wasi:http/proxy handler.
pub fn python_http() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = built("python_http.wasm");
        let fixtures = workspace().join("tests/fixtures");
        build_python_world(
            &fixtures.join("python-http"),
            &fixtures.join("wasi-http-wit"),
            "handler",
            &out,
        );
        out
    })
}

/// `tests/fixtures/js-http`: a standard wasi:http/proxy fetch handler.
pub fn js_http() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let modules = componentize_js_modules();
        let out = built("js_http.wasm");
        build_js(
            &workspace().join("tests/fixtures/js-http"),
            &[&modules, &out],
        );
        out
    })
}

/// Build a JavaScript plugin with its `build.mjs`.
pub fn build_js(dir: &Path, args: &[&Path]) {
    let mut command = Command::new("node");
    command.current_dir(dir).arg("build.mjs").args(args);
    run(&mut command, "node build.mjs");
}

fn built(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// `examples/python-validator`, built with componentize-py.
pub fn python_validator() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = built("python_validator.wasm");
        let dir = workspace().join("examples/python-validator");
        build_python(&dir, &workspace().join("wit"), &out);
        out
    })
}

/// `examples/js-security-headers`, built by `weir build-js` (Weir's
/// QuickJS runtime, which the binary carries).
pub fn js_security_headers() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = built("js_security_headers.wasm");
        let entry = workspace().join("examples/js-security-headers/plugin.js");
        if let Err(e) = weir::tooling::js_build::build(&entry, &out) {
            panic!("weir build-js {}: {e}", entry.display());
        }
        out
    })
}

/// `tests/fixtures/js-api`, built by `weir build-js`.
pub fn js_api() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = built("js_api.wasm");
        let entry = workspace().join("tests/fixtures/js-api/plugin.js");
        if let Err(e) = weir::tooling::js_build::build(&entry, &out) {
            panic!("weir build-js {}: {e}", entry.display());
        }
        out
    })
}

/// The same example built with ComponentizeJS (its `build.mjs`): the
/// JavaScript API is the same, so the tests run both builds.
pub fn js_security_headers_componentize() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        componentize_js_modules();
        let out = built("js_security_headers_componentize.wasm");
        build_js(&workspace().join("examples/js-security-headers"), &[&out]);
        out
    })
}

/// `examples/c-method-guard`, built with clang, wit-bindgen and wasm-tools
/// by its `build.sh` (which says what is missing, if anything is).
pub fn c_method_guard() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = built("c_method_guard.wasm");
        run(
            Command::new("bash")
                .current_dir(workspace().join("examples/c-method-guard"))
                .arg("build.sh")
                .arg(&out),
            "examples/c-method-guard/build.sh",
        );
        out
    })
}

/// `tests/fixtures/python-sleeper`: `time.sleep` in `on-request`.
pub fn python_sleeper() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = built("python_sleeper.wasm");
        let dir = workspace().join("tests/fixtures/python-sleeper");
        build_python(&dir, &workspace().join("wit"), &out);
        out
    })
}

/// `tests/fixtures/c-trap`, which traps on a request for `/null`, built
/// with DWARF (`-g`, `debug`) or with its name section only.
pub fn c_trap(debug: bool) -> &'static Path {
    static PLAIN: OnceLock<PathBuf> = OnceLock::new();
    static DEBUG: OnceLock<PathBuf> = OnceLock::new();
    let (cell, name) = match debug {
        true => (&DEBUG, "c_trap_debug.wasm"),
        false => (&PLAIN, "c_trap.wasm"),
    };
    cell.get_or_init(|| {
        let out = built(name);
        let mut command = Command::new("bash");
        command
            .current_dir(workspace().join("tests/fixtures/c-trap"))
            .arg("build.sh")
            .arg(&out);
        if debug {
            command.arg("-g");
        }
        run(&mut command, "tests/fixtures/c-trap/build.sh");
        out
    })
}

/// `tests/fixtures/c-sleeper`: `nanosleep` and `poll_oneoff` through
/// wasi-libc, wrapped with the WASI preview 1 adapter of the wasmtime
/// release Weir runs on.
pub fn c_sleeper() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = built("c_sleeper.wasm");
        let adapter = built("wasi_snapshot_preview1.reactor.wasm");
        std::fs::write(
            &adapter,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .expect("write the preview 1 adapter");
        run(
            Command::new("bash")
                .current_dir(workspace().join("tests/fixtures/c-sleeper"))
                .arg("build.sh")
                .arg(&out)
                .arg(&adapter),
            "tests/fixtures/c-sleeper/build.sh",
        );
        out
    })
}
