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
/// RFC 850 or asctime), or `None` when it is not one. The grammar is held
/// to exactly (two-digit day and hour, single spaces, `GMT`, one value),
/// since RFC 9111 §5.3 has a cache take an invalid date as the past, and
/// guessing at a malformed one could keep a response fresh for years. Only
/// the names are read case-insensitively, and the weekday, which only
/// repeats the date, is not checked against it.
pub fn http_date_s(text: &str) -> Option<u64> {
    let text = text.trim_matches([' ', '\t']).as_bytes();
    imf_fixdate(text)
        .or_else(|| rfc850_date(text))
        .or_else(|| asctime_date(text))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// A cursor over a date's bytes that either matches the next token or
/// fails the whole parse.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn byte(&mut self, b: u8) -> Option<()> {
        let (&first, rest) = self.0.split_first()?;
        (first == b).then(|| self.0 = rest)
    }

    fn digits(&mut self, n: usize) -> Option<u64> {
        let digits = self.0.get(..n)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = &self.0[n..];
        Some(digits.iter().fold(0, |v, d| v * 10 + u64::from(d - b'0')))
    }

    /// One of `names`, case-insensitively; its index.
    fn name(&mut self, names: &[&str], len: Option<usize>) -> Option<usize> {
        names.iter().position(|name| {
            let name = len.map_or(*name, |n| &name[..n]);
            let hit = self
                .0
                .get(..name.len())
                .is_some_and(|b| b.eq_ignore_ascii_case(name.as_bytes()));
            if hit {
                self.0 = &self.0[name.len()..];
            }
            hit
        })
    }

    fn month(&mut self) -> Option<u64> {
        self.name(&MONTHS, None).map(|i| i as u64 + 1)
    }

    /// `hour ":" minute ":" second`, two digits each.
    fn time(&mut self) -> Option<(u64, u64, u64)> {
        let h = self.digits(2)?;
        self.byte(b':')?;
        let m = self.digits(2)?;
        self.byte(b':')?;
        let s = self.digits(2)?;
        Some((h, m, s))
    }

    fn gmt(&mut self) -> Option<()> {
        self.name(&["gmt"], None).map(drop)
    }

    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn imf_fixdate(text: &[u8]) -> Option<u64> {
    let mut c = Cursor(text);
    c.name(&DAYS, Some(3))?;
    c.byte(b',')?;
    c.byte(b' ')?;
    let day = c.digits(2)?;
    c.byte(b' ')?;
    let month = c.month()?;
    c.byte(b' ')?;
    let year = c.digits(4)?;
    c.byte(b' ')?;
    let time = c.time()?;
    c.byte(b' ')?;
    c.gmt()?;
    c.end()?;
    epoch_seconds(year, month, day, time)
}

/// `Sunday, 06-Nov-94 08:49:37 GMT` (obsolete).
fn rfc850_date(text: &[u8]) -> Option<u64> {
    let mut c = Cursor(text);
    c.name(&DAYS, None)?;
    c.byte(b',')?;
    c.byte(b' ')?;
    let day = c.digits(2)?;
    c.byte(b'-')?;
    let month = c.month()?;
    c.byte(b'-')?;
    let year = c.digits(2)?;
    c.byte(b' ')?;
    let time = c.time()?;
    c.byte(b' ')?;
    c.gmt()?;
    c.end()?;
    epoch_seconds(full_year(year), month, day, time)
}

/// `Sun Nov  6 08:49:37 1994` (obsolete).
fn asctime_date(text: &[u8]) -> Option<u64> {
    let mut c = Cursor(text);
    c.name(&DAYS, Some(3))?;
    c.byte(b' ')?;
    let month = c.month()?;
    c.byte(b' ')?;
    let day = match c.byte(b' ') {
        Some(()) => c.digits(1)?,
        None => c.digits(2)?,
    };
    c.byte(b' ')?;
    let time = c.time()?;
    c.byte(b' ')?;
    let year = c.digits(4)?;
    c.end()?;
    epoch_seconds(year, month, day, time)
}

/// RFC 9110 §5.6.7: a two-digit year that would be more than 50 years
/// ahead is the most recent past year with those digits.
fn full_year(two_digits: u64) -> u64 {
    let this_year = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(2026, |d| 1970 + d.as_secs() / 31_556_952);
    let year = 2000 + two_digits;
    if year > this_year + 50 {
        year - 100
    } else {
        year
    }
}

fn epoch_seconds(year: u64, month: u64, day: u64, (h, m, sec): (u64, u64, u64)) -> Option<u64> {
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 || year < 1970 {
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
/// joined with commas. §5.1: a list (or several lines) counts by its first
/// member; a first member that is not a non-negative integer is ignored,
/// as if no `Age` had come (the age then comes from `Date` alone, §4.2.3).
/// Parameters (`7200;foo=bar`) are read as the integer before them, the
/// cautious reading: it can only make a response older. Too large is 2^31
/// (§1.2.2).
pub fn age_value(age: Option<&str>) -> u64 {
    let Some(first) = age.and_then(|text| text.split(',').next()) else {
        return 0;
    };
    let first = first.trim();
    let number = first.split_once(';').map_or(first, |(n, _)| n.trim_end());
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    number
        .parse::<u64>()
        .map_or(DELTA_MAX, |n| n.min(DELTA_MAX))
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
    fn age_counts_by_its_first_member_and_an_invalid_one_is_ignored() {
        // RFC 9111 §5.1 (first member of a list; an invalid value is
        // ignored) and §1.2.2 (too large is 2^31). Several field lines
        // arrive joined with commas.
        for (value, expected) in [
            ("7200", 7200),
            (" 0 ", 0),
            ("2147483647", 2_147_483_647),
            ("7200, 0", 7200),
            ("0, 7200", 0),
            ("0,7200", 0),
            ("0, 0", 0),
            ("3600, 3600", 3600),
            ("7200;foo=bar", 7200),
            ("7200 ; foo=111", 7200),
            ("abc", 0),
            ("-7200", 0),
            ("7200.0", 0),
            ("+5", 0),
            ("", 0),
            (", 7200", 0),
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
    }

    #[test]
    fn http_dates_off_the_grammar_are_invalid() {
        // RFC 9110 §5.6.7 grammar; RFC 9111 §5.3 takes such an Expires as
        // the past. Two lines arrive joined with a comma.
        for bad in [
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 2050 02:01:18 AEST",
            "Thu, 32 Aug 2050 02:01:18 GMT",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18  Aug  2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
            "Thu, 8 Aug 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02:01:18 GMT, Thu, 18 Aug 2050 02:01:19 GMT",
            "Thu, 18 Aug 2050 02:01:18 GMT x",
            "Thu, 18 Aug 2050 24:01:18 GMT",
            "Thu, 18-Aug-50 02:01:18 GMT",
            "Thursday, 18 Aug 2050 02:01:18 GMT",
            "Thu Aug 8 02:01:18 2050",
            "Thu Aug  8 02:01:18 50",
            "Thu, 18 Aug 1969 02:01:18 GMT",
            "0",
            "-1",
            "",
        ] {
            assert_eq!(http_date_s(bad), None, "{bad}");
        }
        let aug18 = http_date_s("Thu, 18 Aug 2050 02:01:18 GMT");
        assert_eq!(http_date_s(" Thu, 18 Aug 2050 02:01:18 GMT\t"), aug18);
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
