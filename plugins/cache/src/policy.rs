//! The decisions of a shared cache (RFC 9111), apart from any I/O: what a
//! request may take from the cache, and which responses may be stored.

use crate::config::Rule;
use crate::directives::CacheControl;
use crate::entry::Meta;

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

/// The plan for `method` with the request's directives; `ranged` when it
/// asks for a range (partial content is not cached).
pub fn plan(method: &str, cc: &CacheControl, ranged: bool) -> Plan {
    match method {
        "GET" | "HEAD" if cc.no_store || ranged => Plan::Bypass,
        "GET" => Plan::Lookup,
        "HEAD" => Plan::LookupHead,
        "POST" | "PUT" | "PATCH" | "DELETE" => Plan::Invalidate,
        _ => Plan::Bypass,
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

/// Whether a stored response may answer a request with these directives
/// without asking the upstream: fresh, and as fresh as the client wants.
pub fn usable(meta: &Meta, now_ms: u64, cc: &CacheControl) -> bool {
    let fresh_ms = meta.fresh_ms(now_ms);
    fresh_ms > 0
        && !cc.no_cache
        && cc
            .max_age
            .is_none_or(|max| meta.age_ms(now_ms) <= max.saturating_mul(1000))
        && cc
            .min_fresh
            .is_none_or(|min| fresh_ms >= min.saturating_mul(1000))
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    Status,
    NoStore,
    Private,
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
    pub cc: &'a CacheControl,
    /// The `Vary` header names, lower-case.
    pub vary: &'a [String],
    pub set_cookie: bool,
    /// The body's size when it is known before reading it.
    pub content_length: Option<u64>,
    /// The request carried credentials (see [`crate::Cache`]).
    pub credentialed: bool,
}

/// Whether a response may be stored under `rule` (§3), checked before the
/// body is read. Freshness is checked later, with [`worth_storing`].
pub fn may_store(rule: &Rule, c: &Candidate<'_>) -> Result<(), NotStored> {
    if !rule.statuses.contains(&c.status) {
        return Err(NotStored::Status);
    }
    if c.cc.no_store {
        return Err(NotStored::NoStore);
    }
    if c.cc.private {
        return Err(NotStored::Private);
    }
    if c.credentialed && !c.cc.allows_credentials() {
        return Err(NotStored::Credentials);
    }
    if c.vary.iter().any(|v| v == "*") {
        return Err(NotStored::VaryStar);
    }
    if c.set_cookie {
        return Err(NotStored::SetCookie);
    }
    if c.content_length
        .is_some_and(|len| len > rule.max_object_bytes)
    {
        return Err(NotStored::TooLarge);
    }
    Ok(())
}

/// How long (ms) `kv` should keep an entry: its fresh time, plus
/// `keep_stale_s` when it can be revalidated; `None` when not worth it.
pub fn keep_ms(meta: &Meta, now_ms: u64, rule: &Rule) -> Option<u64> {
    let fresh = meta.fresh_ms(now_ms);
    let extra = if meta.has_validators() {
        rule.keep_stale_s.saturating_mul(1000)
    } else {
        0
    };
    let keep = fresh.saturating_add(extra);
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

    fn rule() -> Rule {
        serde_json::from_str::<RuleConfig>(r#"{"max_object_bytes": 100, "keep_stale_s": 30}"#)
            .unwrap()
            .check()
            .unwrap()
    }

    fn cc(v: &str) -> CacheControl {
        CacheControl::parse(&[v])
    }

    fn candidate<'a>(status: u16, cc: &'a CacheControl, vary: &'a [String]) -> Candidate<'a> {
        Candidate {
            status,
            cc,
            vary,
            set_cookie: false,
            content_length: None,
            credentialed: false,
        }
    }

    #[test]
    fn only_get_and_head_are_looked_up() {
        let none = CacheControl::default();
        assert_eq!(plan("GET", &none, false), Plan::Lookup);
        assert_eq!(plan("HEAD", &none, false), Plan::LookupHead);
        assert_eq!(plan("GET", &none, true), Plan::Bypass);
        assert_eq!(plan("GET", &cc("no-store"), false), Plan::Bypass);
        assert_eq!(plan("DELETE", &none, false), Plan::Invalidate);
        assert_eq!(plan("OPTIONS", &none, false), Plan::Bypass);
    }

    #[test]
    fn pragma_counts_only_without_cache_control() {
        let pragma = vec!["no-cache".to_string()];
        assert!(request_directives(&[], &pragma).no_cache);
        assert!(!request_directives(&["max-age=5".into()], &pragma).no_cache);
    }

    #[test]
    fn storing_follows_section_3() {
        let r = rule();
        let (plain, none) = (cc("max-age=60"), Vec::new());
        assert_eq!(may_store(&r, &candidate(200, &plain, &none)), Ok(()));
        assert_eq!(
            may_store(&r, &candidate(500, &plain, &none)),
            Err(NotStored::Status)
        );
        let no_store = cc("no-store, max-age=60");
        assert_eq!(
            may_store(&r, &candidate(200, &no_store, &none)),
            Err(NotStored::NoStore)
        );
        let private = cc("private, max-age=60");
        assert_eq!(
            may_store(&r, &candidate(200, &private, &none)),
            Err(NotStored::Private)
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
        let public = cc("public, max-age=60");
        with_credentials.cc = &public;
        assert_eq!(may_store(&r, &with_credentials), Ok(()));
        let mut large = candidate(200, &plain, &none);
        large.content_length = Some(101);
        assert_eq!(may_store(&r, &large), Err(NotStored::TooLarge));
        let mut cookie = candidate(200, &plain, &none);
        cookie.set_cookie = true;
        assert_eq!(may_store(&r, &cookie), Err(NotStored::SetCookie));
    }

    fn meta(headers: &[(&str, &str)], now: u64) -> Meta {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Meta::timed(200, headers, None, now, 0)
    }

    #[test]
    fn entries_are_kept_past_freshness_only_with_validators() {
        let r = rule();
        assert_eq!(
            keep_ms(&meta(&[("cache-control", "max-age=10")], 0), 0, &r),
            Some(10_000)
        );
        let validated = meta(&[("cache-control", "max-age=10"), ("etag", "\"a\"")], 0);
        assert_eq!(keep_ms(&validated, 0, &r), Some(40_000));
        let stale = meta(&[("cache-control", "no-cache"), ("etag", "\"a\"")], 0);
        assert_eq!(keep_ms(&stale, 0, &r), Some(30_000));
        assert_eq!(
            keep_ms(&meta(&[("cache-control", "max-age=0")], 0), 0, &r),
            None
        );
    }

    #[test]
    fn client_directives_narrow_what_is_usable() {
        let m = meta(&[("cache-control", "max-age=60")], 0);
        let none = CacheControl::default();
        assert!(usable(&m, 10_000, &none));
        assert!(!usable(&m, 60_000, &none));
        assert!(!usable(&m, 10_000, &cc("no-cache")));
        assert!(usable(&m, 10_000, &cc("max-age=10")));
        assert!(!usable(&m, 10_001, &cc("max-age=10")));
        assert!(usable(&m, 10_000, &cc("min-fresh=50")));
        assert!(!usable(&m, 10_001, &cc("min-fresh=50")));
    }

    #[test]
    fn vary_names_are_a_canonical_set() {
        let v = vec!["Accept-Language, accept".to_string(), "ACCEPT".to_string()];
        assert_eq!(vary_names(&v), vec!["accept", "accept-language"]);
    }
}
