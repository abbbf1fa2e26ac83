//! Weir's default router: decides where each request goes.
//!
//! Routes match on path (exact, template with `{param}` and a final
//! `{*rest}`, segment-boundary prefix, or regex), method, host (exact or
//! `*.example.com`), headers and query parameters. The most specific path
//! wins: exact > template > longest prefix > regex, ties in config order.
//! A match sets the upstream (a route without one only names the request,
//! for a later plugin such as `aggregate` to answer), applies the route's
//! rewrite or prefix strip and header edits, and puts `route` (the name) and
//! `route.param.NAME` (each capture) in the request context for later
//! plugins.
//!
//! No route → 404 `{"error":"no route"}`; a path routed only for other
//! methods → 405 with `Allow`.

mod config;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod table;
mod template;

use table::{Facts, Outcome, PathKind, Table};
use weir_sdk::{Action, Hooks, Plugin, Reply, Request, export_plugin};

/// The plugin.
pub struct Router {
    table: Table,
}

/// Facts read from the request as the table asks for them: a route that
/// does not look at headers costs no header reads.
struct RequestFacts<'a> {
    req: &'a Request,
    method: String,
    path: String,
    query: Option<String>,
    host: Option<String>,
}

impl<'a> RequestFacts<'a> {
    fn new(req: &'a Request) -> Self {
        let pq = req.path_with_query();
        let (path, query) = match pq.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (pq, None),
        };
        let host = req.authority().map(|a| {
            let host = match a.rsplit_once(':') {
                // Keep IPv6 literals (`[::1]:80`) whole up to the port.
                Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
                _ => a,
            };
            host.to_ascii_lowercase()
        });
        RequestFacts {
            req,
            method: req.method(),
            path,
            query,
            host,
        }
    }
}

impl Facts for RequestFacts<'_> {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.req.header(name)
    }
    fn query(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| v.to_string())
        })
    }
}

fn json(status: u16, value: serde_json::Value) -> Action {
    Reply::json(status, &value).into()
}

impl Plugin for Router {
    type Config = config::Config;
    const HOOKS: Hooks = Hooks::ON_REQUEST;

    fn new(config: config::Config) -> Result<Self, String> {
        Ok(Router {
            table: Table::build(config.routes)?,
        })
    }

    fn on_request(&mut self, req: &Request) -> Action {
        let facts = RequestFacts::new(req);
        let matched = match self.table.find(&facts) {
            Outcome::Matched(m) => m,
            Outcome::NotFound => {
                return json(
                    404,
                    serde_json::json!({"error": "no route", "method": facts.method, "path": facts.path}),
                );
            }
            Outcome::MethodNotAllowed(allowed) => {
                let allow = allowed.join(", ");
                let body = serde_json::json!({"error": "method not allowed", "method": facts.method, "allow": allowed});
                return Reply::json(405, &body).header("allow", &allow).into();
            }
        };
        let route = matched.route;
        if let Some(upstream) = &route.upstream
            && req.set_upstream(upstream).is_err()
        {
            weir_sdk::error!("route `{}` names unknown upstream `{upstream}`", route.name);
            return json(
                502,
                serde_json::json!({"error": "unknown upstream", "route": route.name}),
            );
        }

        let new_path = match (&route.rewrite, matched.kind) {
            (Some(rewrite), _) => Some(rewrite.render(&matched.captures)),
            (None, PathKind::Prefix(len)) if route.strip_prefix => {
                let rest = &facts.path[len..];
                Some(if rest.starts_with('/') {
                    rest.to_string()
                } else {
                    format!("/{rest}")
                })
            }
            _ => None,
        };
        if let Some(path) = new_path {
            // The client's target, for plugins that speak of the resource
            // as the client names it (the cache invalidates by it).
            let original = match &facts.query {
                Some(q) => format!("{}?{q}", facts.path),
                None => facts.path.clone(),
            };
            req.set_context("route.original_target", &original);
            let target = match &facts.query {
                Some(q) if path.contains('?') => format!("{path}&{q}"),
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            if req.set_path_with_query(&target).is_err() {
                return json(
                    500,
                    serde_json::json!({"error": "bad rewrite", "route": route.name}),
                );
            }
        }

        let edits = &route.request_headers;
        for name in &edits.remove {
            req.remove_header(name);
        }
        for (name, value) in &edits.set {
            let _ = req.set_header(name, value);
        }
        for (name, value) in &edits.add {
            let _ = req.append_header(name, value);
        }

        req.set_context("route", &route.name);
        for (name, value) in &matched.captures {
            req.set_context(&format!("route.param.{name}"), value);
        }
        Action::Continue
    }
}

export_plugin!(Router);
