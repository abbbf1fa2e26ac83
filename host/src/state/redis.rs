//! The shared store on Redis, for a cluster of gateways: the same GCRA as
//! the in-memory store, as one Lua script per batch (atomic on the server,
//! timed by the server's clock so every gateway agrees), and the `kv`
//! capability as plain keys with expiry.
//!
//! Every call has a timeout. When Redis cannot be reached the configured
//! policy answers rate takes (allow or refuse), `kv` calls report
//! `unavailable`, a warning is logged once per outage, and after a failure
//! no new connection is attempted for a second, so an outage costs requests
//! no latency. The store reconnects by itself when Redis is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use super::gcra::{self, Decision};
use crate::telemetry::host_metrics::HostMetrics;

use super::{
    Expect, FailPolicy, KvQuota, KvStore, KvUsage, RateStore, StoreError, Take, entry_bytes,
};

/// GCRA over several keys, all or nothing. ARGV per key: cost, interval and
/// tolerance in microseconds. Returns four integers per key: allowed,
/// remaining, retry-after µs, reset-after µs.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pending = {}
local order = {}
local out = {}
local all = true
for i = 1, #KEYS do
  local key = KEYS[i]
  local cost = tonumber(ARGV[3 * i - 2])
  local interval = tonumber(ARGV[3 * i - 1])
  local tolerance = tonumber(ARGV[3 * i])
  local tat = pending[key]
  if tat == nil then
    tat = tonumber(redis.call('GET', key)) or now
  end
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  if new_tat - now <= tolerance then
    if pending[key] == nil then order[#order + 1] = key end
    pending[key] = new_tat
    out[#out + 1] = 1
    out[#out + 1] = math.floor((tolerance - (new_tat - now)) / interval)
    out[#out + 1] = 0
    out[#out + 1] = new_tat - now
  else
    all = false
    out[#out + 1] = 0
    out[#out + 1] = math.max(0, math.floor((tolerance - (tat - now)) / interval))
    out[#out + 1] = new_tat - now - tolerance
    out[#out + 1] = tat - now
  end
end
if all then
  for _, key in ipairs(order) do
    local tat = pending[key]
    local ttl = math.max(1, math.ceil((tat - now) / 1000))
    redis.call('SET', key, string.format('%.0f', tat), 'PX', ttl)
  end
end
return out
";

/// A quota-checked `kv` write. KEYS: the value, the namespace's index
/// (sorted set: key → expiry in ms, `+inf` for none), its sizes (hash: key →
/// bytes) and its byte total. ARGV: the key, the value, the TTL in ms (0:
/// none), max keys, max bytes, the entry's bytes, and a condition: empty
/// for none, `absent`, or `value` with the expected bytes in ARGV[8].
/// Expired index entries are dropped first, so dead keys never hold the
/// quota. Returns `ok`, `mismatch` (the condition failed), `keys` or
/// `bytes` (the quota that refused).
const KV_SET_SCRIPT: &str = r"
if ARGV[7] == 'absent' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 'mismatch' end
elseif ARGV[7] == 'value' then
  if redis.call('GET', KEYS[1]) ~= ARGV[8] then return 'mismatch' end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, k in ipairs(expired) do
  local size = tonumber(redis.call('HGET', KEYS[3], k) or '0')
  redis.call('HDEL', KEYS[3], k)
  redis.call('DECRBY', KEYS[4], size)
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
local old = redis.call('HGET', KEYS[3], ARGV[1])
local keys = redis.call('ZCARD', KEYS[2])
if not old then keys = keys + 1 end
local bytes = tonumber(redis.call('GET', KEYS[4]) or '0') - tonumber(old or '0') + tonumber(ARGV[6])
if keys > tonumber(ARGV[4]) then return 'keys' end
if bytes > tonumber(ARGV[5]) then return 'bytes' end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], '+inf', ARGV[1])
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[6])
redis.call('SET', KEYS[4], bytes)
return 'ok'
";

/// A `kv` delete that gives the entry's share of the quota back. KEYS as
/// for the set; ARGV: the key. Returns 1 if a live value was removed.
const KV_DELETE_SCRIPT: &str = r"
local removed = redis.call('DEL', KEYS[1])
local size = redis.call('HGET', KEYS[3], ARGV[1])
if size then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('DECRBY', KEYS[4], tonumber(size))
end
redis.call('ZREM', KEYS[2], ARGV[1])
return removed
";

/// Key prefixes, so Weir's keys are easy to find and cannot collide with
/// other data in the same database.
const RATE_PREFIX: &str = "weir:rate:";
const KV_PREFIX: &str = "weir:kv:";
const KV_QUOTA_PREFIX: &str = "weir:kvq:";

/// The Redis keys of one `kv` entry: value, index, sizes, total.
fn kv_keys(ns: &str, key: &str) -> [String; 4] {
    [
        format!("{KV_PREFIX}{ns}/{key}"),
        format!("{KV_QUOTA_PREFIX}{ns}:index"),
        format!("{KV_QUOTA_PREFIX}{ns}:sizes"),
        format!("{KV_QUOTA_PREFIX}{ns}:bytes"),
    ]
}

/// `text` with Redis glob metacharacters other than `*` escaped.
fn redis_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// After a failed connection, wait this long before trying again.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// Connections to one Redis, shared by the rate and kv capabilities.
pub struct RedisStore {
    client: redis::Client,
    url: String,
    connections: Vec<OnceCell<ConnectionManager>>,
    next: AtomicUsize,
    timeout: Duration,
    policy: FailPolicy,
    script: redis::Script,
    kv_set: redis::Script,
    kv_delete: redis::Script,
    /// Set while Redis is unreachable, so the outage is logged once.
    down: AtomicBool,
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

fn micros(ns: u128) -> u64 {
    u64::try_from(ns / 1_000).unwrap_or(u64::MAX).max(1)
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
        let client =
            redis::Client::open(url).map_err(|e| format!("invalid Redis URL `{url}`: {e}"))?;
        Ok(RedisStore {
            client,
            url: url.to_string(),
            connections: (0..pool_size.max(1)).map(|_| OnceCell::new()).collect(),
            next: AtomicUsize::new(0),
            timeout,
            policy,
            script: redis::Script::new(GCRA_SCRIPT),
            kv_set: redis::Script::new(KV_SET_SCRIPT),
            kv_delete: redis::Script::new(KV_DELETE_SCRIPT),
            down: AtomicBool::new(false),
            retry_at_ms: AtomicU64::new(0),
            metrics: None,
        })
    }

    /// Time operations and count failures in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<HostMetrics>) -> Self {
        self.metrics = metrics.enabled().then_some(metrics);
        self
    }

    /// One of the pooled connections, connecting it if needed.
    async fn connection(&self) -> Result<ConnectionManager, String> {
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
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let made = slot
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await;
        match made {
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
    /// Redis is in fact back.
    async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, String>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let started = std::time::Instant::now();
        let outcome = self.call_inner(f).await;
        if let Some(metrics) = &self.metrics {
            metrics.store_op("redis", op, started.elapsed(), outcome.is_ok());
        }
        outcome
    }

    async fn call_inner<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: Fn(ConnectionManager) -> Fut,
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
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!(redis = self.url, "Redis is reachable again");
                }
            }
            Err(why) => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        redis = self.url,
                        policy = ?self.policy,
                        "Redis is unreachable ({why}); rate limits follow the fail policy until it is back"
                    );
                }
            }
        }
        outcome
    }
}

