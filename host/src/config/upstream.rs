//! `[upstreams.NAME]`: targets, balancing, timeouts, retries and health,
//! and their checks.

use serde::{Deserialize, Serialize};

use super::UpstreamTls;

/// `[upstreams.NAME]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The targets: base URLs such as `http://127.0.0.1:5001` or
    /// `https://api.internal:8443` (a DNS name is resolved by the gateway
    /// and re-resolved as its TTL says, each address a target), or SRV
    /// records, `srv:_service._proto.name` (plain HTTP) and
    /// `srv+https:_service._proto.name` (TLS).
    pub targets: Vec<String>,
    /// How a target is chosen.
    #[serde(default)]
    pub balance: BalanceConfig,
    /// The key of `consistent_hash`: `client_ip` or `header:NAME`.
    #[serde(default)]
    pub hash_on: HashOn,
    /// `http1` (default) or `h2c` (HTTP/2 with prior knowledge).
    #[serde(default)]
    pub protocol: Protocol,
    /// Limit on establishing a connection.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Limit on receiving the response head after sending the request.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Extra attempts for idempotent requests after a connection failure or
    /// a 502/503 answer, each on another target when there is one.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Active health checks; none when absent.
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// Passive ejection on connection failures.
    #[serde(default)]
    pub passive: PassiveConfig,
    /// Requests in flight to one target of this upstream; by default
    /// `budgets.upstream_connections_per_target`.
    #[serde(default)]
    pub max_connections_per_target: Option<u32>,
    /// TLS to `https://` targets.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// Idle time after which a WebSocket tunnel through this upstream is
    /// closed.
    #[serde(default = "default_tunnel_idle_ms")]
    pub tunnel_idle_timeout_ms: u64,
}

fn default_tunnel_idle_ms() -> u64 {
    60_000
}

/// `balance`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceConfig {
    /// Each target in turn.
    #[default]
    RoundRobin,
    /// The target with the fewest requests in flight.
    LeastRequests,
    /// A hash of `hash_on`, stable while the targets are.
    ConsistentHash,
}

/// `hash_on`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum HashOn {
    /// The client's IP address.
    #[default]
    ClientIp,
    /// A request header's value (requests without it are spread round robin).
    Header(String),
}

impl TryFrom<String> for HashOn {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if value == "client_ip" {
            return Ok(HashOn::ClientIp);
        }
        match value.strip_prefix("header:") {
            Some(name) if http::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                Ok(HashOn::Header(name.to_ascii_lowercase()))
            }
            _ => Err(format!("`{value}` is not `client_ip` or `header:NAME`")),
        }
    }
}

impl From<HashOn> for String {
    fn from(value: HashOn) -> String {
        match value {
            HashOn::ClientIp => "client_ip".to_string(),
            HashOn::Header(name) => format!("header:{name}"),
        }
    }
}

/// `protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 over cleartext, prior knowledge.
    H2c,
}

/// `[upstreams.NAME.health]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Path probed with GET; 2xx and 3xx are healthy.
    pub path: String,
    /// Time between rounds of probes.
    #[serde(default = "default_health_interval_ms")]
    pub interval_ms: u64,
    /// Limit on one probe.
    #[serde(default = "default_health_timeout_ms")]
    pub timeout_ms: u64,
    /// Failed probes in a row that take a target out.
    #[serde(default = "default_threshold")]
    pub unhealthy_after: u32,
    /// Passed probes in a row that bring it back.
    #[serde(default = "default_threshold")]
    pub healthy_after: u32,
}

/// `[upstreams.NAME.passive]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveConfig {
    /// Connection failures in a row that eject a target; 0 disables.
    pub failures: u32,
    /// How long an ejected target stays out.
    pub eject_ms: u64,
}

impl Default for PassiveConfig {
    fn default() -> Self {
        PassiveConfig {
            failures: 3,
            eject_ms: 10_000,
        }
    }
}

fn default_connect_timeout_ms() -> u64 {
    1_000
}
fn default_request_timeout_ms() -> u64 {
    15_000
}
fn default_retries() -> u32 {
    1
}
fn default_health_interval_ms() -> u64 {
    2_000
}
fn default_health_timeout_ms() -> u64 {
    1_000
}
fn default_threshold() -> u32 {
    2
}

