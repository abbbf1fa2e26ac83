//! The client's real address behind proxies: the connection's peer (or
//! the source a PROXY protocol header gave, `proxy_protocol.rs`), unless
//! that peer is one of the listener's `trusted_proxies`; then the chain a
//! proxy header lists (`forwarded.rs`) is read from the right, skipping
//! trusted proxies, and the first address not trusted is the client.
//! Entries to the left of it could have been written by the client and are
//! never used; so a client cannot choose its own address unless the
//! operator trusts it.
//!
//! The result keys the rate limiter's `client_ip`, canary stickiness,
//! `consistent_hash` on `client_ip`, the access log and traces, and plugins
//! read it as `request.client-ip`.

pub mod cidr;
pub mod forwarded;
pub mod proxy_protocol;

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

pub use cidr::Cidr;
pub use forwarded::ChainHeader;

/// How one listener learns its clients' addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAddressing {
    /// Peers whose chain header is believed; none by default (the header
    /// is ignored and the peer is the client).
    pub trusted_proxies: Arc<[Cidr]>,
    /// Which header carries the chain.
    pub header: ChainHeader,
    /// Every connection starts with a PROXY protocol header (v1 or v2).
    pub proxy_protocol: bool,
}

impl ClientAddressing {
    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(ip))
    }

    /// The client of a request from `peer` with `headers`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = cidr::canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded::hops(headers, self.header).into_iter().rev() {
            match hop.map(cidr::canonical) {
                Some(ip) if self.trusts(ip) => client = ip,
                Some(ip) => return ip,
                // A hop naming no address (`unknown`, obfuscated, garbage):
                // nothing further left can be vouched for, so the last
                // trusted hop stands as the client.
                None => return client,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusting(blocks: &[&str], header: ChainHeader) -> ClientAddressing {
        ClientAddressing {
            trusted_proxies: blocks.iter().map(|b| Cidr::parse(b).unwrap()).collect(),
            header,
            proxy_protocol: false,
        }
    }

    fn with(name: &str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let none = ClientAddressing::default();
        let claims = with("x-forwarded-for", "203.0.113.9");
        assert_eq!(
            none.resolve(ip("198.51.100.1"), &claims),
            ip("198.51.100.1")
        );
        let some = trusting(&["10.0.0.0/8"], ChainHeader::XForwardedFor);
        assert_eq!(
            some.resolve(ip("198.51.100.1"), &claims),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn the_chain_is_read_from_the_right_past_trusted_proxies() {
        let t = trusting(&["10.0.0.0/8"], ChainHeader::XForwardedFor);
        // The client forged the first entry; 10.0.0.2 is a proxy.
        let h = with("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2");
        assert_eq!(t.resolve(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        // All trusted: the leftmost is the client.
        let h = with("x-forwarded-for", "10.0.0.3, 10.0.0.2");
        assert_eq!(t.resolve(ip("10.0.0.1"), &h), ip("10.0.0.3"));
        // No header: the proxy itself.
        assert_eq!(t.resolve(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        // Garbage stops the walk at the last trusted hop.
        let h = with("x-forwarded-for", "203.0.113.9, garbage, 10.0.0.2");
        assert_eq!(t.resolve(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        // An IPv4-mapped peer is its IPv4 address.
        let h = with("x-forwarded-for", "2001:db8::9");
        assert_eq!(t.resolve(ip("::ffff:10.0.0.1"), &h), ip("2001:db8::9"));
    }

    /// RFC 7239 §5.2 and §8.3: `for` identifies the client, and the header
    /// can be forged by the client, hence trusted hops only.
    #[test]
    fn forwarded_is_read_only_when_configured_and_only_it() {
        let t = trusting(&["10.0.0.0/8"], ChainHeader::Forwarded);
        let mut h = with(
            "forwarded",
            r#"for=203.0.113.9;proto=https, for="[2001:db8::1]:80""#,
        );
        assert_eq!(t.resolve(ip("10.0.0.1"), &h), ip("2001:db8::1"));
        h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        h.remove("forwarded");
        // Configured for `Forwarded`: an X-Forwarded-For is no proof.
        assert_eq!(t.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let h = with("forwarded", "for=_hidden, for=10.0.0.5");
        assert_eq!(t.resolve(ip("10.0.0.1"), &h), ip("10.0.0.5"));
    }
}