#[async_trait::async_trait]
impl RateStore for RedisStore {
    async fn take_all(&self, takes: &[Take]) -> Vec<Decision> {
        let mut params = Vec::with_capacity(takes.len());
        for take in takes {
            match gcra::interval_and_tolerance(take.limit) {
                Some((interval, tolerance)) if take.cost <= take.limit.capacity() => {
                    params.push((micros(interval), micros(tolerance)));
                }
                // Nothing a store could allow: refuse the batch locally.
                _ => return takes.iter().map(|t| gcra::refused(t.limit)).collect(),
            }
        }
        let keys: Vec<String> = takes
            .iter()
            .map(|t| format!("{RATE_PREFIX}{}", t.key))
            .collect();
        let reply: Result<Vec<i64>, String> = self
            .call("take", |mut connection| {
                let mut invocation = self.script.prepare_invoke();
                for ((key, take), (interval, tolerance)) in keys.iter().zip(takes).zip(&params) {
                    invocation
                        .key(key)
                        .arg(take.cost)
                        .arg(*interval)
                        .arg(*tolerance);
                }
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await;
        match reply {
            Ok(values) if values.len() == takes.len() * 4 => takes
                .iter()
                .zip(values.chunks_exact(4))
                .map(|(take, v)| {
                    let &[allowed, remaining, retry_after, reset_after] = v else {
                        return gcra::refused(take.limit);
                    };
                    let micros =
                        |v: i64| Duration::from_micros(u64::try_from(v.max(0)).unwrap_or(0));
                    Decision {
                        allowed: allowed == 1,
                        limit: take.limit.capacity(),
                        remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                        retry_after: micros(retry_after),
                        reset_after: micros(reset_after),
                    }
                })
                .collect(),
            Ok(_) | Err(_) => takes
                .iter()
                .map(|t| match self.policy {
                    FailPolicy::FailOpen => gcra::allowed_blind(t.limit),
                    FailPolicy::FailClosed => gcra::refused(t.limit),
                })
                .collect(),
        }
    }
}

impl RedisStore {
    /// A write through [`KV_SET_SCRIPT`], conditional when `expect` is given.
    async fn write(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        quota: KvQuota,
        expect: Option<Expect<'_>>,
    ) -> Result<bool, StoreError> {
        quota.check_value(value.len())?;
        let keys = kv_keys(ns, key);
        let ttl_ms = ttl.map_or(0, |ttl| {
            u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        let size = entry_bytes(key, value.len());
        let (condition, expected): (&str, &[u8]) = match expect {
            None => ("", b""),
            Some(Expect::Absent) => ("absent", b""),
            Some(Expect::Value(bytes)) => ("value", bytes),
        };
        let outcome: String = self
            .call("set", |mut c| {
                let mut invocation = self.kv_set.prepare_invoke();
                for k in &keys {
                    invocation.key(k);
                }
                invocation
                    .arg(key)
                    .arg(value.as_slice())
                    .arg(ttl_ms)
                    .arg(quota.max_keys)
                    .arg(quota.max_bytes)
                    .arg(size)
                    .arg(condition)
                    .arg(expected);
                async move { invocation.invoke_async(&mut c).await }
            })
            .await
            .map_err(StoreError::Unavailable)?;
        match outcome.as_str() {
            "ok" => Ok(true),
            "mismatch" => Ok(false),
            "keys" => quota
                .check_usage(quota.max_keys.saturating_add(1), 0)
                .map(|()| false),
            _ => quota
                .check_usage(0, quota.max_bytes.saturating_add(1))
                .map(|()| false),
        }
    }
}

#[async_trait::async_trait]
impl KvStore for RedisStore {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let [value_key, ..] = kv_keys(ns, key);
        self.call("get", |mut c| {
            let key = value_key.clone();
            async move { redis::cmd("GET").arg(key).query_async(&mut c).await }
        })
        .await
        .map_err(StoreError::Unavailable)
    }

    async fn set(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        quota: KvQuota,
    ) -> Result<(), StoreError> {
        self.write(ns, key, value, ttl, quota, None)
            .await
            .map(|_| ())
    }

    async fn set_if(
        &self,
        ns: &str,
        key: &str,
        expect: Expect<'_>,
        value: Vec<u8>,
        ttl: Option<Duration>,
        quota: KvQuota,
    ) -> Result<bool, StoreError> {
        self.write(ns, key, value, ttl, quota, Some(expect)).await
    }

    async fn delete(&self, ns: &str, key: &str) -> Result<bool, StoreError> {
        let keys = kv_keys(ns, key);
        self.call("delete", |mut c| {
            let mut invocation = self.kv_delete.prepare_invoke();
            for k in &keys {
                invocation.key(k);
            }
            invocation.arg(key);
            async move { invocation.invoke_async::<i64>(&mut c).await }
        })
        .await
        .map(|n| n > 0)
        .map_err(StoreError::Unavailable)
    }

    async fn purge(&self, ns: &str, pattern: &str) -> Result<u64, StoreError> {
        let prefix = format!("{KV_PREFIX}{ns}/");
        let matching = format!("{}{}", redis_glob(&prefix), redis_glob(pattern));
        let found: Vec<String> = self
            .call("purge", |mut c| {
                let matching = matching.clone();
                async move {
                    let mut found = Vec::new();
                    let mut cursor: u64 = 0;
                    loop {
                        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&matching)
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut c)
                            .await?;
                        found.extend(keys);
                        if next == 0 {
                            return Ok(found);
                        }
                        cursor = next;
                    }
                }
            })
            .await
            .map_err(StoreError::Unavailable)?;
        let mut removed = 0;
        for full in found {
            if let Some(key) = full.strip_prefix(&prefix)
                && self.delete(ns, key).await?
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn usage(&self, ns: &str) -> Result<KvUsage, StoreError> {
        let [_, index, _, total] = kv_keys(ns, "");
        let (keys, bytes): (u64, Option<u64>) = self
            .call("usage", |mut c| {
                let (index, total) = (index.clone(), total.clone());
                async move {
                    redis::pipe()
                        .cmd("ZCARD")
                        .arg(index)
                        .cmd("GET")
                        .arg(total)
                        .query_async(&mut c)
                        .await
                }
            })
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(KvUsage {
            keys,
            bytes: bytes.unwrap_or(0),
        })
    }
}
