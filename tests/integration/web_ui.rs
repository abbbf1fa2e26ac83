//! The admin listener's web dashboard (`/ui`) in a real headless Chromium
//! against a real `weir` process. One page session, never reloaded, shows
//! the pipeline, counts requests sent through the proxy, sees a killed
//! backend go unhealthy and reloads on a click. Behind a token, the page
//! and the data need a login, the session cookie never holds the token, and
//! a cookie alone cannot POST without the dashboard's CSRF header.

use std::time::Duration;

use crate::support::browser::Browser;
use crate::support::client::Reply;
use crate::support::process::Process;
use crate::support::*;

/// How long the page may take to show a change: it polls every second.
const WAIT: Duration = Duration::from_secs(10);

/// The plugin names of the pipeline table, in order (null while empty).
const PIPELINE: &str = "(() => { const names = [...document.querySelectorAll('#pipeline tr[data-plugin]')]\
    .map(tr => tr.dataset.plugin).filter(Boolean); return names.length ? names : null; })()";

/// The total requests counter, once the first scrape has filled it.
const TOTAL: &str = "(() => { const t = document.getElementById('total-requests').textContent; \
    return /^[0-9,]+$/.test(t) ? t.replace(/,/g, '') : null; })()";

/// The text of the element `id` when it contains `part` (else false).
fn text_with(id: &str, part: &str) -> String {
    format!("(t => t.includes({part:?}) && t)(document.getElementById({id:?}).textContent)")
}

/// What the page shows for target `address`: healthy, ejected or unhealthy.
fn health_of(address: &str) -> String {
    format!("document.querySelector('#upstreams tr[data-target=\"{address}\"]')?.dataset.health")
}

/// Upstream `api` with two targets and an active health check every
/// 100 ms, a router naming every request's route `api`, and a second plugin.
fn two_targets(a: &Backend, b: &Backend) -> Setup {
    let health = "[upstreams.api.health]\npath = \"/healthz\"\ninterval_ms = 100\n\
                  unhealthy_after = 1\nhealthy_after = 1";
    Setup::new()
        .upstream_with(
            "api",
            &format!("targets = [{:?}, {:?}]\n{health}", a.url(), b.url()),
        )
        .scripted(
            "10-route",
            json!({"on_request": [
                {"op": "set_context", "key": "route", "value": "api"},
                {"op": "set_upstream", "name": "api"}]}),
        )
        .plugin("20-hello", "hello_header", None)
}

#[tokio::test]
async fn one_live_page_shows_the_pipeline_traffic_health_and_reloads() {
    let (a, b) = (Backend::start().await, Backend::start().await);
    let setup = two_targets(&a, &b);
    let process = Process::start(&setup.write()).await;
    let mut browser = Browser::launch(1280, 1000).await;
    browser.navigate(&process.admin_url("/")).await;

    let names = browser.wait_for(PIPELINE, WAIT, "the pipeline").await;
    assert_eq!(names, json!(["10-route", "20-hello"]));
    assert_eq!(browser.eval("location.pathname").await, "/ui");
    // Each plugin's grants (none configured here: all).
    let grants = "document.querySelector('#pipeline tr[data-plugin=\"20-hello\"]').textContent";
    let row = browser.eval(grants).await;
    assert!(
        row.as_str()
            .unwrap()
            .contains("all (no [plugins.20-hello] capabilities)"),
        "{row}"
    );
    // Gone if the page were ever loaded again: what follows is live.
    browser.eval("window.sameSession = 'yes'").await;

    requests_are_counted(&mut browser, &process).await;
    let (a_health, b_health) = (
        health_of(&a.addr.to_string()),
        health_of(&b.addr.to_string()),
    );
    assert_eq!(
        browser.wait_for(&b_health, WAIT, "target b").await,
        "healthy"
    );
    b.kill();
    let unhealthy = format!("{b_health} === 'unhealthy'");
    browser
        .wait_for(&unhealthy, WAIT, "the killed backend shown unhealthy")
        .await;
    assert_eq!(browser.eval(&a_health).await, "healthy");

    browser
        .eval("document.querySelector('#reload').click()")
        .await;
    let result = browser
        .wait_for(
            &text_with("reload-result", "reloaded"),
            WAIT,
            "the reload result",
        )
        .await;
    assert!(result.as_str().unwrap().contains("2 plugins"), "{result}");
    let attempts = "document.getElementById('reload-attempts').textContent === '1'";
    browser
        .wait_for(attempts, WAIT, "the reload counted in the status")
        .await;
    let shot = browser.screenshot("dashboard.png").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);

    a_failed_reload_names_the_file(&mut browser, &setup).await;
    assert_eq!(browser.eval("window.sameSession").await, "yes");
}

