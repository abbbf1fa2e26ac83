//! ACME certificates (`[tls.acme]`) against a real ACME server: Debian's
//! pebble on loopback (`support/pebble.rs`), validating on the gateway's
//! own ports. Issuance with both challenges, renewal at two thirds of the
//! lifetime, a failing order that keeps the old certificate, and two
//! gateways on one Redis that order once and serve the same certificate.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use http::Method;

use crate::support::client::call;
use crate::support::pebble::{Pebble, free_port, served};
use crate::support::process::Process;
use crate::support::redis::RedisServer;
use crate::support::{Backend, Setup, get, json};

const NAME: &str = "a.weir.test";

/// A gateway directory with `[tls]` on `tls_port` and `[tls.acme]` on
/// `pebble`; `state` lines go to `[state]`.
fn setup(pebble: &Pebble, tls_port: u16, challenge: &str, state: &[&str]) -> Setup {
    setup_with(pebble, tls_port, challenge, state, "")
}

/// [`setup`] with one more `[tls]` line.
fn setup_with(
    pebble: &Pebble,
    tls_port: u16,
    challenge: &str,
    state: &[&str],
    tls_line: &str,
) -> Setup {
    let mut setup = Setup::new().section(&format!(
        r#"[tls]
listen = "127.0.0.1:{tls_port}"
{tls_line}
[tls.acme]
directory = "{}"
contact = ["ops@weir.test"]
domains = ["{NAME}"]
challenge = "{challenge}"
ca_file = "acme-ca.pem"
retry_min_ms = 1000
retry_max_ms = 4000
poll_ms = 1000"#,
        pebble.directory
    ));
    for line in state {
        setup = setup.state(line);
    }
    pebble.write_ca(setup.dir.path());
    setup
}

/// Run `weir` from `setup` with its proxy on `http_port`.
async fn start(setup: &Setup, http_port: u16) -> Process {
    let listen = format!("127.0.0.1:{http_port}");
    Process::start_listening(&setup.write(), &listen, &[], Stdio::inherit()).await
}

fn tls_addr(gateway: &Process) -> SocketAddr {
    gateway.tls_addr.as_deref().unwrap().parse().unwrap()
}

/// The ACME state of `NAME` in `GET /admin/tls`.
async fn acme_name(gateway: &Process) -> serde_json::Value {
    let status = get(&gateway.admin_url("/admin/tls")).await.json();
    status["acme"]["names"][0].clone()
}

/// Poll `check` until it gives a value, for at most `secs` seconds.
async fn until<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The serial and expiry served for `NAME`, once a certificate issued
/// under `root` is.
async fn first_certificate(gateway: &Process, root: &str) -> (String, i64) {
    let addr = tls_addr(gateway);
    until(60, "the first ACME certificate", || async {
        served(addr, NAME, root).await.ok()
    })
    .await
}

/// RFC 8555 §8.3: the CA fetches `/.well-known/acme-challenge/TOKEN` over
/// plain HTTP and gets the key authorization; the order (§7.4) is then
/// finalized and the certificate served over HTTPS for its name.
#[tokio::test(flavor = "multi_thread")]
async fn acme_http01_issues_a_certificate_served_over_https() {
    let (http_port, tls_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port, tls_port, None).await;
    let site = Backend::start().await;
    let setup = setup(&pebble, tls_port, "http-01", &[])
        .upstream("site", &[site.url()])
        .router(json!({"routes": [
            {"name": "site", "match": {"path_prefix": "/"}, "upstream": "site"}
        ]}));
    let gateway = start(&setup, http_port).await;
    let root = pebble.root().await;
    let (serial, _) = first_certificate(&gateway, &root).await;
    let name = acme_name(&gateway).await;
    assert_eq!(name["status"], "valid", "{name}");
    assert_eq!(name["serial"], serial.as_str());
    assert_eq!(name["orders"], 1);
    assert_eq!(site.hits(), 0, "the CA's validation never reached the site");
    assert!(name["renew_at"].is_string());
    let status = get(&gateway.admin_url("/admin/tls")).await.json();
    assert_eq!(status["acme"]["challenge"], "http-01");
    assert!(status["acme"]["account"].is_string(), "{status}");
    assert!(!status.to_string().contains("PRIVATE KEY"));
    // Unknown tokens for the name are not the plugins' to answer, and not
    // found.
    let path = "/.well-known/acme-challenge/nope";
    let unknown = call(&gateway.url(path), Method::GET, &[("host", NAME)], "").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.text().contains("unknown ACME challenge token"));
    // Another host's validation (a backend doing its own ACME) goes through
    // the pipeline to its upstream.
    let host = [("host", "other.weir.test")];
    let other = call(&gateway.url(path), Method::GET, &host, "").await;
    assert_eq!(other.status, 200, "{}", other.text());
    assert!(site.last_at(path).is_some(), "the site got the request");
}

