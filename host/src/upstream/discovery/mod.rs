//! DNS service discovery for upstream targets. A target written with a DNS
//! name (`http://api.internal:8080`) is resolved by the gateway, A and
//! AAAA, each address becoming a target of its own, and re-resolved when
//! the answer's TTL runs out (Envoy's STRICT_DNS); `srv:` targets follow
//! SRV records (every priority, each a fallback tier the balancer uses
//! when the lower ones have no available target; weights as shares).
//! Targets that appear join the balancer, targets that vanish leave it
//! while requests already sent to them finish. A failed lookup keeps the
//! last good answer, and so does a reload: the new pipeline starts from the
//! old one's answers (`seed.rs`).
//!
//! Names the system answers from its hosts file (`localhost` and what
//! `/etc/hosts` lists) have no TTL and are not in DNS: they stay fixed
//! targets, connected by the system resolver as before.

mod resolve;
pub mod seed;
mod srv;
mod task;

use std::sync::Arc;

use http::uri::Authority;

pub use resolve::{Resolver, resolver};
pub use task::{Discovery, Status, Watch, run};

use crate::config::TargetSpec;

/// A target source that needs resolving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A and AAAA records of `host`, each on `port`.
    Name {
        /// Over TLS.
        https: bool,
        /// The DNS name.
        host: String,
        /// The port.
        port: u16,
    },
    /// SRV records of `name`.
    Srv {
        /// Over TLS.
        https: bool,
        /// The SRV owner name.
        name: String,
    },
}

impl Source {
    /// How the source is written in the configuration (its targets'
    /// `origin`).
    pub fn label(&self) -> String {
        match self {
            Source::Name { host, port, .. } => format!("{host}:{port}"),
            Source::Srv { https: false, name } => format!("srv:{name}"),
            Source::Srv { https: true, name } => format!("srv+https:{name}"),
        }
    }
}

/// One address found for a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: std::net::SocketAddr,
    /// Over TLS.
    pub https: bool,
    /// The name TLS sends and verifies.
    pub server_name: Arc<str>,
    /// The source's label.
    pub origin: Arc<str>,
    /// Its SRV weight (1 for A/AAAA).
    pub weight: u32,
    /// Its fallback tier: the rank of its SRV priority among the
    /// priorities of the answer that resolved (0 for A/AAAA).
    pub tier: u32,
}

/// Split an upstream's targets into fixed ones (`https`, authority) and the
/// sources to resolve.
pub fn plan(specs: &[TargetSpec]) -> (Vec<(bool, Authority)>, Vec<Source>) {
    let hosts = hosts_file_names();
    let mut fixed = Vec::new();
    let mut sources = Vec::new();
    for spec in specs {
        match spec {
            TargetSpec::Fixed { https, authority } => fixed.push((*https, authority.clone())),
            TargetSpec::Name {
                https,
                host,
                port,
                authority,
            } => {
                if is_local_name(host, &hosts) {
                    fixed.push((*https, authority.clone()));
                } else {
                    sources.push(Source::Name {
                        https: *https,
                        host: host.clone(),
                        port: *port,
                    });
                }
            }
            TargetSpec::Srv { https, name } => sources.push(Source::Srv {
                https: *https,
                name: name.clone(),
            }),
        }
    }
    (fixed, sources)
}

/// `localhost`, `*.localhost` (RFC 6761) or a name in the hosts file.
fn is_local_name(host: &str, hosts: &[String]) -> bool {
    let host = host.trim_end_matches('.');
    host == "localhost" || host.ends_with(".localhost") || hosts.iter().any(|h| h == host)
}

/// The names `/etc/hosts` lists (lower case); none if it cannot be read.
fn hosts_file_names() -> Vec<String> {
    std::fs::read_to_string("/etc/hosts")
        .map(|text| parse_hosts(&text))
        .unwrap_or_default()
}

fn parse_hosts(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.split_whitespace().skip(1))
        .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
        .collect()
}

/// Each source's last good endpoints.
pub type Answers = Vec<(Source, Vec<Endpoint>)>;

/// The endpoints `answers` holds for `source` (none if it has none).
pub fn endpoints(answers: &Answers, source: &Source) -> Vec<Endpoint> {
    answers
        .iter()
        .find(|(s, _)| s == source)
        .map(|(_, e)| e.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_target_spec;

    #[test]
    fn local_names_stay_fixed_and_others_are_resolved() {
        let hosts = parse_hosts("127.0.0.1 localhost\n10.0.0.5 db.lan db # x\n# 1.2.3.4 gone\n");
        assert_eq!(hosts, ["localhost", "db.lan", "db"]);
        assert!(is_local_name("db.lan", &hosts));
        assert!(is_local_name("app.localhost", &[]));
        assert!(!is_local_name("gone", &hosts));
        let specs: Vec<TargetSpec> = [
            "http://127.0.0.1:1",
            "http://localhost:2",
            "https://api.weir.test:3",
            "srv:_http._tcp.svc.weir.test",
        ]
        .iter()
        .map(|t| parse_target_spec(t).unwrap())
        .collect();
        let (fixed, sources) = plan(&specs);
        assert_eq!(fixed.len(), 2);
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].label(), "api.weir.test:3");
        assert_eq!(sources[1].label(), "srv:_http._tcp.svc.weir.test");
    }
}
