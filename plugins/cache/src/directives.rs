//! `Cache-Control` (RFC 9111 §5.2) and the freshness arithmetic of §4.2:
//! how long a response stays fresh, and how old it already is on arrival.

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
    /// `must-revalidate` or `proxy-revalidate` (§5.2.2.2, §5.2.2.8).
    pub must_revalidate: bool,
    /// `must-understand` (§5.2.2.3).
    pub must_understand: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub min_fresh: Option<u64>,
    /// Request `max-stale` (§5.2.1.2); without a value, any staleness.
    pub max_stale: Option<u64>,
    pub only_if_cached: bool,
    /// RFC 5861 §3.
    pub stale_while_revalidate: Option<u64>,
    /// RFC 5861 §4.
    pub stale_if_error: Option<u64>,
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
                    "must-understand" => cc.must_understand = true,
                    "only-if-cached" => cc.only_if_cached = true,
                    "max-age" => keep_min(&mut cc.max_age, delta_seconds(value)),
                    "s-maxage" => keep_min(&mut cc.s_maxage, delta_seconds(value)),
                    "min-fresh" => keep_min(&mut cc.min_fresh, delta_seconds(value)),
                    "max-stale" => {
                        let stale = value.map_or(DELTA_MAX, |v| delta_seconds(Some(v)));
                        keep_min(&mut cc.max_stale, stale);
                    }
                    "stale-while-revalidate" => {
                        keep_min(&mut cc.stale_while_revalidate, delta_seconds(value));
                    }
                    "stale-if-error" => keep_min(&mut cc.stale_if_error, delta_seconds(value)),
                    _ => {}
                }
            }
        }
        cc
    }

    /// Whether a stale response may never be served without validation:
    /// `no-cache`, `must-revalidate`, `proxy-revalidate`, or `s-maxage`
    /// (which carries `proxy-revalidate` for a shared cache, §5.2.2.10).
    /// RFC 9111 §4.2.4: this prohibition wins over every permission to
    /// serve stale (RFC 5861's directives, `max-stale`, configuration).
    pub fn forbids_stale(&self) -> bool {
        self.no_cache || self.must_revalidate || self.s_maxage.is_some()
    }

    /// Whether a shared cache may store a response to a request that
    /// carried credentials (§3.5).
    pub fn allows_credentials(&self) -> bool {
        self.public || self.s_maxage.is_some() || self.must_revalidate
    }
}

