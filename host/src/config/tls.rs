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
    /// wildcard. Reloaded when the files change. May be empty when
    /// `[tls.acme]` obtains the certificates.
    #[serde(default)]
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
    /// `[tls.acme]`: certificates obtained from an ACME CA (RFC 8555).
    #[serde(default)]
    pub acme: Option<AcmeConfig>,
}

impl TlsConfig {
    /// Check the certificates' sources and how they combine with mutual
    /// TLS.
    pub fn validate(&self) -> Result<(), String> {
        let Some(acme) = &self.acme else {
            if self.certificates.is_empty() {
                return Err(
                    "`tls.certificates` must list at least one certificate (or set `[tls.acme]`)"
                        .into(),
                );
            }
            return Ok(());
        };
        acme.validate()?;
        // The CA's validator presents no client certificate, so a listener
        // requiring one fails every tls-alpn-01 validation: refused here
        // rather than failing orders for ever.
        if acme.challenge == AcmeChallenge::TlsAlpn01
            && self.client_ca.is_some()
            && self.client_auth == ClientAuth::Required
        {
            return Err(
                "`tls.acme.challenge = \"tls-alpn-01\"` cannot work with `tls.client_ca` and \
                 `tls.client_auth = \"required\"` (the CA presents no client certificate): \
                 use `challenge = \"http-01\"` or `client_auth = \"optional\"`"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Longest `tls.acme.retry_max_ms`: 7 days. Longer back-offs would leave a
/// name uncertified for longer than renewal leaves before expiry.
pub const ACME_RETRY_MAX_MS: u64 = 7 * 24 * 3_600_000;

/// `[tls.acme]`: certificates ordered from an ACME CA and kept in the
/// `[state]` store, so every gateway on one store shares one account and
/// one certificate per name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The CA's directory URL (`https://…/directory`).
    pub directory: String,
    /// Contacts for the account: `mailto:` URIs or bare e-mail addresses.
    #[serde(default)]
    pub contact: Vec<String>,
    /// The names to obtain certificates for, one certificate per name.
    pub domains: Vec<String>,
    /// How the CA checks control of a name: `"http-01"` (default) on the
    /// plain listener, or `"tls-alpn-01"` on the TLS listener.
    #[serde(default)]
    pub challenge: AcmeChallenge,
    /// CA bundle (PEM) trusted for the directory's HTTPS, with the
    /// system's roots (a private CA, a test CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Agree to the CA's terms of service when the account is created.
    /// Required by most CAs; `false` makes registration fail.
    #[serde(default = "default_true")]
    pub terms_of_service_agreed: bool,
    /// First wait after a failed order, doubled after each further failure.
    #[serde(default = "default_retry_min_ms")]
    pub retry_min_ms: u64,
    /// Longest wait between failed orders.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// How often the store is read for certificates another gateway
    /// obtained (once a second while another gateway is ordering).
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

impl AcmeConfig {
    /// Check the names and the timings.
    pub fn validate(&self) -> Result<(), String> {
        // RFC 8555 §6.1: ACME runs over HTTPS only.
        let https = self
            .directory
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
        if !https || self.directory.len() <= 8 {
            return Err(format!(
                "`tls.acme.directory` must be the CA's https:// directory URL (RFC 8555 \
                 requires HTTPS), not `{}`",
                self.directory
            ));
        }
        if self.domains.is_empty() {
            return Err("`tls.acme.domains` must list at least one name".into());
        }
        for name in &self.domains {
            if name.starts_with("*.") {
                return Err(format!(
                    "`tls.acme.domains`: `{name}`: wildcard names need the dns-01 challenge, \
                     which Weir does not offer"
                ));
            }
            if !valid_dns_name(name) {
                return Err(format!("`tls.acme.domains`: `{name}` is not a DNS name"));
            }
        }
        if self.retry_min_ms == 0
            || self.retry_max_ms < self.retry_min_ms
            || self.retry_max_ms > ACME_RETRY_MAX_MS
            || self.poll_ms == 0
            || self.poll_ms > ACME_RETRY_MAX_MS
        {
            return Err(format!(
                "`tls.acme`: `retry_min_ms` and `poll_ms` must be greater than 0, \
                 `retry_max_ms` at least `retry_min_ms`, and none more than \
                 {ACME_RETRY_MAX_MS} (7 days)"
            ));
        }
        Ok(())
    }
}

/// A host name of letters, digits and hyphens in dot-separated labels.
fn valid_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `tls.acme.challenge`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum AcmeChallenge {
    /// A token answered over plain HTTP on port 80 (`listen`).
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// A self-signed certificate served for ALPN `acme-tls/1` on the TLS
    /// listener (port 443).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl AcmeChallenge {
    /// The name the CA and the config use.
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeChallenge::Http01 => "http-01",
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

fn default_retry_min_ms() -> u64 {
    60_000
}

fn default_retry_max_ms() -> u64 {
    3_600_000
}

fn default_poll_ms() -> u64 {
    60_000
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

#[cfg(test)]
mod tests {
    use super::*;

    fn acme(domains: &[&str]) -> AcmeConfig {
        AcmeConfig {
            directory: "https://ca.example/dir".into(),
            contact: Vec::new(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            challenge: AcmeChallenge::Http01,
            ca_file: None,
            terms_of_service_agreed: true,
            retry_min_ms: 1000,
            retry_max_ms: 2000,
            poll_ms: 1000,
        }
    }

    #[test]
    fn acme_domains_are_checked_at_load() {
        assert!(acme(&["api.example.com"]).validate().is_ok());
        assert!(acme(&[]).validate().is_err());
        let wildcard = acme(&["*.example.com"]).validate().unwrap_err();
        assert!(wildcard.contains("dns-01"), "{wildcard}");
        assert!(acme(&["bad name.example.com"]).validate().is_err());
        assert!(acme(&["-x.example.com"]).validate().is_err());
        let mut backwards = acme(&["a.example.com"]);
        backwards.retry_max_ms = 10;
        assert!(backwards.validate().is_err());
    }

    #[test]
    fn acme_directory_must_be_https_and_timings_bounded() {
        let mut plain = acme(&["a.example.com"]);
        plain.directory = "http://ca.example/dir".into();
        let e = plain.validate().unwrap_err();
        assert!(e.contains("https://"), "{e}");
        let mut huge = acme(&["a.example.com"]);
        huge.retry_max_ms = u64::MAX;
        assert!(huge.validate().unwrap_err().contains("7 days"));
        huge.retry_max_ms = ACME_RETRY_MAX_MS;
        assert!(huge.validate().is_ok());
        let mut zero = acme(&["a.example.com"]);
        zero.retry_min_ms = 0;
        assert!(zero.validate().is_err());
    }

    #[test]
    fn acme_tls_alpn_is_refused_with_required_client_certificates() {
        let tls = |challenge: &str, auth: &str| -> TlsConfig {
            toml::from_str(&format!(
                "listen = \"127.0.0.1:8443\"\nclient_ca = \"ca.pem\"\nclient_auth = \"{auth}\"\n\
                 [acme]\ndirectory = \"https://ca/dir\"\ndomains = [\"a.example.com\"]\n\
                 challenge = \"{challenge}\""
            ))
            .unwrap()
        };
        let e = tls("tls-alpn-01", "required").validate().unwrap_err();
        assert!(
            e.contains("tls.client_ca") && e.contains("tls.client_auth"),
            "{e}"
        );
        assert!(tls("tls-alpn-01", "optional").validate().is_ok());
        assert!(tls("http-01", "required").validate().is_ok());
    }

    #[test]
    fn acme_lets_tls_go_without_certificate_files() {
        let without: TlsConfig = toml::from_str(
            "listen = \"127.0.0.1:8443\"\n[acme]\ndirectory = \"https://ca/dir\"\ndomains = [\"a.example.com\"]\nchallenge = \"tls-alpn-01\"",
        )
        .unwrap();
        assert!(without.certificates.is_empty());
        let acme = without.acme.unwrap();
        assert_eq!(acme.challenge, AcmeChallenge::TlsAlpn01);
        assert!(acme.terms_of_service_agreed);
        assert_eq!(acme.retry_min_ms, 60_000);
    }
}
