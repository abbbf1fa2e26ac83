//! Invalidation (RFC 9111 §4.4): a successful unsafe request removes what
//! the cache holds for its target URI and for the URIs in its response's
//! `Location` and `Content-Location`, when those are of the same origin.
//!
//! Entries are keyed by route, upstream and the upstream's path (see
//! [`crate::key`]), which a `Location` does not give; so each stored entry
//! is also listed under its URI as the client names it
//! (`%uri|AUTHORITY/PATH?QUERY`), and invalidating a URI deletes every
//! entry (or Vary list) listed there.

use weir_sdk::Request;
use weir_sdk::kv;

/// Most entries listed under one URI; the oldest is dropped past it.
const MAX_LISTED: usize = 16;

/// The URI of the request as the client named it: its authority and the
/// target before any rewrite (the router keeps it in
/// `route.original_target`).
pub fn target_uri(req: &Request) -> String {
    let authority = req.authority().unwrap_or_default().to_ascii_lowercase();
    let target = req
        .get_context("route.original_target")
        .unwrap_or_else(|| req.path_with_query());
    format!("{authority}{target}")
}

fn index_key(uri: &str) -> String {
    format!("%uri|{}", uri.replace('|', "%7C"))
}

/// List `base` under `uri`, kept as long as the entry (`ttl_ms`).
pub fn remember(uri: &str, base: &str, ttl_ms: u64) {
    let key = index_key(uri);
    let mut listed: Vec<String> = kv::get(&key)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default();
    if listed.iter().any(|b| b == base) {
        return;
    }
    listed.push(base.to_string());
    if listed.len() > MAX_LISTED {
        listed.remove(0);
    }
    if let Ok(bytes) = serde_json::to_vec(&listed) {
        let _ = kv::set(&key, &bytes, Some(ttl_ms));
    }
}

/// Remove every entry listed under `uri`.
pub fn invalidate(uri: &str) {
    let key = index_key(uri);
    let listed: Vec<String> = kv::get(&key)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default();
    for base in listed {
        let _ = kv::delete(&base);
    }
    let _ = kv::delete(&key);
}

/// The URI a `Location` or `Content-Location` value names, resolved
/// against the request's (RFC 3986 §5.2, without dot-segment removal), if
/// it is of the same origin: a reference without a scheme, or an absolute
/// URI whose authority is the request's. Fragments are dropped.
pub fn same_origin(value: &str, authority: &str, request_path: &str) -> Option<String> {
    let value = value.trim();
    let value = value.split('#').next().unwrap_or("");
    if value.is_empty() {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    if let Some((scheme, rest)) = value.split_once("://")
        && !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        let (their_authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if their_authority.to_ascii_lowercase() != authority {
            return None;
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        return Some(format!("{authority}{path}"));
    }
    if let Some(rest) = value.strip_prefix("//") {
        let (theirs, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        return (theirs.to_ascii_lowercase() == authority)
            .then(|| format!("{authority}{}", if path.is_empty() { "/" } else { path }));
    }
    if value.starts_with('/') {
        return Some(format!("{authority}{value}"));
    }
    // A relative path: merge with the directory of the request's path.
    let path = request_path.split('?').next().unwrap_or("/");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{authority}{dir}{value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_references_resolve_and_others_do_not() {
        // RFC 9111 §4.4 (same origin only), RFC 3986 §5.2.
        let s = |v| same_origin(v, "Example.com", "/a/b?x=1");
        assert_eq!(s("/c"), Some("example.com/c".into()));
        assert_eq!(s("c?y=2"), Some("example.com/a/c?y=2".into()));
        assert_eq!(s("http://example.com/d#frag"), Some("example.com/d".into()));
        assert_eq!(s("https://EXAMPLE.com"), Some("example.com/".into()));
        assert_eq!(s("//example.com/e"), Some("example.com/e".into()));
        assert_eq!(s("http://other.com/d"), None);
        assert_eq!(s("//other.com/e"), None);
        assert_eq!(s(""), None);
        assert_eq!(index_key("h/a|b"), "%uri|h/a%7Cb");
    }
}
