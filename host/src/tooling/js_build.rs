//! `weir build-js`: a JavaScript plugin as a component, with no JavaScript
//! toolchain.
//!
//! The binary carries Weir's JavaScript runtime (`runtimes/js`: QuickJS in
//! a `weir:plugin` component). Building a plugin copies it and writes the
//! plugin's modules into the slot it reserves (the format is described in
//! `runtimes/js/src/bundle.rs`): the entry module first, then every other
//! `.js` and `.mjs` file under the entry's directory, skipping
//! `node_modules` and hidden directories, so relative imports resolve at
//! run time. Packages (bare imports) must be bundled into the plugin first,
//! for example with esbuild.

use std::path::{Path, PathBuf};

/// The runtime this binary carries, when it was built with a wasm C
/// compiler (see `host/build.rs`).
#[cfg(weir_js_runtime)]
pub const RUNTIME: Option<&[u8]> = Some(include_bytes!(env!("WEIR_JS_RUNTIME")));
#[cfg(not(weir_js_runtime))]
pub const RUNTIME: Option<&[u8]> = None;

/// Bytes the runtime reserves for the modules; `SLOT_CAPACITY` in
/// `runtimes/js/src/bundle.rs`.
pub const SLOT_CAPACITY: usize = 1 << 20;
/// What a written slot starts with.
const HEADER: &[u8; 8] = b"WEIRJS01";
/// What an unwritten slot starts with; found exactly once in the runtime.
const EMPTY_MARKER: &[u8; 32] = b"weir-js: no bundle written here\0";

/// Why a plugin could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "this weir binary was built without the JavaScript runtime: rebuild it with clang, \
         llvm-ar and wasi-libc installed (Debian: apt install clang llvm wasi-libc), or with \
         $WASI_SDK set (in a checkout: `touch runtimes/js/Cargo.toml`, then build)"
    )]
    NoRuntime,
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a JavaScript module (.js or .mjs)", path.display())]
    NotJavaScript { path: PathBuf },
    #[error("{}: not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    #[error(
        "the modules take {size} bytes, more than the {SLOT_CAPACITY} the runtime reserves; \
         leave unused files out of the entry's directory"
    )]
    TooLarge { size: usize },
    #[error("the embedded runtime has no empty module slot (found {found} markers)")]
    NoSlot { found: usize },
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One module: its path relative to the entry's directory, and its source.
pub type Module = (String, String);

fn is_module(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("js" | "mjs")
    )
}

fn read(path: &Path) -> Result<String, BuildError> {
    let bytes = std::fs::read(path).map_err(|source| BuildError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| BuildError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

/// The entry module, then the other modules under its directory, in a
/// stable order.
pub fn collect(entry: &Path) -> Result<Vec<Module>, BuildError> {
    if !is_module(entry) {
        return Err(BuildError::NotJavaScript {
            path: entry.to_path_buf(),
        });
    }
    let root = entry
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let entry_name = entry
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut modules = vec![(entry_name.clone(), read(entry)?)];
    let mut others = Vec::new();
    walk(root, "", &mut others)?;
    others.sort();
    for name in others {
        if name != entry_name {
            let source = read(&root.join(&name))?;
            modules.push((name, source));
        }
    }
    Ok(modules)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), BuildError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BuildError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        let path = entry.path();
        let relative = format!("{prefix}{name}");
        // Directories are entered only when they are real ones: a symbolic
        // link to a directory could lead back up into a loop.
        let real_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if real_dir {
            walk(&path, &format!("{relative}/"), out)?;
        } else if path.is_file() && is_module(&path) {
            out.push(relative);
        }
    }
    Ok(())
}

/// The slot's contents for `modules`.
pub fn encode(modules: &[Module]) -> Vec<u8> {
    let mut out = HEADER.to_vec();
    out.extend((modules.len() as u32).to_le_bytes());
    for (name, source) in modules {
        for text in [name, source] {
            out.extend((text.len() as u32).to_le_bytes());
            out.extend(text.as_bytes());
        }
    }
    out
}

