//! The shared store on Redis, for a fleet of gateways: the same GCRA as the
//! in-memory store, as one Lua script per batch (atomic on the server,
//! timed by the server's clock so every gateway agrees), and the `kv`
//! capability as plain keys with expiry.
//!
//! Two backends share this code: one Redis (`backend = "redis"`, a pool of
//! [`ConnectionManager`]s) and a Redis Cluster (`backend =
//! "redis_cluster"`, one [`ClusterConnection`], which keeps a connection
//! per node, follows `MOVED` and `ASK`, and finds a promoted replica by
//! itself). They differ only in the key layout ([`keys`]) and in how a rate
//! batch whose keys live in several slots is applied ([`rate`]).
//!
//! Every call has a timeout. When Redis cannot be reached the configured
//! policy answers rate takes (allow or refuse), `kv` calls report
//! `unavailable`, a warning is logged once per outage, and after a failure
//! no new connection is attempted for a second, so an outage costs requests
//! no latency. The store reconnects by itself when Redis is back.

mod keys;
mod kv;
mod rate;
mod scripts;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use tokio::sync::OnceCell;

use self::keys::Layout;
use super::FailPolicy;
use crate::telemetry::host_metrics::HostMetrics;

/// After a failed connection, wait this long before trying again.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// Retries of one cluster call (redirections, a node reconnecting, a
/// failover in progress), all within `timeout_ms`.
const CLUSTER_RETRIES: u32 = 3;

/// What the store connects to.
enum Target {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
}

/// One connection of either kind; both multiplex and are cheap to clone.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

impl Connection {
    /// Run `cmd`; on a cluster, on the master owning `slot` (for commands
    /// such as `SCAN` that name no key to route by).
    async fn query_at<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        slot: Option<Slot>,
    ) -> redis::RedisResult<T> {
        match (self, slot) {
            (Connection::Cluster(c), Some(slot)) => {
                let route = redis::cluster_routing::Route::with_slot(slot, SlotAddr::Master);
                let value = c
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(redis::from_redis_value(value)?)
            }
            (connection, _) => cmd.query_async(connection).await,
        }
    }
}

