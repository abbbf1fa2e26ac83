//! TLS termination with rustls: certificates chosen by SNI (exact and
//! wildcard names, read from each certificate's DNS names), TLS 1.2 and 1.3
//! only, ALPN `h2` and `http/1.1`, optional client certificates (mutual TLS)
//! verified against a CA bundle.
//!
//! Certificates live in a [`TlsState`] that new handshakes read; reloading
//! builds a complete new set and swaps it in only if every file loads, so a
//! bad file keeps the old certificates serving (the error is logged and
//! shown by `GET /admin/tls`). Connections already open keep the session
//! they negotiated.
//!
//! Certificates obtained by ACME (`acme/`) join the files' in the same set
//! ([`TlsState::set_managed`]); a tls-alpn-01 challenge certificate is
//! served only to a client offering ALPN `acme-tls/1`, never to others.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::config::{ClientAuth, Config, TlsConfig, TlsVersion};
use crate::exchange::{ClientCertificate, TlsFacts};

/// The crypto provider every TLS use in the gateway shares.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The ALPN protocol of the tls-alpn-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// One loaded certificate, for the resolver and the admin API.
#[derive(Debug, Clone)]
struct Loaded {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
    not_after: String,
    /// The file it came from; `None` for ACME's.
    cert_file: Option<PathBuf>,
}

/// A certificate managed outside the files (ACME's), for
/// [`TlsState::set_managed`].
#[derive(Debug, Clone)]
pub struct ManagedCert {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
    not_after: String,
}

impl ManagedCert {
    /// A certificate from its chain (leaf first) and key, both PEM.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<ManagedCert, String> {
        let loaded = pair(chain, key, "the certificate", "its key")?;
        Ok(ManagedCert {
            key: loaded.key,
            names: loaded.names,
            not_after: loaded.not_after,
        })
    }
}

/// tls-alpn-01 challenge certificates by name (lower-case).
type Challenges = ArcSwap<HashMap<String, Arc<CertifiedKey>>>;

/// A complete set of certificates, swapped whole.
#[derive(Debug, Default)]
struct CertSet {
    loaded: Vec<Loaded>,
    /// DNS name (lower-case) → index in `loaded`.
    exact: HashMap<String, usize>,
    /// `*.example.com` → the index, keyed by `example.com`.
    wildcard: HashMap<String, usize>,
    loaded_at: Option<SystemTime>,
}

/// The listener's TLS: the current certificates and server config, and the
/// outcome of the last reload.
pub struct TlsState {
    settings: TlsConfig,
    base_dir: PathBuf,
    current: ArcSwap<Current>,
    last_error: Mutex<Option<String>>,
    /// ACME's certificates, kept across reloads of the files. Its lock
    /// also serialises building and storing generations.
    managed: Mutex<Vec<ManagedCert>>,
    /// tls-alpn-01 certificates being validated; shared by every
    /// generation's resolver, so a challenge needs no new generation.
    challenges: Arc<Challenges>,
    /// What ACME reports for `GET /admin/tls`.
    acme_status: Mutex<Option<serde_json::Value>>,
}

/// One generation: the certificates and the server config that serves them.
struct Current {
    certs: Arc<CertSet>,
    server: Arc<ServerConfig>,
}

/// Picks the certificate for a handshake from its generation's set.
#[derive(Debug)]
struct Resolver {
    certs: Arc<CertSet>,
    strict_sni: bool,
    challenges: Arc<Challenges>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A validation (RFC 8737) gets the challenge certificate or
        // nothing; other clients never see one.
        if hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN))
        {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.challenges.load().get(&name).cloned();
        }
        let set = &self.certs;
        let index = match hello.server_name() {
            Some(name) => {
                let name = name.to_ascii_lowercase();
                let wildcard = name
                    .split_once('.')
                    .and_then(|(_, parent)| set.wildcard.get(parent));
                match set.exact.get(&name).or(wildcard) {
                    Some(index) => Some(*index),
                    None if self.strict_sni => None,
                    None => Some(0),
                }
            }
            // No SNI (an IP address, an old client): the first certificate.
            None => Some(0),
        }?;
        set.loaded.get(index).map(|l| l.key.clone())
    }
}

impl TlsState {
    /// Load the `[tls]` of `config`: every certificate and the client CA
    /// must load, or the error names the file.
    pub fn load(config: &Config, settings: &TlsConfig) -> Result<Arc<TlsState>, String> {
        let challenges = Arc::new(Challenges::default());
        let current = generation(settings, &config.base_dir, &[], &challenges)?;
        Ok(Arc::new(TlsState {
            settings: settings.clone(),
            base_dir: config.base_dir.clone(),
            current: ArcSwap::from_pointee(current),
            last_error: Mutex::new(None),
            managed: Mutex::new(Vec::new()),
            challenges,
            acme_status: Mutex::new(None),
        }))
    }

