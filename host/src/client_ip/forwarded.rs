//! The hops a request passed through, as `X-Forwarded-For` or `Forwarded`
//! (RFC 7239) list them: the client first, each proxy appending the address
//! it received the request from. Only what a trusted proxy appended can be
//! believed, so [`resolve`](super::resolve) reads the list from the right.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// Which header carries the chain. Only one is read: a proxy writes one of
/// them, and reading the other would let a client put a forged chain in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChainHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the de-facto standard:
    /// nginx, HAProxy, AWS and Google load balancers, Envoy).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ChainHeader {
    /// Parse the `weir.toml` name: `x-forwarded-for` or `forwarded`.
    pub fn parse(text: &str) -> Option<ChainHeader> {
        match text.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Some(ChainHeader::XForwardedFor),
            "forwarded" => Some(ChainHeader::Forwarded),
            _ => None,
        }
    }

    /// The header's name.
    pub fn name(self) -> &'static str {
        match self {
            ChainHeader::XForwardedFor => "x-forwarded-for",
            ChainHeader::Forwarded => "forwarded",
        }
    }
}

/// One hop of the chain: an address, or something that names none
/// (`unknown`, an obfuscated identifier, garbage).
pub type Hop = Option<IpAddr>;

/// The chain's hops, left (the client, as claimed) to right (the proxy
/// nearest this gateway). Several header lines are one list, in order
/// (RFC 9110 §5.3).
pub fn hops(headers: &HeaderMap, which: ChainHeader) -> Vec<Hop> {
    let mut hops = Vec::new();
    for line in headers.get_all(which.name()) {
        let line = line.as_bytes();
        match which {
            ChainHeader::XForwardedFor => hops.extend(
                pieces(line)
                    .filter(|p| !p.trim_ascii().is_empty())
                    .map(|p| std::str::from_utf8(p.trim_ascii()).ok().and_then(node)),
            ),
            ChainHeader::Forwarded => match std::str::from_utf8(line) {
                // Quotes hide commas only in a line whose quotes all close:
                // a client's unterminated quote must not swallow the
                // elements a proxy appended after it on the same line.
                Ok(text) if quotes_balance(text) => {
                    hops.extend(split_quoted(text, ',').map(element_for));
                }
                _ => hops.extend(
                    pieces(line)
                        .filter(|p| !p.trim_ascii().is_empty())
                        .map(|p| std::str::from_utf8(p).ok().and_then(element_for)),
                ),
            },
        }
    }
    hops
}

/// A line's comma-separated pieces, as bytes: a piece that is not text (a
/// client's obs-text) spoils only itself, never the hops a proxy appended
/// after it on the same line.
fn pieces(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| *b == b',')
}

/// Whether every quoted string in `text` is closed.
fn quotes_balance(text: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ => {}
        }
    }
    !quoted
}

/// The `for` of one `forwarded-element` (RFC 7239 §4): `for=192.0.2.60;
/// proto=http`. An element without `for` names no address.
fn element_for(element: &str) -> Hop {
    split_quoted(element, ';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| node(unquote(value.trim())?))
    })?
}

/// A node (RFC 7239 §6): `192.0.2.43`, `192.0.2.43:47011`,
/// `[2001:db8::17]`, `[2001:db8::17]:4711`. `unknown` and obfuscated
/// identifiers (`_hidden`) name no address. X-Forwarded-For entries take
/// the same forms (some proxies add the port) and a bare IPv6 address.
fn node(text: &str) -> Hop {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    // `[v6]` without a port.
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

/// A `token` or `quoted-string` value (RFC 9110 §5.6.4) without its quotes
/// and escapes; `None` for an unterminated quote.
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        None => Some(value),
        // Node values never hold `\` or `"`: a value that needs escapes is
        // no address, and is read as is (so it fails to parse).
        Some(rest) => rest.strip_suffix('"'),
    }
}

/// `text` split at `sep`, except inside quoted strings.
fn split_quoted(text: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> Hop {
        Some(s.parse().unwrap())
    }

    fn chain(which: ChainHeader, lines: &[&str]) -> Vec<Hop> {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(which.name(), HeaderValue::from_str(line).unwrap());
        }
        hops(&headers, which)
    }

    #[test]
    fn x_forwarded_for_lists_every_line_in_order() {
        let hops = chain(
            ChainHeader::XForwardedFor,
            &["203.0.113.7, 10.0.0.1", "2001:db8::5,10.0.0.2:8080", "nope"],
        );
        assert_eq!(
            hops,
            [
                ip("203.0.113.7"),
                ip("10.0.0.1"),
                ip("2001:db8::5"),
                ip("10.0.0.2"),
                None
            ]
        );
    }

    /// RFC 7239 §4 and §6, with the examples of §7.1 and §7.4.
    #[test]
    fn forwarded_reads_the_for_parameter_of_each_element() {
        let hops = chain(
            ChainHeader::Forwarded,
            &[
                r#"for="_gazonk""#,
                r#"For="[2001:db8:cafe::17]:4711""#,
                "for=192.0.2.60;proto=http;by=203.0.113.43",
                "for=192.0.2.43, for=198.51.100.17",
                r#"for=unknown, proto=https, for="198.51.100.9:80";host="a,b""#,
            ],
        );
        assert_eq!(
            hops,
            [
                None,
                ip("2001:db8:cafe::17"),
                ip("192.0.2.60"),
                ip("192.0.2.43"),
                ip("198.51.100.17"),
                None,
                None,
                ip("198.51.100.9"),
            ]
        );
    }

    #[test]
    fn unterminated_quotes_name_no_address() {
        assert_eq!(chain(ChainHeader::Forwarded, &[r#"for="10.0.0.1"#]), [None]);
    }

    /// A client's open quote must not hide the element a proxy appends to
    /// its line (nginx's `Forwarded` recipe appends with ", ").
    #[test]
    fn a_clients_open_quote_does_not_swallow_a_proxys_element() {
        let hops = chain(
            ChainHeader::Forwarded,
            &[r#"for=10.9.9.9;x=", for=203.0.113.9"#],
        );
        assert_eq!(hops.last(), Some(&ip("203.0.113.9")));
        let hops = chain(
            ChainHeader::Forwarded,
            &[r#"for="1.2.3.4, for=203.0.113.9"#],
        );
        assert_eq!(hops.last(), Some(&ip("203.0.113.9")));
    }

    /// A client's non-text bytes spoil its own entry only, not the one a
    /// proxy appended to the same line.
    #[test]
    fn a_clients_obs_text_does_not_spoil_a_proxys_entry() {
        let mut headers = HeaderMap::new();
        let mut line = b"\xff\xfe".to_vec();
        line.extend_from_slice(b", 203.0.113.9");
        headers.insert("x-forwarded-for", HeaderValue::from_bytes(&line).unwrap());
        assert_eq!(
            hops(&headers, ChainHeader::XForwardedFor),
            [None, ip("203.0.113.9")]
        );
        let mut headers = HeaderMap::new();
        let mut line = b"for=\xff".to_vec();
        line.extend_from_slice(b", for=203.0.113.9");
        headers.insert("forwarded", HeaderValue::from_bytes(&line).unwrap());
        assert_eq!(
            hops(&headers, ChainHeader::Forwarded),
            [None, ip("203.0.113.9")]
        );
    }
}
