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
//! Redis URL points at a real local `redis-server`. Nothing else in the
//! files is changed for `weir check`; the test that runs the gateway also
//! points the upstreams at local backends.

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
use crate::support::redis::RedisServer;
use crate::support::{Backend, get};

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
fn localize(root: &Path, table: &mut toml::Table, redis: &RedisServer) {
    for key in ["plugins_dir", "cache_dir"] {
        let path = under(root, toml_str(table, &[key]));
        table.insert(key.into(), path.display().to_string().into());
    }
    table
        .get_mut("state")
        .and_then(toml::Value::as_table_mut)
        .expect("weir.toml has [state]")
        .insert("url".into(), redis.url().into());
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

// ---- the Kubernetes example -----------------------------------------------

/// The manifests agree with each other, with the gateway's config in the
/// ConfigMap and with the image: probes on the admin port weir.toml names,
/// a non-root, read-only container, the ConfigMap mounted where `--config`
/// looks and holding a config for each plugin in the image, the cache on a
/// writable volume, the token's Secret, the Redis Service `[state]` names.
#[test]
fn kubernetes_example_agrees_with_its_config_and_the_image() {
    let docs = manifests();
    for doc in &docs {
        assert_ne!(doc["kind"], "Namespace", "the example sets no namespace");
        assert!(
            doc["metadata"]["namespace"].is_null(),
            "{} sets a namespace",
            doc["metadata"]["name"]
        );
    }
    let files = configmap_files(&docs);
    let toml = parse_toml(&files["weir.toml"]);
    let deployment = find(&docs, "Deployment", "weir");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = weir_container(deployment);

    // Two replicas, as a non-root user, with nothing writable but volumes.
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let uid = pod["securityContext"]["runAsUser"].as_u64().expect("uid");
    assert_ne!(uid, 0);
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert!(
        container["resources"]["limits"]["memory"].is_string()
            && container["resources"]["requests"]["cpu"].is_string(),
        "the container declares its resources"
    );

    // Ports: the proxy's and the admin API's, as weir.toml has them.
    let listen: SocketAddr = toml_str(&toml, &["listen"]).parse().unwrap();
    let admin: SocketAddr = toml_str(&toml, &["admin", "listen"]).parse().unwrap();
    assert!(
        admin.ip().is_unspecified(),
        "the kubelet probes the pod's address: the admin API must listen on every interface"
    );
    assert!(listen.ip().is_unspecified());
    assert_eq!(port_number(container, &"http".into()), listen.port());
    assert_eq!(port_number(container, &"admin".into()), admin.port());

    // Probes: /readyz and /healthz on the admin port.
    for (probe, path) in [
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(
            port_number(container, &get["port"]),
            admin.port(),
            "{probe}"
        );
    }

    // The admin token: [admin] token_env, set from the Secret.
    let token_env = toml_str(&toml, &["admin", "token_env"]);
    let env = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == token_env)
        .unwrap_or_else(|| panic!("the container does not set {token_env}"));
    let secret_ref = &env["valueFrom"]["secretKeyRef"];
    let secret = find(&docs, "Secret", secret_ref["name"].as_str().unwrap());
    let key = secret_ref["key"].as_str().unwrap();
    assert!(
        secret["stringData"][key].is_string(),
        "the Secret has no {key}"
    );
    // Weir's own check: refused without the token, served with it.
    let config = weir::config::Config::parse(
        &files["weir.toml"],
        Path::new("/etc/weir/weir.toml"),
        Path::new("/etc/weir"),
    )
    .unwrap();
    assert!(config.admin.check_exposure(None).is_err());
    assert!(config.admin.check_exposure(Some("token")).is_ok());

    // The ConfigMap is mounted, whole, where --config looks; the cache is
    // on a writable volume.
    let volume = |name: &str| -> &Value {
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let mount_of = |path: &str| -> &Value {
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("nothing is mounted at {path}"))
    };
    let config_arg = config_arg(container);
    let config_mount = mount_of(Path::new(&config_arg).parent().unwrap().to_str().unwrap());
    assert!(
        config_mount["subPath"].is_null(),
        "a subPath mount is never updated, so ConfigMap changes would not reach the gateway"
    );
    let config_volume = volume(config_mount["name"].as_str().unwrap());
    assert_eq!(config_volume["configMap"]["name"], "weir-config");
    let cache_mount = mount_of(toml_str(&toml, &["cache_dir"]));
    assert!(volume(cache_mount["name"].as_str().unwrap())["emptyDir"].is_object());
    assert_ne!(cache_mount["readOnly"], true);

    // One config per plugin in the image (and none for a plugin it lacks),
    // each valid JSON; the image's plugin directory links each to the mount.
    let root = tempfile::tempdir().unwrap();
    image_layout(root.path());
    let plugins = under(root.path(), toml_str(&toml, &["plugins_dir"]));
    let mounted = under(root.path(), config_mount["mountPath"].as_str().unwrap());
    let in_image = image_plugins(&plugins);
    let configured: BTreeSet<String> = files
        .keys()
        .filter_map(|k| k.strip_suffix(".json"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        configured, in_image,
        "ConfigMap configs vs the image's plugins"
    );
    for stem in &in_image {
        serde_json::from_str::<Value>(&files[&format!("{stem}.json")])
            .unwrap_or_else(|e| panic!("{stem}.json is not JSON: {e}"));
        // NAME.json beside NAME.wasm leads into the ConfigMap's mount.
        let link = plugins.join(format!("{stem}.json"));
        assert_eq!(
            std::fs::canonicalize(&link).unwrap(),
            std::fs::canonicalize(mounted.join(format!("{stem}.json"))).unwrap(),
            "{} does not lead to the ConfigMap's {stem}.json",
            link.display()
        );
    }
    assert_eq!(config_arg, "/etc/weir/weir.toml");

    // The image runs `weir` with the same arguments.
    let dockerfile = dockerfile();
    assert_eq!(
        dockerfile.last_stage("CMD"),
        Some(serde_json::to_string(&container["args"]).unwrap())
    );

    // Services: the proxy, and the admin API inside the cluster only.
    let template_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selects_weir = |service: &Value| {
        service["spec"]["selector"]
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &template_labels[k] == v)
    };
    let services: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Service").collect();
    let serving = |port: u16| {
        services.iter().copied().find(|s| {
            selects_weir(s)
                && s["spec"]["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| port_number(container, &p["targetPort"]) == port)
        })
    };
    assert!(serving(listen.port()).is_some(), "no Service for the proxy");
    let admin_service = serving(admin.port()).expect("no Service for the admin API");
    assert!(
        admin_service["spec"]["type"].is_null() || admin_service["spec"]["type"] == "ClusterIP",
        "the admin Service must stay inside the cluster"
    );

    // [state]: Redis, at a Service of this example that runs Redis.
    assert_eq!(toml_str(&toml, &["state", "backend"]), "redis");
    let url = toml_str(&toml, &["state", "url"]);
    let host_port = url.strip_prefix("redis://").expect("a redis:// URL");
    let (host, port) = host_port.split_once(':').expect("host:port");
    let port: u64 = port.trim_end_matches('/').parse().unwrap();
    let redis_service = find(&docs, "Service", host);
    let redis_port = redis_service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == port)
        .unwrap_or_else(|| panic!("{host} does not serve port {port}"));
    let redis = docs
        .iter()
        .find(|d| {
            d["kind"] == "Deployment"
                && redis_service["spec"]["selector"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| &d["spec"]["template"]["metadata"]["labels"][k] == v)
        })
        .expect("a Deployment behind the Redis Service");
    let redis_container = &redis["spec"]["template"]["spec"]["containers"][0];
    assert!(
        redis_container["image"]
            .as_str()
            .unwrap()
            .starts_with("redis:")
    );
    assert_eq!(
        u64::from(port_number(redis_container, &redis_port["targetPort"])),
        6379
    );
}

