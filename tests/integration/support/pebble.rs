//! A real ACME server for the tests: Debian's `pebble` with
//! `pebble-challtestsrv` as its DNS (every name under test resolves to
//! 127.0.0.1 unless repointed), both on free loopback ports, killed when
//! dropped. Pebble's HTTPS certificate is made here (Debian ships none);
//! its validation dials the gateway's plain port (http-01) or TLS port
//! (tls-alpn-01) for every name, so the test picks those ports first.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::certs::Ca;

/// A loopback port free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running pebble and its DNS.
pub struct Pebble {
    pebble: Child,
    dns: Child,
    pub dir: tempfile::TempDir,
    /// The directory URL.
    pub directory: String,
    /// The CA file (PEM) the ACME client must trust for `directory`.
    pub ca_file: PathBuf,
    management: SocketAddr,
    dns_management: u16,
    wfe_ca: Ca,
}

impl Pebble {
    /// Start pebble validating on `http_port`/`tls_port`, issuing
    /// certificates valid for `validity` seconds (if given).
    pub async fn start(http_port: u16, tls_port: u16, validity: Option<u64>) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let wfe_ca = Ca::new("pebble test WFE CA");
        let pair = wfe_ca.server(&["localhost", "127.0.0.1"]);
        pair.write(dir.path(), "wfe");
        let ca_file = dir.path().join("wfe-ca.pem");
        std::fs::write(&ca_file, &wfe_ca.pem).unwrap();
        let (listen, management) = (free_port(), free_port());
        let (dns_port, dns_management) = (free_port(), free_port());
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("wfe.pem"),
            "privateKey": dir.path().join("wfe.key"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        if let Some(seconds) = validity {
            config["pebble"]["certificateValidityPeriod"] = seconds.into();
        }
        let config_file = dir.path().join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start pebble-challtestsrv ({e}): apt-get install pebble")
            });
        let log = std::fs::File::create(dir.path().join("pebble.log")).unwrap();
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_file)
            .args([
                "-dnsserver",
                &format!("127.0.0.1:{dns_port}"),
                "-strict=false",
            ])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Every order validates anew (by default half reuse an earlier
            // authorization, which would hide a failing validation).
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start pebble ({e}): apt-get install pebble"));
        let pebble = Pebble {
            pebble,
            dns,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            ca_file,
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            dns_management,
            wfe_ca,
            dir,
        };
        pebble
            .ready(SocketAddr::from(([127, 0, 0, 1], listen)))
            .await;
        pebble
    }

    async fn ready(&self, wfe: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _)) = https_get(wfe, "/dir", &self.wfe_ca.pem).await {
                // The DNS too: its management answers once it is up.
                let url = format!("http://127.0.0.1:{}/", self.dns_management);
                if tokio::time::timeout(Duration::from_secs(1), super::get(&url))
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "pebble did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Pebble's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// Orders pebble has accepted (it logs each one).
    pub fn orders(&self) -> usize {
        self.log().matches("Added order").count()
    }

    /// The root pebble issues under (PEM), for checking served chains.
    pub async fn root(&self) -> String {
        let (status, body) = https_get(self.management, "/roots/0", &self.wfe_ca.pem)
            .await
            .unwrap();
        assert_eq!(status, 200, "pebble's root: {body}");
        body
    }

    /// Make `name` resolve to `ip` for pebble's validation.
    pub async fn point(&self, name: &str, ip: &str) {
        let url = format!("http://127.0.0.1:{}/add-a", self.dns_management);
        let body = serde_json::json!({"host": format!("{name}."), "addresses": [ip]}).to_string();
        let reply = super::client::call(&url, http::Method::POST, &[], &body).await;
        assert_eq!(reply.status, 200, "challtestsrv add-a: {}", reply.text());
    }

    /// Write the CA file pebble's HTTPS needs into a gateway's directory.
    pub fn write_ca(&self, dir: &Path) {
        std::fs::copy(&self.ca_file, dir.join("acme-ca.pem")).unwrap();
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.pebble.start_kill();
        let _ = self.dns.start_kill();
    }
}

/// A TLS client config trusting only `ca_pem`.
fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// `GET path` over HTTPS (HTTP/1.0, so the body ends with the
/// connection): the status and the body.
async fn https_get(addr: SocketAddr, path: &str, ca_pem: &str) -> Result<(u16, String), String> {
    let connector = tokio_rustls::TlsConnector::from(client_config(ca_pem));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    let _ = tls.read_to_string(&mut text).await;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok((status, body.to_string()))
}

/// What a TLS handshake with SNI `name` showed: the leaf's serial (hex)
/// and expiry (seconds since the epoch). The chain is verified against
/// `root_pem` for `name`, at the present time.
pub async fn served(addr: SocketAddr, name: &str, root_pem: &str) -> Result<(String, i64), String> {
    let connector = tokio_rustls::TlsConnector::from(client_config(root_pem));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let server = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(server, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate")?
        .clone();
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| e.to_string())?;
    Ok((
        hex::encode(cert.raw_serial()),
        cert.validity().not_after.timestamp(),
    ))
}
