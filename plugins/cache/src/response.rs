//! `on-response`: what the cache does with the upstream's answer: store
//! it, refresh a stored entry with a 304, stand a stale entry in for an
//! error, invalidate after an unsafe request, and release the locks the
//! request held.

use weir_sdk::{Action, BodyError, Reply, Request, Response, kv};

use crate::conditional::not_modified;
use crate::config::{Rule, SetCookie};
use crate::entry::{self, Meta, Stored, VaryList};
use crate::freshness::Freshness;
use crate::headers::Headers;
use crate::invalidate;
use crate::key;
use crate::lookup::{stashed, varied};
use crate::policy::{self, Candidate, NotStored};
use crate::status::CacheStatus;
use crate::{Cache, Outcome, ctx, is_success, now_ms};

/// Why a response was not stored.
#[derive(Debug)]
enum Skip {
    Policy(NotStored),
    Body(String),
    Store(kv::KvError),
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

/// RFC 5861 §4: the statuses that count as an error for stale-if-error.
fn is_error(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

impl Cache {
    pub(crate) fn response(&self, req: &Request, resp: &Response) -> Action {
        let Some(state) = req.get_context(ctx::STATE) else {
            return Action::Continue;
        };
        let route = req.get_context("route");
        let fwd = fwd_reason(req);
        let (outcome, status) = match state.as_str() {
            "miss" | "revalidate" => {
                let action = self.complete(req, resp, state == "revalidate", route.as_deref());
                release_locks(req);
                return action;
            }
            "head" | "pass" => (Outcome::Miss, CacheStatus::forward(fwd)),
            "invalidate" => {
                // §4.4: after a non-error response only.
                if resp.status() < 400 {
                    self.invalidate(req, resp);
                }
                (Outcome::Bypass, CacheStatus::forward("method"))
            }
            _ => (Outcome::Bypass, CacheStatus::forward(fwd)),
        };
        self.count(route.as_deref(), outcome);
        self.label(resp, outcome, &status);
        Action::Continue
    }

    /// §4.4: the target URI, and the same-origin URIs in `Location` and
    /// `Content-Location`.
    fn invalidate(&self, req: &Request, resp: &Response) {
        let target = req.get_context(ctx::TARGET).unwrap_or_default();
        invalidate::invalidate(&target);
        let authority = req.authority().unwrap_or_default();
        let path = req
            .get_context("route.original_target")
            .unwrap_or_else(|| req.path_with_query());
        for name in ["location", "content-location"] {
            if let Some(value) = resp.header(name)
                && let Some(uri) = invalidate::same_origin(&value, &authority, &path)
            {
                invalidate::invalidate(&uri);
            }
        }
    }

    /// The response to a request that went upstream to fill or revalidate
    /// an entry.
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
        let upstream_status = resp.status();
        if is_error(upstream_status)
            && req.get_context(ctx::STALE_IF_ERROR).is_some()
            && let Some(action) = self.stale_if_error(req, upstream_status, route, now)
        {
            return action;
        }
        let collapsed = req.get_context(ctx::WAITED).is_some();
        let fwd = fwd_reason(req);
        if revalidating && upstream_status == 304 {
            self.count(route, Outcome::Revalidated);
            return self.refreshed(req, resp, rule, now);
        }
        let stored = self.store(req, resp, rule, now);
        let outcome = match &stored {
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
        let status = CacheStatus {
            fwd_status: Some(upstream_status),
            stored: stored.is_ok(),
            collapsed,
            ..CacheStatus::forward(fwd)
        };
        let conditions = stashed(req);
        if !conditions.is_empty()
            && is_success(upstream_status)
            && conditions.not_modified(
                resp.header("etag").as_deref(),
                resp.header("last-modified")
                    .or_else(|| resp.header("date"))
                    .as_deref(),
            )
        {
            return not_modified(&resp.headers(), self.status_headers(outcome, &status)).into();
        }
        self.label(resp, outcome, &status);
        Action::Continue
    }

    /// RFC 5861 §4: the upstream failed; answer from the stored entry if
    /// it is within its stale-if-error window.
    fn stale_if_error(
        &self,
        req: &Request,
        upstream_status: u16,
        route: Option<&str>,
        now: u64,
    ) -> Option<Action> {
        let key = req.get_context(ctx::KEY)?;
        let Ok(Some(Stored::Entry(meta, body))) = kv::get(&key).map(|v| v.and_then(entry::decode))
        else {
            return None;
        };
        if !policy::within_stale_window(&meta, now, meta.stale.if_error_s) {
            return None;
        }
        release_locks(req);
        self.count(route, Outcome::Stale);
        let stale_ms = i64::try_from(meta.staleness_ms(now)).unwrap_or(i64::MAX);
        let status = CacheStatus {
            fwd: Some("stale"),
            fwd_status: Some(upstream_status),
            detail: Some("stale-if-error"),
            ..CacheStatus::hit(-stale_ms)
        };
        let mut headers = meta.headers.clone();
        headers.push(("age".to_string(), (meta.age_ms(now) / 1000).to_string()));
        headers.extend(self.status_headers(Outcome::Stale, &status));
        Some(
            Reply {
                status: meta.status,
                headers,
                body,
            }
            .into(),
        )
    }

    /// Store a response from upstream if RFC 9111 and the rule allow it.
    fn store(&self, req: &Request, resp: &Response, rule: &Rule, now: u64) -> Result<(), Skip> {
        let status = resp.status();
        let all = resp.headers();
        let age = joined(&resp.header_all("age"));
        let freshness = Freshness::of(status, &all, age.as_deref(), now, rule);
        let vary = policy::vary_names(&resp.header_all("vary"));
        let candidate = Candidate {
            status,
            freshness: &freshness,
            vary: &vary,
            set_cookie: resp.header("set-cookie").is_some(),
            content_length: resp
                .header("content-length")
                .and_then(|v| v.trim().parse().ok()),
            credentialed: req.get_context(ctx::CREDENTIALED).is_some(),
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
        let mut headers = entry::storable_headers(all, status_header);
        if rule.set_cookie == SetCookie::Strip {
            headers.retain(|(n, _)| n != "set-cookie");
        }
        let meta = Meta::timed(status, headers, age.as_deref(), now, rule);
        let ttl = policy::keep_ms(&meta, now, rule).ok_or(Skip::Policy(NotStored::Useless))?;
        let base = req.get_context(ctx::BASE).unwrap_or_default();
        let key = if vary.is_empty() {
            base.clone()
        } else {
            let generation = vary_generation(&base, &vary, ttl, now).map_err(Skip::Store)?;
            key::variant_key(
                &base,
                &generation,
                &varied(&Headers::new(req.headers()), &vary),
            )
        };
        kv::set(&key, &entry::encode_entry(&meta, &body), Some(ttl)).map_err(Skip::Store)?;
        if let Some(target) = req.get_context(ctx::TARGET) {
            invalidate::remember(&target, &base, ttl);
        }
        Ok(())
    }

    /// A 304 validated the stored entry: refresh it (RFC 9111 §4.3.4) and
    /// answer from it.
    fn refreshed(&self, req: &Request, resp: &Response, rule: &Rule, now: u64) -> Action {
        let key = req.get_context(ctx::KEY).unwrap_or_default();
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
        meta.refresh(&resp.headers(), now, rule, status_header);
        let storable = meta
            .freshness(None, now, rule)
            .storable(meta.status)
            .is_ok();
        let keep = policy::keep_ms(&meta, now, rule).filter(|_| storable);
        let stored = match keep {
            Some(ttl) => kv::set(&key, &entry::encode_entry(&meta, &body), Some(ttl)),
            None => kv::delete(&key).map(|_| ()),
        };
        if let Err(e) = &stored {
            weir_sdk::debug!("refreshed entry not stored: {e:?}");
        }
        let status = CacheStatus {
            fwd_status: Some(304),
            stored: stored.is_ok() && keep.is_some(),
            collapsed: req.get_context(ctx::WAITED).is_some(),
            ..CacheStatus::forward("stale")
        };
        let mut extra = vec![("age".to_string(), (meta.age_ms(now) / 1000).to_string())];
        extra.extend(self.status_headers(Outcome::Revalidated, &status));
        let conditions = stashed(req);
        if !conditions.is_empty()
            && is_success(meta.status)
            && conditions.not_modified(meta.header("etag"), meta.modified())
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
}

/// The generation of the Vary list under `base` for these names: the
/// stored one when it lists the same names, else a new list.
fn vary_generation(
    base: &str,
    names: &[String],
    ttl: u64,
    now: u64,
) -> Result<String, kv::KvError> {
    let list = match kv::get(base)?.and_then(entry::decode) {
        Some(Stored::Vary(list)) if list.names == names => list,
        _ => VaryList {
            names: names.to_vec(),
            generation: format!("{now:x}"),
        },
    };
    // Written again with each variant, so the list lives as long as the
    // newest variant.
    kv::set(base, &entry::encode_vary(&list), Some(ttl))?;
    Ok(list.generation)
}

/// A field's lines as one value (RFC 9110 §5.3), `None` when absent.
pub fn joined(lines: &[String]) -> Option<String> {
    (!lines.is_empty()).then(|| lines.join(", "))
}

fn fwd_reason(req: &Request) -> &'static str {
    match req.get_context(ctx::FWD).as_deref() {
        Some("uri-miss") => "uri-miss",
        Some("vary-miss") => "vary-miss",
        Some("stale") => "stale",
        Some("request") => "request",
        Some("method") => "method",
        _ => "bypass",
    }
}

/// Let go of the locks this request held: its answer is stored (or will
/// not be), so the requests waiting on it may look again.
fn release_locks(req: &Request) {
    for name in [ctx::LOCK, ctx::REVALIDATING] {
        if let Some(lock) = req.get_context(name) {
            let _ = kv::delete(&lock);
        }
    }
}
