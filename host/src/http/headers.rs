//! Header hygiene for proxying: hop-by-hop headers stay on their own
//! connection (RFC 9110 §7.6.1), the upstream learns who the client was
//! through `X-Forwarded-*`, and edits from plugins are held to the same
//! size and count limits as a client's request, using only the fallible
//! `HeaderMap` calls, so no plugin input can make the host panic.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded. Parsed names, so
/// removing them costs no parsing per request.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Remove hop-by-hop headers, including any named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        // `TE: trailers` is the one TE value that crosses hops (RFC 9113
        // §8.2.2): gRPC needs it end to end.
        if *name == header::TE && headers.get(name).is_some_and(|v| v == "trailers") {
            continue;
        }
        if headers.contains_key(name) {
            headers.remove(name);
        }
    }
}

/// Append the client to `X-Forwarded-For` and set `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (overwritten: only this hop knows them for sure).
pub fn add_forwarded(headers: &mut HeaderMap, client: IpAddr, proto: &str, host: Option<&str>) {
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
    let value = match headers.get(&XFF).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => {
            HeaderValue::from_str(&format!("{prior}, {client}"))
        }
        _ => HeaderValue::from_str(&client.to_string()),
    };
    if let Ok(value) = value {
        let _ = headers.try_insert(XFF, value);
    }
    let proto = match proto {
        "https" => HeaderValue::from_static("https"),
        "http" => HeaderValue::from_static("http"),
        other => match HeaderValue::from_str(other) {
            Ok(value) => value,
            Err(_) => return,
        },
    };
    let _ = headers.try_insert(XFP, proto);
    match host.and_then(|h| HeaderValue::from_str(h).ok()) {
        Some(value) => {
            let _ = headers.try_insert(XFH, value);
        }
        None => {
            headers.remove(XFH);
        }
    }
}

/// Approximate wire size of a header block: names, values and `: \r\n`.
pub fn block_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| field_size(name, value))
        .sum()
}

fn field_size(name: &HeaderName, value: &HeaderValue) -> usize {
    name.as_str().len() + value.len() + 4
}

/// How large a header block may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Most bytes, as [`block_size`] counts them.
    pub max_bytes: usize,
    /// Most fields (values, counting repeats).
    pub max_count: usize,
}

impl HeaderLimits {
    /// Whether a block of this size is within the limits.
    pub fn allows(&self, bytes: usize, count: usize) -> bool {
        bytes <= self.max_bytes && count <= self.max_count
    }
}

/// Why a header edit was refused; the map is left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// Not a valid field name.
    #[error("invalid header name")]
    InvalidName,
    /// A control character or other invalid byte in the value.
    #[error("invalid header value")]
    InvalidValue,
    /// The edit would pass the header limits.
    #[error("header limits exceeded")]
    LimitExceeded,
}

/// Parse a name and value as a plugin gives them.
pub fn parse(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), EditError> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| EditError::InvalidName)?;
    let value = HeaderValue::from_str(value).map_err(|_| EditError::InvalidValue)?;
    Ok((name, value))
}

/// A header block that only grows within `limits`: an edit that would pass
/// them is refused, one that shrinks a block already past them is allowed.
pub struct Bounded<'a> {
    map: &'a mut HeaderMap,
    limits: HeaderLimits,
}

impl<'a> Bounded<'a> {
    /// Edits to `map` within `limits`.
    pub fn new(map: &'a mut HeaderMap, limits: HeaderLimits) -> Self {
        Bounded { map, limits }
    }

    /// Refuse an edit that replaces every value of `names` with `added`
    /// fields of `added_bytes` if it grows the block past the limits. The
    /// count is checked first: it costs no walk over the block, and a flood
    /// of edits meets it within `max_count` calls.
    fn check(
        &self,
        names: &[&HeaderName],
        added_bytes: usize,
        added: usize,
    ) -> Result<(), EditError> {
        let count = self.map.len();
        let replaced: usize = names
            .iter()
            .map(|n| self.map.get_all(*n).iter().count())
            .sum();
        let count_after = count - replaced.min(count) + added;
        if count_after > count && count_after > self.limits.max_count {
            return Err(EditError::LimitExceeded);
        }
        let bytes = block_size(self.map);
        let removed: usize = names
            .iter()
            .flat_map(|n| self.map.get_all(*n).iter().map(move |v| field_size(n, v)))
            .sum();
        let bytes_after = bytes - removed.min(bytes) + added_bytes;
        let grows = bytes_after > bytes || count_after > count;
        if grows && !self.limits.allows(bytes_after, count_after) {
            return Err(EditError::LimitExceeded);
        }
        Ok(())
    }

