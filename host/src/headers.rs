//! Header hygiene for proxying: hop-by-hop headers stay on their own
//! connection (RFC 9110 §7.6.1) and the upstream learns who the client was
//! through `X-Forwarded-*`.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Remove hop-by-hop headers, including any named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Append the client to `X-Forwarded-For` and set `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (overwritten: only this hop knows them for sure).
pub fn add_forwarded(headers: &mut HeaderMap, client: IpAddr, proto: &str, host: Option<&str>) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let client = client.to_string();
    let value = match headers.get(&xff).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => format!("{prior}, {client}"),
        _ => client,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(xff, value);
    }
    if let Ok(value) = HeaderValue::from_str(proto) {
        headers.insert(HeaderName::from_static("x-forwarded-proto"), value);
    }
    match host.and_then(|h| HeaderValue::from_str(h).ok()) {
        Some(value) => {
            headers.insert(HeaderName::from_static("x-forwarded-host"), value);
        }
        None => {
            headers.remove("x-forwarded-host");
        }
    }
}

/// Approximate wire size of a header block: names, values and `: \r\n`.
pub fn block_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
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