/// Seconds since the epoch of an HTTP-date (RFC 9110 §5.6.7: IMF-fixdate,
/// RFC 850 or asctime), or `None` when it is not one. Read as a cache
/// recipient should (RFC 9111 §4.2): names case-insensitively, and the
/// weekday, which only repeats the date, is not checked.
pub fn http_date_s(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Some((_weekday, rest)) = text.split_once(',') {
        let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
        let (date, time, zone) = match fields[..] {
            // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
            [day, month, year, time, zone] => ([day, month, year], time, zone),
            // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`.
            [date, time, zone] => {
                let parts: Vec<&str> = date.split('-').collect();
                let [day, month, year] = parts[..] else {
                    return None;
                };
                ([day, month, year], time, zone)
            }
            _ => return None,
        };
        if !zone.eq_ignore_ascii_case("GMT") {
            return None;
        }
        let [day, month, year] = date;
        return epoch_seconds(day, month, year, time);
    }
    // asctime: `Sun Nov  6 08:49:37 1994`.
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let [_weekday, month, day, time, year] = fields[..] else {
        return None;
    };
    epoch_seconds(day, month, year, time)
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn epoch_seconds(day: &str, month: &str, year: &str, time: &str) -> Option<u64> {
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u64 + 1;
    let day = number(day).filter(|d| (1..=31).contains(d))?;
    let mut year = number(year)?;
    if year < 100 {
        // RFC 9110 §5.6.7: a two-digit year that would be more than 50
        // years ahead is the most recent past year with those digits.
        let this_year = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(2026, |d| 1970 + d.as_secs() / 31_556_952);
        year += 2000;
        if year > this_year + 50 {
            year -= 100;
        }
    }
    let mut clock = time.split(':').map(number);
    let (h, m, sec) = (clock.next()??, clock.next()??, clock.next()??);
    if clock.next().is_some() || h > 23 || m > 59 || sec > 60 || year < 1970 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// An HTTP-date for `seconds` since the epoch.
#[cfg(any(test, feature = "fuzzing"))]
pub fn format_http_date(seconds: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
}

/// The response headers freshness depends on.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timing<'a> {
    pub date: Option<&'a str>,
    pub expires: Option<&'a str>,
    pub age: Option<&'a str>,
}

/// §4.2.1 for a shared cache: `s-maxage`, then `max-age`, then
/// `Expires - Date`, in milliseconds; `None` when the response states no
/// freshness (then only a heuristic applies, §4.2.2). `no-cache` means 0.
/// An `Expires` that is not a date (`0`, say) means already expired
/// (§5.3).
pub fn explicit_lifetime_ms(cc: &CacheControl, timing: Timing<'_>, now_ms: u64) -> Option<u64> {
    if cc.no_cache {
        return Some(0);
    }
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return Some(s.saturating_mul(1000));
    }
    let expires = timing.expires?;
    let Some(expires) = http_date_s(expires) else {
        return Some(0);
    };
    let date = timing.date.and_then(http_date_s).unwrap_or(now_ms / 1000);
    Some(expires.saturating_sub(date).saturating_mul(1000))
}

/// §4.2.2's usual heuristic: `percent` of the time since `Last-Modified`
/// (measured from `Date`, or now), at most `max_s`; 0 without a valid
/// `Last-Modified`. In milliseconds.
pub fn heuristic_lifetime_ms(
    last_modified: Option<&str>,
    date: Option<&str>,
    now_ms: u64,
    percent: u64,
    max_s: u64,
) -> u64 {
    let Some(modified) = last_modified.and_then(http_date_s) else {
        return 0;
    };
    let date = date.and_then(http_date_s).unwrap_or(now_ms / 1000);
    let since_ms = date.saturating_sub(modified).saturating_mul(1000);
    (since_ms / 100)
        .saturating_mul(percent)
        .min(max_s.saturating_mul(1000))
}

/// The `Age` a response carries (§5.1), in seconds, given its field lines
/// joined with commas. `Age` is a single delta-seconds; anything else (a
/// list, a repeated line, a parameter, a sign, a fraction, a word) is not
/// an age the cache can trust, and the response is taken as already stale
/// (2^31, §1.2.2) rather than as fresh: guessing low could serve a stale
/// response, guessing high costs only a fetch. Too large is 2^31 too.
pub fn age_value(age: Option<&str>) -> u64 {
    let Some(text) = age.map(str::trim) else {
        return 0;
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return DELTA_MAX;
    }
    text.parse::<u64>().map_or(DELTA_MAX, |n| n.min(DELTA_MAX))
}

