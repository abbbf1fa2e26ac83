//! Weir's default cache plugin: a shared HTTP cache (RFC 9111) on the
//! host's `kv` store, so a Redis-backed `kv` gives one cache to every
//! gateway using that Redis.
//!
//! It runs after auth and rate limiting (it reads `route` and `consumer`
//! from the context) and before aggregate, whose replies it can keep. On a
//! request it looks the key up: a fresh entry answers at once (`Age`, and
//! 304 to a client's own conditional request), a stale one with validators
//! is revalidated (`If-None-Match` / `If-Modified-Since` go upstream, and a
//! 304 refreshes it), anything else goes upstream. On the response it
//! stores what RFC 9111 lets a shared cache store, within the route's size
//! limit and the plugin's `kv` quota. Keys are documented in [`key`] and in
//! `docs/cache.md`, so operators can purge by pattern.

mod conditional;
mod config;
mod directives;
mod entry;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod headers;
mod key;
mod lookup;
mod policy;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use conditional::{Conditions, not_modified};
use config::{Config, Rule};
use directives::CacheControl;
use entry::{Meta, Stored};
use headers::Headers;
use lookup::{Lookup, base_key, find, stash, stashed, varied};
use policy::{Candidate, NotStored, Plan};
use weir_sdk::kv::{self, KvError};
use weir_sdk::metrics::Counter;
use weir_sdk::{Action, BodyError, Plugin, Reply, Request, Response, export_plugin};

/// The plugin.
pub struct Cache {
    default: Option<Rule>,
    routes: BTreeMap<String, Rule>,
    status_header: Option<String>,
    outcomes: Counter,
}

/// Context keys carrying the lookup's outcome to `on_response`.
const STATE: &str = "cache.state";
const BASE: &str = "cache.base";
const KEY: &str = "cache.key";
const CREDENTIALED: &str = "cache.credentialed";

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
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Miss => "MISS",
            Outcome::Bypass => "BYPASS",
            Outcome::Revalidated => "REVALIDATED",
        }
    }
}

