//! Asking DNS: the resolver built from `[discovery]`, and one lookup of a
//! source, giving its endpoints and how long the answer may be used.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, Record};

use super::srv::{SrvRecord, by_priority};
use super::{Endpoint, Source};
use crate::config::DiscoveryConfig;

/// The resolver of a pipeline's upstreams, or why none could be built
/// (every lookup then fails with that reason).
pub type Resolver = Arc<Result<TokioResolver, String>>;

/// Build the resolver `[discovery]` describes. Answers are not cached: the
/// discovery task asks again exactly when the TTL says, and wants the
/// nameserver's answer then, not a cached one about to expire.
pub fn resolver(config: &DiscoveryConfig) -> Resolver {
    Arc::new(build(config))
}

fn build(config: &DiscoveryConfig) -> Result<TokioResolver, String> {
    let mut builder = if config.nameservers.is_empty() {
        TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?
    } else {
        let servers = config
            .nameservers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let options = builder.options_mut();
    options.cache_size = 0;
    options.timeout = Duration::from_millis(config.timeout_ms);
    options.attempts = 2;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // Hosts-file names never get here (they stay fixed targets).
    options.use_hosts_file = ResolveHosts::Never;
    builder
        .build()
        .map_err(|e| format!("cannot build the DNS resolver: {e}"))
}

/// What one lookup found: the endpoints and the smallest TTL among the
/// records that gave them (seconds).
#[derive(Debug)]
pub struct Answer {
    /// The addresses.
    pub endpoints: Vec<Endpoint>,
    /// Seconds the answer may be used.
    pub ttl: u32,
    /// Why SRV target hosts were left out (they did not resolve in time).
    pub skipped: Vec<String>,
}

/// Resolve `source`, each query within `limit`. An answer without
/// addresses is an error: the caller keeps what it had.
pub async fn lookup(
    resolver: &Resolver,
    source: &Source,
    limit: Duration,
) -> Result<Answer, String> {
    let resolver = resolver.as_ref().as_ref().map_err(Clone::clone)?;
    let origin: Arc<str> = source.label().into();
    let answer = match source {
        Source::Name { https, host, port } => {
            let (ips, ttl) = within(limit, host, addresses(resolver, host, &[])).await?;
            let server_name: Arc<str> = host.as_str().into();
            let endpoints = ips
                .into_iter()
                .map(|ip| Endpoint {
                    addr: SocketAddr::new(ip, *port),
                    https: *https,
                    server_name: server_name.clone(),
                    origin: origin.clone(),
                    weight: 1,
                    tier: 0,
                })
                .collect();
            Answer {
                endpoints,
                ttl,
                skipped: Vec::new(),
            }
        }
        Source::Srv { https, name } => srv(resolver, name, *https, origin, limit).await?,
    };
    if answer.endpoints.is_empty() {
        return Err(format!("`{}`: no addresses", source.label()));
    }
    Ok(answer)
}

/// `query`, failing when it takes longer than `limit`.
async fn within<T>(
    limit: Duration,
    name: &str,
    query: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(limit, query)
        .await
        .unwrap_or_else(|_| Err(format!("`{name}`: no answer in {limit:?}")))
}

/// The A and AAAA addresses of `host` and their TTL, from `known` records
/// (an SRV answer's additional section) when they hold any, else asked.
async fn addresses(
    resolver: &TokioResolver,
    host: &str,
    known: &[Record],
) -> Result<(Vec<IpAddr>, u32), String> {
    let from_known = ips_for(known, host);
    if !from_known.0.is_empty() {
        return Ok(from_known);
    }
    // Names are asked as the system's resolver asks them: with
    // resolv.conf, fewer dots than `ndots` go through the search list
    // first (Kubernetes' `users.other-namespace`, Docker's `backend`); a
    // trailing `.` is absolute; with `[discovery] nameservers`, no search.
    let lookup = resolver
        .lookup_ip(host)
        .await
        .map_err(|e| format!("`{host}`: {e}"))?;
    let (ips, ttl) = ips_for(lookup.as_lookup().answers(), "");
    Ok((ips, ttl))
}

/// The addresses in `records` (owned by `host`, unless `host` is empty)
/// and their smallest TTL.
fn ips_for(records: &[Record], host: &str) -> (Vec<IpAddr>, u32) {
    let mut ips = Vec::new();
    let mut ttl = u32::MAX;
    for record in records {
        if !host.is_empty() && !same_name(&record.name.to_ascii(), host) {
            continue;
        }
        let ip = match &record.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
            _ => continue,
        };
        if !ips.contains(&ip) {
            ips.push(ip);
        }
        ttl = ttl.min(record.ttl);
    }
    let ttl = if ips.is_empty() { 0 } else { ttl };
    (ips, ttl)
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Follow the SRV records of `name`: each address of each record's target
/// an endpoint with the record's weight and port, in the tier of its
/// priority among those that resolved, TLS naming the record's target.
/// Target hosts are resolved at once, each within `limit`; one that fails
/// is skipped, not the whole answer.
async fn srv(
    resolver: &TokioResolver,
    name: &str,
    https: bool,
    origin: Arc<str>,
    limit: Duration,
) -> Result<Answer, String> {
    let label = format!("srv:{name}");
    let lookup = within(limit, &label, async {
        resolver
            .srv_lookup(name)
            .await
            .map_err(|e| format!("`{label}`: {e}"))
    })
    .await?;
    let (records, mut ttl) = srv_records(lookup.answers());
    let groups = by_priority(records);
    let mut hosts: Vec<&str> = groups.iter().flatten().map(|r| r.target.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    let known = lookup.additionals();
    let resolved = futures::future::join_all(
        hosts
            .iter()
            .map(|host| within(limit, host, addresses(resolver, host, known))),
    )
    .await;
    let resolved: HashMap<&str, Result<(Vec<IpAddr>, u32), String>> =
        hosts.into_iter().zip(resolved).collect();
    let mut endpoints = Vec::new();
    let mut tier = 0;
    for group in &groups {
        let before = endpoints.len();
        for record in group {
            let Some(Ok((ips, address_ttl))) = resolved.get(record.target.as_str()) else {
                continue;
            };
            ttl = ttl.min(*address_ttl);
            let server_name: Arc<str> = record.target.as_str().into();
            endpoints.extend(ips.iter().map(|ip| Endpoint {
                addr: SocketAddr::new(*ip, record.port),
                https,
                server_name: server_name.clone(),
                origin: origin.clone(),
                weight: u32::from(record.weight),
                tier,
            }));
        }
        // A priority none of whose hosts resolved takes no tier, so the
        // lowest that resolved is tier 0, shared with the other sources.
        if endpoints.len() > before {
            tier += 1;
        }
    }
    let skipped: Vec<String> = resolved.into_values().filter_map(Result::err).collect();
    if endpoints.is_empty() {
        return Err(skipped
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("`{label}`: no SRV records")));
    }
    Ok(Answer {
        endpoints,
        ttl,
        skipped,
    })
}

/// The SRV records among `answers`, and their smallest TTL.
fn srv_records(answers: &[Record]) -> (Vec<SrvRecord>, u32) {
    let mut ttl = u32::MAX;
    let mut records = Vec::new();
    for record in answers {
        if let RData::SRV(srv) = &record.data {
            ttl = ttl.min(record.ttl);
            records.push(SrvRecord {
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: srv
                    .target
                    .to_ascii()
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
            });
        }
    }
    (records, ttl)
}
