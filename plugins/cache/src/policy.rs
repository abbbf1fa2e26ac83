//! The decisions of a shared cache (RFC 9111), apart from any I/O: what a
//! request may take from the cache, and which responses may be stored.

use crate::config::{Rule, SetCookie};
use crate::directives::CacheControl;
use crate::entry::Meta;
use crate::freshness::{Freshness, Refusal};

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// GET: look it up, store the response.
    Lookup,
    /// HEAD: answer from a stored GET, never store.
    LookupHead,
    /// An unsafe method: a success invalidates the stored entry (§4.4).
    Invalidate,
    /// Neither read nor written.
    Bypass,
}

/// The plan for `method` with the request's directives. Safe methods
/// (RFC 9110 §9.2.1) other than GET and HEAD pass by; every other method,
/// unknown ones included, is unsafe and invalidates (RFC 9111 §4.4).
pub fn plan(method: &str, cc: &CacheControl) -> Plan {
    match method {
        "GET" | "HEAD" if cc.no_store => Plan::Bypass,
        "GET" => Plan::Lookup,
        "HEAD" => Plan::LookupHead,
        "OPTIONS" | "TRACE" | "CONNECT" => Plan::Bypass,
        _ => Plan::Invalidate,
    }
}

/// The request's `Cache-Control`, or `Pragma: no-cache` when it sends no
/// `Cache-Control` (RFC 9111 §5.4).
pub fn request_directives(cache_control: &[String], pragma: &[String]) -> CacheControl {
    if cache_control.is_empty() {
        let no_cache = pragma.iter().any(|p| {
            p.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
        });
        return CacheControl {
            no_cache,
            ..CacheControl::default()
        };
    }
    CacheControl::parse(cache_control)
}

/// How a stored response may answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Fresh, and as fresh as the client wants (§4.2).
    Fresh,
    /// Stale, but within the client's `max-stale` (§5.2.1.2) and not
    /// forbidden to be served stale (§4.2.4).
    Stale,
    /// Not without the upstream.
    No,
}

/// How a stored response may answer a request with these directives.
pub fn usable(meta: &Meta, now_ms: u64, cc: &CacheControl) -> Use {
    if cc.no_cache
        || cc
            .max_age
            .is_some_and(|max| meta.age_ms(now_ms) > max.saturating_mul(1000))
    {
        return Use::No;
    }
    let fresh_ms = meta.fresh_ms(now_ms);
    if fresh_ms > 0 {
        let fresh_enough = cc
            .min_fresh
            .is_none_or(|min| fresh_ms >= min.saturating_mul(1000));
        return if fresh_enough { Use::Fresh } else { Use::No };
    }
    match cc.max_stale {
        Some(max)
            if !meta.stale.forbidden && meta.staleness_ms(now_ms) <= max.saturating_mul(1000) =>
        {
            Use::Stale
        }
        _ => Use::No,
    }
}

/// Whether a stale entry is within a window of `window_s` seconds past
/// its freshness, and may be served stale at all.
pub fn within_stale_window(meta: &Meta, now_ms: u64, window_s: u64) -> bool {
    !meta.stale.forbidden
        && window_s > 0
        && meta.staleness_ms(now_ms) <= window_s.saturating_mul(1000)
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// §3 refuses it.
    Rfc(Refusal),
    /// Not in the rule's `statuses`.
    Status,
    /// The request carried credentials and the response does not allow a
    /// shared cache to keep it (`public`, `s-maxage`, `must-revalidate`).
    Credentials,
    VaryStar,
    SetCookie,
    TooLarge,
    /// Not fresh, and without a validator to revalidate it with.
    Useless,
}

/// What storing depends on.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub status: u16,
    pub freshness: &'a Freshness,
    /// The `Vary` header names, lower-case.
    pub vary: &'a [String],
    pub set_cookie: bool,
    /// The body's size when it is known before reading it.
    pub content_length: Option<u64>,
    /// The request carried credentials (see [`crate::Cache`]).
    pub credentialed: bool,
}