/// RFC 8737 §3: the CA's handshake offers only ALPN `acme-tls/1` and gets a
/// self-signed certificate for the one name with the critical
/// id-pe-acmeIdentifier extension holding SHA-256 of the key authorization.
#[tokio::test(flavor = "multi_thread")]
async fn acme_tls_alpn01_issues_a_certificate() {
    let (http_port, tls_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port, tls_port, None).await;
    let setup = setup(&pebble, tls_port, "tls-alpn-01", &[]);
    let gateway = start(&setup, http_port).await;
    let root = pebble.root().await;
    let (serial, _) = first_certificate(&gateway, &root).await;
    let name = acme_name(&gateway).await;
    assert_eq!(name["status"], "valid", "{name}");
    assert_eq!(name["serial"], serial.as_str());
    let status = get(&gateway.admin_url("/admin/tls")).await.json();
    assert_eq!(status["acme"]["challenge"], "tls-alpn-01");
}

/// Renewal before expiry (RFC 8555 §7.4 orders anew): at two thirds of the
/// lifetime a new certificate (new serial, later notAfter) is served
/// without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn acme_renews_at_two_thirds_of_the_lifetime() {
    let (http_port, tls_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port, tls_port, Some(15)).await;
    let setup = setup(&pebble, tls_port, "http-01", &[]);
    let gateway = start(&setup, http_port).await;
    let root = pebble.root().await;
    let (first, first_expiry) = first_certificate(&gateway, &root).await;
    let renew_at = acme_name(&gateway).await["renew_at"]
        .as_str()
        .unwrap()
        .to_string();
    let addr = tls_addr(&gateway);
    let (second, second_expiry) = until(40, "the renewed certificate", || async {
        served(addr, NAME, &root)
            .await
            .ok()
            .filter(|(serial, _)| *serial != first)
    })
    .await;
    assert!(
        second_expiry > first_expiry,
        "{second_expiry} > {first_expiry}"
    );
    let name = acme_name(&gateway).await;
    assert_eq!(name["serial"], second.as_str());
    assert_eq!(name["orders"], 2, "{name}");
    assert_ne!(name["renew_at"], renew_at.as_str());
}

/// An order whose challenge fails (RFC 8555 §7.1.6: the authorization
/// becomes `invalid`) is reported with its cause and backed off, and the
/// certificate obtained before keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn acme_failed_order_keeps_the_last_certificate_serving() {
    let (http_port, tls_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port, tls_port, Some(30)).await;
    let setup = setup(&pebble, tls_port, "http-01", &[]);
    let gateway = start(&setup, http_port).await;
    let root = pebble.root().await;
    let (first, _) = first_certificate(&gateway, &root).await;
    // From now on the CA validates at an address where nothing listens.
    pebble.point(NAME, "127.0.0.2").await;
    let failed = until(40, "the renewal to fail", || async {
        let name = acme_name(&gateway).await;
        (name["status"] == "failed").then_some(name)
    })
    .await;
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("validation"),
        "{failed}"
    );
    assert!(failed["failures"].as_u64().unwrap() >= 1);
    assert!(failed["orders"].as_u64().unwrap() >= 2, "{failed}");
    assert_eq!(failed["serial"], first.as_str());
    let (still, _) = served(tls_addr(&gateway), NAME, &root).await.unwrap();
    assert_eq!(still, first, "the last good certificate keeps serving");
    // The back-off doubles: a second failure waits longer.
    let again = until(20, "a second failure", || async {
        let name = acme_name(&gateway).await;
        (name["failures"].as_u64() >= Some(2)).then_some(name)
    })
    .await;
    assert_eq!(again["serial"], first.as_str());
}

/// Two gateways on one Redis share one account (RFC 8555 §7.3) and make
/// exactly one order between them; both serve its certificate.
#[tokio::test(flavor = "multi_thread")]
async fn acme_two_gateways_on_one_redis_order_once() {
    let fleet = Fleet::new("http-01").await;
    // Started together: whichever orders, the CA's request reaches the
    // first, which answers the token from the store.
    let (a, b) = tokio::join!(
        start(&fleet.setup_a, fleet.http_port),
        start(&fleet.setup_b, free_port())
    );
    fleet.one_order_one_certificate(&a, &b).await;
    // Everything else on the redirecting listener still redirects.
    let redirected = get(&a.url("/x")).await;
    assert_eq!(redirected.status, 308);
}

