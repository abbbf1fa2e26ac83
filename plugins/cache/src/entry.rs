//! What the cache keeps in `kv`: a response (status, headers, timing and
//! body), or the list of headers a URL's responses vary on.
//!
//! An entry is `WC1\n`, one line of JSON metadata, `\n`, then the body as
//! raw bytes, so a hit copies the body once and never base64-decodes it. A
//! Vary list is `WV1\n` and a JSON array of header names.

use serde::{Deserialize, Serialize};

use crate::directives::{self, CacheControl, Timing};

const ENTRY_MAGIC: &[u8] = b"WC1\n";
const VARY_MAGIC: &[u8] = b"WV1\n";

/// Headers never stored: hop-by-hop ones, framing the host sets from the
/// body, and `Age`, which is computed on every hit.
const NOT_STORED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "age",
];

/// Headers a 304 may not change in the stored response (RFC 9111 §3.2).
const NOT_UPDATED: &[&str] = &["content-length", "content-encoding", "content-range"];

/// A stored response's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Our clock (ms since the epoch) when it was stored or last validated.
    pub stored_at_ms: u64,
    /// Its age on arrival, in seconds (§4.2.3).
    pub initial_age_s: u64,
    /// How long it stays fresh from its origin, in ms (§4.2.1).
    pub lifetime_ms: u64,
}

/// What one key holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    Entry(Meta, Vec<u8>),
    /// The request headers the responses under this key vary on.
    Vary(Vec<String>),
}