/// Connections to one Redis or one Redis Cluster, shared by the rate and
/// kv capabilities.
pub struct RedisStore {
    target: Target,
    layout: Layout,
    /// The backend's name in metrics: `redis` or `redis_cluster`.
    label: &'static str,
    /// Where it is, for logs: the URL or the seed nodes.
    place: String,
    connections: Vec<OnceCell<Connection>>,
    next: AtomicUsize,
    timeout: Duration,
    policy: FailPolicy,
    gcra: redis::Script,
    kv_set: redis::Script,
    kv_delete: redis::Script,
    /// Set while Redis is unreachable, so the outage is logged once.
    down: AtomicBool,
    /// When a call last failed (ms since the epoch). An outage ends when
    /// calls succeed and none has failed for [`RECONNECT_BACKOFF`]: on a
    /// cluster with one master down, calls to the other masters succeed
    /// in between, and that is still one outage, logged once.
    failed_at_ms: AtomicU64,
    /// No connection attempts before this time (ms since the epoch).
    retry_at_ms: AtomicU64,
    /// Where operations are timed and failures counted.
    metrics: Option<Arc<HostMetrics>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `url` with its password (the userinfo after `:`) replaced by `***`, so
/// logs and errors never show a secret.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _secret)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl RedisStore {
    /// A store for `url` (`redis://host:port[/db]`). Connections are made on
    /// first use, so the gateway starts even while Redis is down.
    pub fn new(
        url: &str,
        pool_size: usize,
        timeout: Duration,
        policy: FailPolicy,
    ) -> Result<RedisStore, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("invalid Redis URL `{}`: {e}", redacted(url)))?;
        Ok(RedisStore::with_target(
            Target::Single(client),
            Layout::Single,
            "redis",
            redacted(url),
            pool_size,
            timeout,
            policy,
        ))
    }

    /// A store on the Redis Cluster reached through the seed `nodes`
    /// (`redis://host:port`); the other nodes are found from them. Keys
    /// are hash-tagged (see [`keys`]). Connected on first use, like
    /// [`RedisStore::new`].
    pub fn cluster(
        nodes: &[String],
        timeout: Duration,
        policy: FailPolicy,
    ) -> Result<RedisStore, String> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .overall_response_timeout(Some(timeout))
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(timeout_ms / 10)
            .max_retry_wait((timeout_ms / 2).max(timeout_ms / 10 + 1))
            .build()
            .map_err(|e| {
                let nodes: Vec<String> = nodes.iter().map(|n| redacted(n)).collect();
                format!("invalid Redis Cluster seed nodes {nodes:?}: {e}")
            })?;
        Ok(RedisStore::with_target(
            Target::Cluster(Box::new(client)),
            Layout::Cluster,
            "redis_cluster",
            nodes
                .iter()
                .map(|n| redacted(n))
                .collect::<Vec<_>>()
                .join(","),
            1,
            timeout,
            policy,
        ))
    }

    /// Where the store is, for logs: `self.place`, passwords redacted.
    fn with_target(
        target: Target,
        layout: Layout,
        label: &'static str,
        place: String,
        pool_size: usize,
        timeout: Duration,
        policy: FailPolicy,
    ) -> RedisStore {
        RedisStore {
            target,
            layout,
            label,
            place,
            connections: (0..pool_size.max(1)).map(|_| OnceCell::new()).collect(),
            next: AtomicUsize::new(0),
            timeout,
            policy,
            gcra: redis::Script::new(scripts::GCRA),
            kv_set: redis::Script::new(scripts::KV_SET),
            kv_delete: redis::Script::new(scripts::KV_DELETE),
            down: AtomicBool::new(false),
            failed_at_ms: AtomicU64::new(0),
            retry_at_ms: AtomicU64::new(0),
            metrics: None,
        }
    }

    /// Time operations and count failures in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<HostMetrics>) -> Self {
        self.metrics = metrics.enabled().then_some(metrics);
        self
    }

    /// A new connection to the target.
    async fn connect(&self) -> redis::RedisResult<Connection> {
        match &self.target {
            Target::Single(client) => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(client.clone(), config)
                    .await
                    .map(Connection::Single)
            }
            Target::Cluster(client) => client.get_async_connection().await.map(Connection::Cluster),
        }
    }

    /// One of the pooled connections, connecting it if needed.
    async fn connection(&self) -> Result<Connection, String> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let Some(slot) = self.connections.get(index) else {
            return Err("no connection slot".into());
        };
        if let Some(connection) = slot.get() {
            return Ok(connection.clone());
        }
        if now_ms() < self.retry_at_ms.load(Ordering::Relaxed) {
            return Err("reconnect back-off".into());
        }
        match slot.get_or_try_init(|| self.connect()).await {
            Ok(connection) => Ok(connection.clone()),
            Err(e) => {
                self.retry_at_ms.store(
                    now_ms() + RECONNECT_BACKOFF.as_millis() as u64,
                    Ordering::Relaxed,
                );
                Err(e.to_string())
            }
        }
    }

    /// Run `f` with a connection, under the timeout; note outages and
    /// recoveries. A failure on one pooled connection is tried on the next:
    /// after Redis restarts, each connection finds its socket broken once,
    /// and without this those requests would fall to the fail policy while
    /// Redis is in fact back. (A cluster has one connection, which retries
    /// inside the timeout by itself.)
    async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, String>
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let started = std::time::Instant::now();
        let outcome = self.call_inner(f).await;
        if let Some(metrics) = &self.metrics {
            metrics.store_op(self.label, op, started.elapsed(), outcome.is_ok());
        }
        outcome
    }

    async fn call_inner<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let outcome = match tokio::time::timeout(self.timeout, async {
            let mut last = String::new();
            for _ in 0..self.connections.len() {
                match self.connection().await {
                    Ok(connection) => match f(connection).await {
                        Ok(value) => return Ok(value),
                        Err(e) => last = e.to_string(),
                    },
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
        .await
        {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        };
        match &outcome {
            Ok(_) => {
                let quiet = now_ms().saturating_sub(self.failed_at_ms.load(Ordering::Relaxed))
                    >= RECONNECT_BACKOFF.as_millis() as u64;
                if quiet && self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        redis = self.place,
                        backend = self.label,
                        "Redis is reachable again"
                    );
                }
            }
            Err(why) => {
                self.failed_at_ms.store(now_ms(), Ordering::Relaxed);
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        redis = self.place,
                        backend = self.label,
                        policy = ?self.policy,
                        "Redis is unreachable ({why}); rate limits follow the fail policy until it is back"
                    );
                }
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_reach_logs_or_errors() {
        assert_eq!(
            redacted("redis://user:s3cret@10.0.0.1:6379/2"),
            "redis://user:***@10.0.0.1:6379/2"
        );
        assert_eq!(redacted("redis://:s3cret@h:1"), "redis://:***@h:1");
        assert_eq!(redacted("redis://h:1"), "redis://h:1");
        assert_eq!(redacted("redis://user@h:1"), "redis://user@h:1");
    }
}
