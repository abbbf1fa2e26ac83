//! Named upstreams: their targets (`http://` or `https://`), balancing,
//! keep-alive connection pools (HTTP/1.1 or HTTP/2, by prior knowledge or
//! ALPN), health (active checks and passive ejection), timeouts and
//! retries, and the discovery of targets named by DNS. The host owns all
//! of this; plugins only name the upstream.

mod balance;
pub mod discovery;
mod health;
mod set;
mod target;
pub mod tls;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::uri::Scheme;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
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
    BalanceConfig, Budgets, DiscoveryConfig, HashOn, Protocol, UpstreamConfig, parse_target_spec,
};
use crate::error::UpstreamFailure;
use crate::http::body::{self, Body};
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
    /// named by DNS get a discovery task resolving them per `discovery`.
    pub fn new(
        configs: &BTreeMap<String, UpstreamConfig>,
        budgets: &Budgets,
        workers: usize,
        base: &std::path::Path,
        metrics: &Arc<HostMetrics>,
        discovery: &DiscoveryConfig,
    ) -> Result<Self, String> {
        let alive = Arc::new(());
        let mut by_name = BTreeMap::new();
        let mut resolver = None;
        for (name, config) in configs {
            let (mut upstream, watch) =
                Upstream::new(name, config, budgets, workers + 1, base, discovery)?;
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

/// An upstream's connection pools: one for each of `pools` threads (at
/// least one), all with one connector. TLS names discovered targets from
/// `set`.
fn clients(
    name: &str,
    config: &UpstreamConfig,
    base: &std::path::Path,
    pools: usize,
    set: &Arc<ArcSwap<TargetSet>>,
) -> Result<(UpstreamClient, Vec<UpstreamClient>), String> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
    http.set_nodelay(true);
    // The TLS layer checks the scheme.
    http.enforce_http(false);
    let connector = tls::connector(name, config.tls.as_ref(), base, http, set.clone())?;
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
}

impl Upstream {
    fn new(
        name: &str,
        config: &UpstreamConfig,
        budgets: &Budgets,
        pools: usize,
        base: &std::path::Path,
        discovery: &DiscoveryConfig,
    ) -> Result<(Self, Option<discovery::Watch>), String> {
        let slots = config
            .max_connections_per_target
            .unwrap_or(budgets.upstream_connections_per_target) as usize;
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
        let balancer = match config.balance {
            BalanceConfig::RoundRobin => Balancer::round_robin(),
            BalanceConfig::LeastRequests => Balancer::least_requests(),
            BalanceConfig::ConsistentHash => Balancer::consistent_hash(),
        };
        let set = Arc::new(ArcSwap::from_pointee(TargetSet::new(
            fixed.clone(),
            balancer.hashed(),
        )));
        let (first, more) = clients(name, config, base, pools, &set)?;
        let watch = (!sources.is_empty()).then(|| discovery::Watch {
            upstream: name.to_string(),
            sources,
            fixed,
            set: set.clone(),
            hashed: balancer.hashed(),
            slots,
            discovery: Arc::new(discovery::Discovery::new(Duration::from_millis(
                discovery.timeout_ms,
            ))),
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
        };
        Ok((upstream, watch))
    }

    /// Count a failed request by its cause and hand the failure back.
    fn failed(&self, failure: UpstreamFailure) -> UpstreamFailure {
        if let Some(metrics) = &self.metrics {
            metrics.failed(failure.cause());
        }
        failure
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
    /// yet, so the first requests after a start or reload find targets.
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

    /// Send a request (its URI holds the path and query) to a target and
    /// wait for the response head within `timeout` (capped by the upstream's
    /// own). Idempotent requests with a replayable body are retried, on
    /// another target when there is one, after a connection failure or a
    /// 502/503 answer, up to `retries` times.
    pub async fn send(
        &self,
        head: Head<'_>,
        body: Outgoing,
        affinity: Affinity<'_>,
        timeout: Option<Duration>,
    ) -> Result<Response<Body>, UpstreamFailure> {
        let started = std::time::Instant::now();
        let sent = self.send_once(head, body, affinity, timeout).await;
        match sent {
            Ok(response) => {
                if let Some(metrics) = &self.metrics {
                    metrics.duration.observe(started.elapsed().as_secs_f64());
                }
                Ok(response)
            }
            Err(failure) => Err(self.failed(failure)),
        }
    }

    /// [`Upstream::send`] without the accounting.
    async fn send_once(
        &self,
        mut head: Head<'_>,
        body: Outgoing,
        affinity: Affinity<'_>,
        timeout: Option<Duration>,
    ) -> Result<Response<Body>, UpstreamFailure> {
        let timeout = timeout.map_or(self.request_timeout, |t| t.min(self.request_timeout));
        let (replay, mut streaming) = match body {
            Outgoing::Replayable(bytes) => (Some(bytes), None),
            Outgoing::Streaming(body) => (None, Some(body)),
        };
        let attempts = if replay.is_some() && is_idempotent(head.method) {
            1 + self.retries
        } else {
            1
        };
        let key = match self.balancer {
            Balancer::ConsistentHash(_) => self.hash_key(affinity),
            _ => None,
        };
        // One set for all attempts: `tried` holds indexes into it.
        let set = self.current_set().await;
        let mut tried: Vec<usize> = Vec::new();
        let mut last_failure = None;
        for attempt in 1..=attempts {
            if attempt > 1
                && let Some(metrics) = &self.metrics
            {
                metrics.retries.inc();
            }
            let Some((index, target)) = self.balancer.pick(&set, key.as_deref(), &tried) else {
                return Err(UpstreamFailure::NoHealthyTarget);
            };
            tried.push(index);
            let body = match (&replay, streaming.take()) {
                (Some(bytes), _) => body::full(bytes.clone()),
                (None, Some(body)) => body,
                (None, None) => body::empty(),
            };
            let mut request = Request::new(body);
            *request.method_mut() = head.method.clone();
            // Keep a copy only while another attempt may need it.
            *request.headers_mut() = if attempt < attempts {
                head.headers.clone()
            } else {
                std::mem::take(&mut head.headers)
            };
            *request.uri_mut() = Uri::builder()
                .scheme(if target.https() {
                    Scheme::HTTPS
                } else {
                    Scheme::HTTP
                })
                .authority(target.authority().clone())
                .path_and_query(head.path_and_query)
                .build()
                .map_err(|e| UpstreamFailure::Protocol(format!("bad target URI: {e}")))?;
            let more = attempt < attempts;
            // A full target is not a failed one: no ejection, no retry.
            let Some(in_flight) = target.start(self.connect_timeout).await else {
                return Err(UpstreamFailure::Saturated(format!(
                    "{}: all {} connections in use (budgets.upstream_connections_per_target)",
                    target.authority(),
                    target.max_in_flight()
                )));
            };
            match tokio::time::timeout(timeout, self.client().request(request)).await {
                Err(_) => return Err(UpstreamFailure::Timeout(timeout)),
                Ok(Ok(response)) => {
                    target.succeeded();
                    let retryable = matches!(
                        response.status(),
                        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
                    );
                    if retryable && more {
                        tracing::debug!(upstream = self.name, target = %target.authority(), status = %response.status(), "retrying");
                        continue;
                    }
                    let (parts, incoming) = response.into_parts();
                    let tracked = Tracked {
                        inner: incoming,
                        _in_flight: in_flight,
                    };
                    return Ok(Response::from_parts(parts, body::boxed(tracked)));
                }
                Ok(Err(e)) => {
                    let failure = if let Some(verdict) = tls::verdict(&e) {
                        // A certificate the gateway will not trust: not the
                        // target's fault in a way another try would fix.
                        tracing::warn!(upstream = self.name, target = %target.authority(), "{}", source_chain(&e));
                        UpstreamFailure::Tls(verdict)
                    } else if e.is_connect() {
                        if target.connect_failed(self.ejection) {
                            if let Some(metrics) = &self.metrics {
                                metrics.ejections.inc();
                            }
                            tracing::warn!(upstream = self.name, target = %target.authority(), "connection failures; target ejected");
                        }
                        UpstreamFailure::Connect(format!(
                            "{}: {}",
                            target.authority(),
                            source_chain(&e)
                        ))
                    } else {
                        UpstreamFailure::Protocol(format!(
                            "{}: {}",
                            target.authority(),
                            source_chain(&e)
                        ))
                    };
                    tracing::debug!(upstream = self.name, "attempt {attempt} failed: {failure}");
                    last_failure = Some(failure);
                    if !more {
                        break;
                    }
                }
            }
        }
        Err(last_failure.unwrap_or(UpstreamFailure::NoHealthyTarget))
    }
}

/// A response body that keeps its target's in-flight count up until it has
/// been read (or dropped), forwarding everything else untouched so hyper
/// still sees the exact length and the end of the stream.
struct Tracked {
    inner: hyper::body::Incoming,
    _in_flight: target::InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Methods that may be repeated without changing the result (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// An error with its causes, `a: b: c`.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
