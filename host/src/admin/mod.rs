//! The admin API, on its own listener (loopback by default):
//!
//! - `GET /healthz`: the process is up (no token needed);
//! - `GET /readyz`: a pipeline is loaded (no token needed);
//! - `GET /metrics`: Prometheus / OpenMetrics text (`metrics.rs`);
//! - `GET /admin/plugins`: each plugin's name, file, SHA-256, load time,
//!   status, calls, failures, quarantine and canary, and the last reload
//!   error if any;
//! - `GET /admin/upstreams`: targets, health and requests in flight;
//! - `GET /admin/tls`: the HTTPS listener's certificates (names, expiry,
//!   load time) and the last certificate reload error;
//! - `POST /admin/reload`: reload now; 200 with the plugins, or 422 with the
//!   error (the previous pipeline keeps serving);
//! - `POST /admin/plugins/NAME/kv/purge?pattern=GLOB`: remove the plugin's
//!   `kv` keys matching the pattern (`*` is a wildcard), e.g. to purge the
//!   cache plugin's entries;
//! - `POST`/`DELETE /admin/plugins/NAME/quarantine`, `POST
//!   /admin/plugins/NAME/promote`: quarantine by hand, lift, promote a
//!   canary (`governance.rs`);
//! - `GET /ui`: the web dashboard (`GET /` redirects there), with its
//!   login `POST /ui/login` (`ui/`).
//!
//! With `[admin] token`, `/metrics`, `/ui` and the `/admin/*` paths need
//! `Authorization: Bearer`, or the dashboard's session cookie (mutating
//! requests then also `x-weir-csrf: 1`).
//!
//! The listener (`listener.rs`) caps connections, times out slow and idle
//! ones and backs off on accept errors, with limits of its own.

mod governance;
pub mod listener;
pub mod metrics;
mod ui;

pub use listener::{AdminLimits, serve};

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::error::json_response;
use crate::http::body::Body;
use crate::http::timefmt::rfc3339;
use crate::reload::Reloader;

/// What the admin API serves.
pub struct Admin {
    reloader: Arc<Reloader>,
    token: Option<String>,
}

impl Admin {
    /// The admin API for `reloader`'s gateway.
    pub fn new(reloader: Arc<Reloader>, token: Option<String>) -> Arc<Admin> {
        Arc::new(Admin { reloader, token })
    }

