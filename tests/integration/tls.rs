//! TLS at the edge (SNI, versions, ALPN, mTLS, certificate reloads, the
//! HTTP redirect) and to upstreams (verification, SNI, mTLS, HTTP/2 by
//! ALPN), with certificates made in the tests and real clients: rustls,
//! curl and openssl.

use std::time::{Duration, Instant};

use crate::support::certs::{self, Ca, Client};
use crate::support::*;

/// A gateway whose `[tls]` serves `a.test` and `*.b.test` certificates
/// from files in its directory, routing to `backend` and copying the TLS
/// facts into request headers.
fn tls_setup(ca: &Ca, backend: &Backend) -> Setup {
    let setup = Setup::new()
        .upstream("backend", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "backend"}, {"op": "tls_to_headers"}]}),
        );
    ca.server(&["a.test"]).write(setup.dir.path(), "a");
    ca.server(&["*.b.test"]).write(setup.dir.path(), "b");
    setup
        .tls(r#"certificates = [{cert = "a.pem", key = "a.key"}, {cert = "b.pem", key = "b.key"}]"#)
}

fn leaf_fingerprint(stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    use sha2::Digest;
    let leaf = &stream.get_ref().1.peer_certificates().unwrap()[0];
    hex::encode(sha2::Sha256::digest(leaf.as_ref()))
}

#[tokio::test]
async fn tls_13_and_12_clients_get_through_with_the_facts_for_plugins() {
    static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    static TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let ca = Ca::new("test ca");
    let backend = Backend::start().await;
    let setup = tls_setup(&ca, &backend);
    let ca_file = setup.dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let gw = setup.serve_tls().await;
    let addr = gw.tls_addr.unwrap();
    for (versions, name) in [(TLS13, "TLSv1.3"), (TLS12, "TLSv1.2")] {
        let reply = Client::new(&ca, "a.test")
            .versions(versions)
            .get(addr, "/json")
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        let seen = backend.last().unwrap();
        assert_eq!(seen.headers["x-tls-version"], name);
        assert_eq!(seen.headers["x-tls-sni"], "a.test");
        assert_eq!(seen.headers["x-tls-alpn"], "http/1.1");
        assert_eq!(seen.headers["x-forwarded-proto"], "https");
    }
    // curl, forced to each version.
    for flags in [&["--tlsv1.3"][..], &["--tlsv1.2", "--tls-max", "1.2"][..]] {
        let output = tokio::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&ca_file)
            .args(flags)
            .args(["--resolve", &format!("a.test:{}:127.0.0.1", addr.port())])
            .arg(format!("https://a.test:{}/json", addr.port()))
            .output()
            .await
            .expect("curl is installed");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("\"path\""));
    }
}