/// `weir check` accepts the ConfigMap's config with the image's plugins,
/// laid out as in the pod (only the Redis URL points elsewhere).
#[tokio::test]
async fn kubernetes_example_config_passes_weir_check() {
    let docs = manifests();
    let redis = RedisServer::start();
    let (pod, _) = Pod::new(&docs, |root, table| localize(root, table, &redis));
    let config = pod.config.to_str().unwrap();
    let (ok, out, err) = run_to_end(&["check", "--config", config]).await;
    assert!(ok, "weir check failed:\n{out}{err}");
    for stem in image_plugins(&pod.root.path().join("opt/weir/plugins")) {
        assert!(out.contains(&format!("plugin {stem} ok")), "{out}");
    }
    assert!(out.contains("upstream users -> users:8080"), "{out}");
}

/// The example as it runs: refused without the admin token; with it, the
/// probes' paths answer without a token and the rest needs it; requests
/// are counted in Redis; and a ConfigMap update (the kubelet's `..data`
/// swap) that changes only a plugin's JSON is live without a restart.
#[tokio::test]
async fn kubernetes_example_runs_shares_limits_in_redis_and_reloads_configmap_updates() {
    let docs = manifests();
    let redis = RedisServer::start();
    let users = Backend::start().await;
    let orders = Backend::start().await;
    let (pod, files) = Pod::new(&docs, |root, table| {
        localize(root, table, &redis);
        // The upstream Services, here.
        let upstreams = table
            .get_mut("upstreams")
            .and_then(toml::Value::as_table_mut)
            .unwrap();
        for (name, backend) in [("users", &users), ("orders", &orders)] {
            let upstream = upstreams.get_mut(name).and_then(toml::Value::as_table_mut);
            upstream.unwrap().insert(
                "targets".into(),
                toml::Value::Array(vec![backend.url().into()]),
            );
        }
    });
    let container = weir_container(find(&docs, "Deployment", "weir"));
    let secret = find(&docs, "Secret", "weir-admin-token");
    let token = secret["stringData"]["token"].as_str().unwrap();
    let probe_path = |probe: &str| container[probe]["httpGet"]["path"].as_str().unwrap();

    // The config's own addresses, on free ports: the admin API on every
    // interface, as in the pod.
    let config = pod.config.to_str().unwrap().to_string();
    let args = [
        "run",
        "--config",
        &config,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "0.0.0.0:0",
    ];
    let refused = tokio::time::timeout(Duration::from_secs(30), run_to_end(&args)).await;
    let (ok, _, err) = refused.expect("weir run started without the admin token");
    assert!(!ok, "weir run started without the admin token");
    assert!(err.contains("WEIR_ADMIN_TOKEN"), "{err}");

    let gateway = Running::start(&args, &[("WEIR_ADMIN_TOKEN", token)]).await;
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        let reply = get(&gateway.admin_url(probe_path(probe))).await;
        assert_eq!(reply.status, 200, "{probe}: {}", reply.text());
    }
    assert_eq!(get(&gateway.admin_url("/admin/plugins")).await.status, 401);
    assert_eq!(get(&gateway.admin_url("/metrics")).await.status, 401);
    let listed = get_with_token(&gateway.admin_url("/admin/plugins"), token).await;
    assert_eq!(listed.status, 200);
    let listed = listed.json();
    let plugins = listed["plugins"].as_array().unwrap();
    let plugin_dir = pod.root.path().join("opt/weir/plugins");
    assert_eq!(plugins.len(), image_plugins(&plugin_dir).len(), "{listed}");
    for plugin in plugins {
        let name = plugin["name"].as_str().unwrap();
        assert_eq!(
            plugin["config_file"],
            plugin_dir
                .join(format!("{name}.json"))
                .display()
                .to_string()
        );
    }

    // A public route: routed to users, rate-limited in Redis.
    assert_eq!(redis_key_count(redis.port, "weir:rate:*"), 0);
    let reply = get(&gateway.url("/users/7")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "hello from backend");
    assert!(reply.header("ratelimit-policy").is_some());
    assert!(
        redis_key_count(redis.port, "weir:rate:*") > 0,
        "the rate limit was not counted in Redis"
    );

    // `kubectl apply` of a ConfigMap whose router config moved the route.
    let mut router: Value = serde_json::from_str(&files["50-router.json"]).unwrap();
    let route = router["routes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["name"] == "user")
        .unwrap();
    route["match"]["path"] = "/people/{id}".into();
    let mut v2 = files.clone();
    v2.insert("50-router.json".into(), router.to_string());
    mount_configmap(&pod.config_dir, "2026_01_01_00_01_00.000000002", &v2);
    let swapped = Instant::now();
    loop {
        if get(&gateway.url("/people/7")).await.status == 200 {
            break;
        }
        assert!(
            swapped.elapsed() < Duration::from_secs(10),
            "the ConfigMap update was not live within 10 s:\n{}",
            gateway.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(&gateway.url("/users/7")).await.status, 404);
    let status = get_with_token(&gateway.admin_url("/admin/plugins"), token)
        .await
        .json();
    assert!(status["reload"]["last_error"].is_null(), "{status}");
    assert!(
        status["reload"]["attempts"].as_u64().unwrap() >= 1,
        "{status}"
    );
    gateway.stop().await;
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

/// Multi-stage, built by the pinned Rust image with the wasm target, a
/// non-root final stage running `weir run` on a config that the image's
/// layout script writes and `weir check` accepts; its admin API stays on
/// loopback, so the container starts without a token.
#[tokio::test]
async fn dockerfile_is_multi_stage_non_root_and_its_config_passes_weir_check() {
    let file = dockerfile();
    assert!(file.stages.len() >= 2, "a multi-stage build");
    let builder_from = file.all(0, "FROM")[0];
    assert!(
        builder_from.starts_with("rust:1.95-bookworm "),
        "{builder_from}"
    );
    let runs = file.all(0, "RUN").join("\n");
    for step in [
        "rustup target add wasm32-wasip2",
        "cargo build --release --locked -p weir",
        "deploy/docker/layout.sh /",
        "weir check --config /etc/weir/weir.toml",
    ] {
        assert!(runs.contains(step), "the builder does not run `{step}`");
    }

    let last = file.stages.len() - 1;
    let user = file.all(last, "USER");
    let user = user.last().expect("the final stage sets USER");
    let name = user.split(':').next().unwrap();
    assert!(
        name != "root" && name.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER {user}: a numeric, non-root user"
    );
    assert_eq!(
        file.last_stage("ENTRYPOINT").as_deref(),
        Some(r#"["weir"]"#)
    );
    assert_eq!(
        file.last_stage("CMD").as_deref(),
        Some(r#"["run","--config","/etc/weir/weir.toml"]"#)
    );
    let exposed: Vec<&str> = file
        .all(last, "EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .collect();
    assert!(
        exposed.contains(&"8080") && exposed.contains(&"9901"),
        "{exposed:?}"
    );
    let copies = file.all(last, "COPY").join("\n");
    for path in [
        "/usr/local/bin/weir",
        "/etc/weir",
        "/opt/weir",
        "/var/cache/weir",
    ] {
        assert!(
            copies.contains(&format!("{path} {path}")),
            "the final stage does not copy {path}"
        );
    }

    // The image's config, as its builder writes it.
    let root = tempfile::tempdir().unwrap();
    image_layout(root.path());
    let config_path = root.path().join("etc/weir/weir.toml");
    let text = std::fs::read_to_string(&config_path).unwrap();
    let image = weir::config::Config::parse(
        &text,
        Path::new("/etc/weir/weir.toml"),
        Path::new("/etc/weir"),
    )
    .unwrap();
    assert_eq!(image.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(image.plugins_dir(), Path::new("/opt/weir/plugins"));
    assert_eq!(image.cache_dir(), Path::new("/var/cache/weir"));
    assert!(image.admin.listen.ip().is_loopback());
    assert!(
        image.admin.check_exposure(None).is_ok(),
        "the image's default config must start without an admin token"
    );
    let mut table: toml::Table = text.parse().unwrap();
    for key in ["plugins_dir", "cache_dir"] {
        let path = under(root.path(), toml_str(&table, &[key]));
        table.insert(key.into(), path.display().to_string().into());
    }
    std::fs::write(&config_path, toml::to_string(&table).unwrap()).unwrap();
    let (ok, out, err) = run_to_end(&["check", "--config", config_path.to_str().unwrap()]).await;
    assert!(ok, "weir check failed on the image's config:\n{out}{err}");
    for stem in image_plugins(&root.path().join("opt/weir/plugins")) {
        assert!(out.contains(&format!("plugin {stem} ok")), "{out}");
    }
}
