//! `on-request`: what the cache does with a request before the upstream
//! sees it: answer from a stored response, revalidate one, collapse with
//! another request fetching the same key, or let it pass.

use weir_sdk::{Action, Reply, Request, Wait, kv};

use crate::conditional::{Conditions, not_modified};
use crate::config::Rule;
use crate::directives::CacheControl;
use crate::entry::Meta;
use crate::headers::Headers;
use crate::lookup::{Found, base_key, find, stash};
use crate::policy::{self, Plan, Use};
use crate::range::{self, Answer};
use crate::status::CacheStatus;
use crate::{Cache, MAX_KEY_BYTES, Outcome, ctx, is_success, now_ms};

/// How long a background revalidation holds its lock at most: one is
/// started per stale entry, and a lost one is retried after this.
const REVALIDATION_LOCK_MS: u64 = 30_000;

/// A request about to be looked up.
struct Lookup<'a> {
    base: &'a str,
    plan: Plan,
    directives: &'a CacheControl,
    credentialed: bool,
    rule: &'a Rule,
    route: Option<&'a str>,
}

/// A stored response the cache may answer from.
struct Served<'a> {
    meta: Meta,
    body: Vec<u8>,
    headers: &'a Headers,
    head: bool,
    outcome: Outcome,
    status: CacheStatus,
}

impl Cache {
    pub(crate) fn request(&self, req: &Request) -> Action {
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
        let method = req.method();
        match policy::plan(&method, &directives) {
            Plan::Bypass => {
                let why = if matches!(method.as_str(), "GET" | "HEAD") {
                    "request"
                } else {
                    "method"
                };
                req.set_context(ctx::STATE, "bypass");
                req.set_context(ctx::FWD, why);
                Action::Continue
            }
            Plan::Invalidate => {
                req.set_context(ctx::STATE, "invalidate");
                req.set_context(ctx::TARGET, &crate::invalidate::target_uri(req));
                Action::Continue
            }
            plan => {
                let consumer = req.get_context("consumer");
                let keyed_consumer = consumer.as_deref().filter(|_| rule.per_consumer);
                let base = base_key(req, &headers, rule, route.as_deref(), keyed_consumer);
                if base.len() > MAX_KEY_BYTES {
                    req.set_context(ctx::STATE, "bypass");
                    req.set_context(ctx::FWD, "bypass");
                    return Action::Continue;
                }
                // Auth removes the credential it checked, so an
                // authenticated consumer counts as a credential unless
                // entries are per consumer.
                let credentialed = headers.get("authorization").is_some()
                    || (consumer.is_some() && !rule.per_consumer);
                let lookup = Lookup {
                    base: &base,
                    plan,
                    directives: &directives,
                    credentialed,
                    rule,
                    route: route.as_deref(),
                };
                self.lookup(req, &headers, &lookup)
            }
        }
    }

    fn lookup(&self, req: &Request, headers: &Headers, lookup: &Lookup<'_>) -> Action {
        let found = match find(headers, lookup.base) {
            Ok(found) => found,
            Err(e) => {
                weir_sdk::debug!("cache lookup failed, bypassing: {e}");
                req.set_context(ctx::STATE, "bypass");
                req.set_context(ctx::FWD, "bypass");
                return Action::Continue;
            }
        };
        let now = now_ms();
        let collapsed = req.get_context(ctx::WAITED).is_some();
        let head = lookup.plan == Plan::LookupHead;
        let Found { entry, vary } = found;
        if let Some((key, meta, body)) = entry {
            let fresh_ms = i64::try_from(meta.fresh_ms(now)).unwrap_or(i64::MAX);
            let stale_ms = i64::try_from(meta.staleness_ms(now)).unwrap_or(i64::MAX);
            match policy::usable(&meta, now, lookup.directives) {
                Use::Fresh => {
                    self.count(lookup.route, Outcome::Hit);
                    let status = CacheStatus {
                        collapsed,
                        ..CacheStatus::hit(fresh_ms)
                    };
                    let served = Served {
                        meta,
                        body,
                        headers,
                        head,
                        outcome: Outcome::Hit,
                        status,
                    };
                    return self.answer(served, now).into();
                }
                Use::Stale => {
                    self.count(lookup.route, Outcome::Stale);
                    let status = CacheStatus {
                        detail: Some("max-stale"),
                        ..CacheStatus::hit(-stale_ms)
                    };
                    let served = Served {
                        meta,
                        body,
                        headers,
                        head,
                        outcome: Outcome::Stale,
                        status,
                    };
                    return self.answer(served, now).into();
                }
                Use::No => {}
            }
            let window = meta.stale.while_revalidate_s;
            if !lookup.directives.no_cache
                && lookup.directives.max_age.is_none()
                && policy::within_stale_window(&meta, now, window)
            {
                return self.while_revalidate(req, headers, lookup, (key, meta, body), now);
            }
            if lookup.directives.only_if_cached {
                // RFC 9111 §5.2.1.7: nothing usable stored.
                return Reply::new(504).into();
            }
            return self.upstream(req, headers, lookup, Some((key, meta)), "stale");
        }
        if lookup.directives.only_if_cached {
            return Reply::new(504).into();
        }
        let fwd = if vary.is_some() {
            "vary-miss"
        } else {
            "uri-miss"
        };
        self.upstream(req, headers, lookup, None, fwd)
    }

