//! Address blocks (`10.0.0.0/8`, `2001:db8::/32`, a bare address) and the
//! match of a client address against them.
//!
//! Adapted from the rate-limit plugin's `Cidr`, with two differences that
//! matter for access control: an IPv4-mapped IPv6 block in the config
//! (`::ffff:10.0.0.0/104`) is turned into the IPv4 block it means, so it
//! matches the IPv4 clients a dual-stack socket reports either way; and the
//! network is stored with its host bits cleared, so `10.1.2.3/8` means
//! `10.0.0.0/8` (as nginx reads it) rather than matching nothing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address block; a bare address is a /32 (IPv4) or /128 (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `ADDR` or `ADDR/PREFIX`. The error quotes the text.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let trimmed = text.trim();
        let (addr, prefix) = match trimmed.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (trimmed, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            // Digits only: `u8::from_str` would also take `+8`.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix must be 0..={max}"))?,
            Some(_) => return Err(format!("`{text}`: the prefix must be 0..={max}")),
            None => max,
        };
        Ok(Cidr::new(network, prefix))
    }

    /// The block of `network`/`prefix`, host bits cleared, an IPv4-mapped
    /// IPv6 block of /96 or longer turned into its IPv4 block.
    fn new(network: IpAddr, prefix: u8) -> Cidr {
        if let IpAddr::V6(v6) = network
            && prefix >= 96
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return Cidr::new(IpAddr::V4(v4), prefix - 96);
        }
        match network {
            IpAddr::V4(v4) => Cidr {
                network: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask32(prefix))),
                prefix,
            },
            IpAddr::V6(v6) => Cidr {
                network: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(prefix))),
                prefix,
            },
        }
    }

    /// Whether `ip` is inside. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
    /// an IPv4 client on a dual-stack socket) is matched as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn ipv4_blocks_match_their_addresses_only() {
        let c = cidr("10.0.0.0/8");
        assert!(c.contains(ip("10.0.0.0")));
        assert!(c.contains(ip("10.255.255.255")));
        assert!(!c.contains(ip("11.0.0.0")));
        assert!(!c.contains(ip("9.255.255.255")));
        let c = cidr("192.168.1.128/25");
        assert!(c.contains(ip("192.168.1.200")));
        assert!(!c.contains(ip("192.168.1.127")));
    }

    #[test]
    fn a_bare_address_is_a_single_host() {
        assert_eq!(cidr("127.0.0.1").to_string(), "127.0.0.1/32");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert!(cidr("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!cidr("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(!cidr("::1").contains(ip("::2")));
    }

    #[test]
    fn ipv6_blocks_match() {
        let c = cidr("2001:db8::/32");
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(cidr("::/0").contains(ip("fe80::1")));
        // Families never cross: ::/0 is not every IPv4 client.
        assert!(!cidr("::/0").contains(ip("10.0.0.1")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_blocks() {
        assert!(cidr("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert!(cidr("203.0.113.0/24").contains(ip("::ffff:203.0.113.9")));
        assert!(!cidr("203.0.113.0/24").contains(ip("::ffff:198.51.100.1")));
    }

    #[test]
    fn ipv4_mapped_blocks_become_ipv4_blocks() {
        let c = cidr("::ffff:10.0.0.0/104");
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.9.9.9")));
        assert!(c.contains(ip("::ffff:10.9.9.9")));
        assert_eq!(cidr("::ffff:10.1.2.3").to_string(), "10.1.2.3/32");
    }

    #[test]
    fn host_bits_are_cleared() {
        let c = cidr("10.1.2.3/8");
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.200.0.1")));
        assert_eq!(cidr("2001:db8::1/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn zero_and_full_prefixes() {
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(cidr("1.2.3.4/0").contains(ip("255.255.255.255")));
        assert!(cidr("1.2.3.4/32").contains(ip("1.2.3.4")));
        assert!(cidr("::1/128").contains(ip("::1")));
    }

    #[test]
    fn malformed_entries_are_refused_with_the_text() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0/8",
            "nope",
            "",
            "fe80::1%eth0",
            "10.0.0.0/8/8",
        ] {
            let err = Cidr::parse(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0..=32"));
        assert!(Cidr::parse("::/129").unwrap_err().contains("0..=128"));
    }

    #[test]
    fn whitespace_around_an_entry_is_ignored() {
        assert_eq!(cidr(" 10.0.0.0/8 ").to_string(), "10.0.0.0/8");
    }
}
