//! The Dockerfile: multi-stage, non-root, and its config passes
//! `weir check`.

use super::*;

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
        // The JavaScript runtime's C compiler, so the image's `weir`
        // has `weir build-js`.
        "clang llvm wasi-libc",
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
