//! The default router: chooses the upstream for each request by path prefix
//! (the longest matching prefix wins) and records the route's name in the
//! request context under `route`. No match → 404 `{"error": "no route"}`.

use serde::Deserialize;
use weir_sdk::{Action, Plugin, Reply, Request, export_plugin};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    routes: Vec<Route>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    name: String,
    path_prefix: String,
    upstream: String,
}

struct Router {
    /// Longest prefix first, so the first match is the most specific.
    routes: Vec<Route>,
}

/// Whether `path` is `prefix` or lies below it (`/api` matches `/api/x`, not `/apix`).
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl Router {
    fn find(&self, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| prefix_matches(&r.path_prefix, path))
    }
}

impl Plugin for Router {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let mut routes = config.routes;
        if let Some(bad) = routes.iter().find(|r| !r.path_prefix.starts_with('/')) {
            return Err(format!(
                "route `{}`: path_prefix must start with `/`",
                bad.name
            ));
        }
        // Stable sort keeps file order among equal lengths.
        routes.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
        Ok(Router { routes })
    }

    fn on_request(&mut self, req: &Request) -> Action {
        let path = req.path();
        let Some(route) = self.find(&path) else {
            return Reply::json(404, &serde_json::json!({"error": "no route", "path": path}))
                .into();
        };
        if req.set_upstream(&route.upstream).is_err() {
            weir_sdk::error!(
                "route `{}` names unknown upstream `{}`",
                route.name,
                route.upstream
            );
            return Reply::json(
                502,
                &serde_json::json!({"error": "unknown upstream", "route": route.name}),
            )
            .into();
        }
        req.set_context("route", &route.name);
        Action::Continue
    }
}

export_plugin!(Router);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/users"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(prefix_matches("/api/", "/api/users"));
    }

    #[test]
    fn longest_prefix_wins() {
        let route = |name: &str, prefix: &str| Route {
            name: name.into(),
            path_prefix: prefix.into(),
            upstream: "u".into(),
        };
        let router = Router::new(Config {
            routes: vec![
                route("root", "/"),
                route("api", "/api"),
                route("users", "/api/users"),
            ],
        })
        .unwrap();
        assert_eq!(router.find("/api/users/7").unwrap().name, "users");
        assert_eq!(router.find("/api/orders").unwrap().name, "api");
        assert_eq!(router.find("/other").unwrap().name, "root");
    }
}
