//! Choosing a content coding from `Accept-Encoding` (RFC 9110 §12.5.3):
//! each coding the client lists has a weight (`q`, §12.4.2), `*` stands
//! for every coding not listed, `q=0` means "not acceptable", and the
//! highest weight wins; among equal weights, the gateway's own order
//! decides. A missing header means any coding is acceptable (§12.5.3), but
//! the gateway then sends identity, as every common server does: a client
//! that says nothing may not decode.

use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

use super::Coding;

/// The coding to send, from `preference` (the gateway's order), or `None`
/// for identity.
pub fn choose(headers: &HeaderMap, preference: &[Coding]) -> Option<Coding> {
    let mut listed: Vec<(&str, u16)> = Vec::new();
    for line in headers.get_all(ACCEPT_ENCODING) {
        let Ok(line) = line.to_str() else { continue };
        for item in line.split(',') {
            if let Some(entry) = parse_item(item) {
                listed.push(entry);
            }
        }
    }
    let weight = |coding: Coding| -> u16 {
        let named = listed
            .iter()
            .filter(|(name, _)| coding.names().iter().any(|n| name.eq_ignore_ascii_case(n)))
            .map(|(_, q)| *q)
            .max();
        named
            .or_else(|| {
                listed
                    .iter()
                    .find(|(name, _)| *name == "*")
                    .map(|(_, q)| *q)
            })
            .unwrap_or(0)
    };
    let mut best: Option<(Coding, u16)> = None;
    for &coding in preference {
        let q = weight(coding);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((coding, q));
        }
    }
    best.map(|(coding, _)| coding)
}

/// `coding;q=0.5` → (`coding`, 500); `None` for an empty or malformed item.
fn parse_item(item: &str) -> Option<(&str, u16)> {
    let mut parts = item.split(';');
    let name = parts.next()?.trim();
    if name.is_empty() {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let (key, value) = param.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("q") {
            q = qvalue(value.trim())?;
        }
    }
    Some((name, q))
}

/// A `qvalue` (RFC 9110 §12.4.2): `0`, `0.5`, `1.000`, in thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::{Brotli, Gzip, Zstd};
    use http::HeaderValue;

    const ALL: [Coding; 3] = [Zstd, Brotli, Gzip];

    fn choose_for(value: &str) -> Option<Coding> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        choose(&headers, &ALL)
    }

    /// RFC 9110 §12.5.3 and §12.4.2.
    #[test]
    fn the_heaviest_acceptable_coding_wins_then_the_gateways_order() {
        assert_eq!(choose_for("gzip"), Some(Gzip));
        assert_eq!(choose_for("gzip, deflate, br"), Some(Brotli));
        assert_eq!(choose_for("gzip, deflate, br, zstd"), Some(Zstd));
        assert_eq!(choose_for("br;q=0.5, gzip;q=0.8"), Some(Gzip));
        assert_eq!(choose_for("br;q=1.0, gzip;q=1"), Some(Brotli));
        assert_eq!(choose_for("x-gzip"), Some(Gzip));
        assert_eq!(choose_for("GZIP;Q=0.1"), Some(Gzip));
        assert_eq!(choose_for("*"), Some(Zstd));
        assert_eq!(choose_for("*;q=0.1, zstd;q=0, br;q=0"), Some(Gzip));
        assert_eq!(choose_for("gzip;q=0.001, br;q=0.002"), Some(Brotli));
    }

    #[test]
    fn nothing_acceptable_or_nothing_said_is_identity() {
        assert_eq!(choose_for("identity"), None);
        assert_eq!(choose_for("deflate, compress"), None);
        assert_eq!(choose_for("gzip;q=0, *;q=0"), None);
        assert_eq!(choose_for(""), None);
        assert_eq!(choose(&HeaderMap::new(), &ALL), None);
        // Malformed weights make the item unusable, not the header.
        assert_eq!(choose_for("br;q=2, gzip;q=0.5"), Some(Gzip));
        assert_eq!(choose_for("br;q=0.0001, gzip"), Some(Gzip));
        assert_eq!(choose_for("br;q, gzip"), Some(Gzip));
        // Only what the gateway offers.
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("br, zstd"));
        assert_eq!(choose(&headers, &[Gzip]), None);
    }
}
