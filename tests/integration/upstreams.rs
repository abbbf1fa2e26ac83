//! Upstream mechanism in the host: balancing, health checks, passive
//! ejection, retries, timeouts, HTTP/2 to targets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;

use crate::support::*;

/// Route everything to upstream `api`.
fn routed(api_body: &str) -> Setup {
    Setup::new().upstream_with("api", api_body).scripted(
        "10-route",
        json!({"on_request": [{"op": "set_upstream", "name": "api"}]}),
    )
}

fn targets(backends: &[&Backend]) -> String {
    let list: Vec<String> = backends.iter().map(|b| format!("{:?}", b.url())).collect();
    format!("targets = [{}]", list.join(", "))
}

/// Wait (bounded) until the gateway's view of target `index` of `api` is
/// `healthy`. Health changes come from a background task, so there is no
/// event to await; this polls the state it sets.
async fn until_health(gw: &Running, index: usize, healthy: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pipeline = gw.gateway.pipeline();
        let target = &pipeline.upstreams().get("api").unwrap().targets()[index];
        if target.checked_healthy() == healthy {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "target {index} never became healthy={healthy}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn round_robin_spreads_300_requests_evenly() {
    let (a, b, c) = (
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    );
    let gw = routed(&targets(&[&a, &b, &c])).serve().await;
    for _ in 0..300 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    for backend in [&a, &b, &c] {
        assert!(
            (90..=110).contains(&backend.hits()),
            "hits {} {} {}",
            a.hits(),
            b.hits(),
            c.hits()
        );
    }
}

#[tokio::test]
async fn least_requests_favours_the_less_busy_target() {
    let (fast, slow) = (Backend::start().await, Backend::start().await);
    slow.set_delay(200);
    let gw = Arc::new(
        routed(&format!(
            "{}\nbalance = \"least_requests\"",
            targets(&[&fast, &slow])
        ))
        .serve()
        .await,
    );
    // 4 workers, 40 requests: the slow target holds requests longer, so it
    // is picked less often.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    assert_eq!(get(&gw.url("/")).await.status, 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        fast.hits() > 2 * slow.hits(),
        "fast {} slow {}",
        fast.hits(),
        slow.hits()
    );
}

#[tokio::test]
async fn consistent_hash_keeps_a_key_on_one_target() {
    let (a, b, c) = (
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    );
    let gw = routed(&format!(
        "{}\nbalance = \"consistent_hash\"\nhash_on = \"header:x-user\"",
        targets(&[&a, &b, &c])
    ))
    .serve()
    .await;
    let client = crate::support::client::http1();
    let as_user = |user: String| {
        http::Request::builder()
            .uri(gw.url("/"))
            .header("x-user", user)
            .body(weir::http::body::empty())
            .unwrap()
    };
    for _ in 0..10 {
        assert_eq!(send(&client, as_user("alice".into())).await.status, 200);
    }
    let counts = [a.hits(), b.hits(), c.hits()];
    assert!(counts.contains(&10), "alice was spread: {counts:?}");
    for i in 0..60 {
        send(&client, as_user(format!("user-{i}"))).await;
    }
    let used = [a.hits(), b.hits(), c.hits()]
        .iter()
        .filter(|h| **h > 0)
        .count();
    assert_eq!(used, 3, "keys did not spread over the targets");
}

#[tokio::test]
async fn health_checks_take_a_target_out_and_bring_it_back() {
    let (a, b) = (Backend::start().await, Backend::start().await);
    let health = "[upstreams.api.health]\npath = \"/healthz\"\ninterval_ms = 50\nunhealthy_after = 2\nhealthy_after = 2";
    let gw = routed(&format!("{}\n{health}", targets(&[&a, &b])))
        .serve()
        .await;

    b.set_healthy(false);
    until_health(&gw, 1, false).await;
    let before = b.hits();
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    assert_eq!(b.hits(), before, "an unhealthy target got traffic");

    b.set_healthy(true);
    until_health(&gw, 1, true).await;
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    assert!(
        b.hits() >= before + 9,
        "the recovered target got no traffic"
    );
}

#[tokio::test]
async fn a_backend_killed_mid_run_costs_idempotent_gets_nothing() {
    let (a, b, c) = (
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    );
    let health = "[upstreams.api.health]\npath = \"/healthz\"\ninterval_ms = 50\nunhealthy_after = 2\nhealthy_after = 2";
    let gw = Arc::new(
        routed(&format!("{}\n{health}", targets(&[&a, &b, &c])))
            .serve()
            .await,
    );

    let load = {
        let gw = gw.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..300 {
                statuses.push(get(&gw.url("/")).await.status.as_u16());
            }
            statuses
        })
    };
    // Kill c once the load is under way.
    while a.hits() + b.hits() + c.hits() < 30 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    c.kill();
    let killed_at = c.hits();
    let statuses = load.await.unwrap();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "errors seen: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    assert_eq!(c.hits(), killed_at);

    until_health(&gw, 2, false).await;
    for _ in 0..30 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
}

