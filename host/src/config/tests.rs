//! Parsing and validating `weir.toml`.

use super::*;
use proptest::strategy::Strategy;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("weir.toml"), Path::new("/etc/weir"))
}

#[test]
fn a_public_admin_listener_needs_a_token_or_an_explicit_opt_out() {
    let public = parse("[admin]\nlisten = \"0.0.0.0:9901\"").unwrap().admin;
    let refused = public.check_exposure(None).unwrap_err();
    assert!(
        refused.contains("[admin] listen") && refused.contains("token"),
        "{refused}"
    );
    assert!(public.check_exposure(Some("secret")).is_ok());
    let opted_out = parse("[admin]\nlisten = \"0.0.0.0:9901\"\nallow_public_without_token = true")
        .unwrap()
        .admin;
    assert!(opted_out.check_exposure(None).is_ok());
    let loopback = parse("[admin]\nlisten = \"[::1]:9901\"").unwrap().admin;
    assert!(loopback.check_exposure(None).is_ok());
    let off = parse("[admin]\nenabled = false\nlisten = \"0.0.0.0:9901\"")
        .unwrap()
        .admin;
    assert!(off.check_exposure(None).is_ok());
}

#[test]
fn the_admin_token_comes_from_one_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
    let from_file = parse("[admin]\ntoken_file = \"token\"").unwrap().admin;
    assert_eq!(
        from_file.resolve_token(dir.path()).unwrap().as_deref(),
        Some("s3cret")
    );
    let missing = parse("[admin]\ntoken_env = \"WEIR_TEST_NO_SUCH_VARIABLE\"")
        .unwrap()
        .admin;
    assert!(
        missing
            .resolve_token(dir.path())
            .unwrap_err()
            .contains("WEIR_TEST_NO_SUCH_VARIABLE")
    );
    let both = parse("[admin]\ntoken = \"a\"\ntoken_file = \"token\"")
        .unwrap()
        .admin;
    assert!(
        both.resolve_token(dir.path())
            .unwrap_err()
            .contains("only one")
    );
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let empty = parse("[admin]\ntoken_file = \"empty\"").unwrap().admin;
    assert!(
        empty
            .resolve_token(dir.path())
            .unwrap_err()
            .contains("empty")
    );
    assert_eq!(
        parse("").unwrap().admin.resolve_token(dir.path()).unwrap(),
        None
    );
}

#[test]
fn defaults_apply_to_an_empty_file() {
    let c = parse("").unwrap();
    assert_eq!(c.listen, default_listen());
    assert_eq!(c.plugins_dir(), PathBuf::from("/etc/weir/plugins"));
    assert_eq!(c.limits.hook_deadline_ms, 1_000);
    assert!(c.upstreams.is_empty());
}

