//! [`TlsState`]: reloads of the files racing ACME's certificates.

use std::sync::Arc;

use super::tls::{ManagedCert, TlsState};
use crate::config::Config;

/// A self-signed certificate for `name` and its key, PEM.
fn pem_pair(name: &str) -> (String, String) {
    let pair = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (pair.cert.pem(), pair.signing_key.serialize_pem())
}

fn sources(tls: &TlsState) -> Vec<String> {
    tls.status()["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tls_reload_racing_an_acme_certificate_never_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pem_pair("files.example.com");
    std::fs::write(dir.path().join("c.pem"), cert).unwrap();
    std::fs::write(dir.path().join("k.pem"), key).unwrap();
    let text = "listen = \"127.0.0.1:0\"\n[tls]\nlisten = \"127.0.0.1:1\"\n\
                certificates = [{ cert = \"c.pem\", key = \"k.pem\" }]\n";
    let config = Config::parse(text, &dir.path().join("weir.toml"), dir.path()).unwrap();
    let tls: Arc<TlsState> = TlsState::load(&config, config.tls.as_ref().unwrap()).unwrap();
    let (chain, key) = pem_pair("acme.example.com");
    let managed = ManagedCert::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
    for round in 0..40u64 {
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..10 {
                    tls.reload().unwrap();
                }
            });
            // At a different moment of the reloads each round.
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_micros(round * 150));
                tls.set_managed(vec![managed.clone()]).unwrap();
            });
        });
        // Whatever the interleaving, the last reload kept ACME's.
        assert_eq!(sources(&tls), ["file", "acme"]);
        tls.set_managed(Vec::new()).unwrap();
        assert_eq!(sources(&tls), ["file"]);
    }
}