/// Requests through the proxy raise the counter, and the route and the
/// hooks they ran get their rows.
async fn requests_are_counted(browser: &mut Browser, process: &Process) {
    let before = browser.wait_for(TOTAL, WAIT, "the requests counter").await;
    let before: u64 = before.as_str().unwrap().parse().unwrap();
    for _ in 0..25 {
        assert_eq!(get(&process.url("/items")).await.status, 200);
    }
    let after = format!(
        "(() => {{ const n = {TOTAL}; return n !== null && Number(n) >= {} && n; }})()",
        before + 25
    );
    browser
        .wait_for(&after, WAIT, "25 more requests counted")
        .await;
    let route = "document.querySelector('#routes tr[data-route=\"api\"]') !== null";
    browser.wait_for(route, WAIT, "the route `api`").await;
    let hook = "document.querySelector('#hooks tr[data-plugin=\"10-route\"][data-hook=\"on_request\"]') !== null";
    browser
        .wait_for(hook, WAIT, "the router's on_request timings")
        .await;
}

/// A broken plugin file: the reload fails, naming the file, and the
/// previous pipeline keeps serving.
async fn a_failed_reload_names_the_file(browser: &mut Browser, setup: &Setup) {
    std::fs::write(setup.plugins_dir().join("30-broken.wasm"), b"not wasm").unwrap();
    browser
        .eval("document.querySelector('#reload').click()")
        .await;
    browser
        .wait_for(
            &text_with("reload-result", "30-broken.wasm"),
            WAIT,
            "the failed reload's file",
        )
        .await;
    browser
        .wait_for(
            &text_with("reload-last-error", "30-broken.wasm"),
            WAIT,
            "the last reload error in the status",
        )
        .await;
    let row = "document.querySelector('#pipeline tr[data-status=\"error\"]')?.textContent";
    let row = browser.wait_for(row, WAIT, "the failed file's row").await;
    assert!(row.as_str().unwrap().contains("30-broken.wasm"), "{row}");
    assert_eq!(
        browser.eval(PIPELINE).await,
        json!(["10-route", "20-hello"])
    );
}

async fn admin(
    process: &Process,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(process.admin_url(path));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = weir::http::body::full(bytes::Bytes::from(body.to_string()));
    send(&client::http1(), builder.body(body).unwrap()).await
}

async fn login(process: &Process, token: &str) -> Reply {
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let body = format!("token={token}");
    admin(process, http::Method::POST, "/ui/login", &form, &body).await
}

const TOKEN: &str = "ui-s3cret";