#[test]
fn unknown_keys_name_the_key_and_file() {
    let err = parse("listen = \"127.0.0.1:0\"\nlisten_port = 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("weir.toml:"), "{err}");
    assert!(err.contains("listen_port"), "{err}");
    let err = parse("[upstreams.a]\ntargets = [\"http://127.0.0.1:1\"]\nretry = 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("retry"), "{err}");
}

#[test]
fn bad_values_name_the_key() {
    let err = parse("[limits]\nhook_deadline_ms = 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("limits.hook_deadline_ms"), "{err}");
    let err = parse("[upstreams.users]\ntargets = [\"ftp://x\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("upstreams.users.targets[0]"), "{err}");
    let err = parse("[upstreams.users]\ntargets = []\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("upstreams.users.targets"), "{err}");
    let err = parse("listen = \"nowhere\"\n").unwrap_err().to_string();
    assert!(err.contains("listen"), "{err}");
    let err = parse("[log]\nformat = \"xml\"\n").unwrap_err().to_string();
    assert!(err.contains("xml"), "{err}");
}

proptest::proptest! {
    /// Whatever the file holds, parsing answers Ok or an error naming
    /// the file; it never panics.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        if let Err(e) = parse(&text) {
            proptest::prop_assert!(e.to_string().starts_with("weir.toml"));
        }
    }

    /// Known keys with arbitrary values: still no panic, and a value out
    /// of range is reported by its key.
    #[test]
    fn arbitrary_values_for_known_keys_never_panic(
        section in proptest::sample::select(vec!["limits", "budgets", "runtime", "state", "admin", "reload", "log"]),
        key in proptest::sample::select(vec![
            "max_header_bytes", "max_header_count", "hook_deadline_ms", "plugin_memory_mb",
            "kv_max_keys", "outbound_calls_per_hook", "log_lines_per_second",
            "max_instances_per_plugin", "pool_instances", "backend", "url", "listen",
            "token", "debounce_ms", "level", "format",
        ]),
        value in proptest::prop_oneof![
            proptest::num::i64::ANY.prop_map(|v| v.to_string()),
            "\\PC{0,20}".prop_map(|v| format!("{v:?}")),
            proptest::bool::ANY.prop_map(|v| v.to_string()),
        ],
    ) {
        let text = format!("[{section}]\n{key} = {value}\n");
        let _ = parse(&text);
    }

    /// Upstream targets of any shape are checked, never trusted.
    #[test]
    fn arbitrary_targets_never_panic(target in "\\PC{0,40}") {
        let _ = parse_target(&target);
        let _ = parse(&format!("[upstreams.u]\ntargets = [{target:?}]\n"));
    }
}

#[test]
fn targets_must_be_base_urls() {
    assert!(parse_target("http://127.0.0.1:5001").is_ok());
    assert!(parse_target("http://127.0.0.1:5001/").is_ok());
    assert!(parse_target("http://127.0.0.1:5001/api").is_err());
    assert!(parse_target("127.0.0.1:5001").is_err());
    assert!(parse_target("https://example.com").unwrap().0);
    assert!(parse_target("ftp://example.com").is_err());
}

#[test]
fn targets_may_be_names_or_srv_records() {
    use super::TargetSpec;
    let fixed = parse_target_spec("http://[::1]:5001").unwrap();
    assert!(matches!(fixed, TargetSpec::Fixed { https: false, .. }));
    assert_eq!(
        parse_target_spec("https://API.internal").unwrap(),
        TargetSpec::Name {
            https: true,
            host: "api.internal".into(),
            port: 443,
            authority: "API.internal".parse().unwrap(),
        }
    );
    assert_eq!(
        parse_target_spec("srv+https:_api._tcp.example.com").unwrap(),
        TargetSpec::Srv {
            https: true,
            name: "_api._tcp.example.com".into()
        }
    );
    for bad in ["srv:", "srv:a..b", "srv:.a", "srv:a b", "srvx:_a._tcp.b"] {
        assert!(parse_target_spec(bad).is_err(), "{bad}");
    }
}

#[test]
fn discovery_bounds_are_checked() {
    let config =
        parse("[discovery]\nnameservers = [\"127.0.0.1:5353\"]\nmin_ttl_ms = 500\n").unwrap();
    assert_eq!(config.discovery.nameservers.len(), 1);
    assert_eq!(config.discovery.max_ttl_ms, 300_000);
    assert!(parse("[discovery]\nmin_ttl_ms = 0\n").is_err());
    assert!(parse("[discovery]\nmin_ttl_ms = 5000\nmax_ttl_ms = 1000\n").is_err());
    assert!(parse("[discovery]\nnameservers = [\"127.0.0.1\"]\n").is_err());
    assert!(parse("[upstreams.u]\ntargets = [\"srv:_http._tcp.svc.example\"]\n").is_ok());
}

#[test]
fn redis_cluster_state_needs_seed_nodes_and_refuses_the_other_backends_keys() {
    let ok = parse(
        "[state]\nbackend = \"redis_cluster\"\n\
         nodes = [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]\n",
    )
    .unwrap();
    assert_eq!(ok.state.backend, StateBackend::RedisCluster);
    assert_eq!(ok.state.nodes.len(), 2);
    let refused = |text: &str| parse(text).unwrap_err().to_string();
    let err = refused("[state]\nbackend = \"redis_cluster\"\n");
    assert!(
        err.contains("`state.nodes` must list at least one"),
        "{err}"
    );
    let err = refused(
        "[state]\nbackend = \"redis_cluster\"\nnodes = [\"redis://a:1\", \"http://b:2\"]\n",
    );
    assert!(err.contains("`state.nodes[1]`"), "{err}");
    let err = refused("[state]\nbackend = \"redis_cluster\"\nnodes = [\"redis://a:1/2\"]\n");
    assert!(err.contains("only database 0"), "{err}");
    let err = refused(
        "[state]\nbackend = \"redis_cluster\"\nnodes = [\"redis://a:1\"]\nurl = \"redis://a:1\"\n",
    );
    assert!(
        err.contains("`state.url` is for `backend = \"redis\"`"),
        "{err}"
    );
    let err =
        refused("[state]\nbackend = \"redis\"\nurl = \"redis://a:1\"\nnodes = [\"redis://a:1\"]\n");
    assert!(
        err.contains("`state.nodes` is for `backend = \"redis_cluster\"`"),
        "{err}"
    );
    let err = refused(
        "[state]\nbackend = \"redis_cluster\"\nnodes = [\"redis://a:1\"]\ntimeout_ms = 0\n",
    );
    assert!(err.contains("state.timeout_ms"), "{err}");
}