/// RFC 8737 §3 across a fleet: the validation reaches a gateway that did
/// not order, which answers it from the store.
#[tokio::test(flavor = "multi_thread")]
async fn acme_tls_alpn01_challenge_of_one_gateway_is_answered_by_another() {
    let fleet = Fleet::new("tls-alpn-01").await;
    // The second orders; the CA validates on the first, which serves the
    // challenge the second published in the store.
    let b = start(&fleet.setup_b, free_port()).await;
    until(20, "the second gateway to order", || async {
        (acme_name(&b).await["status"] == "ordering").then_some(())
    })
    .await;
    let a = start(&fleet.setup_a, fleet.http_port).await;
    let (name_a, name_b) = fleet.one_order_one_certificate(&a, &b).await;
    assert_eq!(
        (name_a["orders"].as_u64(), name_b["orders"].as_u64()),
        (Some(0), Some(1))
    );
}

/// Two gateway directories on one Redis; only the first owns the ports
/// pebble validates on.
struct Fleet {
    _redis: RedisServer,
    pebble: Pebble,
    http_port: u16,
    setup_a: Setup,
    setup_b: Setup,
}

impl Fleet {
    async fn new(challenge: &str) -> Fleet {
        let redis = RedisServer::start();
        let url = format!("url = \"{}\"", redis.url());
        let state = ["backend = \"redis\"", url.as_str()];
        let (http_port, tls_a, tls_b) = (free_port(), free_port(), free_port());
        let pebble = Pebble::start(http_port, tls_a, None).await;
        // The first's plain listener otherwise redirects to HTTPS.
        let setup_a = setup_with(&pebble, tls_a, challenge, &state, "redirect_http = true");
        let setup_b = setup(&pebble, tls_b, challenge, &state);
        Fleet {
            _redis: redis,
            pebble,
            http_port,
            setup_a,
            setup_b,
        }
    }

    /// Both serve one certificate from one order under one account; their
    /// `acme` names.
    async fn one_order_one_certificate(
        &self,
        a: &Process,
        b: &Process,
    ) -> (serde_json::Value, serde_json::Value) {
        let root = self.pebble.root().await;
        let (serial_a, _) = first_certificate(a, &root).await;
        let (serial_b, _) = first_certificate(b, &root).await;
        assert_eq!(serial_a, serial_b, "one certificate for the fleet");
        let (name_a, name_b) = until(10, "both to settle", || async {
            let (a, b) = (acme_name(a).await, acme_name(b).await);
            (a["status"] == "valid" && b["status"] == "valid").then_some((a, b))
        })
        .await;
        assert_eq!(name_a["serial"], name_b["serial"]);
        let orders = name_a["orders"].as_u64().unwrap() + name_b["orders"].as_u64().unwrap();
        assert_eq!(orders, 1, "exactly one order: {name_a} {name_b}");
        assert_eq!(self.pebble.orders(), 1, "pebble saw one order");
        // Only the ordering gateway loaded the account; one was registered.
        let account = |g: &Process| {
            let url = g.admin_url("/admin/tls");
            async move { get(&url).await.json()["acme"]["account"].clone() }
        };
        let accounts = [account(a).await, account(b).await];
        assert_eq!(accounts.iter().filter(|a| a.is_string()).count(), 1);
        (name_a, name_b)
    }
}

/// On the in-memory `[state]` backend the account and the certificate are
/// also kept on disk (`cache_dir/acme/`, as Traefik's `acme.json` or
/// Caddy's data directory), so a restarted gateway serves the same
/// certificate at once and orders nothing: public CAs limit duplicate
/// certificates, and a gateway that reordered at every restart would
/// soon be refused.
#[tokio::test(flavor = "multi_thread")]
async fn acme_on_the_memory_backend_keeps_its_certificate_across_a_restart() {
    let (http_port, tls_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port, tls_port, None).await;
    let cache = tempfile::tempdir().unwrap();
    let setup = setup(&pebble, tls_port, "http-01", &[]).cache_dir(cache.path());
    let gateway = start(&setup, http_port).await;
    let root = pebble.root().await;
    let (serial, _) = first_certificate(&gateway, &root).await;
    assert_eq!(acme_name(&gateway).await["orders"], 1);
    gateway.stop().await;

    let again = start(&setup, http_port).await;
    let (served_again, _) = first_certificate(&again, &root).await;
    assert_eq!(
        served_again, serial,
        "the restarted gateway serves what it had"
    );
    let name = acme_name(&again).await;
    assert_eq!(name["status"], "valid", "{name}");
    assert_eq!(name["orders"], 0, "no new order after a restart: {name}");
}
