//! Raw HTTP/1.1 over a socket, for what well-behaved clients never send.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// Send `request` bytes and read everything until the server closes (or
/// 5 s pass); returns the answer as text.
pub async fn exchange(addr: SocketAddr, request: impl Into<Vec<u8>>) -> String {
    let request = request.into();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(&request).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap()
}

/// The status code of a raw answer (0 when there is none).
pub fn status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