/// An entry's bytes.
pub fn encode_entry(meta: &Meta, body: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(meta).unwrap_or_default();
    let mut out = Vec::with_capacity(ENTRY_MAGIC.len() + json.len() + 1 + body.len());
    out.extend_from_slice(ENTRY_MAGIC);
    out.extend_from_slice(&json);
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// A Vary list's bytes.
pub fn encode_vary(names: &[String]) -> Vec<u8> {
    let mut out = VARY_MAGIC.to_vec();
    out.extend_from_slice(&serde_json::to_vec(names).unwrap_or_default());
    out
}

/// Read what a key holds; `None` for anything unreadable (another format,
/// a damaged value), which the cache treats as a miss and overwrites.
pub fn decode(mut bytes: Vec<u8>) -> Option<Stored> {
    if let Some(rest) = bytes.strip_prefix(VARY_MAGIC) {
        return serde_json::from_slice(rest).ok().map(Stored::Vary);
    }
    let rest = bytes.strip_prefix(ENTRY_MAGIC)?;
    let newline = rest.iter().position(|b| *b == b'\n')?;
    let meta: Meta = serde_json::from_slice(&rest[..newline]).ok()?;
    // The body is the tail: drop the head in place rather than copy it.
    let head = ENTRY_MAGIC.len() + newline + 1;
    bytes.drain(..head);
    Some(Stored::Entry(meta, bytes))
}

/// The headers of a response worth keeping.
pub fn storable_headers(
    headers: Vec<(String, String)>,
    status_header: &str,
) -> Vec<(String, String)> {
    headers
        .into_iter()
        .filter(|(n, _)| !NOT_STORED.contains(&n.as_str()) && n != status_header)
        .collect()
}

impl Meta {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn cache_control(&self) -> CacheControl {
        CacheControl::parse(&self.header_all("cache-control"))
    }

    /// §4.2.3's current age, in ms.
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        self.initial_age_s
            .saturating_mul(1000)
            .saturating_add(now_ms.saturating_sub(self.stored_at_ms))
    }

    /// Fresh time left, in ms (0 when stale).
    pub fn fresh_ms(&self, now_ms: u64) -> u64 {
        self.lifetime_ms.saturating_sub(self.age_ms(now_ms))
    }

    /// Whether it can be revalidated with a conditional request.
    pub fn has_validators(&self) -> bool {
        self.header("etag").is_some() || self.header("last-modified").is_some()
    }

    /// Compute the timing of a response received now.
    pub fn timed(
        status: u16,
        headers: Vec<(String, String)>,
        age: Option<&str>,
        now_ms: u64,
        default_ttl_s: u64,
    ) -> Meta {
        let mut meta = Meta {
            status,
            headers,
            stored_at_ms: now_ms,
            initial_age_s: 0,
            lifetime_ms: 0,
        };
        meta.retime(age, now_ms, default_ttl_s);
        meta
    }

    fn retime(&mut self, age: Option<&str>, now_ms: u64, default_ttl_s: u64) {
        let timing = Timing {
            date: self.header("date"),
            expires: self.header("expires"),
            age,
        };
        let lifetime =
            directives::lifetime_ms(&self.cache_control(), timing, now_ms, default_ttl_s);
        self.initial_age_s = directives::initial_age_s(timing, now_ms);
        self.lifetime_ms = lifetime;
        self.stored_at_ms = now_ms;
    }

    /// Apply a 304 that validated this entry (§4.3.4): its headers replace
    /// the stored ones of the same name, and the timing starts again.
    pub fn refresh(
        &mut self,
        update: &[(String, String)],
        now_ms: u64,
        default_ttl_s: u64,
        status_header: &str,
    ) {
        let age = update
            .iter()
            .find(|(n, _)| n == "age")
            .map(|(_, v)| v.clone());
        let replaced: Vec<&str> = update
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !NOT_STORED.contains(n) && !NOT_UPDATED.contains(n) && *n != status_header)
            .collect();
        self.headers
            .retain(|(n, _)| !replaced.contains(&n.as_str()));
        for (name, value) in update {
            if replaced.contains(&name.as_str()) {
                self.headers.push((name.clone(), value.clone()));
            }
        }
        self.retime(age.as_deref(), now_ms, default_ttl_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn entries_and_vary_lists_round_trip() {
        let meta = Meta::timed(
            200,
            h(&[("etag", "\"a\""), ("x", "line\nbreak")]),
            None,
            5_000,
            60,
        );
        let body = b"body\nwith\nnewlines".to_vec();
        let bytes = encode_entry(&meta, &body);
        assert_eq!(decode(bytes), Some(Stored::Entry(meta, body)));
        let names = vec!["accept-language".to_string()];
        assert_eq!(decode(encode_vary(&names)), Some(Stored::Vary(names)));
        assert_eq!(decode(b"something else".to_vec()), None);
        assert_eq!(decode(b"WC1\n{not json\nbody".to_vec()), None);
    }

    #[test]
    fn framing_hop_by_hop_age_and_our_header_are_not_stored() {
        let kept = storable_headers(
            h(&[
                ("content-type", "text/plain"),
                ("content-length", "4"),
                ("connection", "close"),
                ("age", "3"),
                ("x-cache", "MISS"),
                ("etag", "\"a\""),
            ]),
            "x-cache",
        );
        assert_eq!(
            kept,
            h(&[("content-type", "text/plain"), ("etag", "\"a\"")])
        );
    }

    #[test]
    fn freshness_counts_from_storage_plus_initial_age() {
        let now = 1_000_000;
        let meta = Meta::timed(
            200,
            h(&[("cache-control", "max-age=10")]),
            Some("4"),
            now,
            0,
        );
        assert_eq!(meta.initial_age_s, 4);
        assert_eq!(meta.lifetime_ms, 10_000);
        assert_eq!(meta.fresh_ms(now), 6_000);
        assert_eq!(meta.fresh_ms(now + 5_999), 1);
        assert_eq!(meta.fresh_ms(now + 6_000), 0);
        assert_eq!(meta.age_ms(now + 1_500), 5_500);
        assert!(!meta.has_validators());
    }

    #[test]
    fn a_304_replaces_headers_and_restarts_the_clock() {
        let mut meta = Meta::timed(
            200,
            h(&[
                ("cache-control", "max-age=1"),
                ("etag", "\"a\""),
                ("content-type", "text/plain"),
                ("x-old", "1"),
            ]),
            None,
            1_000,
            0,
        );
        meta.refresh(
            &h(&[
                ("cache-control", "max-age=60"),
                ("etag", "\"a\""),
                ("content-length", "0"),
                ("x-cache", "MISS"),
                ("age", "2"),
            ]),
            50_000,
            0,
            "x-cache",
        );
        assert_eq!(meta.header("cache-control"), Some("max-age=60"));
        assert_eq!(meta.header("content-type"), Some("text/plain"));
        assert_eq!(meta.header("x-old"), Some("1"));
        assert_eq!(meta.header("content-length"), None);
        assert_eq!(meta.header("x-cache"), None);
        assert_eq!(meta.header_all("etag"), vec!["\"a\""]);
        assert_eq!((meta.stored_at_ms, meta.initial_age_s), (50_000, 2));
        assert_eq!(meta.fresh_ms(50_000), 58_000);
    }
}
