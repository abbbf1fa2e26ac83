//! `[tls]` (the HTTPS listener) and an upstream's `tls` table.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[tls]`: terminating TLS for clients.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Where the HTTPS listener listens.
    pub listen: SocketAddr,
    /// Certificates with their keys (PEM), chosen by the name the client
    /// asks for (SNI) among each certificate's DNS names, exact or
    /// wildcard. Reloaded when the files change.
    pub certificates: Vec<CertificateFiles>,
    /// Lowest protocol version accepted: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Refuse a client that names a host no certificate covers (default);
    /// with `false`, it gets the first certificate.
    #[serde(default = "default_true")]
    pub strict_sni: bool,
    /// CA bundle (PEM) client certificates are verified against: mutual
    /// TLS. None: clients present no certificate.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: `"required"` (default) or `"optional"`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Answer every request on the plain `listen` with 308 to HTTPS.
    #[serde(default)]
    pub redirect_http: bool,
    /// Trusted proxies of this listener; the top-level `trusted_proxies`
    /// when absent.
    #[serde(default)]
    pub trusted_proxies: Option<Vec<String>>,
    /// Every connection starts with a PROXY protocol header, before the
    /// TLS handshake.
    #[serde(default)]
    pub proxy_protocol: bool,
}

/// One certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// The chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `min_version`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    V1_3,
}

/// `client_auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No certificate, no connection.
    #[default]
    Required,
    /// A certificate is verified if presented; requests without one go on.
    Optional,
}

/// `[upstreams.NAME.tls]`: how `https://` targets are reached.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Trust these CAs (PEM) as well as the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the system roots.
    #[serde(default)]
    pub ca_only: bool,
    /// The name sent (SNI) and checked in the certificate; by default the
    /// target's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// A client certificate (PEM) for mutual TLS, with `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Its key (PEM).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Verify the upstream's certificate (default). `false` is for tests
    /// and labs only, and is warned about at every load.
    #[serde(default = "default_true")]
    pub verify: bool,
}

fn default_true() -> bool {
    true
}