    /// RFC 5861 §3: answer from the stale entry at once, and let one
    /// request (per entry, across the fleet) revalidate it in the
    /// background; others that arrive meanwhile get the stale entry alone.
    fn while_revalidate(
        &self,
        req: &Request,
        headers: &Headers,
        lookup: &Lookup<'_>,
        (key, meta, body): (String, Meta, Vec<u8>),
        now: u64,
    ) -> Action {
        self.count(lookup.route, Outcome::Stale);
        let stale_ms = i64::try_from(meta.staleness_ms(now)).unwrap_or(i64::MAX);
        let status = CacheStatus {
            detail: Some("stale-while-revalidate"),
            ..CacheStatus::hit(-stale_ms)
        };
        let bodiless = !headers.has_body();
        let served = Served {
            meta: meta.clone(),
            body,
            headers,
            head: lookup.plan == Plan::LookupHead,
            outcome: Outcome::Stale,
            status,
        };
        let reply = self.answer(served, now);
        let lock = format!("%revalidate|{key}");
        if lookup.plan != Plan::Lookup || !bodiless {
            return reply.into();
        }
        match kv::set_if_absent(&lock, b"1", Some(REVALIDATION_LOCK_MS)) {
            Ok(true) => {
                req.set_context(ctx::REVALIDATING, &lock);
                // The background request must fetch a response to store,
                // not be answered 304 for the client's validators.
                req.remove_header("if-none-match");
                req.remove_header("if-modified-since");
                req.remove_header("range");
                req.remove_header("if-range");
                self.prepare(req, lookup, Some((key, meta)), "stale");
                Action::RespondThenContinue(reply)
            }
            _ => reply.into(),
        }
    }

    /// Send the request upstream, revalidating `stored` if it has
    /// validators, and collapsing it with others for the same key.
    fn upstream(
        &self,
        req: &Request,
        headers: &Headers,
        lookup: &Lookup<'_>,
        stored: Option<(String, Meta)>,
        fwd: &'static str,
    ) -> Action {
        let passing = lookup.plan == Plan::LookupHead || headers.get("range").is_some();
        if lookup.rule.collapse && !passing && req.get_context(ctx::WAITED).is_none() {
            let lock = format!("%lock|{}", lookup.base);
            let timeout = lookup.rule.collapse_timeout_ms;
            match kv::set_if_absent(&lock, b"1", Some(u64::from(timeout))) {
                Ok(true) => {
                    // Another request may have stored the entry between
                    // our lookup and the lock: look again before fetching.
                    if let Ok(Found {
                        entry: Some((_, meta, body)),
                        ..
                    }) = find(headers, lookup.base)
                        && policy::usable(&meta, now_ms(), lookup.directives) == Use::Fresh
                    {
                        let _ = kv::delete(&lock);
                        let now = now_ms();
                        self.count(lookup.route, Outcome::Hit);
                        let fresh_ms = i64::try_from(meta.fresh_ms(now)).unwrap_or(i64::MAX);
                        let served = Served {
                            meta,
                            body,
                            headers,
                            head: false,
                            outcome: Outcome::Hit,
                            status: CacheStatus::hit(fresh_ms),
                        };
                        return self.answer(served, now).into();
                    }
                    req.set_context(ctx::LOCK, &lock);
                }
                Ok(false) => {
                    // Someone is fetching it: wait for their answer (the
                    // lock's deletion), then look up again. Only once: a
                    // request that waited and still misses goes upstream.
                    req.set_context(ctx::WAITED, "1");
                    return Action::Wait(Wait {
                        key: lock,
                        timeout_ms: timeout,
                    });
                }
                Err(e) => weir_sdk::debug!("collapse lock unavailable: {e}"),
            }
        }
        self.prepare(req, lookup, stored, fwd);
        if passing {
            let state = if lookup.plan == Plan::LookupHead {
                "head"
            } else {
                "pass"
            };
            req.set_context(ctx::STATE, state);
        }
        Action::Continue
    }

