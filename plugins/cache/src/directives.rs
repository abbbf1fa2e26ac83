//! `Cache-Control` (RFC 9111 §5.2) and the freshness arithmetic of §4.2:
//! how long a response stays fresh, and how old it already is on arrival.

use std::time::UNIX_EPOCH;

/// The directives this cache acts on; the rest are ignored, as §5.2 asks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    /// `no-cache`, with or without field names (field names are treated as
    /// the whole response: revalidate every time).
    pub no_cache: bool,
    /// `private`, with or without field names.
    pub private: bool,
    pub public: bool,
    /// `must-revalidate` or `proxy-revalidate`.
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub min_fresh: Option<u64>,
    pub only_if_cached: bool,
}

/// §1.2.2: a delta-seconds past what can be represented is taken as 2^31.
const DELTA_MAX: u64 = 1 << 31;

/// Delta-seconds; a malformed value counts as 0, so a response whose
/// lifetime cannot be read is stale rather than fresh for too long.
fn delta_seconds(value: Option<&str>) -> u64 {
    let Some(text) = value.map(str::trim) else {
        return 0;
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    text.parse::<u64>().map_or(DELTA_MAX, |n| n.min(DELTA_MAX))
}

/// A repeated directive keeps the smallest value (the safer one).
fn keep_min(slot: &mut Option<u64>, value: u64) {
    *slot = Some(slot.map_or(value, |old| old.min(value)));
}

/// Split a field value on commas that are not inside a quoted string.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

impl CacheControl {
    /// Parse every `Cache-Control` field line of a message.
    pub fn parse<S: AsRef<str>>(lines: &[S]) -> CacheControl {
        let mut cc = CacheControl::default();
        for line in lines {
            for directive in split_list(line.as_ref()) {
                let (name, value) = match directive.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
                    "only-if-cached" => cc.only_if_cached = true,
                    "max-age" => keep_min(&mut cc.max_age, delta_seconds(value)),
                    "s-maxage" => keep_min(&mut cc.s_maxage, delta_seconds(value)),
                    "min-fresh" => keep_min(&mut cc.min_fresh, delta_seconds(value)),
                    _ => {}
                }
            }
        }
        cc
    }

    /// Whether a shared cache may store a response to a request that
    /// carried credentials (§3.5).
    pub fn allows_credentials(&self) -> bool {
        self.public || self.s_maxage.is_some() || self.must_revalidate
    }
}

/// Seconds since the epoch of an HTTP-date (IMF-fixdate, RFC 850 or
/// asctime), or `None` when it is not one.
pub fn http_date_s(text: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// An HTTP-date for `seconds` since the epoch.
#[cfg(any(test, feature = "fuzzing"))]
pub fn format_http_date(seconds: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(seconds))
}

/// The response headers freshness depends on.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timing<'a> {
    pub date: Option<&'a str>,
    pub expires: Option<&'a str>,
    pub age: Option<&'a str>,
}

/// §4.2.1 for a shared cache: `s-maxage`, then `max-age`, then
/// `Expires - Date`; `default_s` when the response says nothing (the
/// operator's heuristic, §4.2.2). An `Expires` that is not a date means
/// already expired. In milliseconds.
pub fn lifetime_ms(cc: &CacheControl, timing: Timing<'_>, now_ms: u64, default_s: u64) -> u64 {
    if cc.no_cache {
        return 0;
    }
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return s.saturating_mul(1000);
    }
    if let Some(expires) = timing.expires {
        let Some(expires) = http_date_s(expires) else {
            return 0;
        };
        let date = timing.date.and_then(http_date_s).unwrap_or(now_ms / 1000);
        return expires.saturating_sub(date).saturating_mul(1000);
    }
    default_s.saturating_mul(1000)
}

