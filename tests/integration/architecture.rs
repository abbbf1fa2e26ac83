//! The house stays easy to change: imports between the host's files run
//! one way, each WIT capability has its grant, its host file and its SDK
//! module, and docs/architecture.md names only files that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use weir::config::grants::Capability;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn host_src() -> PathBuf {
    workspace().join("host/src")
}

/// Every `.rs` file under `dir`, relative to it.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The module path of a file: `gateway/mod.rs` is `["gateway"]`.
fn module_of(file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The `crate::a::b` and `super::x` paths a file's code (not its unit
/// tests) names, `use` groups expanded, as module paths from the root.
fn named_paths(file: &Path, text: &str) -> Vec<Vec<String>> {
    let code = text
        .find("#[cfg(test)]\nmod tests {")
        .map_or(text, |at| &text[..at]);
    let here = module_of(file);
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let root = if !starts_word {
            None
        } else if rest.starts_with("crate::") {
            Some((Vec::new(), "crate::".len()))
        } else if rest.starts_with("super::") {
            Some((
                here[..here.len().saturating_sub(1)].to_vec(),
                "super::".len(),
            ))
        } else {
            None
        };
        let Some((mut base, skip)) = root else {
            i += 1;
            continue;
        };
        i += skip;
        // `super::super::` climbs further.
        while code[i..].starts_with("super::") {
            base.pop();
            i += "super::".len();
        }
        let mut path = base;
        loop {
            let word: String = code[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !word.is_empty() {
                i += word.len();
                path.push(word);
            }
            if code[i..].starts_with("::{") {
                let end = code[i..].find('}').map_or(code.len(), |e| i + e);
                for item in code[i + 3..end].split(',') {
                    let item = item.split(" as ").next().unwrap_or("").trim();
                    let mut full = path.clone();
                    full.extend(
                        item.split("::")
                            .filter(|p| !p.is_empty() && *p != "self" && *p != "{")
                            .map(str::to_string),
                    );
                    out.push(full);
                }
                i = end;
                break;
            } else if code[i..].starts_with("::") {
                i += 2;
            } else {
                out.push(path);
                break;
            }
        }
    }
    out
}

/// The file a module path lands in: its longest prefix that is a file.
fn resolve<'a>(
    modules: &'a BTreeMap<Vec<String>, PathBuf>,
    path: &[String],
) -> Option<&'a PathBuf> {
    (1..=path.len()).rev().find_map(|n| modules.get(&path[..n]))
}

/// Strongly connected groups of more than one file (Tarjan).
fn circles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        found: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a PathBuf) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for next in &w.edges[v] {
            if !w.index.contains_key(next) {
                visit(w, next);
                let low = w.low[v].min(w.low[next]);
                w.low.insert(v, low);
            } else if w.stack.contains(&next) {
                let low = w.low[v].min(w.index[next]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut group = Vec::new();
            while let Some(top) = w.stack.pop() {
                group.push(top.clone());
                if top == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                w.found.push(group);
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v) {
            visit(&mut walk, v);
        }
    }
    walk.found
}

#[test]
fn imports_between_the_hosts_files_run_one_way() {
    let src = host_src();
    let files = rust_files(&src);
    let modules: BTreeMap<Vec<String>, PathBuf> =
        files.iter().map(|f| (module_of(f), f.clone())).collect();
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        let targets = named_paths(file, &text)
            .iter()
            .filter_map(|path| resolve(&modules, path))
            .filter(|target| *target != file)
            .cloned()
            .collect();
        edges.insert(file.clone(), targets);
    }
    let found = circles(&edges);
    assert!(
        found.is_empty(),
        "import circles in host/src (move the shared item down a level): {found:#?}"
    );
}

#[test]
fn the_import_check_sees_a_circle() {
    // The check above would pass vacuously if it read no edges.
    let a = PathBuf::from("a.rs");
    let b = PathBuf::from("b/mod.rs");
    let c = PathBuf::from("b/c.rs");
    let files = [a.clone(), b.clone(), c.clone()];
    let modules: BTreeMap<_, _> = files.iter().map(|f| (module_of(f), f.clone())).collect();
    let texts = [
        (&a, "use crate::b::{c::Thing, Other};"),
        (&b, "pub mod c;"),
        (&c, "fn f() { super::super::a::g(); }"),
    ];
    let edges = texts
        .iter()
        .map(|(file, text)| {
            let targets = named_paths(file, text)
                .iter()
                .filter_map(|p| resolve(&modules, p))
                .filter(|t| t != file)
                .cloned()
                .collect();
            ((*file).clone(), targets)
        })
        .collect();
    assert_eq!(circles(&edges), vec![vec![a, c]]);
}

#[test]
fn every_wit_capability_has_a_grant_a_host_file_an_sdk_module_and_a_js_module() {
    let wit = std::fs::read_to_string(workspace().join("wit/capabilities.wit")).unwrap();
    let interfaces: BTreeSet<String> = wit
        .lines()
        .filter_map(|line| line.trim().strip_prefix("interface "))
        .map(|rest| rest.trim_end_matches('{').trim().to_string())
        .collect();
    let granted: BTreeSet<String> = Capability::ALL
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(
        interfaces, granted,
        "each interface in wit/capabilities.wit needs a Capability in config/grants.rs"
    );
    let loader = std::fs::read_to_string(workspace().join("runtimes/js/src/modules.rs")).unwrap();
    for name in &interfaces {
        let host = host_src().join(format!("runtime/capabilities/{name}.rs"));
        assert!(host.is_file(), "no {}", host.display());
        let sdk = workspace().join(format!("sdk/src/{name}.rs"));
        assert!(sdk.is_file(), "no {}", sdk.display());
        // The JavaScript runtime's module, and the loader arm serving it.
        let js = workspace().join(format!("runtimes/js/src/api/{name}.rs"));
        assert!(js.is_file(), "no {}", js.display());
        assert!(
            loader.contains(&format!("Some(\"{name}\") =>")),
            "runtimes/js/src/modules.rs does not load weir:plugin/{name}"
        );
    }
}

/// Paths docs/architecture.md names in backquotes: ending in `.rs` or `/`,
/// under `host/src/` unless they start at the workspace root. Capitals are
/// placeholders (`runtime/capabilities/NAME.rs`), not paths.
fn paths_named_in(doc: &str) -> Vec<String> {
    doc.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            (s.ends_with(".rs") || s.ends_with('/'))
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-./".contains(c))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_path_docs_architecture_names_exists() {
    let doc = std::fs::read_to_string(workspace().join("docs/architecture.md")).unwrap();
    let roots = [
        "host/",
        "tests/",
        "tools/",
        "wit/",
        "sdk/",
        "plugins/",
        "testkit/",
        "runtimes/",
    ];
    let named = paths_named_in(&doc);
    assert!(named.len() > 30, "only {} paths found", named.len());
    let missing: Vec<&String> = named
        .iter()
        .filter(|path| {
            let at = if roots.iter().any(|r| path.starts_with(r)) {
                workspace().join(path)
            } else {
                host_src().join(path)
            };
            !at.exists()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/architecture.md names paths that do not exist: {missing:?}"
    );
}
