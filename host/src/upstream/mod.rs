//! Named upstreams: their targets (`http://` or `https://`), balancing,
//! keep-alive connection pools (HTTP/1.1 or HTTP/2, by prior knowledge or
//! ALPN), health (active checks and passive ejection), timeouts and
//! retries, and the discovery of targets named by DNS. The host owns all
//! of this; plugins only name the upstream.

mod balance;
pub mod discovery;
mod health;
mod send;
mod set;
mod target;
pub mod tls;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Method};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An upstream's connection pool: plain or TLS, HTTP/1.1 or HTTP/2.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Body>;

pub use balance::Balancer;
pub use set::TargetSet;
pub use target::{Ejection, Target};

use crate::config::{
    BalanceConfig, Budgets, DiscoveryConfig, HashOn, HealthConfig, Protocol, UpstreamConfig,
    parse_target_spec,
};
use crate::http::body::Body;
use crate::telemetry::host_metrics::{HostMetrics, UpstreamMetrics};

/// All upstreams of a pipeline, by name. Dropping it stops their health
/// checks.
pub struct Upstreams {
    by_name: BTreeMap<String, Upstream>,
    /// Health-check tasks hold a weak reference; they end when this goes.
    _alive: Arc<()>,
}

impl Upstreams {
    /// Build from `[upstreams.*]` (already validated) and start health
    /// checks. Must run inside a tokio runtime when any upstream has them.
    /// `workers` is the number of worker threads: each gets its own
    /// connection pool per upstream (`affinity.rs`), and every other thread
    /// shares one more.
    /// Relative paths (CA files, client certificates) are resolved against
    /// `base`. Each upstream records into `metrics`. Upstreams with targets
    /// named by DNS get a discovery task resolving them per `discovery`,
    /// starting from what the same upstream of `previous` (the pipeline
    /// being replaced) last found.
    pub fn new(
        configs: &BTreeMap<String, UpstreamConfig>,
        budgets: &Budgets,
        workers: usize,
        base: &std::path::Path,
        metrics: &Arc<HostMetrics>,
        discovery: &DiscoveryConfig,
        previous: Option<&Upstreams>,
    ) -> Result<Self, String> {
        let alive = Arc::new(());
        let mut by_name = BTreeMap::new();
        let mut resolver = None;
        for (name, config) in configs {
            let context = Context {
                budgets,
                pools: workers + 1,
                base,
                discovery,
                previous: previous.and_then(|p| p.get(name)),
            };
            let (mut upstream, watch) = Upstream::new(name, config, &context)?;
            upstream.metrics = metrics.enabled().then(|| metrics.upstream(name));
            if let Some(health) = &config.health {
                runtime(name, "health checks")?.spawn(health::run(
                    name.clone(),
                    upstream.set.clone(),
                    upstream.client().clone(),
                    health.clone(),
                    Arc::downgrade(&alive),
                ));
            }
            if let Some(watch) = watch {
                let runtime = runtime(name, "DNS discovery")?;
                let resolver = resolver
                    .get_or_insert_with(|| discovery::resolver(discovery))
                    .clone();
                runtime.spawn(discovery::run(
                    watch,
                    resolver,
                    discovery.clone(),
                    Arc::downgrade(&alive),
                ));
            }
            by_name.insert(name.clone(), upstream);
        }
        Ok(Upstreams {
            by_name,
            _alive: alive,
        })
    }

    /// The upstream called `name`.
    pub fn get(&self, name: &str) -> Option<&Upstream> {
        self.by_name.get(name)
    }

    /// Whether `name` is configured.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// All upstreams.
    pub fn iter(&self) -> impl Iterator<Item = &Upstream> {
        self.by_name.values()
    }
}

/// What building one upstream needs besides its configuration.
struct Context<'a> {
    budgets: &'a Budgets,
    /// Connection pools: worker threads plus one.
    pools: usize,
    base: &'a std::path::Path,
    discovery: &'a DiscoveryConfig,
    /// The same upstream in the pipeline being replaced.
    previous: Option<&'a Upstream>,
}

/// An upstream's connection pools: one for each of `pools` threads (at
/// least one), all with one connector. TLS names discovered targets from
/// `names`.
fn clients(
    name: &str,
    config: &UpstreamConfig,
    base: &std::path::Path,
    pools: usize,
    names: &Arc<tls::ServerNames>,
) -> Result<(UpstreamClient, Vec<UpstreamClient>), String> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
    http.set_nodelay(true);
    // The TLS layer checks the scheme.
    http.enforce_http(false);
    let connector = tls::connector(name, config.tls.as_ref(), base, http, names.clone())?;
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(Duration::from_secs(90));
    if config.protocol == Protocol::H2c {
        builder.http2_only(true);
    }
    let first = builder.build(connector.clone());
    let more = (1..pools.max(1))
        .map(|_| builder.build(connector.clone()))
        .collect();
    Ok((first, more))
}

/// The running tokio runtime, which `what` needs.
fn runtime(name: &str, what: &str) -> Result<tokio::runtime::Handle, String> {
    tokio::runtime::Handle::try_current()
        .map_err(|_| format!("upstream `{name}`: {what} need a running tokio runtime"))
}

/// The balancer `balance` names.
fn balancer(balance: BalanceConfig) -> Balancer {
    match balance {
        BalanceConfig::RoundRobin => Balancer::round_robin(),
        BalanceConfig::LeastRequests => Balancer::least_requests(),
        BalanceConfig::ConsistentHash => Balancer::consistent_hash(),
    }
}

/// What a request carries for choosing a target.
#[derive(Debug, Default, Clone, Copy)]
pub struct Affinity<'a> {
    /// The client's IP.
    pub client_ip: Option<IpAddr>,
    /// The request headers.
    pub headers: Option<&'a HeaderMap>,
}