    /// Replace every value of `name` with `value`.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), EditError> {
        let (name, value) = parse(name, value)?;
        self.check(&[&name], field_size(&name, &value), 1)?;
        self.map
            .try_insert(name, value)
            .map_err(|_| EditError::LimitExceeded)?;
        Ok(())
    }

    /// Add `value` to `name`.
    pub fn append(&mut self, name: &str, value: &str) -> Result<(), EditError> {
        let (name, value) = parse(name, value)?;
        self.check(&[], field_size(&name, &value), 1)?;
        self.map
            .try_append(name, value)
            .map_err(|_| EditError::LimitExceeded)?;
        Ok(())
    }

    /// Set several headers at once: each listed name loses its values and
    /// gets the ones listed for it. All or nothing.
    pub fn set_all(&mut self, headers: &[(String, String)]) -> Result<(), EditError> {
        let parsed = headers
            .iter()
            .map(|(n, v)| parse(n, v))
            .collect::<Result<Vec<_>, _>>()?;
        self.set_parsed(parsed)
    }

    /// [`Self::set_all`] for names and values already parsed.
    pub fn set_parsed(&mut self, parsed: Vec<(HeaderName, HeaderValue)>) -> Result<(), EditError> {
        let mut names: Vec<&HeaderName> = parsed.iter().map(|(n, _)| n).collect();
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        let added: usize = parsed.iter().map(|(n, v)| field_size(n, v)).sum();
        self.check(&names, added, parsed.len())?;
        let names: Vec<HeaderName> = names.into_iter().cloned().collect();
        for name in &names {
            self.map.remove(name);
        }
        for (name, value) in parsed {
            self.map
                .try_append(name, value)
                .map_err(|_| EditError::LimitExceeded)?;
        }
        Ok(())
    }

    /// Remove every value of `name` (an invalid name names nothing).
    pub fn remove(&mut self, name: &str) {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            self.map.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: HeaderLimits = HeaderLimits {
        max_bytes: 1024,
        max_count: 10,
    };

    #[test]
    fn many_distinct_names_stop_at_the_count_limit_without_panicking() {
        let mut map = HeaderMap::new();
        let mut edits = Bounded::new(&mut map, LIMITS);
        let refused = (0..100_000)
            .filter(|i| edits.append(&format!("x-{i}"), "v").is_err())
            .count();
        assert_eq!(refused, 100_000 - 10);
        assert_eq!(map.len(), 10);
    }

    #[test]
    fn one_repeated_name_stops_at_the_byte_limit() {
        let mut map = HeaderMap::new();
        let mut edits = Bounded::new(
            &mut map,
            HeaderLimits {
                max_bytes: 1024,
                max_count: 100_000,
            },
        );
        for _ in 0..100_000 {
            let _ = edits.append("x-same", "0123456789");
        }
        assert!(block_size(&map) <= 1024, "{}", block_size(&map));
    }

    #[test]
    fn shrinking_a_block_already_over_the_limit_is_allowed() {
        let mut map = HeaderMap::new();
        for i in 0..20 {
            map.append(
                HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("value"),
            );
        }
        let mut edits = Bounded::new(&mut map, LIMITS);
        assert_eq!(edits.append("x-new", "v"), Err(EditError::LimitExceeded));
        assert_eq!(edits.set("x-3", "v"), Ok(()));
        edits.remove("x-4");
        assert_eq!(map.len(), 19);
    }

    #[test]
    fn set_all_is_all_or_nothing() {
        let mut map = HeaderMap::new();
        map.insert("a", HeaderValue::from_static("old"));
        let mut edits = Bounded::new(&mut map, LIMITS);
        let bad = vec![
            ("a".to_string(), "new".to_string()),
            ("b".to_string(), "bad\nvalue".to_string()),
        ];
        assert_eq!(edits.set_all(&bad), Err(EditError::InvalidValue));
        let good = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "3".to_string()),
        ];
        assert_eq!(edits.set_all(&good), Ok(()));
        let a: Vec<_> = map.get_all("a").iter().collect();
        assert_eq!(a, ["1", "3"]);
        assert_eq!(map["b"], "2");
    }

    proptest! {
        /// Whatever a plugin sends, an edit either applies within the limits
        /// or is refused with the map unchanged; nothing panics.
        #[test]
        fn edits_never_panic_and_never_pass_the_limits(
            ops in proptest::collection::vec(
                (0u8..4, "[a-zA-Z0-9\\-_:\\x00-\\x7f]{0,12}", "(\\PC|[\\x00-\\x1f]){0,40}"),
                0..60,
            )
        ) {
            let mut map = HeaderMap::new();
            for (op, name, value) in ops {
                let before = map.clone();
                let mut edits = Bounded::new(&mut map, LIMITS);
                let outcome = match op {
                    0 => edits.set(&name, &value),
                    1 => edits.append(&name, &value),
                    2 => edits.set_all(&[(name.clone(), value.clone())]),
                    _ => {
                        edits.remove(&name);
                        Ok(())
                    }
                };
                match outcome {
                    Ok(()) => prop_assert!(LIMITS.allows(block_size(&map), map.len())),
                    Err(_) => prop_assert_eq!(&map, &before),
                }
            }
        }
    }

    #[test]
    fn strips_standard_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        h.insert("te", HeaderValue::from_static("gzip"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
        let mut grpc = HeaderMap::new();
        grpc.insert("te", HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut grpc);
        assert_eq!(grpc["te"], "trailers");
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        add_forwarded(
            &mut h,
            "127.0.0.1".parse().unwrap(),
            "http",
            Some("api.example.com"),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
    }
}