    /// Set up the request for the upstream and the context for
    /// `on_response`: conditional headers to revalidate `stored`, and what
    /// the response is for.
    fn prepare(
        &self,
        req: &Request,
        lookup: &Lookup<'_>,
        stored: Option<(String, Meta)>,
        fwd: &'static str,
    ) {
        req.set_context(ctx::BASE, lookup.base);
        req.set_context(ctx::FWD, fwd);
        req.set_context(ctx::TARGET, &crate::invalidate::target_uri(req));
        if lookup.credentialed {
            req.set_context(ctx::CREDENTIALED, "1");
        }
        let Some((key, meta)) = stored else {
            stash_client_conditions(req);
            req.set_context(ctx::STATE, "miss");
            return;
        };
        req.set_context(ctx::KEY, &key);
        if !meta.stale.forbidden && meta.stale.if_error_s > 0 {
            req.set_context(ctx::STALE_IF_ERROR, "1");
        }
        stash_client_conditions(req);
        if meta.has_validators() {
            if let Some(etag) = meta.header("etag") {
                let _ = req.set_header("if-none-match", etag);
            }
            if let Some(modified) = meta.header("last-modified") {
                let _ = req.set_header("if-modified-since", modified);
            }
            req.set_context(ctx::STATE, "revalidate");
        } else {
            req.set_context(ctx::STATE, "miss");
        }
    }

    /// A reply from a stored response: 304 when the client's conditions
    /// hold, 206 or 416 for a `Range` it can serve, the whole response
    /// otherwise.
    fn answer(&self, served: Served<'_>, now: u64) -> Reply {
        let Served {
            meta,
            body,
            headers,
            head,
            outcome,
            status,
        } = served;
        let mut extra = vec![("age".to_string(), (meta.age_ms(now) / 1000).to_string())];
        extra.extend(self.status_headers(outcome, &status));
        let conditions = Conditions::of(headers);
        if !conditions.is_empty()
            && is_success(meta.status)
            && conditions.not_modified(meta.header("etag"), meta.modified())
        {
            return not_modified(&meta.headers, extra);
        }
        let mut reply_headers = meta.headers.clone();
        reply_headers.extend(extra);
        if !head
            && meta.status == 200
            && let Some(range_value) = headers.get("range")
        {
            let len = body.len() as u64;
            match range::answer(
                range_value,
                headers.get("if-range"),
                meta.header("etag"),
                meta.header("last-modified"),
                len,
            ) {
                Answer::Full => {}
                Answer::Partial { first, last } => {
                    reply_headers.push((
                        "content-range".to_string(),
                        format!("bytes {first}-{last}/{len}"),
                    ));
                    let (first, last) = (first as usize, last as usize);
                    return Reply {
                        status: 206,
                        headers: reply_headers,
                        body: body[first..=last].to_vec(),
                    };
                }
                Answer::Unsatisfiable => {
                    reply_headers.push(("content-range".to_string(), format!("bytes */{len}")));
                    return Reply {
                        status: 416,
                        headers: reply_headers,
                        body: Vec::new(),
                    };
                }
            }
        }
        // HEAD gets the whole reply too: the gateway sends its head, with
        // the Content-Length a GET would have.
        Reply {
            status: meta.status,
            headers: reply_headers,
            body,
        }
    }
}

/// Move the client's conditional headers into the context: the upstream
/// must send a whole response the cache can keep, and the cache answers
/// the conditions itself.
fn stash_client_conditions(req: &Request) {
    let conditions = Conditions {
        if_none_match: req.header("if-none-match"),
        if_modified_since: req.header("if-modified-since"),
    };
    stash(req, &conditions);
}
