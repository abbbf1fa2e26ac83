//! The deployment files kept honest: the Kubernetes example
//! (deploy/kubernetes) and the Dockerfile, checked against the real `weir`
//! binary. No image is built here (no Docker daemon): the image's layout is
//! made by the same script its builder stage runs (deploy/docker/layout.sh),
//! under a temporary root, and the ConfigMap is laid over it the way the
//! kubelet mounts one (`..data` link, a symlink per key).
//!
//! A temporary root stands for the container's `/`: the ConfigMap is
//! mounted under it where the Deployment mounts it, and weir.toml's two
//! absolute paths (`plugins_dir`, `cache_dir`) are moved under it too. The
//! Redis Cluster's seed nodes point at a real local cluster of
//! `redis-server`s, the HTTPS listener at a free port and the ACME
//! directory at a closed one. Nothing else in the files is changed for
//! `weir check`; the test that runs the gateway also points the upstreams
//! at local backends.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{Map, Number, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::client::{http1, send};
use crate::support::process::{Output, WEIR, capture, run_to_end};
use crate::support::redis_cluster::RedisCluster;
use crate::support::{Backend, get};

mod docker;
mod kubernetes;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is in the workspace")
        .to_path_buf()
}

// ---- reading the manifests ------------------------------------------------

fn yaml_to_json(node: Yaml<'_>) -> Value {
    match node {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(b),
        Yaml::Value(Scalar::Integer(i)) => Value::from(i),
        Yaml::Value(Scalar::FloatingPoint(f)) => {
            Number::from_f64(f.into_inner()).map_or(Value::Null, Value::Number)
        }
        Yaml::Value(Scalar::String(s)) => Value::String(s.into_owned()),
        Yaml::Representation(text, _, _) => Value::String(text.into_owned()),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Yaml::Mapping(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let key = match yaml_to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                map.insert(key, yaml_to_json(v));
            }
            Value::Object(map)
        }
        Yaml::Tagged(_, inner) => yaml_to_json(*inner),
        Yaml::Alias(_) | Yaml::BadValue => panic!("unexpected YAML node in deploy/kubernetes"),
    }
}

fn read_yaml(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Yaml::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
        .into_iter()
        .map(yaml_to_json)
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Every object that `kubectl apply -k deploy/kubernetes` creates: the
/// files kustomization.yaml lists, in order.
fn manifests() -> Vec<Value> {
    let dir = repo().join("deploy/kubernetes");
    let kustomization = read_yaml(&dir.join("kustomization.yaml"));
    let resources = kustomization[0]["resources"]
        .as_array()
        .expect("kustomization.yaml lists resources");
    resources
        .iter()
        .flat_map(|file| read_yaml(&dir.join(file.as_str().expect("a file name"))))
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("deploy/kubernetes has no {kind} {name}"))
}

/// The ConfigMap's files.
fn configmap_files(docs: &[Value]) -> BTreeMap<String, String> {
    find(docs, "ConfigMap", "weir-config")["data"]
        .as_object()
        .expect("weir-config has data")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("text").to_string()))
        .collect()
}

fn parse_toml(text: &str) -> toml::Table {
    text.parse()
        .unwrap_or_else(|e| panic!("the ConfigMap's weir.toml is not TOML: {e}"))
}

fn toml_str<'a>(table: &'a toml::Table, path: &[&str]) -> &'a str {
    let mut value = table
        .get(path[0])
        .unwrap_or_else(|| panic!("weir.toml has no {path:?}"));
    for key in &path[1..] {
        value = value
            .get(key)
            .unwrap_or_else(|| panic!("weir.toml has no {path:?}"));
    }
    value.as_str().expect("a string")
}

/// The gateway's container in the Deployment.
fn weir_container(deployment: &Value) -> &Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == "weir")
        .expect("a container named weir")
}

/// A probe's or Service's port (a number, or a name of the container's).
fn port_number(container: &Value, port: &Value) -> u16 {
    if let Some(n) = port.as_u64() {
        return n as u16;
    }
    let name = port.as_str().expect("a port number or name");
    container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("the container has no port named {name}")) as u16
}

