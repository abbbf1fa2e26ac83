//! The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's
//! specification defines it (haproxy.org, `proxy-protocol.txt`): a load
//! balancer that forwards TCP writes one header before the client's first
//! byte, naming the client's address. A listener with `proxy_protocol =
//! true` reads it from every connection, before TLS, and the source it
//! names becomes the connection's peer.
//!
//! The header is read exactly (never a byte of the client's data past it),
//! so the stream can be handed on as it is. A connection whose header is
//! missing or malformed is closed: the specification requires a receiver
//! to refuse a connection without a valid header (§2 "the receiver MUST
//! ... not try to guess").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature (§2.2).
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v2 address block too short for its family.
const SHORT: ProxyHeaderError =
    ProxyHeaderError::Malformed("a v2 address block shorter than its family needs");
/// The longest v2 address block with TLVs accepted.
const V2_MAX_LEN: usize = 4096;
/// The longest v1 line, CRLF included (§2.1).
const V1_MAX: usize = 107;

/// Why a PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection does not start with a PROXY header.
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    /// The header is malformed; the text says how.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    /// The connection failed or closed while the header was being read.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Read one PROXY header from `stream`: the client's address it names, or
/// `None` when it names none (v1 `UNKNOWN`, v2 `LOCAL` such as a load
/// balancer's health check, or an address family other than TCP over IPv4
/// or IPv6), in which case the real peer stands.
pub async fn read_header<S>(stream: &mut S) -> Result<Option<SocketAddr>, ProxyHeaderError>
where
    S: AsyncRead + Unpin,
{
    // 12 bytes are in every header: v1's shortest is `PROXY UNKNOWN\r\n`.
    let mut start = [0u8; 12];
    stream.read_exact(&mut start).await?;
    if start == V2_SIGNATURE {
        return read_v2(stream).await;
    }
    if start.starts_with(b"PROXY ") {
        let mut line = start.to_vec();
        // Byte by byte, so nothing past the CRLF is consumed.
        while !line.ends_with(b"\r\n") {
            if line.len() >= V1_MAX {
                return Err(ProxyHeaderError::Malformed(
                    "a v1 line longer than 107 bytes",
                ));
            }
            line.push(stream.read_u8().await?);
        }
        return parse_v1(line.strip_suffix(b"\r\n").unwrap_or(&line));
    }
    Err(ProxyHeaderError::Missing)
}

/// A v1 line without its CRLF: `PROXY TCP4 SRC DST SPORT DPORT` (§2.1).
pub fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let bad = ProxyHeaderError::Malformed;
    let line = std::str::from_utf8(line).map_err(|_| bad("a v1 line that is not ASCII"))?;
    let mut fields = line.split(' ');
    if fields.next() != Some("PROXY") {
        return Err(bad("a v1 line not starting with `PROXY`"));
    }
    let family = fields.next().ok_or(bad("a v1 line without a protocol"))?;
    if family == "UNKNOWN" {
        // The rest of the line is to be ignored (§2.1).
        return Ok(None);
    }
    let (src, _dst, sport, dport) = match (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) {
        (Some(s), Some(d), Some(sp), Some(dp), None) => (s, d, sp, dp),
        _ => return Err(bad("a v1 line without exactly four address fields")),
    };
    let ip: IpAddr = match family {
        "TCP4" => src.parse::<Ipv4Addr>().map(IpAddr::V4),
        "TCP6" => src.parse::<Ipv6Addr>().map(IpAddr::V6),
        _ => return Err(bad("a v1 protocol other than TCP4, TCP6 or UNKNOWN")),
    }
    .map_err(|_| bad("a v1 source address that does not match its protocol"))?;
    port(dport).ok_or(bad("a v1 destination port that is not 0..=65535"))?;
    let source_port = port(sport).ok_or(bad("a v1 source port that is not 0..=65535"))?;
    Ok(Some(SocketAddr::new(ip, source_port)))
}

/// A decimal port without sign or leading zeros (§2.1).
fn port(text: &str) -> Option<u16> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let canonical = text == "0" || !text.starts_with('0');
    (digits && canonical).then(|| text.parse().ok()).flatten()
}

/// The rest of a v2 header after its signature (§2.2).
async fn read_v2<S>(stream: &mut S) -> Result<Option<SocketAddr>, ProxyHeaderError>
where
    S: AsyncRead + Unpin,
{
    let mut fixed = [0u8; 4];
    stream.read_exact(&mut fixed).await?;
    let len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
    // The length field allows 64 KiB; addresses and the TLVs load
    // balancers send (AWS's VPC endpoint, Azure's link id, ALPN, SNI) fit
    // in far less, and a cap keeps half-open connections cheap.
    if len > V2_MAX_LEN {
        return Err(ProxyHeaderError::Malformed("a v2 header longer than 4 KiB"));
    }
    let mut rest = vec![0u8; len];
    stream.read_exact(&mut rest).await?;
    parse_v2(fixed[0], fixed[1], &rest)
}