/// §4.2.3's corrected initial age, in whole seconds: the larger of the
/// `Age` the upstream sent and how far its `Date` lies behind our clock.
/// Both are compared in whole seconds, since `Date` has no finer grain.
pub fn initial_age_s(timing: Timing<'_>, now_ms: u64) -> u64 {
    let age = timing.age.map_or(0, |a| delta_seconds(Some(a)));
    let apparent = timing
        .date
        .and_then(http_date_s)
        .map_or(0, |date| (now_ms / 1000).saturating_sub(date));
    age.max(apparent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_case_insensitively_with_quotes_and_repeats() {
        let cc = CacheControl::parse(&[
            r#"Public, MAX-AGE=60, private="set-cookie, x-a""#,
            "s-maxage=30, max-age=10",
        ]);
        assert!(cc.public && cc.private);
        assert_eq!(cc.max_age, Some(10));
        assert_eq!(cc.s_maxage, Some(30));
        assert!(!cc.no_store && !cc.no_cache);
        let cc = CacheControl::parse(&["no-store", r#"no-cache="x, y", proxy-revalidate"#]);
        assert!(cc.no_store && cc.no_cache && cc.must_revalidate);
        assert!(cc.allows_credentials());
        assert!(!CacheControl::parse(&["max-age=5"]).allows_credentials());
        assert!(CacheControl::parse(&["s-maxage=5"]).allows_credentials());
    }

    #[test]
    fn bad_and_huge_deltas_are_safe() {
        assert_eq!(CacheControl::parse(&["max-age=abc"]).max_age, Some(0));
        assert_eq!(CacheControl::parse(&["max-age=-1"]).max_age, Some(0));
        assert_eq!(CacheControl::parse(&["max-age"]).max_age, Some(0));
        assert_eq!(
            CacheControl::parse(&["max-age=99999999999999999999999"]).max_age,
            Some(DELTA_MAX)
        );
        assert_eq!(CacheControl::parse(&[r#"max-age="7""#]).max_age, Some(7));
    }

    #[test]
    fn lists_split_outside_quotes_only() {
        assert_eq!(
            split_list(r#"a, b="x, \"y\"", , c"#),
            vec!["a", r#"b="x, \"y\"""#, "c"]
        );
    }

    #[test]
    fn lifetime_follows_the_precedence_of_section_4_2_1() {
        let now = 1_700_000_000_000;
        let date = format_http_date(now / 1000);
        let expires = format_http_date(now / 1000 + 120);
        let timing = Timing {
            date: Some(&date),
            expires: Some(&expires),
            age: None,
        };
        let cc = |v: &str| CacheControl::parse(&[v]);
        assert_eq!(
            lifetime_ms(&cc("s-maxage=5, max-age=9"), timing, now, 1),
            5_000
        );
        assert_eq!(lifetime_ms(&cc("max-age=9"), timing, now, 1), 9_000);
        assert_eq!(lifetime_ms(&cc(""), timing, now, 1), 120_000);
        assert_eq!(lifetime_ms(&cc("no-cache, max-age=9"), timing, now, 1), 0);
        let nothing = Timing::default();
        assert_eq!(lifetime_ms(&cc(""), nothing, now, 30), 30_000);
        let bad = Timing {
            expires: Some("0"),
            ..Timing::default()
        };
        assert_eq!(lifetime_ms(&cc(""), bad, now, 30), 0);
    }

    #[test]
    fn initial_age_takes_the_larger_of_age_and_apparent_age() {
        let now = 1_700_000_000_500;
        let date = format_http_date(now / 1000 - 3);
        let timing = |age| Timing {
            date: Some(&date),
            age,
            expires: None,
        };
        assert_eq!(initial_age_s(timing(None), now), 3);
        assert_eq!(initial_age_s(timing(Some("10")), now), 10);
        // A Date in the future (skew) is not a negative age.
        let ahead = format_http_date(now / 1000 + 50);
        let skewed = Timing {
            date: Some(&ahead),
            ..Timing::default()
        };
        assert_eq!(initial_age_s(skewed, now), 0);
        // Within the same second as Date: no age.
        let same = format_http_date(now / 1000);
        let fresh = Timing {
            date: Some(&same),
            ..Timing::default()
        };
        assert_eq!(initial_age_s(fresh, now), 0);
    }

    #[test]
    fn http_dates_in_all_three_formats() {
        let imf = http_date_s("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(imf, Some(784_111_777));
        assert_eq!(http_date_s("Sunday, 06-Nov-94 08:49:37 GMT"), imf);
        assert_eq!(http_date_s("Sun Nov  6 08:49:37 1994"), imf);
        assert_eq!(http_date_s("yesterday"), None);
    }
}
