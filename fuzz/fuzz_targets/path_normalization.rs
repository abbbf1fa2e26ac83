//! Path normalisation (RFC 3986 §6.2.2, §5.2.4) on any text. A path that
//! is accepted comes out absolute, with no empty, `.` or `..` segment, no
//! escaped unreserved character and upper-case hex in the escapes it
//! keeps, never more `/` separators than it came in with (an escaped `/`
//! never becomes one), and normalising it again changes nothing. A request
//! target the gateway leaves alone (`normalize_uri` gives `None`) is
//! already normal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::http::normalize::{normalize_path, normalize_path_and_query, normalize_uri};

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn check_normal(input: &str, path: &str) {
    assert!(path.starts_with('/'), "{input:?} -> {path:?}");
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        assert!(
            (last || !segment.is_empty()) && *segment != "." && *segment != "..",
            "{input:?} -> {path:?}"
        );
    }
    let bytes = path.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let hex = &path[i + 1..i + 3];
            assert!(
                hex.bytes()
                    .all(|h| h.is_ascii_digit() || h.is_ascii_uppercase()),
                "{input:?} -> {path:?}"
            );
            let value = u8::from_str_radix(hex, 16).unwrap();
            assert!(!is_unreserved(value), "{input:?} -> {path:?}");
        }
    }
    let slashes = |s: &str| s.bytes().filter(|b| *b == b'/').count();
    assert!(
        slashes(path) <= slashes(input).max(1),
        "{input:?} -> {path:?}"
    );
    assert_eq!(
        normalize_path(path).as_deref(),
        Ok(path),
        "not idempotent: {input:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = normalize_path(text) {
        check_normal(text, &path);
    }
    if let Ok(target) = normalize_path_and_query(text) {
        check_normal(text, target.path());
    }
    if let Ok(uri) = text.parse::<http::Uri>() {
        match normalize_uri(&uri) {
            Ok(None) if uri.path() != "*" && uri.path().starts_with('/') => {
                assert_eq!(
                    normalize_path(uri.path()).as_deref(),
                    Ok(uri.path()),
                    "{text:?}"
                );
            }
            Ok(Some(target)) => check_normal(text, target.path()),
            _ => {}
        }
    }
});
