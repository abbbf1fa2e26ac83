//! Turning a `.wasm` file into a compiled [`Component`]: recognise what the
//! file is (so "not a component" is a clear message), and cache compiled
//! code on disk keyed by the content hash and the engine's settings, so a
//! restart or a reload does not compile the same bytes again.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// What the first bytes of a file say it is.
#[derive(Debug, PartialEq, Eq)]
pub enum WasmKind {
    /// A component (what Weir loads).
    Component,
    /// A core module: needs to be made into a component first.
    CoreModule,
    /// Not WebAssembly.
    NotWasm,
}

/// Classify `bytes` by the WebAssembly preamble.
pub fn classify(bytes: &[u8]) -> WasmKind {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => WasmKind::CoreModule,
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => WasmKind::Component,
        _ => WasmKind::NotWasm,
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compile `bytes` (from a file whose SHA-256 is `sha256`), using and
/// filling the cache in `cache_dir` when given. Errors are messages for the
/// operator.
pub fn compile(
    engine: &Engine,
    bytes: &[u8],
    sha256: &str,
    cache_dir: Option<&Path>,
) -> Result<Component, String> {
    match classify(bytes) {
        WasmKind::Component => {}
        WasmKind::CoreModule => {
            return Err("is a core WebAssembly module, not a component \
                        (build for wasm32-wasip2, or wrap it with `wasm-tools component new`)"
                .into());
        }
        WasmKind::NotWasm => return Err("is not a WebAssembly file".into()),
    }
    let cached = cache_dir.map(|dir| dir.join(format!("{sha256}-{}.cwasm", engine_tag(engine))));
    if let Some(path) = &cached
        && let Some(component) = load_cached(engine, path)
    {
        return Ok(component);
    }
    let component =
        Component::new(engine, bytes).map_err(|e| format!("cannot be compiled: {e:#}"))?;
    if let Some(path) = &cached
        && let Err(e) = store_cached(&component, path)
    {
        tracing::warn!(cache = %path.display(), "cannot write the compiled-plugin cache: {e}");
    }
    Ok(component)
}

/// A short tag of everything that makes compiled code incompatible: the
/// wasmtime version and the engine's settings.
/// Compile a core module (a proxy-wasm filter).
pub fn compile_module(engine: &Engine, bytes: &[u8]) -> Result<wasmtime::Module, String> {
    wasmtime::Module::new(engine, bytes).map_err(|e| format!("cannot be compiled: {e:#}"))
}

fn engine_tag(engine: &Engine) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn load_cached(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.is_file() {
        return None;
    }
    // SAFETY: deserialising runs the machine code in the file. Only this
    // host writes the cache (named by the source's SHA-256 and the engine
    // settings, written whole via a rename), so the file holds code that
    // Wasmtime itself produced from that source.
    #[allow(unsafe_code)]
    let loaded = unsafe { Component::deserialize_file(engine, path) };
    match loaded {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(cache = %path.display(), "ignoring an unusable cache entry: {e}");
            None
        }
    }
}

fn store_cached(component: &Component, path: &Path) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    // Write aside and rename, so a concurrent reader never sees half a file.
    let tmp: PathBuf = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_preambles() {
        assert_eq!(classify(b"\0asm\x01\0\0\0rest"), WasmKind::CoreModule);
        assert_eq!(classify(b"\0asm\x0d\0\x01\0rest"), WasmKind::Component);
        assert_eq!(classify(b"\x7fELF...."), WasmKind::NotWasm);
        assert_eq!(classify(b"\0as"), WasmKind::NotWasm);
    }
}