#[tokio::test]
async fn tls_10_and_11_are_refused() {
    let ca = Ca::new("test ca");
    let backend = Backend::start().await;
    let gw = tls_setup(&ca, &backend).serve_tls().await;
    let addr = gw.tls_addr.unwrap();
    for version in ["-tls1", "-tls1_1"] {
        let output = tokio::process::Command::new("openssl")
            .args([
                "s_client",
                version,
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
                "-servername",
                "a.test",
            ])
            .args(["-connect", &addr.to_string()])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("openssl is installed");
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{version} was accepted: {text}");
        assert!(
            !text.contains("BEGIN CERTIFICATE"),
            "{version} got a certificate: {text}"
        );
    }
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn each_name_gets_its_certificate_and_an_unknown_name_is_refused() {
    let ca = Ca::new("test ca");
    let backend = Backend::start().await;
    let setup = tls_setup(&ca, &backend);
    let a_pem = std::fs::read_to_string(setup.dir.path().join("a.pem")).unwrap();
    let b_pem = std::fs::read_to_string(setup.dir.path().join("b.pem")).unwrap();
    let gw = setup.serve_tls().await;
    let addr = gw.tls_addr.unwrap();
    let a = Client::new(&ca, "a.test").handshake(addr).await.unwrap();
    assert_eq!(leaf_fingerprint(&a), certs::fingerprint(&a_pem));
    let b = Client::new(&ca, "api.b.test")
        .handshake(addr)
        .await
        .unwrap();
    assert_eq!(leaf_fingerprint(&b), certs::fingerprint(&b_pem));
    let wrong = Client::new(&ca, "c.test").handshake(addr).await;
    assert!(wrong.is_err(), "a name no certificate covers got through");
}

#[tokio::test]
async fn a_replaced_certificate_serves_new_connections_within_a_second() {
    let ca = Ca::new("test ca");
    let backend = Backend::start().await;
    let setup = tls_setup(&ca, &backend).reload("debounce_ms = 100");
    let gw = setup.serve_tls().await;
    let addr = gw.tls_addr.unwrap();
    let config = setup.config();
    let reloader = weir::reload::Reloader::new(
        gw.gateway.clone(),
        &setup.dir.path().join("weir.toml"),
        config.clone(),
        gw.tls.clone(),
    );
    let _watcher = reloader
        .watch(&config.plugins_dir(), Duration::from_millis(100))
        .unwrap();

    // A connection opened before the change, kept alive.
    let before = Client::new(&ca, "a.test").handshake(addr).await.unwrap();
    let old_fingerprint = leaf_fingerprint(&before);
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(before))
            .await
            .unwrap();
    tokio::spawn(conn);

    let fresh = ca.server(&["a.test"]);
    let changed = Instant::now();
    fresh.write(setup.dir.path(), "a");
    let new_fingerprint = certs::fingerprint(&fresh.cert);
    loop {
        let stream = Client::new(&ca, "a.test").handshake(addr).await.unwrap();
        if leaf_fingerprint(&stream) == new_fingerprint {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "the new certificate was not served within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(old_fingerprint, new_fingerprint);
    // The old connection still works.
    let request = http::Request::get("/json")
        .header("host", "a.test")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_bad_certificate_file_keeps_the_old_certificate_and_says_why() {
    let ca = Ca::new("test ca");
    let backend = Backend::start().await;
    let setup = tls_setup(&ca, &backend);
    let a_pem = std::fs::read_to_string(setup.dir.path().join("a.pem")).unwrap();
    let gw = setup.serve_tls().await;
    let addr = gw.tls_addr.unwrap();
    let tls = gw.tls.clone().unwrap();
    std::fs::write(
        setup.dir.path().join("a.pem"),
        "-----BEGIN CERTIFICATE-----\ngarbage\n",
    )
    .unwrap();
    let err = tls.reload().unwrap_err();
    assert!(err.contains("a.pem"), "{err}");
    let stream = Client::new(&ca, "a.test").handshake(addr).await.unwrap();
    assert_eq!(leaf_fingerprint(&stream), certs::fingerprint(&a_pem));
    let status = tls.status();
    assert!(
        status["last_error"].as_str().unwrap().contains("a.pem"),
        "{status}"
    );
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate_and_shows_the_identity() {
    let ca = Ca::new("test ca");
    let client_ca = Ca::new("client ca");
    let backend = Backend::start().await;
    let setup = tls_setup(&ca, &backend);
    std::fs::write(setup.dir.path().join("clients.pem"), &client_ca.pem).unwrap();
    let gw = setup.tls(r#"client_ca = "clients.pem""#).serve_tls().await;
    let addr = gw.tls_addr.unwrap();

    // Without a certificate: the handshake (or, in TLS 1.3, the first
    // exchange) fails, and the request never reaches the upstream.
    let refused = Client::new(&ca, "a.test").get(addr, "/json").await;
    assert!(
        refused.is_err(),
        "a client without a certificate got {refused:?}"
    );
    // With one from another CA: refused too.
    let stranger = Ca::new("other").client("mallory", vec![]);
    let refused = Client::new(&ca, "a.test")
        .identity(&stranger)
        .get(addr, "/json")
        .await;
    assert!(refused.is_err());
    assert_eq!(backend.hits(), 0);

    let identity = client_ca.client(
        "billing",
        vec![
            rcgen::SanType::DnsName("billing.internal".try_into().unwrap()),
            rcgen::SanType::URI("spiffe://example.org/billing".try_into().unwrap()),
        ],
    );
    let reply = Client::new(&ca, "a.test")
        .identity(&identity)
        .get(addr, "/json")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let seen = backend.last().unwrap();
    let subject = seen.headers["x-tls-subject"].to_str().unwrap();
    assert!(subject.contains("CN=billing"), "{subject}");
    assert_eq!(
        seen.headers["x-tls-sans"],
        "DNS:billing.internal,URI:spiffe://example.org/billing"
    );
    assert_eq!(
        seen.headers["x-tls-fingerprint"],
        certs::fingerprint(&identity.cert).as_str()
    );
}

#[tokio::test]
async fn alpn_h2_gives_http2_end_to_end() {
    let ca = Ca::new("test ca");
    let backend = Backend::start().await;
    let gw = tls_setup(&ca, &backend).serve_tls().await;
    let reply = Client::new(&ca, "a.test")
        .h2()
        .get(gw.tls_addr.unwrap(), "/json")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(backend.last().unwrap().headers["x-tls-alpn"], "h2");
}

#[tokio::test]
async fn plain_http_redirects_to_https_when_asked() {
    let ca = Ca::new("test ca");
    let backend = Backend::start().await;
    let gw = tls_setup(&ca, &backend)
        .tls("redirect_http = true")
        .serve_tls()
        .await;
    let reply = get(&gw.url("/users/7?x=1")).await;
    assert_eq!(reply.status, 308);
    let port = gw.tls_addr.unwrap().port();
    assert_eq!(
        reply.header("location").unwrap(),
        format!("https://127.0.0.1:{port}/users/7?x=1")
    );
    assert_eq!(backend.hits(), 0);
}

/// A gateway whose upstream `secure` is the HTTPS `backend` at
/// `https://localhost:PORT`, with `tls_lines` under its `.tls` table.
async fn https_upstream(backend: &Backend, ca: &Ca, tls_lines: &str) -> Running {
    let setup = Setup::new().scripted(
        "10-route",
        json!({"on_request": [{"op": "set_upstream", "name": "secure"}]}),
    );
    std::fs::write(setup.dir.path().join("upstream-ca.pem"), &ca.pem).unwrap();
    setup
        .upstream_with(
            "secure",
            &format!(
                "targets = [\"https://localhost:{}\"]\nretries = 0\n[upstreams.secure.tls]\nca_file = \"upstream-ca.pem\"\n{tls_lines}",
                backend.addr.port()
            ),
        )
        .serve()
        .await
}

#[tokio::test]
async fn an_https_upstream_with_a_test_ca_works_over_http2() {
    let ca = Ca::new("upstream ca");
    let backend = Backend::start_tls(&ca.server(&["localhost"]), None).await;
    let gw = https_upstream(&backend, &ca, "").await;
    let reply = get(&gw.url("/json")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // ALPN picked HTTP/2 to the upstream.
    assert_eq!(backend.last().unwrap().version, http::Version::HTTP_2);
}

#[tokio::test]
async fn an_https_upstream_whose_certificate_does_not_match_is_a_502_naming_the_cause() {
    let ca = Ca::new("upstream ca");
    let backend = Backend::start_tls(&ca.server(&["elsewhere.test"]), None).await;
    let gw = https_upstream(&backend, &ca, "").await;
    let reply = get(&gw.url("/json")).await;
    assert_eq!(reply.status, 502);
    let body = reply.json();
    assert_eq!(body["upstream"], "secure");
    assert_eq!(
        body["cause"],
        "tls: certificate not valid for the upstream's name"
    );
    assert_eq!(backend.hits(), 0);
    // An unknown issuer is named too.
    let stranger = Ca::new("stranger");
    let backend = Backend::start_tls(&stranger.server(&["localhost"]), None).await;
    let gw = https_upstream(&backend, &ca, "").await;
    let reply = get(&gw.url("/json")).await;
    assert_eq!(
        reply.json()["cause"],
        "tls: certificate from an unknown issuer"
    );
}

#[tokio::test]
async fn an_upstream_demanding_a_client_certificate_gets_the_configured_one() {
    let ca = Ca::new("upstream ca");
    let client_ca = Ca::new("gateway ca");
    let backend = Backend::start_tls(&ca.server(&["localhost"]), Some(&client_ca.pem)).await;
    // Without one: refused.
    let gw = https_upstream(&backend, &ca, "").await;
    assert_eq!(get(&gw.url("/json")).await.status, 502);
    // With one.
    let identity = client_ca.client("gateway", vec![]);
    let gw = {
        let setup = Setup::new().scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "secure"}]}),
        );
        std::fs::write(setup.dir.path().join("upstream-ca.pem"), &ca.pem).unwrap();
        identity.write(setup.dir.path(), "gateway");
        setup
            .upstream_with(
                "secure",
                &format!(
                    "targets = [\"https://localhost:{}\"]\n[upstreams.secure.tls]\nca_file = \"upstream-ca.pem\"\nclient_cert = \"gateway.pem\"\nclient_key = \"gateway.key\"",
                    backend.addr.port()
                ),
            )
            .serve()
            .await
    };
    let reply = get(&gw.url("/json")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn verification_can_be_turned_off_per_upstream_only() {
    let stranger = Ca::new("stranger");
    let backend = Backend::start_tls(&stranger.server(&["localhost"]), None).await;
    let ca = Ca::new("trusted");
    let gw = https_upstream(&backend, &ca, "verify = false").await;
    assert_eq!(get(&gw.url("/json")).await.status, 200);
}

#[tokio::test]
async fn weir_run_serves_https_from_its_workers_and_reports_the_certificates() {
    use crate::support::process::Process;
    let ca = Ca::new("test ca");
    let backend = Backend::start().await;
    let setup = tls_setup(&ca, &backend).runtime("worker_threads = 2");
    let process = Process::start(&setup.write()).await;
    let tls_addr: std::net::SocketAddr = process.tls_addr.as_deref().unwrap().parse().unwrap();
    for _ in 0..4 {
        let reply = Client::new(&ca, "a.test")
            .get(tls_addr, "/json")
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
    }
    let status = get(&process.admin_url("/admin/tls")).await.json();
    let names: Vec<String> = status["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| {
            c["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(names, ["a.test", "*.b.test"]);
    assert!(status["last_error"].is_null());
}