// ---- the image's layout and the ConfigMap over it -------------------------

/// The image's filesystem, made by the Dockerfile's own script under `root`.
fn image_layout(root: &Path) {
    let status = std::process::Command::new("sh")
        .arg(repo().join("deploy/docker/layout.sh"))
        .arg(root)
        .arg(WEIR)
        .status()
        .expect("run sh");
    assert!(status.success(), "deploy/docker/layout.sh failed");
}

/// `root` + an absolute path from the config.
fn under(root: &Path, absolute: &str) -> PathBuf {
    root.join(absolute.strip_prefix('/').expect("an absolute path"))
}

/// The stems of the plugins in the image's plugin directory.
fn image_plugins(plugins: &Path) -> BTreeSet<String> {
    std::fs::read_dir(plugins)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Write `files` as the kubelet writes a ConfigMap volume at `dir`: a
/// timestamped directory, `..data` linking to it, and each file a link
/// through `..data`. When the volume exists, the new version replaces it as
/// the kubelet does: a new `..data` renamed over the old one.
fn mount_configmap(dir: &Path, version: &str, files: &BTreeMap<String, String>) {
    use std::os::unix::fs::symlink;
    std::fs::create_dir_all(dir).unwrap();
    let versioned = format!("..{version}");
    std::fs::create_dir(dir.join(&versioned)).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(&versioned).join(name), text).unwrap();
    }
    let data = dir.join("..data");
    let old = std::fs::read_link(&data).ok();
    if old.is_none() {
        symlink(&versioned, &data).unwrap();
        for name in files.keys() {
            symlink(Path::new("..data").join(name), dir.join(name)).unwrap();
        }
        return;
    }
    symlink(&versioned, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), &data).unwrap();
    std::fs::remove_dir_all(dir.join(old.unwrap())).unwrap();
}

/// A pod's filesystem under a temporary root: the image, with the
/// ConfigMap mounted where the Deployment mounts it.
struct Pod {
    root: tempfile::TempDir,
    /// The config's directory (the ConfigMap's mount).
    config_dir: PathBuf,
    /// Its weir.toml, as the gateway is started with it.
    config: PathBuf,
}

impl Pod {
    /// `files` is the ConfigMap's data, with weir.toml already adjusted by
    /// `adjust_toml` (given the root).
    fn new(
        docs: &[Value],
        adjust_toml: impl Fn(&Path, &mut toml::Table),
    ) -> (Pod, BTreeMap<String, String>) {
        let root = tempfile::tempdir().unwrap();
        image_layout(root.path());
        let container = weir_container(find(docs, "Deployment", "weir"));
        let config_arg = config_arg(container);
        let mount = Path::new(&config_arg).parent().unwrap().to_str().unwrap();
        let config_dir = under(root.path(), mount);
        // The mount hides what the image has there.
        std::fs::remove_dir_all(&config_dir).unwrap();
        let mut files = configmap_files(docs);
        let mut table = parse_toml(&files["weir.toml"]);
        adjust_toml(root.path(), &mut table);
        files.insert("weir.toml".into(), toml::to_string(&table).unwrap());
        mount_configmap(&config_dir, "2026_01_01_00_00_00.000000001", &files);
        let config = under(root.path(), &config_arg);
        (
            Pod {
                root,
                config_dir,
                config,
            },
            files,
        )
    }
}

/// The path after `--config` in the container's args.
fn config_arg(container: &Value) -> String {
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("the container's args")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = args
        .iter()
        .position(|a| *a == "--config")
        .expect("args name --config");
    args[at + 1].to_string()
}