/// Whether a response may be stored under `rule` (§3), checked before the
/// body is read. Whether it is worth keeping is [`keep_ms`].
pub fn may_store(rule: &Rule, c: &Candidate<'_>) -> Result<(), NotStored> {
    if rule
        .statuses
        .as_ref()
        .is_some_and(|s| !s.contains(&c.status))
    {
        return Err(NotStored::Status);
    }
    c.freshness.storable(c.status).map_err(NotStored::Rfc)?;
    if c.credentialed && !c.freshness.cc.allows_credentials() {
        return Err(NotStored::Credentials);
    }
    if c.vary.iter().any(|v| v == "*") {
        return Err(NotStored::VaryStar);
    }
    if c.set_cookie && rule.set_cookie == SetCookie::Refuse {
        return Err(NotStored::SetCookie);
    }
    if c.content_length
        .is_some_and(|len| len > rule.max_object_bytes)
    {
        return Err(NotStored::TooLarge);
    }
    Ok(())
}

/// How long (ms) `kv` should keep an entry: its fresh time, plus the
/// longest time it may still be of use stale: `keep_stale_s` when it can
/// be revalidated, its stale-while-revalidate and stale-if-error windows
/// when it may be served stale. `None` when not worth storing.
pub fn keep_ms(meta: &Meta, now_ms: u64, rule: &Rule) -> Option<u64> {
    let fresh = meta.fresh_ms(now_ms);
    let mut extra_s = 0;
    if meta.has_validators() {
        extra_s = rule.keep_stale_s;
    }
    if !meta.stale.forbidden {
        extra_s = extra_s
            .max(meta.stale.while_revalidate_s)
            .max(meta.stale.if_error_s);
    }
    let keep = if extra_s == 0 {
        fresh
    } else {
        // Stale windows count from the end of freshness.
        let stale_ms = meta.staleness_ms(now_ms);
        fresh.saturating_add(extra_s.saturating_mul(1000).saturating_sub(stale_ms))
    };
    (keep > 0).then_some(keep)
}

