//! Weir's default rate-limit plugin: GCRA limits on the host's `rate`
//! capability, so counts are exact under concurrency and shared by every
//! gateway using the same store.
//!
//! Each limit counts by a key built from the consumer (set by auth), the
//! client IP (through trusted proxies only), the route, a header, or a
//! combination. All limits that apply must allow a request; they are taken
//! all or nothing, so a request refused by one limit does not use up the
//! others. Refused → 429 with `Retry-After` and the IETF `RateLimit-Policy`
//! / `RateLimit` headers; allowed responses carry the same headers unless
//! `headers` is false. Each refusal is counted in the `refusals` metric
//! (`weir_plugin_rate_limit_refusals_total{limit}`), under the limit the
//! 429 names.

mod client;
mod config;

use client::Cidr;
use config::{Config, KeySpec};
use weir_sdk::metrics::Counter;
use weir_sdk::rate::{self, Limit, TakeRequest};
use weir_sdk::{Action, Hooks, Plugin, Reply, Request, export_plugin};

/// The plugin.
pub struct RateLimiter {
    limits: Vec<CompiledLimit>,
    /// Whether any limit needs the route (a `routes` list or a `route`
    /// key part): otherwise it is not asked of the host.
    needs_route: bool,
    trusted: Vec<Cidr>,
    headers: bool,
    refusals: Counter,
}

struct CompiledLimit {
    name: String,
    sources: Vec<Source>,
    limit: Limit,
    routes: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Consumer,
    ClientIp,
    Route,
    Header(String),
}

impl Source {
    fn parse(text: &str) -> Result<Source, String> {
        match text {
            "consumer" => Ok(Source::Consumer),
            "client_ip" => Ok(Source::ClientIp),
            "route" => Ok(Source::Route),
            other => match other.strip_prefix("header:") {
                Some(name) if !name.is_empty() => Ok(Source::Header(name.to_ascii_lowercase())),
                _ => Err(format!(
                    "key `{other}` is not `consumer`, `client_ip`, `route` or `header:NAME`"
                )),
            },
        }
    }
}

fn seconds_up(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

impl Plugin for RateLimiter {
    type Config = Config;
    // Allowed responses get their headers through `set-response-headers`
    // in `on-request`: no `on-response` call per request.
    const HOOKS: Hooks = Hooks::ON_REQUEST;

    fn new(config: Config) -> Result<Self, String> {
        let trusted = config
            .trusted_proxies
            .iter()
            .map(|t| Cidr::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut limits = Vec::new();
        for (i, limit) in config.limits.into_iter().enumerate() {
            let name = limit.name.unwrap_or_else(|| format!("limit-{i}"));
            let at = |why: String| format!("limit `{name}`: {why}");
            let sources = match &limit.key {
                KeySpec::One(one) => vec![Source::parse(one).map_err(at)?],
                KeySpec::Many(many) if !many.is_empty() => many
                    .iter()
                    .map(|s| Source::parse(s))
                    .collect::<Result<_, _>>()
                    .map_err(at)?,
                KeySpec::Many(_) => return Err(at("`key` must not be empty".into())),
            };
            if limit.rate == 0 {
                return Err(at("`rate` must be greater than 0".into()));
            }
            if name.contains(['"', '\\']) {
                return Err(at("a name may not hold quotes or backslashes".into()));
            }
            let period_ms = limit.per.millis().map_err(at)?;
            limits.push(CompiledLimit {
                limit: Limit::new(limit.rate, period_ms).burst(limit.burst),
                name,
                sources,
                routes: limit.routes,
            });
        }
        let refusals = Counter::define(
            "refusals",
            "Requests refused with 429, by the limit the answer names",
            &["limit"],
        )?;
        let needs_route = limits
            .iter()
            .any(|l| l.routes.is_some() || l.sources.contains(&Source::Route));
        Ok(RateLimiter {
            needs_route,
            limits,
            trusted,
            headers: config.headers,
            refusals,
        })
    }

    fn on_request(&mut self, req: &Request) -> Action {
        let route = match self.needs_route {
            true => req.get_context("route"),
            false => None,
        };
        let mut applied: Vec<&CompiledLimit> = Vec::new();
        let mut takes = Vec::new();
        for limit in &self.limits {
            if let Some(routes) = &limit.routes
                && !route.as_ref().is_some_and(|r| routes.contains(r))
            {
                continue;
            }
            // A limit whose key is not there (no consumer on a public
            // route, no such header) does not apply to this request.
            let Some(key) = self.key_of(req, limit, route.as_deref()) else {
                continue;
            };
            takes.push(TakeRequest {
                key: format!("{}\u{1f}{key}", limit.name),
                cost: 1,
                limit: limit.limit,
            });
            applied.push(limit);
        }
        if takes.is_empty() {
            return Action::Continue;
        }
        let decisions = rate::take_all(&takes);
        let policy: Vec<String> = applied
            .iter()
            .zip(&decisions)
            .map(|(l, d)| {
                format!(
                    r#""{}";q={};w={}"#,
                    l.name,
                    d.limit,
                    seconds_up(l.limit.period_ms)
                )
            })
            .collect();
        let state: Vec<String> = applied
            .iter()
            .zip(&decisions)
            .map(|(l, d)| {
                format!(
                    r#""{}";r={};t={}"#,
                    l.name,
                    d.remaining,
                    seconds_up(d.reset_after_ms)
                )
            })
            .collect();
        let (policy, state) = (policy.join(", "), state.join(", "));

        if decisions.iter().all(|d| d.allowed) {
            if self.headers {
                let _ = req.set_response_header_pairs(&[
                    ("ratelimit-policy", &policy),
                    ("ratelimit", &state),
                ]);
            }
            return Action::Continue;
        }
        let (denied, wait_ms) = applied
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| !d.allowed)
            .map(|(l, d)| (l.name.as_str(), d.retry_after_ms))
            .max_by_key(|(_, ms)| *ms)
            .unwrap_or(("", 1000));
        self.refusals.inc(&[denied]);
        let retry_after = seconds_up(wait_ms).max(1);
        let body = serde_json::json!({
            "error": "rate limit exceeded",
            "limit": denied,
            "retry_after_s": retry_after,
        });
        Reply::json(429, &body)
            .header("retry-after", &retry_after.to_string())
            .header("ratelimit-policy", &policy)
            .header("ratelimit", &state)
            .into()
    }
}

impl RateLimiter {
    /// The counted key for `limit`, or `None` when a part is missing.
    fn key_of(&self, req: &Request, limit: &CompiledLimit, route: Option<&str>) -> Option<String> {
        let mut parts = Vec::with_capacity(limit.sources.len());
        for source in &limit.sources {
            let part = match source {
                Source::Consumer => req.get_context("consumer")?,
                Source::Route => route?.to_string(),
                Source::Header(name) => req.header(name)?,
                Source::ClientIp => {
                    // The gateway's address, resolved through the listener's
                    // `trusted_proxies`. The plugin's own `trusted_proxies`
                    // (superseded by the gateway's, kept so configs written
                    // for it work) walk X-Forwarded-For on from there.
                    let resolved = req.client_ip();
                    if self.trusted.is_empty() {
                        resolved
                    } else {
                        let peer = resolved.parse().ok()?;
                        let forwarded = req.header_all("x-forwarded-for");
                        client::client_ip(peer, &forwarded, &self.trusted).to_string()
                    }
                }
            };
            parts.push(part);
        }
        Some(parts.join("|"))
    }
}

export_plugin!(RateLimiter);