/// Move the config's absolute paths under `root` and use a local Redis.
fn localize(root: &Path, table: &mut toml::Table, cluster: &RedisCluster) {
    for key in ["plugins_dir", "cache_dir"] {
        let path = under(root, toml_str(table, &[key]));
        table.insert(key.into(), path.display().to_string().into());
    }
    let nodes = cluster.urls().into_iter().map(toml::Value::from).collect();
    table
        .get_mut("state")
        .and_then(toml::Value::as_table_mut)
        .expect("weir.toml has [state]")
        .insert("nodes".into(), toml::Value::Array(nodes));
    // The HTTPS listener on a free port, and the ACME directory at a
    // loopback port where nothing listens: the CA is unreachable.
    let tls = table
        .get_mut("tls")
        .and_then(toml::Value::as_table_mut)
        .expect("weir.toml has [tls]");
    tls.insert("listen".into(), "127.0.0.1:0".into());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    tls.get_mut("acme")
        .and_then(toml::Value::as_table_mut)
        .expect("weir.toml has [tls.acme]")
        .insert(
            "directory".into(),
            format!("https://127.0.0.1:{closed}/dir").into(),
        );
}

// ---- running the binary ---------------------------------------------------

/// A running `weir run`; its addresses as printed, stderr collected.
struct Running {
    child: tokio::process::Child,
    proxy: String,
    admin: String,
    stderr: Output,
}

impl Running {
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut command = Command::new(WEIR);
        command
            .args(args)
            .env_remove("WEIR_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stderr = capture(child.stderr.take().unwrap());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            let mut proxy = None;
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(a) = line.strip_prefix("listening on http://") {
                    proxy = Some(a.to_string());
                } else if let Some(a) = line.strip_prefix("admin listening on http://") {
                    return Some((proxy?, a.to_string()));
                }
            }
            None
        })
        .await;
        let Ok(Some((proxy, admin))) = found else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            panic!("weir run did not start; stderr:\n{}", stderr.text());
        };
        // Listening on every interface: reached here over loopback.
        let admin: SocketAddr = admin.parse().unwrap();
        let admin = format!("127.0.0.1:{}", admin.port());
        Running {
            child,
            proxy,
            admin,
            stderr,
        }
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("weir did not exit after SIGTERM")
            .unwrap();
        assert!(status.success(), "{status:?}\n{}", self.stderr.text());
    }
}

async fn get_with_token(url: &str, token: &str) -> crate::support::client::Reply {
    let request = http::Request::builder()
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .body(weir::http::body::full(Bytes::new()))
        .unwrap();
    send(&http1(), request).await
}

/// How many keys match `pattern` over the cluster's live masters.
fn cluster_key_count(cluster: &RedisCluster, pattern: &str) -> usize {
    cluster
        .topology()
        .iter()
        .filter(|n| n.is_master() && !n.failed())
        .map(|n| redis_key_count(n.port, pattern))
        .sum()
}

/// How many keys match `pattern` in the Redis on `port` (RESP by hand).
fn redis_key_count(port: u16, pattern: &str) -> usize {
    use std::io::{BufRead, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let command = format!("*2\r\n$4\r\nKEYS\r\n${}\r\n{pattern}\r\n", pattern.len());
    stream.write_all(command.as_bytes()).unwrap();
    let mut first = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut first)
        .unwrap();
    first
        .trim_end()
        .strip_prefix('*')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected Redis reply {first:?}"))
}

// ---- the Dockerfile -------------------------------------------------------

/// The Dockerfile's instructions, continuation lines joined, by stage.
struct Dockerfile {
    stages: Vec<Vec<(String, String)>>,
}

fn dockerfile() -> Dockerfile {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for instruction in instructions {
        let (word, rest) = instruction
            .split_once(char::is_whitespace)
            .unwrap_or((&instruction, ""));
        let word = word.to_ascii_uppercase();
        if word == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .push((word, rest.trim().to_string()));
    }
    Dockerfile { stages }
}

impl Dockerfile {
    /// The last `word` instruction of the final stage.
    fn last_stage(&self, word: &str) -> Option<String> {
        self.stages
            .last()?
            .iter()
            .rev()
            .find(|(w, _)| w == word)
            .map(|(_, rest)| {
                // JSON form, normalised.
                match serde_json::from_str::<Value>(rest) {
                    Ok(value) => value.to_string(),
                    Err(_) => rest.clone(),
                }
            })
    }

    fn all(&self, stage: usize, word: &str) -> Vec<&str> {
        self.stages[stage]
            .iter()
            .filter(|(w, _)| w == word)
            .map(|(_, rest)| rest.as_str())
            .collect()
    }
}
