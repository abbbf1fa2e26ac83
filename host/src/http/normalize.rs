//! Request-path normalization (RFC 3986 §6.2.2), done once before any plugin
//! sees the request, so routing and the upstream agree on one path and
//! `/api/../admin`, `/api/%2e%2e/admin` or `//admin` cannot reach what the
//! plain path would not:
//!
//! - percent-escapes of unreserved characters are decoded (`%7E` → `~`,
//!   `%2e` → `.`); other escapes stay encoded, with upper-case hex (`%2f` →
//!   `%2F`), so an encoded `/` never becomes a path separator;
//! - runs of `/` are merged (as Envoy's `merge_slashes` does), because many
//!   backends treat `//admin` as `/admin`;
//! - dot segments are removed (RFC 3986 §5.2.4); `..` never climbs above `/`.
//!
//! Refused with 400: an invalid escape (`%zz`, a lone `%`), and an escaped
//! NUL, CR or LF (the raw bytes never get past hyper's parser). The query is
//! left as it is.
//!
//! The same rule applies to paths plugins set (`set-path-with-query`,
//! `outbound` calls): [`normalize_path_and_query`].

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%` not followed by two hex digits.
    #[error("invalid percent-escape in the path")]
    InvalidEscape,
    /// An escaped NUL, CR or LF.
    #[error("control character in the path")]
    ControlCharacter,
    /// Not an origin-form path.
    #[error("the path must start with `/`")]
    NotAbsolute,
    /// A character that is not allowed in a request target.
    #[error("character not allowed in a request target")]
    InvalidCharacter,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The upper-case hex digit of a nibble.
fn upper_hex(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).map_or('0', |c| c.to_ascii_uppercase())
}

/// Decode unreserved escapes and upper-case the others.
fn normalize_escapes(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::InvalidEscape);
            };
            let decoded = hi * 16 + lo;
            if matches!(decoded, 0 | b'\r' | b'\n') {
                return Err(PathError::ControlCharacter);
            }
            if is_unreserved(decoded) {
                out.push(decoded as char);
            } else {
                out.push('%');
                out.push(upper_hex(hi));
                out.push(upper_hex(lo));
            }
            i += 3;
        } else {
            if matches!(b, 0 | b'\r' | b'\n') {
                return Err(PathError::ControlCharacter);
            }
            // Multi-byte UTF-8 cannot appear in a parsed URI; copy whole
            // chars of the original string to stay valid either way.
            let ch = path.get(i..).and_then(|rest| rest.chars().next());
            let Some(ch) = ch else { break };
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    Ok(out)
}

/// Merge slashes and remove dot segments from an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, segment) in parts.iter().enumerate() {
        match *segment {
            "." | "" => trailing_slash = i == last,
            ".." => {
                segments.pop();
                trailing_slash = i == last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

/// The normalized form of `path` (no query).
pub fn normalize_path(path: &str) -> Result<String, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    Ok(remove_dot_segments(&normalize_escapes(path)?))
}

/// Whether `path` certainly needs no work: no escapes, no empty segment,
/// no dot segment. Most paths are like that; checking costs no allocation.
fn already_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.contains(&b'%') {
        return false;
    }
    let mut segments = path.get(1..).unwrap_or_default().split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "" if !last => return false,
            "." | ".." => return false,
            _ => {}
        }
    }
    true
}

/// Normalize a path and query as a plugin sets it: the path part by
/// [`normalize_path`], the query as it is. The result is a valid request
/// target; anything else is refused.
pub fn normalize_path_and_query(pq: &str) -> Result<http::uri::PathAndQuery, PathError> {
    // A request target has no fragment (RFC 9112 §3.2); the parser below
    // would drop one silently, after the dot segments were removed, so
    // `/a/.#x` would reach the upstream as `/a/.`.
    if pq.contains('#') {
        return Err(PathError::InvalidCharacter);
    }
    let (path, query) = match pq.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (pq, None),
    };
    let normal = normalize_path(path)?;
    let rebuilt = match query {
        Some(query) => format!("{normal}?{query}"),
        None => normal,
    };
    rebuilt.parse().map_err(|_| PathError::InvalidCharacter)
}

