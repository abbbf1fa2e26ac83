//! DNS service discovery against a real DNS server (dnsmasq, started per
//! test on a free loopback port): targets named by DNS follow their A
//! records and SRV records as they change, under load, without a failed
//! request; vanished targets drain; a DNS outage keeps the last answer,
//! across reloads too; higher SRV priorities take over when the lower ones
//! are unavailable; an unresponsive SRV target host is skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::dns::Dns;
use crate::support::*;

/// Records' TTL, seconds.
const TTL: u32 = 1;
/// How late past one TTL new targets may start taking traffic: the change
/// may land just after a refresh, and the test machine may be slow.
const SLACK: Duration = Duration::from_millis(1500);

/// Route everything to upstream `api` with `targets`, resolving through
/// `dns`.
fn routed(dns: &Dns, targets: &str) -> Setup {
    Setup::new()
        .upstream_with("api", &format!("targets = [{targets:?}]\nretries = 0"))
        .section(&format!(
            "[discovery]\nnameservers = [\"{}\"]\nmin_ttl_ms = 200\ntimeout_ms = 500",
            dns.addr()
        ))
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "api"}]}),
        )
}

/// Clients sending requests back to back until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(usize, Vec<String>)>>,
}

impl Load {
    fn start(url: String, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, url) = (stop.clone(), url.clone());
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        let reply = get(&url).await;
                        if reply.status == 200 {
                            ok += 1;
                        } else {
                            failed.push(format!(
                                "{} {}",
                                reply.status,
                                String::from_utf8_lossy(&reply.body)
                            ));
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        Load { stop, tasks }
    }

    /// Stop, and assert that every request succeeded; the number sent.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        for task in self.tasks {
            let (ok, failed) = task.await.unwrap();
            assert!(failed.is_empty(), "failed requests: {failed:?}");
            total += ok;
        }
        assert!(total > 0);
        total
    }
}