/// `runtime` with `bundle` written into its slot.
pub fn patch(runtime: &[u8], bundle: &[u8]) -> Result<Vec<u8>, BuildError> {
    if bundle.len() > SLOT_CAPACITY {
        return Err(BuildError::TooLarge { size: bundle.len() });
    }
    let found: Vec<usize> = runtime
        .windows(EMPTY_MARKER.len())
        .enumerate()
        .filter(|(_, w)| *w == EMPTY_MARKER)
        .map(|(i, _)| i)
        .collect();
    let [at] = found[..] else {
        return Err(BuildError::NoSlot { found: found.len() });
    };
    let mut out = runtime.to_vec();
    let slot = out
        .get_mut(at..at + SLOT_CAPACITY)
        .ok_or(BuildError::NoSlot { found: 0 })?;
    // The marker, then zeros to the slot's end: anything else means the
    // slot is not what this binary expects (a shorter slot, or an optimiser
    // that trimmed it), and writing would overwrite other bytes.
    if slot.iter().skip(EMPTY_MARKER.len()).any(|b| *b != 0) {
        return Err(BuildError::NoSlot { found: 0 });
    }
    let (head, rest) = slot.split_at_mut(bundle.len());
    head.copy_from_slice(bundle);
    // Clear what is left of the marker after a bundle shorter than it.
    let leftover = EMPTY_MARKER.len().saturating_sub(bundle.len());
    rest.iter_mut().take(leftover).for_each(|b| *b = 0);
    Ok(out)
}

/// Build `entry` into a plugin at `out`; returns the number of modules.
pub fn build(entry: &Path, out: &Path) -> Result<usize, BuildError> {
    let runtime = RUNTIME.ok_or(BuildError::NoRuntime)?;
    let modules = collect(entry)?;
    let component = patch(runtime, &encode(&modules))?;
    std::fs::write(out, component).map_err(|source| BuildError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(modules.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime_like() -> Vec<u8> {
        let mut bytes = b"\0asm....".to_vec();
        bytes.extend(EMPTY_MARKER);
        bytes.resize(8 + SLOT_CAPACITY + 100, 0);
        bytes
    }

    #[test]
    fn the_bundle_lands_in_the_slot_and_nothing_else_moves() {
        let runtime = runtime_like();
        let bundle = encode(&[("plugin.js".into(), "export const handler = {};".into())]);
        let out = patch(&runtime, &bundle).unwrap();
        assert_eq!(out.len(), runtime.len());
        assert_eq!(&out[..8], b"\0asm....");
        assert_eq!(&out[8..8 + bundle.len()], &bundle[..]);
        assert!(out[8 + bundle.len()..].iter().all(|b| *b == 0));
    }

    #[test]
    fn a_short_bundle_leaves_no_part_of_the_marker() {
        let out = patch(&runtime_like(), b"WEIRJS01\0\0\0\0").unwrap();
        assert!(!out.windows(9).any(|w| w == b"weir-js: "));
        assert!(out[8 + 12..8 + 32].iter().all(|b| *b == 0));
    }

    #[test]
    fn too_much_javascript_or_a_foreign_component_is_refused() {
        let big = vec![b'x'; SLOT_CAPACITY + 1];
        assert!(matches!(
            patch(&runtime_like(), &big),
            Err(BuildError::TooLarge { .. })
        ));
        assert!(matches!(
            patch(b"\0asm other component", b"WEIRJS01"),
            Err(BuildError::NoSlot { found: 0 })
        ));
        let mut short = runtime_like();
        if let Some(b) = short.get_mut(8 + SLOT_CAPACITY - 1) {
            *b = 1;
        }
        assert!(matches!(
            patch(&short, b"WEIRJS01"),
            Err(BuildError::NoSlot { found: 0 })
        ));
        let mut twice = runtime_like();
        twice.extend(EMPTY_MARKER);
        assert!(matches!(
            patch(&twice, b"WEIRJS01"),
            Err(BuildError::NoSlot { found: 2 })
        ));
    }

    #[test]
    fn the_entry_comes_first_then_the_other_modules_under_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("plugin.js", "import './lib/a.js';");
        write("lib/a.js", "export {};");
        write("b.mjs", "export {};");
        write("notes.txt", "not a module");
        write("node_modules/pkg/index.js", "skipped");
        write(".hidden/x.js", "skipped");
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path(), dir.path().join("lib/loop")).unwrap();
        let modules = collect(&dir.path().join("plugin.js")).unwrap();
        let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["plugin.js", "b.mjs", "lib/a.js"]);
        assert!(matches!(
            collect(&dir.path().join("notes.txt")),
            Err(BuildError::NotJavaScript { .. })
        ));
    }

    #[cfg(weir_js_runtime)]
    #[test]
    fn the_embedded_runtime_has_exactly_one_slot_of_full_size() {
        let runtime = RUNTIME.unwrap();
        let out = patch(runtime, &encode(&[("p.js".into(), String::new())])).unwrap();
        assert_eq!(out.len(), runtime.len());
    }
}