/// Why a response was not stored.
#[derive(Debug)]
enum Skip {
    Policy(NotStored),
    Body(String),
    Store(KvError),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Policy(why) => write!(f, "{why:?}"),
            Skip::Body(why) => write!(f, "body read failed: {why}"),
            Skip::Store(e) => write!(f, "kv: {e}"),
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
        let outcomes = Counter::define(
            "requests",
            "Requests on cached routes by route and outcome (HIT, MISS, BYPASS, REVALIDATED)",
            &["route", "outcome"],
        )?;
        Ok(Cache {
            default,
            routes,
            status_header,
            outcomes,
        })
    }

    fn on_request(&mut self, req: &Request) -> Action {
        let route = req.get_context("route");
        let Some(rule) = self.rule(route.as_deref()) else {
            return Action::Continue;
        };
        let headers = Headers::new(req.headers());
        let directives = if rule.request_directives {
            policy::request_directives(&headers.all("cache-control"), &headers.all("pragma"))
        } else {
            CacheControl::default()
        };
        let plan = policy::plan(&req.method(), &directives, headers.get("range").is_some());
        if plan == Plan::Bypass {
            req.set_context(STATE, "bypass");
            return Action::Continue;
        }
        let consumer = req.get_context("consumer");
        let keyed_consumer = consumer.as_deref().filter(|_| rule.per_consumer);
        let base = base_key(req, &headers, rule, route.as_deref(), keyed_consumer);
        if base.len() > MAX_KEY_BYTES {
            req.set_context(STATE, "bypass");
            return Action::Continue;
        }
        if plan == Plan::Invalidate {
            req.set_context(BASE, &base);
            req.set_context(STATE, "invalidate");
            return Action::Continue;
        }
        // Auth removes the credential it checked, so an authenticated
        // consumer counts as a credential unless entries are per consumer.
        let credentialed =
            headers.get("authorization").is_some() || (consumer.is_some() && !rule.per_consumer);
        let lookup = Lookup {
            base: &base,
            plan,
            directives: &directives,
            credentialed,
        };
        self.lookup(req, &headers, &lookup, route.as_deref())
    }

    fn on_response(&mut self, req: &Request, resp: &Response) -> Action {
        let Some(state) = req.get_context(STATE) else {
            return Action::Continue;
        };
        let route = req.get_context("route");
        let outcome = match state.as_str() {
            "miss" | "revalidate" => {
                return self.complete(req, resp, state == "revalidate", route.as_deref());
            }
            "head" => Outcome::Miss,
            "invalidate" => {
                if resp.status() < 400
                    && let Some(base) = req.get_context(BASE)
                {
                    let _ = kv::delete(&base);
                }
                Outcome::Bypass
            }
            _ => Outcome::Bypass,
        };
        self.count(route.as_deref(), outcome);
        self.label(resp, outcome);
        Action::Continue
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

    fn label(&self, resp: &Response, outcome: Outcome) {
        if let Some(header) = &self.status_header {
            let _ = resp.set_header(header, outcome.label());
        }
    }

    /// Headers added to every reply the cache builds.
    fn reply_headers(&self, age_ms: u64, outcome: Outcome) -> Vec<(String, String)> {
        let mut headers = vec![("age".to_string(), (age_ms / 1000).to_string())];
        if let Some(header) = &self.status_header {
            headers.push((header.clone(), outcome.label().to_string()));
        }
        headers
    }

    /// A reply from a stored response: 304 when the client's conditions
    /// hold, the whole response otherwise.
    fn answer(
        &self,
        meta: Meta,
        body: Vec<u8>,
        conditions: &Conditions,
        now: u64,
        outcome: Outcome,
    ) -> Action {
        let extra = self.reply_headers(meta.age_ms(now), outcome);
        if !conditions.is_empty()
            && is_success(meta.status)
            && conditions.not_modified(meta.header("etag"), meta.header("last-modified"))
        {
            return not_modified(&meta.headers, extra).into();
        }
        let mut headers = meta.headers;
        headers.extend(extra);
        Reply {
            status: meta.status,
            headers,
            body,
        }
        .into()
    }

    fn lookup(
        &self,
        req: &Request,
        headers: &Headers,
        lookup: &Lookup<'_>,
        route: Option<&str>,
    ) -> Action {
        let found = match find(headers, lookup.base) {
            Ok(found) => found,
            Err(e) => {
                weir_sdk::debug!("cache lookup failed, bypassing: {e}");
                req.set_context(STATE, "bypass");
                return Action::Continue;
            }
        };
        let now = now_ms();
        let conditions = Conditions {
            if_none_match: headers.get("if-none-match").map(str::to_string),
            if_modified_since: headers.get("if-modified-since").map(str::to_string),
        };
        let found = match found {
            Some((_, meta, body)) if policy::usable(&meta, now, lookup.directives) => {
                self.count(route, Outcome::Hit);
                return self.answer(meta, body, &conditions, now, Outcome::Hit);
            }
            // RFC 9111 §5.2.1.7: nothing usable stored.
            _ if lookup.directives.only_if_cached => return Reply::new(504).into(),
            found => found,
        };
        // Going upstream: tell `on_response` what to do with the answer.
        req.set_context(BASE, lookup.base);
        if lookup.credentialed {
            req.set_context(CREDENTIALED, "1");
        }
        match found {
            _ if lookup.plan == Plan::LookupHead => req.set_context(STATE, "head"),
            Some((key, meta, _)) if meta.has_validators() => {
                stash(req, &conditions);
                if let Some(etag) = meta.header("etag") {
                    let _ = req.set_header("if-none-match", etag);
                }
                if let Some(modified) = meta.header("last-modified") {
                    let _ = req.set_header("if-modified-since", modified);
                }
                req.set_context(KEY, &key);
                req.set_context(STATE, "revalidate");
            }
            _ => {
                stash(req, &conditions);
                req.set_context(STATE, "miss");
            }
        }
        Action::Continue
    }

    /// The response to a lookup that went upstream.
    fn complete(
        &self,
        req: &Request,
        resp: &Response,
        revalidating: bool,
        route: Option<&str>,
    ) -> Action {
        let Some(rule) = self.rule(route) else {
            return Action::Continue;
        };
        let now = now_ms();
        let conditions = stashed(req);
        if revalidating && resp.status() == 304 {
            self.count(route, Outcome::Revalidated);
            return self.refreshed(req, resp, rule, now, &conditions);
        }
        let outcome = match self.store(req, resp, rule, now) {
            Ok(()) => Outcome::Miss,
            Err(Skip::Policy(why)) => {
                weir_sdk::debug!("not stored: {why:?}");
                Outcome::Bypass
            }
            Err(why) => {
                weir_sdk::debug!("not stored: {why}");
                Outcome::Miss
            }
        };
        self.count(route, outcome);
        if !conditions.is_empty()
            && is_success(resp.status())
            && conditions.not_modified(
                resp.header("etag").as_deref(),
                resp.header("last-modified").as_deref(),
            )
        {
            let mut extra = Vec::new();
            if let Some(header) = &self.status_header {
                extra.push((header.clone(), outcome.label().to_string()));
            }
            return not_modified(&resp.headers(), extra).into();
        }
        self.label(resp, outcome);
        Action::Continue
    }

    /// Store a response from upstream if RFC 9111 and the rule allow it.
    fn store(&self, req: &Request, resp: &Response, rule: &Rule, now: u64) -> Result<(), Skip> {
        let status = resp.status();
        let cc = CacheControl::parse(&resp.header_all("cache-control"));
        let vary = policy::vary_names(&resp.header_all("vary"));
        let candidate = Candidate {
            status,
            cc: &cc,
            vary: &vary,
            set_cookie: resp.header("set-cookie").is_some(),
            content_length: resp
                .header("content-length")
                .and_then(|v| v.trim().parse().ok()),
            credentialed: req.get_context(CREDENTIALED).is_some(),
        };
        policy::may_store(rule, &candidate).map_err(Skip::Policy)?;
        // Past max_body_bytes the host refuses and the body streams on.
        let body = resp.body().map_err(|e| match e {
            BodyError::TooLarge(_) => Skip::Policy(NotStored::TooLarge),
            BodyError::ReadFailed(why) => Skip::Body(why),
        })?;
        if body.len() as u64 > rule.max_object_bytes {
            return Err(Skip::Policy(NotStored::TooLarge));
        }
        let status_header = self.status_header.as_deref().unwrap_or("");
        let headers = entry::storable_headers(resp.headers(), status_header);
        let age = resp.header("age");
        let meta = Meta::timed(status, headers, age.as_deref(), now, rule.default_ttl_s);
        let ttl = policy::keep_ms(&meta, now, rule).ok_or(Skip::Policy(NotStored::Useless))?;
        let base = req.get_context(BASE).unwrap_or_default();
        let key = if vary.is_empty() {
            base
        } else {
            kv::set(&base, &entry::encode_vary(&vary), Some(ttl)).map_err(Skip::Store)?;
            key::variant_key(&base, &varied(&Headers::new(req.headers()), &vary))
        };
        kv::set(&key, &entry::encode_entry(&meta, &body), Some(ttl)).map_err(Skip::Store)
    }

    /// A 304 validated the stored entry: refresh it and answer from it.
    fn refreshed(
        &self,
        req: &Request,
        resp: &Response,
        rule: &Rule,
        now: u64,
        conditions: &Conditions,
    ) -> Action {
        let key = req.get_context(KEY).unwrap_or_default();
        let Ok(Some(Stored::Entry(mut meta, body))) =
            kv::get(&key).map(|v| v.and_then(entry::decode))
        else {
            // Evicted or purged while the request was upstream; the 304 is
            // no answer to a client that asked unconditionally.
            weir_sdk::warn!("cache entry `{key}` vanished during revalidation");
            return Reply::json(
                502,
                &serde_json::json!({"error": "cache entry lost during revalidation"}),
            )
            .into();
        };
        let status_header = self.status_header.as_deref().unwrap_or("");
        meta.refresh(&resp.headers(), now, rule.default_ttl_s, status_header);
        let keep = policy::keep_ms(&meta, now, rule).filter(|_| !meta.cache_control().no_store);
        let stored = match keep {
            Some(ttl) => kv::set(&key, &entry::encode_entry(&meta, &body), Some(ttl)),
            None => kv::delete(&key).map(|_| ()),
        };
        if let Err(e) = stored {
            weir_sdk::debug!("refreshed entry not stored: {e:?}");
        }
        self.answer(meta, body, conditions, now, Outcome::Revalidated)
    }
}

export_plugin!(Cache);
