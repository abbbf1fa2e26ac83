//! Named upstreams: their targets, the choice of target (round robin), a
//! keep-alive connection pool per upstream, and the timeouts that turn a slow
//! or dead target into a clear failure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::Body;
use crate::config::{UpstreamConfig, parse_target};
use crate::error::UpstreamFailure;

/// All upstreams of a pipeline, by name.
pub struct Upstreams {
    by_name: BTreeMap<String, Upstream>,
}

impl Upstreams {
    /// Build from `[upstreams.*]` (already validated).
    pub fn new(configs: &BTreeMap<String, UpstreamConfig>) -> Result<Self, String> {
        let mut by_name = BTreeMap::new();
        for (name, config) in configs {
            by_name.insert(name.clone(), Upstream::new(name, config)?);
        }
        Ok(Upstreams { by_name })
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

/// One named upstream.
pub struct Upstream {
    name: String,
    targets: Vec<Authority>,
    next: AtomicUsize,
    client: Client<HttpConnector, Body>,
    request_timeout: Duration,
}

impl Upstream {
    fn new(name: &str, config: &UpstreamConfig) -> Result<Self, String> {
        let targets = config
            .targets
            .iter()
            .map(|t| parse_target(t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Upstream {
            name: name.to_string(),
            targets,
            next: AtomicUsize::new(0),
            client,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
        })
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its targets, as `host:port`.
    pub fn targets(&self) -> impl Iterator<Item = &Authority> {
        self.targets.iter()
    }

    /// The configured time limit for a response head.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The next target, round robin.
    fn pick(&self) -> &Authority {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len();
        &self.targets[i]
    }

    /// Send `request` (whose URI holds just the path and query) to a target
    /// and wait for the response head, within `timeout` (capped by the
    /// upstream's own).
    pub async fn send(
        &self,
        mut request: Request<Body>,
        timeout: Option<Duration>,
    ) -> Result<Response<Incoming>, UpstreamFailure> {
        let target = self.pick();
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        *request.uri_mut() = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(target.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| UpstreamFailure::Protocol(format!("bad target URI: {e}")))?;
        let timeout = timeout.map_or(self.request_timeout, |t| t.min(self.request_timeout));
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => Err(UpstreamFailure::Timeout(timeout)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamFailure::Connect(format!(
                "{target}: {}",
                source_chain(&e)
            ))),
            Ok(Err(e)) => Err(UpstreamFailure::Protocol(format!(
                "{target}: {}",
                source_chain(&e)
            ))),
        }
    }
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