/// The `Vary` names of a response, lower-case, sorted and deduplicated so
/// the same set always makes the same key.
pub fn vary_names(values: &[String]) -> Vec<String> {
    let mut names: Vec<String> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleConfig;

    fn rule(json: &str) -> Rule {
        serde_json::from_str::<RuleConfig>(json)
            .unwrap()
            .check()
            .unwrap()
    }

    fn cc(v: &str) -> CacheControl {
        CacheControl::parse(&[v])
    }

    fn fresh(status: u16, cache_control: &str) -> Freshness {
        let headers = vec![("cache-control".to_string(), cache_control.to_string())];
        Freshness::of(status, &headers, None, 0, &rule("{}"))
    }

    fn candidate<'a>(status: u16, f: &'a Freshness, vary: &'a [String]) -> Candidate<'a> {
        Candidate {
            status,
            freshness: f,
            vary,
            set_cookie: false,
            content_length: None,
            credentialed: false,
        }
    }

    #[test]
    fn safe_methods_pass_and_every_other_method_invalidates() {
        // RFC 9110 §9.2.1, RFC 9111 §4.4.
        let none = CacheControl::default();
        assert_eq!(plan("GET", &none), Plan::Lookup);
        assert_eq!(plan("HEAD", &none), Plan::LookupHead);
        assert_eq!(plan("GET", &cc("no-store")), Plan::Bypass);
        for safe in ["OPTIONS", "TRACE"] {
            assert_eq!(plan(safe, &none), Plan::Bypass);
        }
        for unsafe_method in ["POST", "PUT", "PATCH", "DELETE", "M-SEARCH", "PURGE"] {
            assert_eq!(
                plan(unsafe_method, &none),
                Plan::Invalidate,
                "{unsafe_method}"
            );
        }
    }

    #[test]
    fn pragma_counts_only_without_cache_control() {
        let pragma = vec!["no-cache".to_string()];
        assert!(request_directives(&[], &pragma).no_cache);
        assert!(!request_directives(&["max-age=5".into()], &pragma).no_cache);
    }

    #[test]
    fn storing_follows_section_3() {
        let r = rule(r#"{"max_object_bytes": 100}"#);
        let none = Vec::new();
        let plain = fresh(200, "max-age=60");
        assert_eq!(may_store(&r, &candidate(200, &plain, &none)), Ok(()));
        let error = fresh(500, "max-age=60");
        assert_eq!(may_store(&r, &candidate(500, &error, &none)), Ok(()));
        let only = rule(r#"{"statuses": [200]}"#);
        assert_eq!(
            may_store(&only, &candidate(500, &error, &none)),
            Err(NotStored::Status)
        );
        let no_store = fresh(200, "no-store, max-age=60");
        assert_eq!(
            may_store(&r, &candidate(200, &no_store, &none)),
            Err(NotStored::Rfc(Refusal::NoStore))
        );
        let private = fresh(200, "private, max-age=60");
        assert_eq!(
            may_store(&r, &candidate(200, &private, &none)),
            Err(NotStored::Rfc(Refusal::Private))
        );
        let star = vec!["*".to_string()];
        assert_eq!(
            may_store(&r, &candidate(200, &plain, &star)),
            Err(NotStored::VaryStar)
        );
        let mut with_credentials = candidate(200, &plain, &none);
        with_credentials.credentialed = true;
        assert_eq!(
            may_store(&r, &with_credentials),
            Err(NotStored::Credentials)
        );
        let public = fresh(200, "public, max-age=60");
        with_credentials.freshness = &public;
        assert_eq!(may_store(&r, &with_credentials), Ok(()));
        let mut large = candidate(200, &plain, &none);
        large.content_length = Some(101);
        assert_eq!(may_store(&r, &large), Err(NotStored::TooLarge));
        let mut cookie = candidate(200, &plain, &none);
        cookie.set_cookie = true;
        assert_eq!(may_store(&r, &cookie), Err(NotStored::SetCookie));
        let store_cookies = rule(r#"{"set_cookie": "store"}"#);
        assert_eq!(may_store(&store_cookies, &cookie), Ok(()));
    }

    fn meta(headers: &[(&str, &str)], now: u64, r: &Rule) -> Meta {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Meta::timed(200, headers, None, now, r)
    }

    #[test]
    fn entries_are_kept_past_freshness_only_while_of_use() {
        let r = rule(r#"{"keep_stale_s": 30}"#);
        let m = |h: &[(&str, &str)]| keep_ms(&meta(h, 0, &r), 0, &r);
        assert_eq!(m(&[("cache-control", "max-age=10")]), Some(10_000));
        assert_eq!(
            m(&[("cache-control", "max-age=10"), ("etag", "\"a\"")]),
            Some(40_000)
        );
        assert_eq!(
            m(&[("cache-control", "no-cache"), ("etag", "\"a\"")]),
            Some(30_000)
        );
        assert_eq!(m(&[("cache-control", "max-age=0")]), None);
        assert_eq!(
            m(&[("cache-control", "max-age=10, stale-if-error=100")]),
            Some(110_000)
        );
        assert_eq!(
            m(&[(
                "cache-control",
                "max-age=10, must-revalidate, stale-if-error=100"
            )]),
            Some(10_000)
        );
    }

    #[test]
    fn client_directives_narrow_what_is_usable() {
        // RFC 9111 §5.2.1.
        let r = rule("{}");
        let m = meta(&[("cache-control", "max-age=60")], 0, &r);
        let none = CacheControl::default();
        assert_eq!(usable(&m, 10_000, &none), Use::Fresh);
        assert_eq!(usable(&m, 60_000, &none), Use::No);
        assert_eq!(usable(&m, 10_000, &cc("no-cache")), Use::No);
        assert_eq!(usable(&m, 10_000, &cc("max-age=10")), Use::Fresh);
        assert_eq!(usable(&m, 10_001, &cc("max-age=10")), Use::No);
        assert_eq!(usable(&m, 10_000, &cc("min-fresh=50")), Use::Fresh);
        assert_eq!(usable(&m, 10_001, &cc("min-fresh=50")), Use::No);
        assert_eq!(usable(&m, 65_000, &cc("max-stale=10")), Use::Stale);
        assert_eq!(usable(&m, 75_000, &cc("max-stale=10")), Use::No);
        assert_eq!(usable(&m, 999_000, &cc("max-stale")), Use::Stale);
        let strict = meta(&[("cache-control", "max-age=60, must-revalidate")], 0, &r);
        assert_eq!(usable(&strict, 65_000, &cc("max-stale")), Use::No);
    }

    #[test]
    fn vary_names_are_a_canonical_set() {
        let v = vec!["Accept-Language, accept".to_string(), "ACCEPT".to_string()];
        assert_eq!(vary_names(&v), vec!["accept", "accept-language"]);
    }
}
