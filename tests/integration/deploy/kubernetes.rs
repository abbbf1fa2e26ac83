//! The Kubernetes example (deploy/kubernetes): its manifests against its
//! config and the image, `weir check`, and the gateway running from it.

use super::*;

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

    // [state]: a Redis Cluster, whose seed nodes are pods of this
    // example's StatefulSet, by their stable names behind its headless
    // Service, on the port its containers serve, in cluster mode.
    assert_eq!(toml_str(&toml, &["state", "backend"]), "redis_cluster");
    let nodes = toml["state"]["nodes"].as_array().expect("[state] nodes");
    assert!(nodes.len() >= 2, "several seed nodes, so one may be down");
    let redis = find(&docs, "StatefulSet", "weir-redis");
    let redis_service = find(
        &docs,
        "Service",
        redis["spec"]["serviceName"].as_str().unwrap(),
    );
    assert_eq!(
        redis_service["spec"]["clusterIP"], "None",
        "a headless Service"
    );
    let replicas = redis["spec"]["replicas"].as_u64().unwrap();
    assert!(replicas >= 6, "three masters and three replicas");
    let redis_container = &redis["spec"]["template"]["spec"]["containers"][0];
    assert!(
        redis_container["image"]
            .as_str()
            .unwrap()
            .starts_with("redis:")
    );
    let args: Vec<&str> = redis_container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--cluster-enabled", "yes"]),
        "{args:?}"
    );
    for node in nodes {
        let url = node.as_str().unwrap();
        let host_port = url.strip_prefix("redis://").expect("a redis:// URL");
        let (host, port) = host_port.split_once(':').expect("host:port");
        let (pod, service) = host.split_once('.').expect("POD.SERVICE");
        assert_eq!(service, redis_service["metadata"]["name"].as_str().unwrap());
        let ordinal: u64 = pod
            .strip_prefix("weir-redis-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{pod} is not a pod of the StatefulSet"));
        assert!(ordinal < replicas, "{pod}");
        let port: u16 = port.parse().unwrap();
        assert_eq!(port_number(redis_container, &"redis".into()), port);
    }
    // The Job that forms the cluster once.
    let create = find(&docs, "Job", "weir-redis-cluster-create");
    let script = create["spec"]["template"]["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap();
    assert!(
        script.contains("--cluster create") && script.contains("--cluster-replicas 1"),
        "{script}"
    );

    // [tls.acme]: certificates from an ACME directory for named domains,
    // validated on the HTTPS port, which the proxy Service exposes as 443.
    let acme = &toml["tls"]["acme"];
    assert!(toml_str(&toml, &["tls", "acme", "directory"]).starts_with("https://"));
    assert!(!acme["domains"].as_array().unwrap().is_empty());
    assert_eq!(
        toml_str(&toml, &["tls", "acme", "challenge"]),
        "tls-alpn-01"
    );
    let https: SocketAddr = toml_str(&toml, &["tls", "listen"]).parse().unwrap();
    assert_eq!(port_number(container, &"https".into()), https.port());
    let proxy = serving(https.port()).expect("no Service for HTTPS");
    assert!(
        proxy["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["port"] == 443 && port_number(container, &p["targetPort"]) == https.port()),
        "tls-alpn-01 validates on port 443: the Service must map 443 to the HTTPS listener"
    );
}

/// `weir check` accepts the ConfigMap's config with the image's plugins,
/// laid out as in the pod (only the Redis URL points elsewhere).
#[tokio::test]
async fn kubernetes_example_config_passes_weir_check() {
    let docs = manifests();
    let cluster = RedisCluster::start();
    let (pod, _) = Pod::new(&docs, |root, table| localize(root, table, &cluster));
    let config = pod.config.to_str().unwrap();
    let (ok, out, err) = run_to_end(&["check", "--config", config]).await;
    assert!(ok, "weir check failed:\n{out}{err}");
    for stem in image_plugins(&pod.root.path().join("opt/weir/plugins")) {
        assert!(out.contains(&format!("plugin {stem} ok")), "{out}");
    }
    // `users` is a Service name: resolved by the cluster's DNS, which is
    // not here, so check names the failure rather than the addresses.
    assert!(
        out.contains("upstream users -> ")
            && (out.contains("(from users:8080)") || out.contains("upstream users: DNS:")),
        "{out}"
    );
}

/// The example as it runs: refused without the admin token; with it, the
/// probes' paths answer without a token and the rest needs it; requests
/// are counted in the Redis Cluster; an unreachable ACME directory is
/// shown in `/admin/tls` and stops nothing; and a ConfigMap update (the kubelet's `..data`
/// swap) that changes only a plugin's JSON is live without a restart.
#[tokio::test]
async fn kubernetes_example_runs_shares_limits_in_a_redis_cluster_and_reloads_configmap_updates() {
    let docs = manifests();
    let cluster = RedisCluster::start();
    let users = Backend::start().await;
    let orders = Backend::start().await;
    let (pod, files) = Pod::new(&docs, |root, table| {
        localize(root, table, &cluster);
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
    assert_eq!(cluster_key_count(&cluster, "weir:rate:*"), 0);
    let reply = get(&gateway.url("/users/7")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "hello from backend");
    assert!(reply.header("ratelimit-policy").is_some());
    assert!(
        cluster_key_count(&cluster, "weir:rate:{*") > 0,
        "the rate limit was not counted in the Redis Cluster (hash-tagged keys)"
    );

    // The ACME directory cannot be reached: the order fails, is shown with
    // its cause and backs off, and the proxy serves on.
    let domain = parse_toml(&files["weir.toml"])["tls"]["acme"]["domains"][0]
        .as_str()
        .unwrap()
        .to_string();
    let failed = Instant::now();
    let acme = loop {
        let tls = get_with_token(&gateway.admin_url("/admin/tls"), token)
            .await
            .json();
        let name = tls["acme"]["names"][0].clone();
        if name["last_error"].is_string() {
            break name;
        }
        assert!(
            failed.elapsed() < Duration::from_secs(20),
            "no ACME failure shown: {tls}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(acme["status"], "failed", "{acme}");
    assert_eq!(acme["name"], domain.as_str(), "{acme}");
    assert!(!acme["next_attempt"].is_null(), "{acme}");
    assert_eq!(get(&gateway.url("/users/7")).await.status, 200);

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
