//! TLS to `https://` targets: the client config of one upstream (roots,
//! SNI, an optional client certificate, ALPN `h2` and `http/1.1`), and the
//! verdicts a failed handshake gets in an answer.
//!
//! Verification is on by default, against the system's roots and/or the
//! upstream's `ca_file`. It can be turned off only per upstream, by name,
//! and every load that does so logs a warning.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::Authority;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::target::Target;
use crate::config::UpstreamTls;
use crate::server::tls::provider;

/// The connector of an upstream: plain HTTP, or TLS for `https://` targets.
/// The name TLS sends and verifies is `tls.server_name` when set, else the
/// DNS name a discovered target (found in `names` by its address) came
/// from, else the target's host.
pub fn connector(
    name: &str,
    tls: Option<&UpstreamTls>,
    base: &Path,
    http: HttpConnector,
    names: Arc<ServerNames>,
) -> Result<HttpsConnector<HttpConnector>, String> {
    let config = client_config(name, tls, base)?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let builder = match tls.and_then(|t| t.server_name.as_deref()) {
        Some(server) => {
            let server = ServerName::try_from(server.to_string()).map_err(|e| {
                format!("`upstreams.{name}.tls.server_name` `{server}` is not a valid name: {e}")
            })?;
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(server))
        }
        None => builder.with_server_name_resolver(DiscoveredNames { names }),
    };
    Ok(builder.enable_all_versions().wrap_connector(http))
}

/// How long the name of a target that left the set is still known: a
/// request that picked it just before may connect after. Far longer than
/// any connect (`connect_timeout_ms`, waiting for a slot included).
const NAME_GRACE: Duration = Duration::from_secs(300);

/// The TLS names of an upstream's discovered targets, by address: those in
/// the current set and, for [`NAME_GRACE`], those that left it, so a
/// connection to a target discovery has just removed still verifies the
/// name it was found by (a lookup in the current set would fall back to the
/// address and fail).
#[derive(Debug, Default)]
pub struct ServerNames {
    by_address: Mutex<HashMap<Authority, Known>>,
}

/// A target's name, and since when it is no longer in the set.
type Known = (Arc<str>, Option<Instant>);

impl ServerNames {
    /// Record the names of `targets`, the upstream's new set.
    pub fn update(&self, targets: &[Arc<Target>]) {
        let now = Instant::now();
        let mut map = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        for (_, left) in map.values_mut() {
            left.get_or_insert(now);
        }
        for target in targets {
            if let Some(name) = target.server_name() {
                map.insert(target.authority().clone(), (name.into(), None));
            }
        }
        map.retain(|_, (_, left)| left.is_none_or(|left| now.duration_since(left) < NAME_GRACE));
    }

    /// The name for connections to `authority`, if it was discovered.
    pub fn get(&self, authority: &Authority) -> Option<Arc<str>> {
        let map = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        map.get(authority).map(|(name, _)| name.clone())
    }
}

/// Server names for connections to discovered targets: their authority is
/// an address, but the certificate names the DNS name they were found by.
struct DiscoveredNames {
    names: Arc<ServerNames>,
}

impl hyper_rustls::ResolveServerName for DiscoveredNames {
    fn resolve(
        &self,
        uri: &http::Uri,
    ) -> Result<ServerName<'static>, Box<dyn std::error::Error + Sync + Send>> {
        let discovered = uri.authority().and_then(|a| self.names.get(a));
        let host = match discovered.as_deref() {
            Some(name) => name,
            None => {
                let host = uri.host().unwrap_or_default();
                host.strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host)
            }
        };
        ServerName::try_from(host.to_string()).map_err(|e| Box::new(e) as _)
    }
}

fn client_config(
    name: &str,
    tls: Option<&UpstreamTls>,
    base: &Path,
) -> Result<ClientConfig, String> {
    let defaults = UpstreamTls {
        ca_file: None,
        ca_only: false,
        server_name: None,
        client_cert: None,
        client_key: None,
        verify: true,
    };
    let tls = tls.unwrap_or(&defaults);
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("upstream `{name}`: {e}"))?;
    let builder = if tls.verify {
        builder.with_root_certificates(roots(name, tls, base)?)
    } else {
        tracing::warn!(
            upstream = name,
            "TLS verification is OFF for this upstream (`upstreams.{name}.tls.verify = false`): \
             anyone on the path can impersonate it"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification))
    };
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let (cert, key) = (base.join(cert), base.join(key));
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
                .and_then(|certs| certs.collect::<Result<_, _>>())
                .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("upstream `{name}` client certificate: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The system's roots (unless `ca_only`) and the upstream's `ca_file`.
fn roots(name: &str, tls: &UpstreamTls, base: &Path) -> Result<rustls::RootCertStore, String> {
    let ca = tls.ca_file.as_ref().map(|ca| base.join(ca));
    let roots = trust(!tls.ca_only, ca.as_deref())?;
    if roots.is_empty() {
        return Err(format!(
            "upstream `{name}`: no CA to verify its certificates (set `tls.ca_file`)"
        ));
    }
    Ok(roots)
}

/// Roots to verify servers against: the system's (with `system`) and those
/// of the PEM file `ca_file`. Shared by upstreams and the ACME client.
pub fn trust(system: bool, ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    if system {
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A system bundle with a certificate rustls cannot parse should
            // not stop the gateway; the others still count.
            let _ = roots.add(cert);
        }
    }
    if let Some(ca) = ca_file {
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("{}: cannot be read: {e}", ca.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: not PEM: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
    }
    Ok(roots)
}

/// Accepts any certificate: only for `verify = false`.
#[derive(Debug)]
struct NoVerification;

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// If `error` (or what caused it) is a TLS failure, a short verdict for
/// the client: what was wrong, without names or addresses.
pub fn verdict(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(match tls {
                rustls::Error::InvalidCertificate(cert) => match cert {
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. } => {
                        "tls: certificate not valid for the upstream's name"
                    }
                    rustls::CertificateError::UnknownIssuer => {
                        "tls: certificate from an unknown issuer"
                    }
                    rustls::CertificateError::Expired
                    | rustls::CertificateError::ExpiredContext { .. } => "tls: certificate expired",
                    _ => "tls: certificate rejected",
                },
                _ => "tls: handshake failed",
            });
        }
        // An `io::Error` wrapping another error reports that error's
        // *source* as its own, skipping the error itself: step into it.
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_targets_that_left_stay_known_for_a_while() {
        let names = ServerNames::default();
        let target = Arc::new(
            Target::new("10.0.0.1:443".parse().unwrap(), true, 1).discovered(
                1,
                "api.test:443".into(),
                "api.test".into(),
            ),
        );
        names.update(std::slice::from_ref(&target));
        // Discovery removed it; a request that picked it may still connect.
        names.update(&[]);
        assert_eq!(names.get(target.authority()).as_deref(), Some("api.test"));
        assert!(names.get(&"10.0.0.2:443".parse().unwrap()).is_none());
    }
}