/// Normalize the path of a request URI, keeping its query. Returns `None`
/// when the URI is already normal (the common case: nothing to rebuild).
pub fn normalize_uri(uri: &http::Uri) -> Result<Option<http::uri::PathAndQuery>, PathError> {
    let path = uri.path();
    // An asterisk-form target (OPTIONS *) has no path to normalize.
    if path == "*" {
        return Ok(None);
    }
    if already_normal(path) {
        return Ok(None);
    }
    let normal = normalize_path(path)?;
    if normal == path {
        return Ok(None);
    }
    let rebuilt = match uri.query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal,
    };
    rebuilt
        .parse()
        .map(Some)
        .map_err(|_| PathError::InvalidEscape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fragment_in_a_plugin_set_path_is_refused() {
        // Found by fuzzing (fuzz/fuzz_targets/path_normalization.rs): the
        // fragment was dropped after normalisation, leaving a dot segment.
        for target in ["//.,/.#.", "/a/.#x", "/a#/../b", "/a?q=1#f"] {
            assert_eq!(
                normalize_path_and_query(target),
                Err(PathError::InvalidCharacter),
                "{target}"
            );
        }
        assert_eq!(
            normalize_path_and_query("/a/./b?x=/../").unwrap(),
            "/a/b?x=/../"
        );
    }

    fn n(path: &str) -> Result<String, PathError> {
        normalize_path(path)
    }

    #[test]
    fn plain_paths_are_unchanged() {
        for path in ["/", "/users", "/users/7", "/users/7/", "/a-b_c~d.e"] {
            assert_eq!(n(path).unwrap(), path);
        }
    }

    #[test]
    fn dot_segments_are_removed_and_never_climb_above_root() {
        assert_eq!(n("/api/../admin").unwrap(), "/admin");
        assert_eq!(n("/api/./users").unwrap(), "/api/users");
        assert_eq!(n("/api/users/..").unwrap(), "/api/");
        assert_eq!(n("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(n("/a/b/../../..").unwrap(), "/");
        assert_eq!(n("/.").unwrap(), "/");
    }

    #[test]
    fn escaped_dots_are_dots() {
        assert_eq!(n("/api/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(n("/api/%2E%2E/admin").unwrap(), "/admin");
        assert_eq!(n("/api/.%2e/admin").unwrap(), "/admin");
    }

    #[test]
    fn slashes_are_merged() {
        assert_eq!(n("//admin").unwrap(), "/admin");
        assert_eq!(n("/api//users///7").unwrap(), "/api/users/7");
    }

    #[test]
    fn unreserved_escapes_decode_and_others_stay_encoded_upper_case() {
        assert_eq!(n("/%7Euser/%41").unwrap(), "/~user/A");
        assert_eq!(n("/a%2fb").unwrap(), "/a%2Fb");
        assert_eq!(n("/api%2F..%2Fadmin").unwrap(), "/api%2F..%2Fadmin");
        assert_eq!(n("/caf%c3%a9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn bad_escapes_and_control_characters_are_refused() {
        assert_eq!(n("/a%zz"), Err(PathError::InvalidEscape));
        assert_eq!(n("/a%2"), Err(PathError::InvalidEscape));
        assert_eq!(n("/a%"), Err(PathError::InvalidEscape));
        assert_eq!(n("/a%00b"), Err(PathError::ControlCharacter));
        assert_eq!(n("/a%0d%0aSet-Cookie:x"), Err(PathError::ControlCharacter));
        assert_eq!(n("/a%0Ab"), Err(PathError::ControlCharacter));
        assert_eq!(n("relative"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_normalization() {
        for path in [
            "/", "/a", "/a/", "/a/b", "//a", "/a//b", "/a/./b", "/a/../b", "/a/.", "/a/..", "/.",
            "/..", "/a%2e", "/a.b/c", "/..a/b.", "/a/b/",
        ] {
            if already_normal(path) {
                assert_eq!(normalize_path(path).unwrap(), path, "{path}");
            }
        }
        assert!(already_normal("/users/7/orders"));
        assert!(already_normal("/"));
        assert!(!already_normal("//admin"));
        assert!(!already_normal("/a/../b"));
    }

    #[test]
    fn plugin_paths_follow_the_same_rule() {
        let n = |pq: &str| normalize_path_and_query(pq).map(|p| p.as_str().to_string());
        assert_eq!(n("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(
            n("//169.254.169.254/latest").unwrap(),
            "/169.254.169.254/latest"
        );
        assert_eq!(n("/a/./b/../c?x=/../y").unwrap(), "/a/c?x=/../y");
        assert_eq!(n("relative"), Err(PathError::NotAbsolute));
        assert_eq!(n("/a b"), Err(PathError::InvalidCharacter));
        assert_eq!(n("/a%0a"), Err(PathError::ControlCharacter));
    }

    proptest::proptest! {
        /// Any input either is refused or becomes a path with no dot
        /// segment and no empty segment, which normalizes to itself.
        #[test]
        fn normalized_paths_are_fixed_points(path in "/[a-z./%0-9A-F?]{0,40}") {
            if let Ok(pq) = normalize_path_and_query(&path) {
                let p = pq.path();
                proptest::prop_assert!(!p.starts_with("//"), "{p}");
                proptest::prop_assert!(
                    !p.split('/').any(|s| s == "." || s == ".."),
                    "{p}"
                );
                let again = normalize_path_and_query(pq.as_str()).unwrap();
                proptest::prop_assert_eq!(again.as_str(), pq.as_str());
            }
        }

        /// Arbitrary bytes never panic the normalizer.
        #[test]
        fn arbitrary_input_never_panics(path in "\\PC{0,60}") {
            let _ = normalize_path(&path);
            let _ = normalize_path_and_query(&path);
        }
    }

    #[test]
    fn uri_query_is_kept_and_normal_uris_need_no_rebuild() {
        let uri: http::Uri = "/api/../users?q=a/../b".parse().unwrap();
        assert_eq!(
            normalize_uri(&uri).unwrap().unwrap().as_str(),
            "/users?q=a/../b"
        );
        let uri: http::Uri = "/users?q=1".parse().unwrap();
        assert_eq!(normalize_uri(&uri).unwrap(), None);
    }
}
