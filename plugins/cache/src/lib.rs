//! Weir's default cache plugin: a shared HTTP cache (RFC 9111) on the
//! host's `kv` store, so a Redis-backed `kv` gives one cache to every
//! gateway using that Redis.
//!
//! It runs after auth and rate limiting (it reads `route` and `consumer`
//! from the context) and before aggregate, whose replies it can keep. On a
//! request ([`request`]) it looks the key up: a fresh entry answers at once
//! (`Age`, a 304 to a client's own conditional request, a 206 to a
//! `Range`), a stale one within `stale-while-revalidate` answers at once
//! while one background request revalidates it, a stale one with
//! validators is revalidated, anything else goes upstream, and concurrent
//! misses for one key collapse into one upstream request. On the response
//! ([`response`]) it stores what RFC 9111 lets a shared cache store,
//! within the route's size limit and the plugin's `kv` quota, serves a
//! stale entry in place of an error within `stale-if-error`, and
//! invalidates after unsafe requests. Keys are documented in [`key`] and
//! in `docs/cache.md`, so operators can purge by pattern.

mod conditional;
mod config;
mod directives;
mod entry;
mod freshness;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod headers;
mod invalidate;
mod key;
mod lookup;
mod policy;
mod range;
mod request;
mod response;
mod status;
mod targeted;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use config::{Config, Rule};
use status::CacheStatus;
use weir_sdk::metrics::Counter;
use weir_sdk::{Action, Plugin, Request, Response, export_plugin};

/// The plugin.
pub struct Cache {
    default: Option<Rule>,
    routes: BTreeMap<String, Rule>,
    status_header: Option<String>,
    cache_status: Option<String>,
    outcomes: Counter,
}

/// Context keys carrying a request's state from `on_request` to
/// `on_response` (and across a `wait`).
mod ctx {
    /// What the lookup decided: `bypass`, `invalidate`, `miss`,
    /// `revalidate`, `head` or `pass`.
    pub const STATE: &str = "cache.state";
    pub const BASE: &str = "cache.base";
    /// The key of the stored entry being revalidated or kept for
    /// stale-if-error.
    pub const KEY: &str = "cache.key";
    pub const CREDENTIALED: &str = "cache.credentialed";
    /// The collapse lock this request holds.
    pub const LOCK: &str = "cache.lock";
    /// The background-revalidation lock this request holds.
    pub const REVALIDATING: &str = "cache.revalidating";
    /// Set once the request waited for another's answer.
    pub const WAITED: &str = "cache.waited";
    /// The stored entry under `KEY` may stand in for an upstream error.
    pub const STALE_IF_ERROR: &str = "cache.stale-if-error";
    /// The `Cache-Status` reason the request went forward.
    pub const FWD: &str = "cache.fwd";
    /// The client's URI, for the invalidation index.
    pub const TARGET: &str = "cache.target";
}

/// Keys longer than this (a huge query, say) are not cached: they would
/// eat the quota and make purge patterns unwieldy.
const MAX_KEY_BYTES: usize = 2048;

/// What the cache did, in the status header and the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Hit,
    Miss,
    Bypass,
    Revalidated,
    /// A stale entry was served (`max-stale`, stale-while-revalidate,
    /// stale-if-error).
    Stale,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Miss => "MISS",
            Outcome::Bypass => "BYPASS",
            Outcome::Revalidated => "REVALIDATED",
            Outcome::Stale => "STALE",
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

impl Plugin for Cache {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let default = config
            .default
            .map(|r| r.check().map_err(|e| format!("default: {e}")))
            .transpose()?;
        let mut routes = BTreeMap::new();
        for (name, rule) in config.routes {
            let rule = rule.check().map_err(|e| format!("route `{name}`: {e}"))?;
            routes.insert(name, rule);
        }
        let status_header = match config.status_header {
            Some(h) if !config::is_token(&h) => {
                return Err(format!("status_header: `{h}` is not a header name"));
            }
            other => other.map(|h| h.to_ascii_lowercase()),
        };
        if let Some(name) = &config.cache_status
            && !config::is_token(name)
        {
            return Err(format!("cache_status: `{name}` is not a token"));
        }
        let outcomes = Counter::define(
            "requests",
            "Requests on cached routes by route and outcome (HIT, MISS, BYPASS, REVALIDATED, STALE)",
            &["route", "outcome"],
        )?;
        Ok(Cache {
            default,
            routes,
            status_header,
            cache_status: config.cache_status,
            outcomes,
        })
    }

    /// The routes with a rule, unless a `default` rule covers every route.
    fn routes(&self) -> Option<Vec<String>> {
        match self.default {
            Some(_) => None,
            None => Some(self.routes.keys().cloned().collect()),
        }
    }

    fn on_request(&mut self, req: &Request) -> Action {
        self.request(req)
    }

    fn on_response(&mut self, req: &Request, resp: &Response) -> Action {
        self.response(req, resp)
    }
}

impl Cache {
    fn rule(&self, route: Option<&str>) -> Option<&Rule> {
        route
            .and_then(|r| self.routes.get(r))
            .or(self.default.as_ref())
    }

    fn count(&self, route: Option<&str>, outcome: Outcome) {
        self.outcomes.inc(&[route.unwrap_or(""), outcome.label()]);
    }

    /// The headers saying what the cache did, for a reply it builds.
    fn status_headers(&self, outcome: Outcome, status: &CacheStatus) -> Vec<(String, String)> {
        let mut headers = Vec::with_capacity(2);
        if let Some(header) = &self.status_header {
            headers.push((header.clone(), outcome.label().to_string()));
        }
        if let Some(name) = &self.cache_status {
            headers.push(("cache-status".to_string(), status.member(name)));
        }
        headers
    }

    /// Say what the cache did on a response from upstream.
    fn label(&self, resp: &Response, outcome: Outcome, status: &CacheStatus) {
        if let Some(header) = &self.status_header {
            let _ = resp.set_header(header, outcome.label());
        }
        if let Some(name) = &self.cache_status {
            let _ = resp.append_header("cache-status", &status.member(name));
        }
    }
}

export_plugin!(Cache);