#[tokio::test]
async fn all_targets_down_is_a_503_naming_the_upstream() {
    let (a, b) = (Backend::start().await, Backend::start().await);
    let health = "[upstreams.api.health]\npath = \"/healthz\"\ninterval_ms = 50\nunhealthy_after = 1\nhealthy_after = 1";
    let gw = routed(&format!("{}\n{health}", targets(&[&a, &b])))
        .serve()
        .await;
    a.set_healthy(false);
    b.set_healthy(false);
    until_health(&gw, 0, false).await;
    until_health(&gw, 1, false).await;
    let reply = get(&gw.url("/")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["upstream"], "api");
    assert_eq!(reply.json()["cause"], "no healthy target");
    assert_eq!(a.hits() + b.hits(), 0);
}

fn closed_port() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn idempotent_requests_are_retried_on_another_target_after_a_connect_error() {
    let live = Backend::start().await;
    let body = format!(
        "targets = [{:?}, {:?}]\nretries = 1\n[upstreams.api.passive]\nfailures = 0",
        closed_port(),
        live.url()
    );
    let gw = routed(&body).serve().await;
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    assert_eq!(live.hits(), 20);
    // A POST is not retried: the dead target's turns fail with 502.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let reply = send(
            &crate::support::client::http1(),
            request(Method::POST, &gw.url("/"), "data"),
        )
        .await;
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        5,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn without_retries_a_dead_target_costs_requests() {
    let live = Backend::start().await;
    let body = format!(
        "targets = [{:?}, {:?}]\nretries = 0\n[upstreams.api.passive]\nfailures = 0",
        closed_port(),
        live.url()
    );
    let gw = routed(&body).serve().await;
    let mut failed = 0;
    for _ in 0..10 {
        let reply = get(&gw.url("/")).await;
        if reply.status == 502 {
            assert_eq!(reply.json()["cause"], "connection failed");
            failed += 1;
        }
    }
    assert_eq!(failed, 5);
}

#[tokio::test]
async fn a_503_answer_is_retried_on_another_target() {
    let (failing, ok) = (Backend::start().await, Backend::start().await);
    failing.set_failing(503);
    let gw = routed(&format!("{}\nretries = 1", targets(&[&failing, &ok])))
        .serve()
        .await;
    for _ in 0..10 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    assert_eq!(ok.hits(), 10);
    assert_eq!(failing.hits(), 5);
}

#[tokio::test]
async fn passive_ejection_stops_trying_a_dead_target() {
    let live = Backend::start().await;
    // No retries, so every try of the dead target would be a 502; after two
    // failures it is ejected and only the live target is used.
    let body = format!(
        "targets = [{:?}, {:?}]\nretries = 0\n[upstreams.api.passive]\nfailures = 2\neject_ms = 60000",
        closed_port(),
        live.url()
    );
    let gw = routed(&body).serve().await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&gw.url("/")).await.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        2,
        "{statuses:?}"
    );
    assert!(statuses[4..].iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test]
async fn a_slow_backend_is_a_504_within_the_timeout_plus_100_ms() {
    let slow = Backend::start().await;
    slow.set_delay(3_000);
    let gw = routed(&format!("{}\nrequest_timeout_ms = 300", targets(&[&slow])))
        .serve()
        .await;
    let started = Instant::now();
    let reply = get(&gw.url("/")).await;
    let took = started.elapsed();
    assert_eq!(reply.status, 504);
    assert_eq!(reply.json()["cause"], "timeout");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_millis(400), "504 took {took:?}");
}

#[tokio::test]
async fn h2c_targets_are_spoken_to_in_http2() {
    let backend = Backend::start().await;
    let gw = routed(&format!("{}\nprotocol = \"h2c\"", targets(&[&backend])))
        .serve()
        .await;
    let reply = get(&gw.url("/json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(backend.last().unwrap().version, http::Version::HTTP_2);
    // And HTTP/1.1 by default.
    let gw = routed(&targets(&[&backend])).serve().await;
    get(&gw.url("/json")).await;
    assert_eq!(backend.last().unwrap().version, http::Version::HTTP_11);
}
