//! What a response's fields say about keeping it (RFC 9111 §3, §4.2): the
//! directives that apply (a targeted field such as `CDN-Cache-Control`, or
//! `Cache-Control`), how long it stays fresh (explicitly, or by §4.2.2's
//! heuristic where that is allowed), and when it may be served stale.

use serde::{Deserialize, Serialize};

use crate::config::Rule;
use crate::directives::{self, CacheControl, Timing};
use crate::targeted;

/// Statuses RFC 9110 §15.1 defines as heuristically cacheable.
pub const HEURISTIC: &[u16] = &[200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Statuses whose semantics this cache understands (RFC 9110 §15), for
/// `must-understand` (RFC 9111 §5.2.2.3).
const UNDERSTOOD: &[u16] = &[
    200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 305, 307, 308, 400, 401, 402, 403,
    404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 500, 501,
    502, 503, 504, 505,
];

/// When a stored response may be served stale.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleRules {
    /// `no-cache`, `must-revalidate`, `proxy-revalidate` or `s-maxage`:
    /// never stale without validation (§4.2.4).
    pub forbidden: bool,
    /// Seconds past freshness it may be served while one background
    /// revalidation runs (RFC 5861 §3).
    pub while_revalidate_s: u64,
    /// Seconds past freshness it may be served when the upstream fails
    /// (RFC 5861 §4).
    pub if_error_s: u64,
}

/// The directives that govern a response for this cache: the first valid
/// targeted field of `rule`, else `Cache-Control` (RFC 9213 §2.1), and
/// whether a targeted field decided (then `Expires` is ignored too).
pub fn response_directives(headers: &[(String, String)], rule: &Rule) -> (CacheControl, bool) {
    if let Some(cc) = targeted::directives(headers, &rule.targeted_fields) {
        return (cc, true);
    }
    let lines: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == "cache-control")
        .map(|(_, v)| v.as_str())
        .collect();
    (CacheControl::parse(&lines), false)
}

/// The value of a singleton field (`Date`, `Expires`). Several lines of
/// one make it invalid (RFC 9110 §5.3), so they read as an empty value,
/// which is no HTTP-date: an `Expires` in the past (RFC 9111 §5.3), a
/// `Date` ignored.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut lines = headers.iter().filter(|(n, _)| n == name);
    let first = lines.next()?;
    Some(if lines.next().is_some() {
        ""
    } else {
        first.1.as_str()
    })
}

/// What a response's fields give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    pub cc: CacheControl,
    /// §4.2.1's freshness lifetime, or `None` when the response states
    /// none.
    pub explicit_ms: Option<u64>,
    /// The lifetime used: explicit, else heuristic where allowed, else 0.
    pub lifetime_ms: u64,
    pub initial_age_s: u64,
    pub stale: StaleRules,
}

impl Freshness {
    /// Read `headers` of a `status` response received at `now_ms`, with
    /// `age` its `Age` field.
    pub fn of(
        status: u16,
        headers: &[(String, String)],
        age: Option<&str>,
        now_ms: u64,
        rule: &Rule,
    ) -> Freshness {
        let (cc, targeted) = response_directives(headers, rule);
        let date = header(headers, "date");
        let timing = Timing {
            date,
            // RFC 9213 §2.1: a targeted field replaces Expires too.
            expires: if targeted {
                None
            } else {
                header(headers, "expires")
            },
            age,
        };
        let explicit_ms = directives::explicit_lifetime_ms(&cc, timing, now_ms);
        let lifetime_ms = explicit_ms.unwrap_or_else(|| {
            // §4.2.2: heuristics only for heuristically cacheable statuses
            // or responses marked `public`.
            if !(HEURISTIC.contains(&status) || cc.public) {
                return 0;
            }
            match rule.default_ttl_s {
                Some(ttl) => ttl.saturating_mul(1000),
                None => directives::heuristic_lifetime_ms(
                    header(headers, "last-modified"),
                    date,
                    now_ms,
                    rule.heuristic_percent,
                    rule.heuristic_max_s,
                ),
            }
        });
        let forbidden = cc.forbids_stale();
        let stale = StaleRules {
            forbidden,
            while_revalidate_s: cc
                .stale_while_revalidate
                .unwrap_or(rule.stale_while_revalidate_s),
            if_error_s: cc.stale_if_error.unwrap_or(rule.stale_if_error_s),
        };
        Freshness {
            initial_age_s: directives::initial_age_s(timing, now_ms),
            cc,
            explicit_ms,
            lifetime_ms,
            stale,
        }
    }

    /// Whether §3 lets a shared cache store a `status` response with these
    /// directives: `no-store` is off (or overridden by `must-understand`
    /// on a status understood), and the response is explicitly fresh,
    /// `public`, or heuristically cacheable.
    pub fn storable(&self, status: u16) -> Result<(), Refusal> {
        if !(200..=999).contains(&status) || status == 206 || status == 304 {
            return Err(Refusal::Status);
        }
        if self.cc.must_understand {
            // §5.2.2.3: store only what we understand, and then no-store
            // is for caches that do not.
            if !UNDERSTOOD.contains(&status) {
                return Err(Refusal::NotUnderstood);
            }
        } else if self.cc.no_store {
            return Err(Refusal::NoStore);
        }
        if self.cc.private {
            return Err(Refusal::Private);
        }
        if self.explicit_ms.is_none() && !self.cc.public && !HEURISTIC.contains(&status) {
            return Err(Refusal::Status);
        }
        Ok(())
    }
}