    /// The `[tls]` this state serves.
    pub fn settings(&self) -> &TlsConfig {
        &self.settings
    }

    /// Serve `certs` (ACME's) with the files' certificates, replacing the
    /// previous managed ones. For their names they take precedence over
    /// the files'. The files are not read again.
    pub fn set_managed(&self, certs: Vec<ManagedCert>) -> Result<(), String> {
        // Held until the generation is stored, like `reload` does, so the
        // two never interleave (each builds on what the other stored).
        let mut managed = self.managed.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.current.load();
        let files: Vec<Loaded> = current
            .certs
            .loaded
            .iter()
            .filter(|l| l.cert_file.is_some())
            .cloned()
            .collect();
        let certs_set = Arc::new(index(files, &certs));
        let server = build_server_config(
            &self.settings,
            &self.base_dir,
            certs_set.clone(),
            &self.challenges,
        )?;
        self.current.store(Arc::new(Current {
            certs: certs_set,
            server: Arc::new(server),
        }));
        *managed = certs;
        Ok(())
    }

    /// Serve (or, with `None`, stop serving) a tls-alpn-01 challenge
    /// certificate for `name`.
    pub fn set_challenge(&self, name: &str, cert: Option<Arc<CertifiedKey>>) {
        let name = name.to_ascii_lowercase();
        self.challenges.rcu(|map| {
            let mut map = HashMap::clone(map);
            match &cert {
                Some(cert) => map.insert(name.clone(), cert.clone()),
                None => map.remove(&name),
            };
            map
        });
    }

    /// Whether a challenge certificate is served for `name`.
    pub fn has_challenge(&self, name: &str) -> bool {
        self.challenges
            .load()
            .contains_key(&name.to_ascii_lowercase())
    }

    /// Set what `GET /admin/tls` shows under `acme`.
    pub fn set_acme_status(&self, status: serde_json::Value) {
        *self.acme_status.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
    }

    /// The server config for the next handshake.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.load().server.clone()
    }

    /// The files to watch for changes.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .settings
            .certificates
            .iter()
            .flat_map(|c| [self.base_dir.join(&c.cert), self.base_dir.join(&c.key)])
            .collect();
        if let Some(ca) = &self.settings.client_ca {
            files.push(self.base_dir.join(ca));
        }
        files
    }

    /// Read the files again; swap the new certificates in only if all load.
    pub fn reload(&self) -> Result<(), String> {
        // Held until the new generation is stored: a `set_managed` meanwhile
        // would otherwise be overwritten by a generation built without it
        // (a renewal lost until the next one), or overwrite this one.
        let managed = self
            .managed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outcome = generation(&self.settings, &self.base_dir, &managed, &self.challenges);
        let mut last_error = self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match outcome {
            Ok(current) => {
                let names: Vec<String> = current
                    .certs
                    .loaded
                    .iter()
                    .flat_map(|l| l.names.clone())
                    .collect();
                self.current.store(Arc::new(current));
                *last_error = None;
                tracing::info!(names = ?names, "TLS certificates reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    "TLS certificates not reloaded, the previous ones keep serving: {e}"
                );
                *last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// What the admin API shows.
    pub fn status(&self) -> serde_json::Value {
        let current = self.current.load();
        let set = &current.certs;
        let certificates: Vec<serde_json::Value> = set
            .loaded
            .iter()
            .map(|l| {
                serde_json::json!({
                    "file": l.cert_file.as_ref().map(|f| f.display().to_string()),
                    "source": if l.cert_file.is_some() { "file" } else { "acme" },
                    "names": l.names,
                    "not_after": l.not_after,
                })
            })
            .collect();
        serde_json::json!({
            "listen": self.settings.listen.to_string(),
            "certificates": certificates,
            "loaded_at": set.loaded_at.map(crate::http::timefmt::rfc3339),
            "client_auth": self.settings.client_ca.as_ref().map(|_| match self.settings.client_auth {
                ClientAuth::Required => "required",
                ClientAuth::Optional => "optional",
            }),
            "last_error": self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            "acme": self.acme_status.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        })
    }
}

/// Load the certificates, add the managed ones, and build the config that
/// serves them.
fn generation(
    settings: &TlsConfig,
    base: &Path,
    managed: &[ManagedCert],
    challenges: &Arc<Challenges>,
) -> Result<Current, String> {
    let certs = Arc::new(index(load_certs(settings, base)?, managed));
    let server = Arc::new(build_server_config(
        settings,
        base,
        certs.clone(),
        challenges,
    )?);
    Ok(Current { certs, server })
}

/// The set of `files` and `managed` certificates, indexed by name: the
/// files' first (the first of them serves clients without SNI), the
/// managed ones taking their exact names over.
fn index(files: Vec<Loaded>, managed: &[ManagedCert]) -> CertSet {
    let mut set = CertSet {
        loaded_at: Some(SystemTime::now()),
        ..CertSet::default()
    };
    let managed = managed.iter().map(|m| Loaded {
        key: m.key.clone(),
        names: m.names.clone(),
        not_after: m.not_after.clone(),
        cert_file: None,
    });
    for loaded in files.into_iter().chain(managed) {
        let index = set.loaded.len();
        let takes_over = loaded.cert_file.is_none();
        for name in &loaded.names {
            match name.strip_prefix("*.") {
                Some(parent) => {
                    set.wildcard.entry(parent.to_string()).or_insert(index);
                }
                None if takes_over => {
                    set.exact.insert(name.clone(), index);
                }
                None => {
                    set.exact.entry(name.clone()).or_insert(index);
                }
            }
        }
        set.loaded.push(loaded);
    }
    set
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: cannot be read: {e}", path.display()))
}

/// Load every certificate of `settings`; an error names the file.
fn load_certs(settings: &TlsConfig, base: &Path) -> Result<Vec<Loaded>, String> {
    let mut loaded = Vec::new();
    for files in &settings.certificates {
        let (cert_file, key_file) = (base.join(&files.cert), base.join(&files.key));
        let mut one = pair(
            &read(&cert_file)?,
            &read(&key_file)?,
            &cert_file.display().to_string(),
            &key_file.display().to_string(),
        )?;
        one.cert_file = Some(cert_file);
        loaded.push(one);
    }
    Ok(loaded)
}

/// A certificate chain and its key (PEM), checked to make a usable pair
/// naming at least one DNS host; errors name `cert_name` or `key_name`.
fn pair(chain: &[u8], key: &[u8], cert_name: &str, key_name: &str) -> Result<Loaded, String> {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{cert_name}: not a PEM certificate chain: {e}"))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("{cert_name}: holds no certificate"));
    };
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| format!("{key_name}: not a PEM private key: {e}"))?;
    let (names, not_after) = leaf_facts(leaf).map_err(|e| format!("{cert_name}: {e}"))?;
    if names.is_empty() {
        return Err(format!(
            "{cert_name}: the certificate names no DNS host (subjectAltName)"
        ));
    }
    let certified = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| format!("{cert_name} and {key_name} do not make a usable pair: {e}"))?;
    Ok(Loaded {
        key: Arc::new(certified),
        names,
        not_after,
        cert_file: None,
    })
}