    /// Answer one request.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path().to_string();
        let method = request.method().clone();
        match (method.clone(), path.as_str()) {
            (Method::GET, "/healthz") => {
                return json_response(StatusCode::OK, &json!({"status": "live"}));
            }
            (Method::GET, "/readyz") => {
                let plugins = self.reloader.gateway().pipeline().plugins().len();
                return json_response(
                    StatusCode::OK,
                    &json!({"status": "ready", "plugins": plugins}),
                );
            }
            _ => {}
        }
        let access = self.authorized(&request);
        if ui::serves(&path) {
            return ui::handle(request, self.token.as_deref(), access).await;
        }
        if let Some(refused) = ui::refusal(access) {
            return refused;
        }
        if let Some(rest) = path.strip_prefix("/admin/plugins/") {
            return self
                .plugin_action(&method, rest, request.uri().query())
                .await;
        }
        match (method, path.as_str()) {
            (Method::GET, "/metrics") if !self.reloader.gateway().stores().telemetry.enabled() => {
                json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": "metrics are off ([metrics] enabled = false)"}),
                )
            }
            (Method::GET, "/metrics") => match metrics::render(self.reloader.gateway()) {
                Ok(text) => {
                    let mut response = Response::new(crate::http::body::full(text));
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(metrics::CONTENT_TYPE),
                    );
                    response
                }
                Err(_) => json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"error": "metrics could not be encoded"}),
                ),
            },
            (Method::GET, "/admin/plugins") => json_response(StatusCode::OK, &self.plugins()),
            (Method::GET, "/admin/upstreams") => json_response(StatusCode::OK, &self.upstreams()),
            (Method::GET, "/admin/tls") => match self.reloader.tls() {
                Some(tls) => json_response(StatusCode::OK, &tls.status()),
                None => json_response(StatusCode::OK, &json!({"listen": null})),
            },
            (Method::POST, "/admin/reload") => match self.reloader.reload("admin API").await {
                Ok(_) => json_response(
                    StatusCode::OK,
                    &json!({"status": "reloaded", "plugins": self.plugins().get("plugins")}),
                ),
                Err(e) => json_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &json!({"status": "failed", "file": e.file.display().to_string(), "error": e.message}),
                ),
            },
            (
                _,
                "/admin/plugins" | "/admin/upstreams" | "/admin/tls" | "/admin/reload" | "/metrics"
                | "/healthz" | "/readyz",
            ) => json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method not allowed"}),
            ),
            _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"})),
        }
    }

    /// `/admin/plugins/NAME/...`.
    async fn plugin_action(
        &self,
        method: &Method,
        rest: &str,
        query: Option<&str>,
    ) -> Response<Body> {
        let Some((name, action)) = rest.split_once('/') else {
            return json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"}));
        };
        let known = self
            .reloader
            .gateway()
            .pipeline()
            .plugins()
            .iter()
            .any(|p| p.name() == name);
        if !known {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "no such plugin", "plugin": name}),
            );
        }
        match (method, action) {
            (&Method::POST, "kv/purge") => {
                let Some(pattern) = query_param(query, "pattern") else {
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": "`pattern` is required, e.g. ?pattern=GET:/users/*"}),
                    );
                };
                match self
                    .reloader
                    .gateway()
                    .stores()
                    .kv
                    .purge(name, &pattern)
                    .await
                {
                    Ok(purged) => json_response(
                        StatusCode::OK,
                        &json!({"plugin": name, "pattern": pattern, "purged": purged}),
                    ),
                    Err(e) => json_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({"error": e.to_string()}),
                    ),
                }
            }
            (&Method::POST, "quarantine") => {
                governance::quarantine(&self.reloader.gateway().pipeline(), name, true)
            }
            (&Method::DELETE, "quarantine") => {
                governance::quarantine(&self.reloader.gateway().pipeline(), name, false)
            }
            (&Method::POST, "promote") => governance::promote(&self.reloader, name).await,
            (_, "kv/purge" | "quarantine" | "promote") => json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method not allowed"}),
            ),
            _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"})),
        }
    }

    /// The bearer token, or else the dashboard's session cookie.
    fn authorized(&self, request: &Request<Incoming>) -> ui::Access {
        let Some(token) = &self.token else {
            return ui::Access::Granted;
        };
        let presented = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(presented) if same_secret(presented.as_bytes(), token.as_bytes()) => {
                ui::Access::Granted
            }
            _ => ui::by_cookie(token, request.method(), request.headers()),
        }
    }

    fn plugins(&self) -> Value {
        let pipeline = self.reloader.gateway().pipeline();
        let status = self.reloader.status();
        let failed = status.last_error.as_ref();
        let mut plugins: Vec<Value> = pipeline
            .plugins()
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let info = p.info();
                let last_error = failed
                    .filter(|e| e.file == info.file || Some(&e.file) == info.config_file.as_ref())
                    .map(|e| e.message.clone());
                json!({
                    "name": info.name,
                    "file": info.file.display().to_string(),
                    "config_file": info.config_file.as_ref().map(|f| f.display().to_string()),
                    "sha256": info.sha256,
                    "loaded_at": rfc3339(info.loaded_at),
                    "contract": info.contract,
                    "kind": p.kind(),
                    "hooks": hook_names(p.hooks()),
                    // The routes the plugin declared it acts on (null: all).
                    "routes": p.routes(),
                    "log_lines_dropped": p.log_lines_dropped(),
                    "status": "active",
                    "instances_idle": p.idle_instances(),
                    "last_error": last_error,
                    "imports": info.imports.iter().map(|c| c.name()).collect::<Vec<_>>(),
                    "grants": info.grants.describe(&info.name),
                    "governance": governance::describe(&pipeline, index),
                })
            })
            .collect();
        // A file that failed and is not (or no longer) serving.
        if let Some(error) = failed
            && !pipeline.plugins().iter().any(|p| {
                p.info().file == error.file || p.info().config_file.as_ref() == Some(&error.file)
            })
        {
            plugins.push(json!({
                "file": error.file.display().to_string(),
                "status": "error",
                "last_error": error.message,
            }));
        }
        json!({
            "plugins": plugins,
            "reload": {
                "attempts": status.attempts,
                "last_attempt": status.last_attempt.map(rfc3339),
                "last_success": status.last_success.map(rfc3339),
                "last_error": failed.map(|e| json!({"file": e.file.display().to_string(), "error": e.message})),
            }
        })
    }

    fn upstreams(&self) -> Value {
        let pipeline = self.reloader.gateway().pipeline();
        let now = tokio::time::Instant::now();
        let upstreams: Vec<Value> = pipeline
            .upstreams()
            .iter()
            .map(|u| {
                let targets: Vec<Value> = u
                    .targets()
                    .iter()
                    .map(|t| {
                        json!({
                            "address": t.authority().to_string(),
                            "healthy": t.checked_healthy(),
                            "available": t.available(now),
                            "in_flight": t.in_flight(),
                            "from": t.origin(),
                            "server_name": t.server_name(),
                            "weight": t.weight(),
                        })
                    })
                    .collect();
                let time = |t: Option<std::time::SystemTime>| {
                    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_millis() as u64)
                };
                // Only upstreams with targets named by DNS have a status.
                let discovery = u.discovery().map(|status| {
                    json!({
                        "last_resolved_unix_ms": time(status.last_resolved),
                        "next_refresh_unix_ms": time(status.next_refresh),
                        "last_error": status.last_error,
                    })
                });
                json!({"name": u.name(), "targets": targets, "discovery": discovery})
            })
            .collect();
        json!({ "upstreams": upstreams })
    }
}

/// The percent-decoded value of `key` in a query string.
fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

/// Percent-decode (`+` is a space, as in forms); invalid UTF-8 is replaced.
fn percent_decode(text: &str) -> String {
    // `+` first: a `%2B` decodes to a `+` that stays one.
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn hook_names(hooks: crate::runtime::bindings::Hooks) -> Vec<&'static str> {
    use crate::runtime::bindings::Hooks;
    [
        (Hooks::ON_REQUEST, "on-request"),
        (Hooks::ON_RESPONSE, "on-response"),
    ]
    .into_iter()
    .filter(|(hook, _)| hooks.contains(*hook))
    .map(|(_, name)| name)
    .collect()
}

/// Compare secrets in constant time: hash both (so lengths do not show),
/// then compare every byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest;
    let (a, b) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found_and_decoded() {
        let q = Some("a=1&pattern=GET%3A%2Fusers%2F*&x");
        assert_eq!(query_param(q, "pattern").as_deref(), Some("GET:/users/*"));
        assert_eq!(query_param(q, "x").as_deref(), Some(""));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param(None, "a"), None);
        assert_eq!(percent_decode("a+b%2"), "a b%2");
    }
}
