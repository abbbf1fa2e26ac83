//! What the cache keeps in `kv`: a response (status, headers, timing and
//! body), or the list of headers a URL's responses vary on.
//!
//! An entry is `WC1\n`, one line of JSON metadata, `\n`, then the body as
//! raw bytes, so a hit copies the body once and never base64-decodes it. A
//! Vary list is `WV2\n` and JSON: the header names, and a generation that
//! is part of its variants' keys, so variants stored under an earlier list
//! (since invalidated) are never found again (`WV1\n`, a bare array, is
//! still read).

use serde::{Deserialize, Serialize};

use crate::config::Rule;
use crate::freshness::{Freshness, StaleRules};

const ENTRY_MAGIC: &[u8] = b"WC1\n";
const VARY_MAGIC: &[u8] = b"WV2\n";
const VARY_MAGIC_V1: &[u8] = b"WV1\n";

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

/// Headers a 304 may not change in the stored response (RFC 9111 §3.2):
/// only `Content-Length`, which describes the stored body. The cache keeps
/// the body as received, so every other field, `ETag` and
/// `Content-Encoding` included, is updated.
const NOT_UPDATED: &[&str] = &["content-length"];

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
    /// When it may be served stale.
    #[serde(default)]
    pub stale: StaleRules,
}

/// The header names a URL's responses vary on, and the generation of the
/// list (part of each variant's key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaryList {
    pub names: Vec<String>,
    pub generation: String,
}

/// What one key holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    Entry(Meta, Vec<u8>),
    /// The request headers the responses under this key vary on.
    Vary(VaryList),
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
pub fn encode_vary(list: &VaryList) -> Vec<u8> {
    let mut out = VARY_MAGIC.to_vec();
    out.extend_from_slice(&serde_json::to_vec(list).unwrap_or_default());
    out
}

/// Read what a key holds; `None` for anything unreadable (another format,
/// a damaged value), which the cache treats as a miss and overwrites.
pub fn decode(mut bytes: Vec<u8>) -> Option<Stored> {
    if let Some(rest) = bytes.strip_prefix(VARY_MAGIC) {
        return serde_json::from_slice(rest).ok().map(Stored::Vary);
    }
    if let Some(rest) = bytes.strip_prefix(VARY_MAGIC_V1) {
        let names = serde_json::from_slice(rest).ok()?;
        return Some(Stored::Vary(VaryList {
            names,
            generation: String::new(),
        }));
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

    /// What `If-Modified-Since` is compared with (RFC 9111 §4.3.2): its
    /// `Last-Modified`, or else its `Date`.
    pub fn modified(&self) -> Option<&str> {
        self.header("last-modified").or_else(|| self.header("date"))
    }

    /// §4.2.3's current age, in ms.
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        self.initial_age_s
            .saturating_mul(1000)
            .saturating_add(now_ms.saturating_sub(self.stored_at_ms))
    }

    /// How far past its freshness it is, in ms (0 while fresh).
    pub fn staleness_ms(&self, now_ms: u64) -> u64 {
        self.age_ms(now_ms).saturating_sub(self.lifetime_ms)
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
        rule: &Rule,
    ) -> Meta {
        let mut meta = Meta {
            status,
            headers,
            stored_at_ms: now_ms,
            initial_age_s: 0,
            lifetime_ms: 0,
            stale: StaleRules::default(),
        };
        meta.retime(age, now_ms, rule);
        meta
    }

    /// The freshness its headers give at `now_ms`.
    pub fn freshness(&self, age: Option<&str>, now_ms: u64, rule: &Rule) -> Freshness {
        Freshness::of(self.status, &self.headers, age, now_ms, rule)
    }

    fn retime(&mut self, age: Option<&str>, now_ms: u64, rule: &Rule) {
        let freshness = self.freshness(age, now_ms, rule);
        self.initial_age_s = freshness.initial_age_s;
        self.lifetime_ms = freshness.lifetime_ms;
        self.stale = freshness.stale;
        self.stored_at_ms = now_ms;
    }

    /// Apply a 304 that validated this entry (§4.3.4): its headers replace
    /// the stored ones of the same name, and the timing starts again.
    pub fn refresh(
        &mut self,
        update: &[(String, String)],
        now_ms: u64,
        rule: &Rule,
        status_header: &str,
    ) {
        let ages: Vec<String> = update
            .iter()
            .filter(|(n, _)| n == "age")
            .map(|(_, v)| v.clone())
            .collect();
        let age = (!ages.is_empty()).then(|| ages.join(", "));
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
        self.retime(age.as_deref(), now_ms, rule);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleConfig;

    fn rule() -> Rule {
        serde_json::from_str::<RuleConfig>(r#"{"default_ttl_s": 60}"#)
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

    #[test]
    fn entries_and_vary_lists_round_trip() {
        let meta = Meta::timed(
            200,
            h(&[("etag", "\"a\""), ("x", "line\nbreak")]),
            None,
            5_000,
            &rule(),
        );
        let body = b"body\nwith\nnewlines".to_vec();
        let bytes = encode_entry(&meta, &body);
        assert_eq!(decode(bytes), Some(Stored::Entry(meta, body)));
        let list = VaryList {
            names: vec!["accept-language".to_string()],
            generation: "7".into(),
        };
        assert_eq!(decode(encode_vary(&list)), Some(Stored::Vary(list)));
        let v1 = b"WV1\n[\"accept\"]".to_vec();
        assert_eq!(
            decode(v1),
            Some(Stored::Vary(VaryList {
                names: vec!["accept".into()],
                generation: String::new()
            }))
        );
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
            &rule(),
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
            &rule(),
        );
        meta.refresh(
            &h(&[
                ("cache-control", "max-age=60"),
                ("etag", "\"b\""),
                ("content-encoding", "gzip"),
                ("content-length", "0"),
                ("x-cache", "MISS"),
                ("age", "2"),
            ]),
            50_000,
            &rule(),
            "x-cache",
        );
        assert_eq!(meta.header("cache-control"), Some("max-age=60"));
        assert_eq!(meta.header("content-type"), Some("text/plain"));
        assert_eq!(meta.header("x-old"), Some("1"));
        assert_eq!(meta.header("content-length"), None);
        assert_eq!(meta.header("x-cache"), None);
        // RFC 9111 §3.2: ETag and Content-Encoding are updated too.
        let etags: Vec<&(String, String)> =
            meta.headers.iter().filter(|(n, _)| n == "etag").collect();
        assert_eq!(etags, vec![&("etag".to_string(), "\"b\"".to_string())]);
        assert_eq!(meta.header("content-encoding"), Some("gzip"));
        assert_eq!((meta.stored_at_ms, meta.initial_age_s), (50_000, 2));
        assert_eq!(meta.fresh_ms(50_000), 58_000);
    }
}