/// Why §3 refuses to store a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not final, partial, or neither explicitly fresh nor heuristically
    /// cacheable.
    Status,
    NoStore,
    Private,
    /// `must-understand` on a status this cache does not know.
    NotUnderstood,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleConfig;
    use crate::directives::format_http_date;

    fn rule(json: &str) -> Rule {
        serde_json::from_str::<RuleConfig>(json)
            .unwrap()
            .check()
            .unwrap()
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn heuristic_freshness_only_for_heuristic_statuses_or_public() {
        // RFC 9111 §4.2.2: 10% of Date - Last-Modified.
        let lm = format_http_date(NOW / 1000 - 1000);
        let date = format_http_date(NOW / 1000);
        let headers = h(&[("last-modified", &lm), ("date", &date)]);
        let r = rule("{}");
        assert_eq!(
            Freshness::of(200, &headers, None, NOW, &r).lifetime_ms,
            100_000
        );
        assert_eq!(
            Freshness::of(404, &headers, None, NOW, &r).lifetime_ms,
            100_000
        );
        for status in [201, 202, 403, 502, 503, 504, 599] {
            let f = Freshness::of(status, &headers, None, NOW, &r);
            assert_eq!(f.lifetime_ms, 0, "{status}");
            assert_eq!(f.storable(status), Err(Refusal::Status), "{status}");
        }
        let public = h(&[
            ("last-modified", &lm),
            ("date", &date),
            ("cache-control", "public"),
        ]);
        assert_eq!(
            Freshness::of(599, &public, None, NOW, &r).lifetime_ms,
            100_000
        );
        // Without Last-Modified nothing is fresh by default...
        assert_eq!(Freshness::of(200, &h(&[]), None, NOW, &r).lifetime_ms, 0);
        // ...unless the route sets a fixed heuristic.
        let fixed = rule(r#"{"default_ttl_s": 30}"#);
        assert_eq!(
            Freshness::of(200, &h(&[]), None, NOW, &fixed).lifetime_ms,
            30_000
        );
        assert_eq!(
            Freshness::of(503, &h(&[]), None, NOW, &fixed).lifetime_ms,
            0
        );
    }

    #[test]
    fn any_final_status_with_explicit_freshness_is_storable() {
        // RFC 9111 §3.
        let r = rule("{}");
        let fresh = h(&[("cache-control", "max-age=60")]);
        for status in [200, 204, 299, 302, 303, 307, 400, 500, 502, 503, 599] {
            let f = Freshness::of(status, &fresh, None, NOW, &r);
            assert_eq!(f.storable(status), Ok(()), "{status}");
            assert_eq!(f.lifetime_ms, 60_000);
        }
        for status in [206, 304] {
            let f = Freshness::of(status, &fresh, None, NOW, &r);
            assert_eq!(f.storable(status), Err(Refusal::Status), "{status}");
        }
    }

    #[test]
    fn must_understand_overrides_no_store_only_for_understood_statuses() {
        // RFC 9111 §5.2.2.3.
        let r = rule("{}");
        let headers = h(&[("cache-control", "max-age=60, no-store, must-understand")]);
        let ok = Freshness::of(200, &headers, None, NOW, &r);
        assert_eq!(ok.storable(200), Ok(()));
        let unknown = Freshness::of(599, &headers, None, NOW, &r);
        assert_eq!(unknown.storable(599), Err(Refusal::NotUnderstood));
    }

    #[test]
    fn a_targeted_field_replaces_cache_control_and_expires() {
        // RFC 9213 §2.1.
        let r = rule("{}");
        let headers = h(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=600"),
            ("expires", "0"),
        ]);
        let f = Freshness::of(200, &headers, None, NOW, &r);
        assert_eq!((f.storable(200), f.lifetime_ms), (Ok(()), 600_000));
        let short = h(&[
            ("cache-control", "max-age=3600"),
            ("cdn-cache-control", "max-age=1"),
        ]);
        assert_eq!(Freshness::of(200, &short, None, NOW, &r).lifetime_ms, 1_000);
        let invalid = h(&[
            ("cache-control", "max-age=5"),
            ("cdn-cache-control", "max-age= 1"),
        ]);
        assert_eq!(
            Freshness::of(200, &invalid, None, NOW, &r).lifetime_ms,
            5_000
        );
        let none = rule(r#"{"targeted_fields": []}"#);
        assert_eq!(
            Freshness::of(200, &headers, None, NOW, &none).storable(200),
            Err(Refusal::NoStore)
        );
    }

    #[test]
    fn stale_windows_come_from_the_response_or_the_rule() {
        let r = rule(r#"{"stale_if_error_s": 60}"#);
        let swr = h(&[("cache-control", "max-age=1, stale-while-revalidate=10")]);
        let f = Freshness::of(200, &swr, None, NOW, &r);
        assert_eq!(
            f.stale,
            StaleRules {
                forbidden: false,
                while_revalidate_s: 10,
                if_error_s: 60
            }
        );
        let strict = h(&[(
            "cache-control",
            "max-age=1, must-revalidate, stale-if-error=10",
        )]);
        assert!(Freshness::of(200, &strict, None, NOW, &r).stale.forbidden);
    }
}