#[tokio::test]
async fn behind_a_token_the_dashboard_needs_a_login_and_posts_need_the_csrf_header() {
    let backend = Backend::start().await;
    let setup = Setup::new()
        .admin(&format!("token = {TOKEN:?}"))
        .section("[metrics]\nenabled = false")
        .upstream("api", &[backend.url()])
        .scripted(
            "10-route",
            json!({"on_request": [{"op": "set_upstream", "name": "api"}]}),
        );
    let process = Process::start(&setup.write()).await;
    nothing_without_the_token(&process).await;
    let cookie = cookie_from_the_login(&process).await;
    let with_cookie = [("cookie", cookie.as_str())];
    let reads = admin(
        &process,
        http::Method::GET,
        "/admin/plugins",
        &with_cookie,
        "",
    )
    .await;
    assert_eq!(reads.status, 200);
    let forged = admin(
        &process,
        http::Method::POST,
        "/admin/reload",
        &with_cookie,
        "",
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.text());
    let own = [("cookie", cookie.as_str()), ("x-weir-csrf", "1")];
    let reload = admin(&process, http::Method::POST, "/admin/reload", &own, "").await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    let bearer = format!("Bearer {TOKEN}");
    let scripted = [("authorization", bearer.as_str())];
    let reload = admin(&process, http::Method::POST, "/admin/reload", &scripted, "").await;
    assert_eq!(reload.status, 200, "a bearer token needs no CSRF header");
    the_browser_logs_in(&process).await;
}

/// Without credentials: the login page (401) and 401 for the data; the
/// probes stay open.
async fn nothing_without_the_token(process: &Process) {
    let get_admin = |path: &'static str| admin(process, http::Method::GET, path, &[], "");
    let page = get_admin("/ui").await;
    assert_eq!(page.status, 401);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.text().contains(r#"action="/ui/login""#),
        "{}",
        page.text()
    );
    for path in [
        "/admin/plugins",
        "/admin/upstreams",
        "/metrics",
        "/ui/app.js",
    ] {
        assert_eq!(get_admin(path).await.status, 401, "{path}");
    }
    assert_eq!(get_admin("/healthz").await.status, 200);
    let root = get_admin("/").await;
    assert_eq!(
        (root.status.as_u16(), root.header("location")),
        (302, Some("/ui"))
    );
}

/// A wrong token gets the form again; the right one a session cookie that
/// is not the token.
async fn cookie_from_the_login(process: &Process) -> String {
    let wrong = login(process, "nope").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("Wrong token"), "{}", wrong.text());
    assert!(wrong.header("set-cookie").is_none());
    let right = login(process, TOKEN).await;
    assert_eq!(
        (right.status.as_u16(), right.header("location")),
        (303, Some("/ui"))
    );
    let set_cookie = right.header("set-cookie").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains(TOKEN),
        "the cookie holds the token: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    assert!(
        cookie.starts_with("weir_admin=") && cookie.len() > 40,
        "{cookie}"
    );
    cookie
}

/// The login form in the browser leads to the dashboard, which works on
/// the cookie (its Reload included) and says metrics are off.
async fn the_browser_logs_in(process: &Process) {
    let mut browser = Browser::launch(1280, 800).await;
    browser.navigate(&process.admin_url("/ui")).await;
    let form = "document.querySelector('form[action=\"/ui/login\"] input[name=token]') !== null";
    browser.wait_for(form, WAIT, "the login form").await;
    browser.screenshot("login.png").await;
    browser
        .eval(&format!(
            "document.querySelector('input[name=token]').value = {TOKEN:?}; \
             document.querySelector('form').submit()"
        ))
        .await;
    let names = browser
        .wait_for(PIPELINE, WAIT, "the pipeline after the login")
        .await;
    assert_eq!(names, json!(["10-route"]));
    browser
        .wait_for(
            &text_with("metrics-state", "Metrics are off"),
            WAIT,
            "the note that metrics are off",
        )
        .await;
    assert_eq!(
        browser.eval("document.cookie").await,
        "",
        "the cookie is HttpOnly"
    );
    browser
        .eval("document.querySelector('#reload').click()")
        .await;
    browser
        .wait_for(
            &text_with("reload-result", "reloaded"),
            WAIT,
            "the reload through the cookie and the CSRF header",
        )
        .await;
    browser.screenshot("dashboard-behind-token.png").await;
}