/// The DNS names and expiry of a certificate.
fn leaf_facts(der: &CertificateDer<'_>) -> Result<(Vec<String>, String), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    let not_after = cert
        .validity()
        .not_after
        .to_rfc2822()
        .unwrap_or_else(|_| cert.validity().not_after.to_string());
    Ok((names, not_after))
}

fn build_server_config(
    settings: &TlsConfig,
    base: &Path,
    certs: Arc<CertSet>,
    challenges: &Arc<Challenges>,
) -> Result<ServerConfig, String> {
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            use rustls::pki_types::pem::PemObject;
            let ca_file = base.join(ca);
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read(&ca_file)?) {
                let cert = cert.map_err(|e| format!("{}: not PEM: {e}", ca_file.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca_file.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = match settings.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            }
            .build()
            .map_err(|e| format!("{}: {e}", ca_file.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(Resolver {
        certs,
        strict_sni: settings.strict_sni,
        challenges: challenges.clone(),
    }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if settings.acme.is_some() {
        // Negotiated only with a validator offering it (RFC 8737).
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Ok(config)
}

/// What plugins learn of a TLS connection.
pub fn facts(conn: &rustls::ServerConnection) -> TlsFacts {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    };
    TlsFacts {
        version: version.to_string(),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown")
            .to_string(),
        sni: conn.server_name().map(str::to_string),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        client_certificate: conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(client_certificate),
    }
}

/// Subject, SANs and fingerprint of a (verified) client certificate.
fn client_certificate(der: &CertificateDer<'_>) -> ClientCertificate {
    use x509_parser::extensions::GeneralName;
    let fingerprint_sha256 = hex::encode(Sha256::digest(der.as_ref()));
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return ClientCertificate {
            fingerprint_sha256,
            ..ClientCertificate::default()
        };
    };
    let mut sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => sans.push(format!("DNS:{n}")),
                GeneralName::URI(u) => sans.push(format!("URI:{u}")),
                GeneralName::RFC822Name(e) => sans.push(format!("email:{e}")),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_text(bytes) {
                        sans.push(format!("IP:{ip}"));
                    }
                }
                _ => {}
            }
        }
    }
    ClientCertificate {
        subject: cert.subject().to_string(),
        sans,
        fingerprint_sha256,
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}