/// A v2 header from its version-and-command and family bytes and the
/// `len` bytes after them.
pub fn parse_v2(
    version_command: u8,
    family: u8,
    rest: &[u8],
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let bad = ProxyHeaderError::Malformed;
    if version_command >> 4 != 2 {
        return Err(bad("a v2 header whose version is not 2"));
    }
    match version_command & 0x0f {
        // LOCAL: the proxy's own connection (a health check): the real
        // peer stands, and the address block is to be skipped.
        0x0 => return Ok(None),
        0x1 => {}
        _ => return Err(bad("a v2 command other than LOCAL or PROXY")),
    }
    // Only TCP (STREAM) over IPv4 and IPv6 carry an IP address; UNSPEC,
    // UDP and UNIX sockets leave the real peer. Any other byte is invalid
    // and must be rejected (§2.2).
    if !matches!(family, 0x00 | 0x11 | 0x12 | 0x21 | 0x22 | 0x31 | 0x32) {
        return Err(ProxyHeaderError::Malformed(
            "a v2 address family or protocol that does not exist",
        ));
    }
    let address = match family {
        0x11 => {
            let block: &[u8; 12] = rest.first_chunk().ok_or(SHORT)?;
            let [a, b, c, d, _, _, _, _, p1, p2, _, _] = *block;
            SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
                u16::from_be_bytes([p1, p2]),
            )
        }
        0x21 => {
            let block: &[u8; 36] = rest.first_chunk().ok_or(SHORT)?;
            let (source, ports) = block.split_at(32);
            let source: &[u8; 16] = source.first_chunk().ok_or(SHORT)?;
            let port: &[u8; 2] = ports.first_chunk().ok_or(SHORT)?;
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(*source)),
                u16::from_be_bytes(*port),
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyHeaderError>, Vec<u8>) {
        let mut stream = bytes;
        let header = read_header(&mut stream).await;
        (header, stream.to_vec())
    }

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    /// §2.1: the examples of the text format; nothing past CRLF is read.
    #[tokio::test]
    async fn v1_lines_name_the_source_and_leave_the_data() {
        let (h, left) = read(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /").await;
        assert_eq!(h.unwrap(), addr("192.168.0.1:56324"));
        assert_eq!(left, b"GET /");
        let (h, _) = read(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 80\r\n").await;
        assert_eq!(h.unwrap(), addr("[2001:db8::1]:4000"));
        let (h, left) = read(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nx").await;
        assert_eq!(h.unwrap(), None);
        assert_eq!(left, b"x");
        let (h, _) = read(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(h.unwrap(), None);
    }

    #[tokio::test]
    async fn malformed_v1_lines_are_refused() {
        for bad in [
            &b"PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::1 192.168.0.11 1 2\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 0443 443\r\n",
            b"PROXY TCP4  192.168.0.1 192.168.0.11 1 443\r\n",
            b"PROXY UDP4 192.168.0.1 192.168.0.11 1 443\r\n",
        ] {
            let (h, _) = read(bad).await;
            assert!(matches!(h, Err(ProxyHeaderError::Malformed(_))), "{bad:?}");
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert!(matches!(
            read(&long).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        let (h, _) = read(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(matches!(h, Err(ProxyHeaderError::Missing)));
        let (h, _) = read(b"PROXY TCP4 1.2").await;
        assert!(matches!(h, Err(ProxyHeaderError::Io(_))));
    }

    fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.push(0x20 | command);
        bytes.push(family);
        bytes.extend_from_slice(&(block.len() as u16).to_be_bytes());
        bytes.extend_from_slice(block);
        bytes
    }

    /// §2.2: the binary format, TCP over IPv4 and IPv6, LOCAL, TLVs.
    #[tokio::test]
    async fn v2_headers_name_the_source_and_leave_the_data() {
        let mut block = vec![203, 0, 113, 9, 10, 0, 0, 1];
        block.extend_from_slice(&51000u16.to_be_bytes());
        block.extend_from_slice(&443u16.to_be_bytes());
        // A TLV (PP2_TYPE_AUTHORITY) after the addresses is skipped.
        block.extend_from_slice(&[0x02, 0x00, 0x03, b'a', b'p', b'i']);
        let mut bytes = v2(1, 0x11, &block);
        bytes.extend_from_slice(b"GET /");
        let (h, left) = read(&bytes).await;
        assert_eq!(h.unwrap(), addr("203.0.113.9:51000"));
        assert_eq!(left, b"GET /");

        let mut block = "2001:db8::9".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        block.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        block.extend_from_slice(&[0x1f, 0x90, 0x01, 0xbb]);
        let (h, _) = read(&v2(1, 0x21, &block)).await;
        assert_eq!(h.unwrap(), addr("[2001:db8::9]:8080"));

        let (h, left) = read(&[v2(0, 0x00, &[]), b"x".to_vec()].concat()).await;
        assert_eq!(h.unwrap(), None);
        assert_eq!(left, b"x");
        // UNIX sockets name no IP.
        let (h, _) = read(&v2(1, 0x31, &[0; 216])).await;
        assert_eq!(h.unwrap(), None);
    }

    #[tokio::test]
    async fn malformed_v2_headers_are_refused() {
        let (h, _) = read(&v2(1, 0x11, &[1, 2, 3])).await;
        assert!(matches!(h, Err(ProxyHeaderError::Malformed(_))));
        let (h, _) = read(&v2(2, 0x11, &[0; 12])).await;
        assert!(matches!(h, Err(ProxyHeaderError::Malformed(_))));
        let (h, _) = read(&v2(1, 0x41, &[0; 12])).await;
        assert!(matches!(h, Err(ProxyHeaderError::Malformed(_))));
        let (h, _) = read(&v2(1, 0x11, &[0; 5000])).await;
        assert!(matches!(h, Err(ProxyHeaderError::Malformed(_))));
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x11;
        assert!(matches!(
            read(&wrong_version).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
    }
}