pub(super) fn validate_upstream(name: &str, upstream: &UpstreamConfig) -> Result<(), String> {
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !valid_name {
        return Err(format!(
            "upstream name `{name}` may only hold letters, digits, `-`, `_` and `.`"
        ));
    }
    if upstream.targets.is_empty() {
        return Err(format!(
            "`upstreams.{name}.targets` must list at least one target"
        ));
    }
    for (i, target) in upstream.targets.iter().enumerate() {
        parse_target_spec(target)
            .map_err(|why| format!("`upstreams.{name}.targets[{i}]` = `{target}`: {why}"))?;
    }
    if upstream
        .tls
        .as_ref()
        .is_some_and(|t| t.client_cert.is_some() != t.client_key.is_some())
    {
        return Err(format!(
            "`upstreams.{name}.tls` needs both `client_cert` and `client_key`, or neither"
        ));
    }
    if upstream.connect_timeout_ms == 0 || upstream.request_timeout_ms == 0 {
        return Err(format!(
            "`upstreams.{name}` timeouts must be greater than 0"
        ));
    }
    if let Some(health) = &upstream.health {
        if !health.path.starts_with('/') || health.path.parse::<http::uri::PathAndQuery>().is_err()
        {
            return Err(format!(
                "`upstreams.{name}.health.path` must be a path starting with `/`"
            ));
        }
        let values = [
            health.interval_ms,
            health.timeout_ms,
            u64::from(health.unhealthy_after),
            u64::from(health.healthy_after),
        ];
        if values.contains(&0) {
            return Err(format!(
                "`upstreams.{name}.health` values must be greater than 0"
            ));
        }
    }
    Ok(())
}

/// Parse a target base URL: `http://host:port` or `https://host:port`,
/// with no path beyond `/`. Returns whether it is HTTPS, and the authority.
pub fn parse_target(target: &str) -> Result<(bool, http::uri::Authority), String> {
    let uri: http::Uri = target.parse().map_err(|e| format!("not a URL ({e})"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(format!(
                "scheme `{other}` is not supported (use http:// or https://)"
            ));
        }
        None => return Err("missing scheme (use http://host:port)".into()),
    };
    let authority = uri.authority().cloned().ok_or("missing host")?;
    if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
        return Err("a target is a base URL without a path or query".into());
    }
    Ok((https, authority))
}

/// A target as configured: a fixed address, a DNS name to resolve (and keep
/// resolving), or SRV records to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// An IP address (or a name left to the system: see
    /// `upstream::discovery`), used as it is.
    Fixed {
        /// Over TLS.
        https: bool,
        /// `host:port`.
        authority: http::uri::Authority,
    },
    /// A DNS name whose A and AAAA records are the targets.
    Name {
        /// Over TLS (SNI and verification use the name).
        https: bool,
        /// The name, without brackets or port.
        host: String,
        /// The port every address is reached on.
        port: u16,
        /// `host:port` as written, for a name left to the system.
        authority: http::uri::Authority,
    },
    /// `srv:NAME` or `srv+https:NAME`: the SRV records of NAME.
    Srv {
        /// Over TLS (SNI and verification use each record's target name).
        https: bool,
        /// The SRV owner name, e.g. `_http._tcp.api.internal`.
        name: String,
    },
}

/// Parse a target: a base URL (see [`parse_target`]) or `srv:NAME` /
/// `srv+https:NAME`.
pub fn parse_target_spec(target: &str) -> Result<TargetSpec, String> {
    for (prefix, https) in [("srv:", false), ("srv+https:", true)] {
        if let Some(name) = target.strip_prefix(prefix) {
            let valid = !name.is_empty()
                && name.len() <= 253
                && name.split('.').filter(|l| !l.is_empty()).all(|label| {
                    label.len() <= 63
                        && label
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
                && !name.starts_with('.')
                && !name.contains("..");
            if !valid {
                return Err(format!(
                    "`{name}` is not a DNS name (write `{prefix}_service._tcp.example.com`)"
                ));
            }
            return Ok(TargetSpec::Srv {
                https,
                name: name.to_string(),
            });
        }
    }
    let (https, authority) = parse_target(target)?;
    let host = authority.host();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return Ok(TargetSpec::Fixed { https, authority });
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok(TargetSpec::Name {
        https,
        host: host.to_ascii_lowercase(),
        port,
        authority,
    })
}