/// Wait until `backend` has been hit, at most `limit`; how long it took.
async fn first_hit(backend: &Backend, limit: Duration) -> Duration {
    let started = Instant::now();
    while backend.hits() == 0 {
        assert!(
            started.elapsed() < limit,
            "no request reached {} within {limit:?}",
            backend.addr
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// Assert `backend` gets no new request during `period`.
async fn gets_nothing(backend: &Backend, period: Duration) {
    let before = backend.hits();
    tokio::time::sleep(period).await;
    assert_eq!(
        backend.hits(),
        before,
        "{} still gets requests",
        backend.addr
    );
}

/// A name's A records are cached no longer than their TTL (RFC 1035 §3.2.1,
/// RFC 2181 §8): a change takes traffic within one TTL, none failing.
#[tokio::test]
async fn discovery_follows_a_records_within_one_ttl_under_load() {
    let backends = Backend::on_one_port(&["127.0.0.2", "127.0.0.3"]).await;
    let (old, new) = (&backends[0], &backends[1]);
    let port = old.addr.port();
    let dns = Dns::start(TTL, "127.0.0.2 api.weir.test\n", &[]).await;
    let gw = routed(&dns, &format!("http://api.weir.test:{port}"))
        .serve()
        .await;
    let load = Load::start(gw.url("/"), 4);
    first_hit(old, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(new.hits(), 0);

    dns.write_hosts("127.0.0.3 api.weir.test\n");
    let took = first_hit(new, Duration::from_secs(u64::from(TTL)) + SLACK).await;
    // Requests picked before the switch may still be on their way.
    tokio::time::sleep(Duration::from_millis(200)).await;
    gets_nothing(old, Duration::from_millis(500)).await;

    // Both addresses: both take traffic.
    dns.write_hosts("127.0.0.2 api.weir.test\n127.0.0.3 api.weir.test\n");
    first_hit_again(old, Duration::from_secs(u64::from(TTL)) + SLACK).await;
    let sent = load.finish().await;
    eprintln!("{sent} requests, new address in use after {took:?}");
}

/// Wait until `backend` gets a request it had not had yet.
async fn first_hit_again(backend: &Backend, limit: Duration) {
    let (before, started) = (backend.hits(), Instant::now());
    while backend.hits() == before {
        assert!(
            started.elapsed() < limit,
            "{} never came back",
            backend.addr
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// RFC 2782: targets of the lowest priority value are used, shared in
/// proportion to their weights; higher priority values get nothing while
/// they are available.
#[tokio::test]
async fn discovery_follows_srv_priority_and_weight_and_changes_under_load() {
    let (a, b, c, d) = (
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    );
    let srv = |backend: &Backend, priority: u16, weight: u16| {
        format!(
            "srv-host=_http._tcp.svc.weir.test,h.weir.test,{},{priority},{weight}",
            backend.addr.port()
        )
    };
    let first = [srv(&a, 10, 3), srv(&b, 10, 1), srv(&c, 20, 5)];
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let mut dns = Dns::start(TTL, "127.0.0.1 h.weir.test\n", &first).await;
    let gw = routed(&dns, "srv:_http._tcp.svc.weir.test").serve().await;
    for _ in 0..400 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    // Weights 3:1 in priority 10 (smooth weighted round robin: exact for
    // one client); priority 20 is a fallback only.
    assert_eq!((a.hits(), b.hits(), c.hits()), (300, 100, 0));

    let load = Load::start(gw.url("/"), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = [srv(&a, 10, 1), srv(&d, 10, 1), srv(&c, 20, 5)];
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    dns.restart_with_srv(&second).await;
    let took = first_hit(&d, Duration::from_secs(u64::from(TTL)) + SLACK).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    gets_nothing(&b, Duration::from_millis(500)).await;
    let sent = load.finish().await;
    assert_eq!(c.hits(), 0);
    eprintln!("{sent} requests, new SRV target in use after {took:?}");
}

#[tokio::test]
async fn discovery_drains_a_vanished_target() {
    let backends = Backend::on_one_port(&["127.0.0.2", "127.0.0.3"]).await;
    let (leaving, staying) = (&backends[0], &backends[1]);
    let port = leaving.addr.port();
    let dns = Dns::start(TTL, "127.0.0.2 api.weir.test\n", &[]).await;
    let gw = routed(&dns, &format!("http://api.weir.test:{port}"))
        .serve()
        .await;
    let slow_url = gw.url("/slow?ms=5000");
    let slow = tokio::spawn(async move { get(&slow_url).await });
    first_hit(leaving, Duration::from_secs(5)).await;

    dns.write_hosts("127.0.0.3 api.weir.test\n");
    let load = Load::start(gw.url("/"), 2);
    first_hit(staying, Duration::from_secs(u64::from(TTL)) + SLACK).await;
    assert!(
        !slow.is_finished(),
        "the slow request should still be in flight"
    );
    // Requests picked before the switch may still be on their way.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left_with = leaving.hits();
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[..], b"slow done");
    load.finish().await;
    assert_eq!(
        leaving.hits(),
        left_with,
        "new requests went to the vanished target"
    );
}

#[tokio::test]
async fn discovery_keeps_the_last_answer_while_dns_is_down() {
    let backends = Backend::on_one_port(&["127.0.0.2"]).await;
    let target = &backends[0];
    let mut dns = Dns::start(TTL, "127.0.0.2 api.weir.test\n", &[]).await;
    let gw = routed(
        &dns,
        &format!("http://api.weir.test:{}", target.addr.port()),
    )
    .serve()
    .await;
    assert_eq!(get(&gw.url("/")).await.status, 200);
    dns.stop();
    let load = Load::start(gw.url("/"), 2);
    // Several TTLs and retries pass without an answer.
    tokio::time::sleep(Duration::from_secs(u64::from(TTL) * 4)).await;
    let sent = load.finish().await;
    assert!(target.hits() > sent / 2);
    let admin = gw.gateway.pipeline();
    let status = admin.upstreams().get("api").unwrap().discovery().unwrap();
    assert!(
        status.last_error.is_some(),
        "the failing lookups are reported"
    );
    assert!(status.last_resolved.is_some());
}

#[tokio::test]
async fn discovery_over_tls_verifies_the_dns_name_not_the_address() {
    use crate::support::certs::Ca;
    let ca = Ca::new("upstream ca");
    let backend = Backend::start_tls(&ca.server(&["api.weir.test", "s1.weir.test"]), None).await;
    let port = backend.addr.port();
    let srv = format!("srv-host=_https._tcp.svc.weir.test,s1.weir.test,{port},10,1");
    let dns = Dns::start(
        TTL,
        "127.0.0.1 api.weir.test\n127.0.0.1 s1.weir.test\n",
        &[&srv],
    )
    .await;
    for (target, name) in [
        (format!("https://api.weir.test:{port}"), "api.weir.test"),
        (
            "srv+https:_https._tcp.svc.weir.test".to_string(),
            "s1.weir.test",
        ),
    ] {
        let setup = routed(&dns, &target);
        std::fs::write(setup.dir.path().join("upstream-ca.pem"), &ca.pem).unwrap();
        let setup = setup.section("[upstreams.api.tls]\nca_file = \"upstream-ca.pem\"");
        let gw = setup.serve().await;
        let reply = get(&gw.url("/json")).await;
        assert_eq!(reply.status, 200, "{target}: {}", reply.text());
        let pipeline = gw.gateway.pipeline();
        let targets = pipeline.upstreams().get("api").unwrap().targets();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].authority().as_str(), format!("127.0.0.1:{port}"));
        assert_eq!(targets[0].server_name(), Some(name));
    }
    assert_eq!(backend.hits(), 2);
}

#[tokio::test]
async fn discovery_keeps_the_last_answer_across_reloads_while_dns_is_down() {
    let backends = Backend::on_one_port(&["127.0.0.2"]).await;
    let target = &backends[0];
    let mut dns = Dns::start(TTL, "127.0.0.2 api.weir.test\n", &[]).await;
    let setup = routed(
        &dns,
        &format!("http://api.weir.test:{}", target.addr.port()),
    );
    let gw = setup.serve().await;
    assert_eq!(get(&gw.url("/")).await.status, 200);
    let targets = |gw: &Running| {
        gw.gateway
            .pipeline()
            .upstreams()
            .get("api")
            .unwrap()
            .targets()
    };
    let before = targets(&gw);

    // DNS up: the new pipeline starts from the old answer, same target
    // (health and in-flight carry over), without waiting for DNS.
    gw.gateway.reload(&setup.config()).await.unwrap();
    let started = Instant::now();
    assert_eq!(get(&gw.url("/")).await.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "the first request after a reload waited {:?}",
        started.elapsed()
    );
    assert!(Arc::ptr_eq(&targets(&gw)[0], &before[0]));

    // DNS down: reloads (twice: the second starts from what the first
    // carried over) keep the target.
    dns.stop();
    gw.gateway.reload(&setup.config()).await.unwrap();
    gw.gateway.reload(&setup.config()).await.unwrap();
    let load = Load::start(gw.url("/"), 2);
    tokio::time::sleep(Duration::from_secs(u64::from(TTL) * 3)).await;
    let sent = load.finish().await;
    assert!(target.hits() > sent / 2);
    assert!(Arc::ptr_eq(&targets(&gw)[0], &before[0]));
    let status = gw
        .gateway
        .pipeline()
        .upstreams()
        .get("api")
        .unwrap()
        .discovery()
        .unwrap();
    assert!(
        status.last_error.is_some(),
        "the failing lookups are reported"
    );
    assert!(status.last_resolved.is_some(), "carried over from before");
}

/// RFC 2782: "A client MUST attempt to contact the target host with the
/// lowest-numbered priority it can reach": when those are unreachable the
/// next priority serves.
#[tokio::test]
async fn discovery_falls_back_to_a_higher_srv_priority_when_the_lower_is_unavailable() {
    let (a, b, c) = (
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    );
    let srv = |backend: &Backend, priority: u16| {
        format!(
            "srv-host=_http._tcp.svc.weir.test,h.weir.test,{},{priority},1",
            backend.addr.port()
        )
    };
    let records = [srv(&a, 10), srv(&b, 10), srv(&c, 20)];
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let dns = Dns::start(TTL, "127.0.0.1 h.weir.test\n", &records).await;
    let health = "[upstreams.api.health]\npath = \"/healthz\"\ninterval_ms = 50\nunhealthy_after = 1\nhealthy_after = 1";
    let gw = routed(&dns, "srv:_http._tcp.svc.weir.test")
        .section(health)
        .serve()
        .await;
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    assert_eq!((a.hits(), b.hits(), c.hits()), (10, 10, 0));

    // Every priority-10 target fails its checks: priority 20 serves.
    a.set_healthy(false);
    b.set_healthy(false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (a_before, b_before) = (a.hits(), b.hits());
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    assert_eq!((a.hits(), b.hits(), c.hits()), (a_before, b_before, 20));

    // One comes back: priority 20 is left alone again.
    a.set_healthy(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    assert_eq!((a.hits(), c.hits()), (a_before + 20, 20));

    // Priority 10 killed outright: passive ejection and checks move the
    // traffic to priority 20, and no request fails once they have.
    a.kill();
    b.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    assert_eq!(c.hits(), 40);
}

#[tokio::test]
async fn discovery_skips_srv_target_hosts_that_never_answer() {
    let good = Backend::start().await;
    // dnsmasq forwards `slow.test` to a socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let forward = format!("server=/slow.test/{}", silent.local_addr().unwrap()).replace(':', "#");
    let mut records = vec![forward];
    for i in 0..4 {
        records.push(format!(
            "srv-host=_http._tcp.svc.weir.test,x{i}.slow.test,1,10,1"
        ));
    }
    records.push(format!(
        "srv-host=_http._tcp.svc.weir.test,h.weir.test,{},10,1",
        good.addr.port()
    ));
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let dns = Dns::start(TTL, "127.0.0.1 h.weir.test\n", &records).await;
    let gw = routed(&dns, "srv:_http._tcp.svc.weir.test").serve().await;
    // Each silent host gives up after its own limit, all at once: the
    // answer comes within about one limit (4 x timeout_ms), not four.
    let pipeline = gw.gateway.pipeline();
    let upstream = pipeline.upstreams().get("api").unwrap();
    let started = Instant::now();
    while upstream.targets().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "no targets: {:?}",
            upstream.discovery()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let targets = upstream.targets();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].authority().as_str(), good.addr.to_string());
    for _ in 0..5 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
}
