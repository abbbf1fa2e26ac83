//! `weir demo`: a first run that works alone. It writes a gateway directory
//! (as `weir init` does) if there is none, serves the demo's two upstreams
//! from this process on loopback (`upstreams.rs`), points the `users` and
//! `orders` upstreams at them on every load, and prints the commands to try
//! (`walkthrough.sh`, which the README shows verbatim and a test runs).
//!
//! None of this is part of `weir run`: a gateway started normally proxies to
//! whatever its `weir.toml` names.

pub mod upstreams;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::reload::ConfigAdjustment;

/// The commands to try, for a gateway on the sample's addresses
/// (`127.0.0.1:8080`, admin `127.0.0.1:9901`) in the directory `demo`.
pub const WALKTHROUGH: &str = include_str!("walkthrough.sh");

/// More commands, shown in the README after [`WALKTHROUGH`] (not printed:
/// the start-up banner stays short); the same test runs them.
pub const MORE: &str = include_str!("more.sh");

/// The plugin the walk-through drops in to show a hot reload.
const HELLO_HEADER: &[u8] = include_bytes!(concat!(env!("WEIR_WASM_DIR"), "/hello_header.wasm"));

/// Where the demo keeps plugins that are not loaded until copied in.
const EXTRAS: &str = "extras";

/// Make `dir` a demo gateway directory unless it is one already; returns
/// the path of its `weir.toml` and the files written.
pub fn prepare(dir: &Path) -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
    let config_path = dir.join("weir.toml");
    let mut written = Vec::new();
    if !config_path.exists() {
        written = crate::tooling::init::write_gateway(&config_path, false)?;
    }
    let extras = dir.join(EXTRAS);
    let hello = extras.join("hello-header.wasm");
    if !hello.exists() {
        std::fs::create_dir_all(&extras)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", extras.display()))?;
        std::fs::write(&hello, HELLO_HEADER)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", hello.display()))?;
        written.push(hello);
    }
    Ok((config_path, written))
}

/// The running demo upstreams.
#[derive(Debug, Clone)]
pub struct Demo {
    users: SocketAddr,
    orders: SocketAddr,
}

impl Demo {
    /// Start the demo upstreams on free loopback ports.
    pub async fn start() -> anyhow::Result<Demo> {
        let users = upstreams::start(upstreams::Role::Users)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the demo upstream `users`: {e}"))?;
        let orders = upstreams::start(upstreams::Role::Orders)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the demo upstream `orders`: {e}"))?;
        Ok(Demo { users, orders })
    }

    /// Point the config's `users` and `orders` upstreams (when it has
    /// them) at the demo servers.
    pub fn apply(&self, config: &mut Config) {
        for (name, addr) in [("users", self.users), ("orders", self.orders)] {
            if let Some(upstream) = config.upstreams.get_mut(name) {
                upstream.targets = vec![format!("http://{addr}")];
            }
        }
    }

    /// [`Demo::apply`] for every reload.
    pub fn adjustment(&self) -> ConfigAdjustment {
        let demo = self.clone();
        Arc::new(move |config: &mut Config| demo.apply(config))
    }

    /// What to print once the gateway listens.
    pub fn banner(&self, dir: &Path, proxy: SocketAddr, admin: Option<SocketAddr>) -> String {
        let mut text = format!(
            "\nDemo: the upstreams `users` ({}) and `orders` ({}) are served by this \
             process, for the demo only.\n\
             Try these (a copy is in the README):\n\n",
            self.users, self.orders
        );
        text.push_str(&walkthrough(dir, proxy, admin));
        text
    }
}

/// [`WALKTHROUGH`] for a gateway on `proxy` (and `admin`) in `dir`.
pub fn walkthrough(dir: &Path, proxy: SocketAddr, admin: Option<SocketAddr>) -> String {
    for_addresses(WALKTHROUGH, dir, proxy, admin)
}

/// `commands`, written for the sample's addresses and the directory
/// `demo`, for a gateway on `proxy` (and `admin`) in `dir`.
pub fn for_addresses(
    commands: &str,
    dir: &Path,
    proxy: SocketAddr,
    admin: Option<SocketAddr>,
) -> String {
    let mut text = commands.replace("http://127.0.0.1:8080", &format!("http://{proxy}"));
    if let Some(admin) = admin {
        text = text.replace("http://127.0.0.1:9901", &format!("http://{admin}"));
    }
    let dir = dir.display().to_string();
    if dir != "demo" {
        text = text.replace(" demo/", &format!(" {dir}/"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walkthrough_follows_the_addresses_and_directory() {
        let proxy: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let admin: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let text = walkthrough(Path::new("/tmp/d"), proxy, Some(admin));
        assert!(!text.contains(":8080") && !text.contains(":9901"));
        assert!(text.contains("http://127.0.0.1:4000/users/7"));
        assert!(text.contains("http://127.0.0.1:4001/admin/plugins"));
        assert!(text.contains("cp /tmp/d/extras/hello-header.wasm /tmp/d/plugins/90-hello.wasm"));
        assert_eq!(
            walkthrough(
                Path::new("demo"),
                "127.0.0.1:8080".parse().unwrap(),
                Some("127.0.0.1:9901".parse().unwrap())
            ),
            WALKTHROUGH
        );
    }

    #[test]
    fn only_the_demo_upstreams_are_repointed() {
        let mut config: Config = toml::from_str(
            "[upstreams.users]\ntargets = [\"http://127.0.0.1:8001\"]\n\
             [upstreams.billing]\ntargets = [\"http://127.0.0.1:8003\"]\n",
        )
        .unwrap();
        let demo = Demo {
            users: "127.0.0.1:5001".parse().unwrap(),
            orders: "127.0.0.1:5002".parse().unwrap(),
        };
        demo.adjustment()(&mut config);
        assert_eq!(config.upstreams["users"].targets, ["http://127.0.0.1:5001"]);
        assert_eq!(
            config.upstreams["billing"].targets,
            ["http://127.0.0.1:8003"]
        );
        assert!(!config.upstreams.contains_key("orders"));
    }
}
