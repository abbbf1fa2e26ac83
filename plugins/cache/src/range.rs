//! Byte ranges (RFC 9110 §14) served from a stored complete response, so
//! a `Range` request for a cached resource costs the upstream nothing.
//! One range is served as `206`; several, another unit, or a malformed
//! `Range` get the whole response (a server may ignore `Range`, §14.2).

use crate::directives::http_date_s;

/// How to answer a `Range` request from a stored `200`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The whole response.
    Full,
    /// Bytes `first..=last` of `len`.
    Partial { first: u64, last: u64 },
    /// 416: no byte of the range exists.
    Unsatisfiable,
}

/// The answer to `Range: range` (with `If-Range: if_range`) from a body of
/// `len` bytes whose validators are `etag` and `last_modified`.
pub fn answer(
    range: &str,
    if_range: Option<&str>,
    etag: Option<&str>,
    last_modified: Option<&str>,
    len: u64,
) -> Answer {
    if let Some(condition) = if_range
        && !if_range_holds(condition.trim(), etag, last_modified)
    {
        return Answer::Full;
    }
    let Some((unit, set)) = range.trim().split_once('=') else {
        return Answer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return Answer::Full;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return Answer::Full;
    };
    // Each position: `Ok(None)` when empty, `Err` when not a number.
    let position = |s: &str| -> Result<Option<u64>, ()> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        Ok(Some(s.parse::<u64>().unwrap_or(u64::MAX)))
    };
    let (Ok(first), Ok(last)) = (position(first), position(last)) else {
        return Answer::Full;
    };
    match (first, last) {
        (None, None) => Answer::Full,
        // A suffix: the last N bytes (§14.1.1).
        (None, Some(n)) if n == 0 || len == 0 => Answer::Unsatisfiable,
        (None, Some(n)) => Answer::Partial {
            first: len.saturating_sub(n),
            last: len - 1,
        },
        (Some(first), Some(last)) if last < first => Answer::Full,
        (Some(first), _) if first >= len => Answer::Unsatisfiable,
        (Some(first), last) => Answer::Partial {
            first,
            last: last.map_or(len - 1, |l| l.min(len - 1)),
        },
    }
}

/// §13.1.5: an entity tag must match the stored one strongly; a date must
/// equal `Last-Modified` exactly.
fn if_range_holds(condition: &str, etag: Option<&str>, last_modified: Option<&str>) -> bool {
    if condition.starts_with('"') || condition.starts_with("W/") {
        return !condition.starts_with("W/")
            && etag.is_some_and(|e| !e.starts_with("W/") && e.trim() == condition);
    }
    match (http_date_s(condition), last_modified.and_then(http_date_s)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(range: &str, len: u64) -> Answer {
        answer(range, None, None, None, len)
    }

    #[test]
    fn one_byte_range_is_served_in_all_three_forms() {
        // RFC 9110 §14.1.1.
        assert_eq!(
            plain("bytes=0-1", 11),
            Answer::Partial { first: 0, last: 1 }
        );
        assert_eq!(
            plain("bytes=5-", 11),
            Answer::Partial { first: 5, last: 10 }
        );
        assert_eq!(
            plain("bytes=-3", 11),
            Answer::Partial { first: 8, last: 10 }
        );
        assert_eq!(
            plain("bytes=-30", 11),
            Answer::Partial { first: 0, last: 10 }
        );
        assert_eq!(
            plain("bytes=3-99", 11),
            Answer::Partial { first: 3, last: 10 }
        );
        assert_eq!(
            plain("BYTES = 0-1", 11),
            Answer::Partial { first: 0, last: 1 }
        );
    }

    #[test]
    fn unsatisfiable_and_ignored_ranges() {
        // RFC 9110 §14.1.1, §14.2, §15.5.17.
        assert_eq!(plain("bytes=11-", 11), Answer::Unsatisfiable);
        assert_eq!(plain("bytes=-0", 11), Answer::Unsatisfiable);
        assert_eq!(plain("bytes=0-1", 0), Answer::Unsatisfiable);
        for ignored in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=5-2",
            "bytes=a-b",
            "bytes",
            "bytes=-",
        ] {
            assert_eq!(plain(ignored, 11), Answer::Full, "{ignored}");
        }
    }

    #[test]
    fn if_range_needs_a_strong_match() {
        // RFC 9110 §13.1.5.
        let lm = "Sun, 06 Nov 1994 08:49:37 GMT";
        let ranged = |cond, etag| answer("bytes=0-1", Some(cond), etag, Some(lm), 11);
        assert_eq!(
            ranged("\"a\"", Some("\"a\"")),
            Answer::Partial { first: 0, last: 1 }
        );
        assert_eq!(ranged("\"b\"", Some("\"a\"")), Answer::Full);
        assert_eq!(ranged("W/\"a\"", Some("W/\"a\"")), Answer::Full);
        assert_eq!(ranged(lm, None), Answer::Partial { first: 0, last: 1 });
        assert_eq!(ranged("Mon, 07 Nov 1994 08:49:37 GMT", None), Answer::Full);
    }
}