/// The request to send, without its body. The path is the one the target
/// gets; the authority is the target's.
pub struct Head<'a> {
    /// Method.
    pub method: &'a Method,
    /// Path and query.
    pub path_and_query: &'a str,
    /// Headers, already cleaned of hop-by-hop ones.
    pub headers: HeaderMap,
}

/// A body to send upstream.
pub enum Outgoing {
    /// Held in memory: can be sent again on a retry.
    Replayable(Bytes),
    /// Streaming from the client: one attempt only.
    Streaming(Body),
}

/// One named upstream.
pub struct Upstream {
    name: String,
    /// The targets now: replaced as a whole by discovery.
    set: Arc<ArcSwap<TargetSet>>,
    /// Discovery's status, for upstreams with targets named by DNS.
    discovery: Option<Arc<discovery::Discovery>>,
    balancer: Balancer,
    hash_on: HashOn,
    /// One connection pool per worker thread, and one for the others:
    /// `first` is slot 0, `more` the rest.
    first: UpstreamClient,
    more: Vec<UpstreamClient>,
    connect_timeout: Duration,
    request_timeout: Duration,
    tunnel_idle: Duration,
    retries: u32,
    ejection: Ejection,
    /// Where it records (none for upstreams built outside a pipeline).
    metrics: Option<UpstreamMetrics>,
    /// Requests a target serves at once, and the health checks: while
    /// both stay the same, a reload reuses its discovered targets.
    slots: usize,
    health: Option<HealthConfig>,
}

impl Upstream {
    fn new(
        name: &str,
        config: &UpstreamConfig,
        context: &Context<'_>,
    ) -> Result<(Self, Option<discovery::Watch>), String> {
        let slots = config
            .max_connections_per_target
            .unwrap_or(context.budgets.upstream_connections_per_target)
            as usize;
        let specs = config
            .targets
            .iter()
            .map(|t| parse_target_spec(t))
            .collect::<Result<Vec<_>, _>>()?;
        let (fixed, sources) = discovery::plan(&specs);
        let fixed: Vec<Arc<Target>> = fixed
            .into_iter()
            .map(|(https, authority)| Arc::new(Target::new(authority, https, slots)))
            .collect();
        let balancer = balancer(config.balance);
        let previous = context.previous.map(|p| discovery::seed::Previous {
            discovery: p.discovery.as_deref(),
            reusable: if p.slots == slots && p.health == config.health {
                p.targets()
            } else {
                Vec::new()
            },
        });
        let start = discovery::seed::start(&sources, &fixed, previous, slots);
        let names = Arc::new(tls::ServerNames::default());
        names.update(&start.targets);
        let set = Arc::new(ArcSwap::from_pointee(TargetSet::new(
            start.targets,
            balancer.hashed(),
        )));
        let (first, more) = clients(name, config, context.base, context.pools, &names)?;
        let watch = (!sources.is_empty()).then(|| discovery::Watch {
            upstream: name.to_string(),
            sources,
            fixed,
            set: set.clone(),
            hashed: balancer.hashed(),
            slots,
            discovery: Arc::new(discovery::Discovery::new(
                Duration::from_millis(context.discovery.timeout_ms),
                start.answers,
                start.last_resolved,
            )),
            names,
        });
        let discovery = watch.as_ref().map(|w| w.discovery.clone());
        let upstream = Upstream {
            name: name.to_string(),
            set,
            discovery,
            balancer,
            hash_on: config.hash_on.clone(),
            first,
            more,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            tunnel_idle: Duration::from_millis(config.tunnel_idle_timeout_ms),
            retries: config.retries,
            ejection: Ejection {
                failures: config.passive.failures,
                duration: Duration::from_millis(config.passive.eject_ms),
            },
            metrics: None,
            slots,
            health: config.health.clone(),
        };
        Ok((upstream, watch))
    }

    /// This thread's connection pool.
    fn client(&self) -> &UpstreamClient {
        match crate::lifecycle::affinity::slot(self.more.len() + 1).checked_sub(1) {
            Some(index) => self.more.get(index).unwrap_or(&self.first),
            None => &self.first,
        }
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its targets now (discovery may replace them at any time).
    pub fn targets(&self) -> Vec<Arc<Target>> {
        self.set.load().targets().to_vec()
    }

    /// Discovery's status, when it has targets named by DNS.
    pub fn discovery(&self) -> Option<discovery::Status> {
        self.discovery.as_ref().map(|d| d.status())
    }

    /// Wait (at most `[discovery] timeout_ms`) until discovery has answered
    /// once; at once for upstreams without names.
    pub async fn first_answer(&self) {
        if let Some(discovery) = &self.discovery {
            discovery.first_round().await;
        }
    }

    /// The targets to pick from for one request: the current set, after
    /// waiting (briefly) for discovery's first answer when there is none
    /// yet, so the first requests after a start find targets (after a
    /// reload the set starts with the previous pipeline's answers).
    async fn current_set(&self) -> Arc<TargetSet> {
        let set = self.set.load_full();
        match &self.discovery {
            Some(discovery) if set.targets().is_empty() => {
                discovery.first_round().await;
                self.set.load_full()
            }
            _ => set,
        }
    }

    /// How long a WebSocket tunnel through it may stay idle.
    pub fn tunnel_idle(&self) -> Duration {
        self.tunnel_idle
    }

    /// The configured limit for a response head.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    fn hash_key(&self, affinity: Affinity<'_>) -> Option<String> {
        match &self.hash_on {
            HashOn::ClientIp => affinity.client_ip.map(|ip| ip.to_string()),
            HashOn::Header(name) => affinity
                .headers?
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        }
    }
}