/// §4.2.3's corrected initial age, in whole seconds: the larger of the
/// `Age` the upstream sent and how far its `Date` lies behind our clock.
/// Both are compared in whole seconds, since `Date` has no finer grain.
pub fn initial_age_s(timing: Timing<'_>, now_ms: u64) -> u64 {
    let age = age_value(timing.age);
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
        let life = |c: &str, t| explicit_lifetime_ms(&cc(c), t, now);
        assert_eq!(life("s-maxage=5, max-age=9", timing), Some(5_000));
        assert_eq!(life("max-age=9", timing), Some(9_000));
        assert_eq!(life("", timing), Some(120_000));
        assert_eq!(life("no-cache, max-age=9", timing), Some(0));
        assert_eq!(life("public", Timing::default()), None);
        // §5.3: an invalid Expires, "0" especially, is in the past.
        let bad = Timing {
            expires: Some("0"),
            ..Timing::default()
        };
        assert_eq!(life("", bad), Some(0));
    }

    #[test]
    fn the_heuristic_is_a_tenth_of_the_time_since_last_modified_capped() {
        // RFC 9111 §4.2.2.
        let now = 1_700_000_000_000;
        let date = format_http_date(now / 1000);
        let modified = format_http_date(now / 1000 - 1000);
        let h = |lm: Option<&str>, max| heuristic_lifetime_ms(lm, Some(&date), now, 10, max);
        assert_eq!(h(Some(&modified), 86_400), 100_000);
        assert_eq!(h(Some(&modified), 50), 50_000);
        assert_eq!(h(None, 86_400), 0);
        assert_eq!(h(Some("garbage"), 86_400), 0);
        // Last-Modified after Date (skew) gives nothing, not a wrap.
        let future = format_http_date(now / 1000 + 10);
        assert_eq!(h(Some(&future), 86_400), 0);
    }

    #[test]
    fn an_age_that_is_not_one_delta_seconds_makes_the_response_stale() {
        // RFC 9111 §5.1 and §1.2.2. Several field lines arrive joined.
        for (value, expected) in [
            ("7200", 7200),
            (" 0 ", 0),
            ("2147483647", 2_147_483_647),
            ("7200, 0", DELTA_MAX),
            ("0, 7200", DELTA_MAX),
            ("0, 0", DELTA_MAX),
            ("7200;foo=bar", DELTA_MAX),
            ("abc", DELTA_MAX),
            ("-7200", DELTA_MAX),
            ("7200.0", DELTA_MAX),
            ("", DELTA_MAX),
            ("2147483649", DELTA_MAX),
            ("99999999999999999999999", DELTA_MAX),
        ] {
            assert_eq!(age_value(Some(value)), expected, "{value:?}");
        }
        assert_eq!(age_value(None), 0);
    }

    #[test]
    fn stale_is_forbidden_by_four_directives() {
        // RFC 9111 §4.2.4 with §5.2.2.2, §5.2.2.4, §5.2.2.8, §5.2.2.10.
        for forbidding in [
            "must-revalidate",
            "proxy-revalidate",
            "no-cache",
            "s-maxage=5",
        ] {
            assert!(
                CacheControl::parse(&[forbidding]).forbids_stale(),
                "{forbidding}"
            );
        }
        let cc = CacheControl::parse(&["max-age=5, stale-while-revalidate=10, stale-if-error=20"]);
        assert!(!cc.forbids_stale());
        assert_eq!(
            (cc.stale_while_revalidate, cc.stale_if_error),
            (Some(10), Some(20))
        );
        assert_eq!(
            CacheControl::parse(&["max-stale"]).max_stale,
            Some(DELTA_MAX)
        );
        assert_eq!(CacheControl::parse(&["max-stale=5"]).max_stale, Some(5));
        assert!(CacheControl::parse(&["no-store, must-understand"]).must_understand);
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
    fn http_dates_are_read_case_insensitively_without_checking_the_weekday() {
        // RFC 9111 §4.2, RFC 9110 §5.6.7.
        let aug18 = http_date_s("Thu, 18 Aug 2050 02:01:18 GMT").unwrap();
        for variant in [
            "THU, 18 Aug 2050 02:01:18 GMT",
            "Thu, 18 AUG 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02:01:18 gMT",
            "Mon, 18 Aug 2050 02:01:18 GMT",
            "Thursday, 18-Aug-50 02:01:18 GMT",
        ] {
            assert_eq!(http_date_s(variant), Some(aug18), "{variant}");
        }
        assert_eq!(
            http_date_s("Thu Aug  8 02:01:18 2050"),
            Some(aug18 - 10 * 86_400)
        );
        for bad in [
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 32 Aug 2050 02:01:18 GMT",
            "0",
            "",
        ] {
            assert_eq!(http_date_s(bad), None, "{bad}");
        }
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
