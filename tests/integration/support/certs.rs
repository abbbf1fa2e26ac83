//! Certificates made for the tests (rcgen): a CA, server certificates for
//! given names, client certificates; and a TLS client (tokio-rustls under
//! hyper) that sends one request with a chosen SNI, ALPN and identity.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A certificate authority.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

impl Pair {
    /// Write `NAME.pem` and `NAME.key` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) {
        std::fs::write(dir.join(format!("{name}.pem")), &self.cert).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), &self.key).unwrap();
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for these DNS names (wildcards allowed).
    pub fn server(&self, names: &[&str]) -> Pair {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate with this common name and SANs.
    pub fn client(&self, common_name: &str, sans: Vec<SanType>) -> Pair {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Weir Tests");
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Pair {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// How a test client connects.
#[derive(Clone)]
pub struct Client {
    pub ca: String,
    pub sni: String,
    pub alpn: Vec<Vec<u8>>,
    pub identity: Option<Pair>,
    pub versions: &'static [&'static rustls::SupportedProtocolVersion],
}

impl Client {
    pub fn new(ca: &Ca, sni: &str) -> Client {
        Client {
            ca: ca.pem.clone(),
            sni: sni.to_string(),
            alpn: vec![b"http/1.1".to_vec()],
            identity: None,
            versions: rustls::ALL_VERSIONS,
        }
    }

    pub fn h2(mut self) -> Client {
        self.alpn = vec![b"h2".to_vec()];
        self
    }

    pub fn identity(mut self, pair: &Pair) -> Client {
        self.identity = Some(pair.clone());
        self
    }

    pub fn versions(
        mut self,
        versions: &'static [&'static rustls::SupportedProtocolVersion],
    ) -> Client {
        self.versions = versions;
        self
    }

    fn config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(self.versions)
        .unwrap()
        .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some(pair) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(pair.cert.as_bytes())
                        .collect::<Result<_, _>>()
                        .unwrap();
                let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        config
    }

    /// The TLS handshake alone: the peer's certificate chain, or the error.
    pub async fn handshake(
        &self,
        addr: SocketAddr,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.config()));
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(self.sni.clone()).unwrap();
        connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())
    }

    /// One GET of `path`: status, body, HTTP version, or the error.
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Result<Reply, String> {
        let stream = self.handshake(addr).await?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = hyper_util::rt::TokioIo::new(stream);
        let request = http::Request::builder()
            .uri(format!("https://{}{path}", self.sni))
            .header("host", &self.sni)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = if h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            sender.send_request(request).await
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let mut request = request;
            *request.uri_mut() = path.parse().unwrap();
            sender.send_request(request).await
        }
        .map_err(|e| e.to_string())?;
        let version = response.version();
        let (head, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply {
            status: head.status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
            version,
        })
    }
}

/// What a TLS request got.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub version: http::Version,
}

/// The leaf certificate's SHA-256, hex, as the gateway reports it.
pub fn fingerprint(pem: &str) -> String {
    use sha2::Digest;
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    hex::encode(sha2::Sha256::digest(der.as_ref()))
}
