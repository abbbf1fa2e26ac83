//! A client's conditional GET (RFC 9110 §13) evaluated against a response
//! the cache holds, so a fresh entry answers `If-None-Match` and
//! `If-Modified-Since` with 304 without asking the upstream, and the 304
//! it sends.

use weir_sdk::Reply;

use crate::directives::http_date_s;

/// The entity tags of an `If-None-Match` value: `*`, or `W/"x"` / `"x"`
/// items. Returns `None` for `*`. Unquoted items are taken as they are.
fn entity_tags(value: &str) -> Option<Vec<&str>> {
    if value.trim() == "*" {
        return None;
    }
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(tags);
        }
        let start = rest.len() - rest.trim_start_matches("W/").len();
        let after_weak = &rest[start..];
        let end = if let Some(quoted) = after_weak.strip_prefix('"') {
            quoted.find('"').map_or(rest.len(), |i| start + i + 2)
        } else {
            rest.find(',').unwrap_or(rest.len())
        };
        tags.push(rest[..end].trim());
        rest = &rest[end..];
    }
}

/// Weak comparison (§8.8.3.2): the opaque tags match, `W/` ignored.
fn weak_eq(a: &str, b: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    opaque(a) == opaque(b)
}

/// The client's conditions.
#[derive(Debug, Default, Clone)]
pub struct Conditions {
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
}

impl Conditions {
    /// A request's conditional headers.
    pub fn of(headers: &crate::headers::Headers) -> Conditions {
        Conditions {
            if_none_match: headers.get("if-none-match").map(str::to_string),
            if_modified_since: headers.get("if-modified-since").map(str::to_string),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.if_none_match.is_none() && self.if_modified_since.is_none()
    }

    /// Whether a GET with these conditions gets 304 from a response with
    /// these validators. `If-None-Match` decides when present; otherwise
    /// `If-Modified-Since` against `Last-Modified` (§13.2.2).
    pub fn not_modified(&self, etag: Option<&str>, last_modified: Option<&str>) -> bool {
        if let Some(inm) = &self.if_none_match {
            return match entity_tags(inm) {
                None => true,
                Some(tags) => etag.is_some_and(|e| tags.iter().any(|t| weak_eq(t, e))),
            };
        }
        let (Some(since), Some(modified)) = (
            self.if_modified_since.as_deref().and_then(http_date_s),
            last_modified.and_then(http_date_s),
        ) else {
            return false;
        };
        modified <= since
    }
}

/// Headers a 304 carries (RFC 9110 §15.4.5): those a 200 would, that
/// describe validity, not content; `Last-Modified` only without an `ETag`.
pub fn not_modified(headers: &[(String, String)], extra: Vec<(String, String)>) -> Reply {
    const KEPT: &[&str] = &[
        "cache-control",
        "content-location",
        "date",
        "etag",
        "expires",
        "vary",
    ];
    let has_etag = headers.iter().any(|(n, _)| n == "etag");
    let mut kept: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| KEPT.contains(&n.as_str()) || (n == "last-modified" && !has_etag))
        .cloned()
        .collect();
    kept.extend(extra);
    Reply {
        status: 304,
        headers: kept,
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inm(value: &str) -> Conditions {
        Conditions {
            if_none_match: Some(value.into()),
            if_modified_since: None,
        }
    }

    #[test]
    fn if_none_match_compares_weakly_over_a_list() {
        assert!(inm(r#""a""#).not_modified(Some(r#""a""#), None));
        assert!(inm(r#"W/"a""#).not_modified(Some(r#""a""#), None));
        assert!(inm(r#""b", W/"a""#).not_modified(Some(r#"W/"a""#), None));
        assert!(inm(r#""x,y""#).not_modified(Some(r#""x,y""#), None));
        assert!(!inm(r#""x,y""#).not_modified(Some(r#""x""#), None));
        assert!(!inm(r#""b""#).not_modified(Some(r#""a""#), None));
        assert!(!inm(r#""a""#).not_modified(None, None));
        assert!(inm("*").not_modified(None, None));
    }

    #[test]
    fn a_304_carries_validity_headers_not_content_ones() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        let stored = h(&[
            ("content-type", "text/plain"),
            ("etag", "\"a\""),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("cache-control", "max-age=60"),
            ("vary", "accept"),
        ]);
        let reply = not_modified(&stored, h(&[("age", "3")]));
        assert_eq!(reply.status, 304);
        assert!(reply.body.is_empty());
        assert_eq!(
            reply.headers,
            h(&[
                ("etag", "\"a\""),
                ("cache-control", "max-age=60"),
                ("vary", "accept"),
                ("age", "3")
            ])
        );
        let without_etag = not_modified(&h(&[("last-modified", "x")]), Vec::new());
        assert_eq!(without_etag.headers, h(&[("last-modified", "x")]));
    }

    #[test]
    fn if_modified_since_applies_only_without_if_none_match() {
        let lm = "Sun, 06 Nov 1994 08:49:37 GMT";
        let since = |s: &str| Conditions {
            if_none_match: None,
            if_modified_since: Some(s.into()),
        };
        assert!(since(lm).not_modified(None, Some(lm)));
        assert!(since("Mon, 07 Nov 1994 08:49:37 GMT").not_modified(None, Some(lm)));
        assert!(!since("Sat, 05 Nov 1994 08:49:37 GMT").not_modified(None, Some(lm)));
        assert!(!since("garbage").not_modified(None, Some(lm)));
        assert!(!since(lm).not_modified(None, None));
        let both = Conditions {
            if_none_match: Some(r#""other""#.into()),
            if_modified_since: Some(lm.into()),
        };
        assert!(!both.not_modified(Some(r#""a""#), Some(lm)));
    }
}
