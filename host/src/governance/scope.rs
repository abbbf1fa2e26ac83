//! Where each plugin runs. A plugin limited to routes or hosts, by the
//! operator (`[plugins.NAME] routes`, `hosts`) or by itself (the routes its
//! `init` declared through `interest.only-routes`), is left out of the
//! chains of the others; where both limit its routes, it runs on the routes
//! both name. Every chain is computed when the pipeline is built, one per
//! (host group, route) pair named anywhere in the config, so a request
//! pays one host lookup and one route lookup whatever the number of
//! plugins skipped.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{OnFailure, PluginPolicy};
use crate::runtime::bindings::Hooks;

/// One plugin as scoping sees it.
pub struct Scoped<'a> {
    /// The hooks it declared.
    pub hooks: Hooks,
    /// Its `[plugins.NAME]` table, if any.
    pub policy: Option<&'a PluginPolicy>,
    /// The routes the plugin declared it acts on; `None`: every route.
    pub declared: Option<&'a [String]>,
}

/// The chains of a pipeline, by host group and route.
#[derive(Debug, Default)]
pub struct Scopes {
    /// Host names named by some plugin (lowercase) and their group; group 0
    /// is every other host.
    hosts: Vec<(String, usize)>,
    /// Route names named by some plugin and their index; 0 is "no route
    /// yet" and every route no plugin names.
    routes: HashMap<String, usize>,
    route_count: usize,
    /// `on-request` chains in order, at `host * route_count + route`.
    request: Vec<Arc<[usize]>>,
    /// `on-response` chains in reverse order, likewise.
    response: Vec<Arc<[usize]>>,
    /// Each plugin's failure policy.
    on_failure: Vec<OnFailure>,
}

/// Where a request stands: its host group and route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    host: usize,
    route: usize,
}

impl Scopes {
    /// The chains for `plugins`, in pipeline order.
    pub fn build(plugins: &[Scoped<'_>]) -> Scopes {
        let mut host_names: Vec<String> = Vec::new();
        let mut route_names: Vec<String> = Vec::new();
        for policy in plugins.iter().filter_map(|p| p.policy) {
            for host in policy.hosts.iter().flatten() {
                push_new(&mut host_names, host.to_ascii_lowercase());
            }
            for route in policy.routes.iter().flatten() {
                push_new(&mut route_names, route.clone());
            }
        }
        for route in plugins.iter().filter_map(|p| p.declared).flatten() {
            push_new(&mut route_names, route.clone());
        }
        let hosts: Vec<(String, usize)> = host_names
            .iter()
            .enumerate()
            .map(|(i, h)| (h.clone(), i + 1))
            .collect();
        let routes: HashMap<String, usize> = route_names
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), i + 1))
            .collect();
        let route_count = route_names.len() + 1;
        let mut request = Vec::new();
        let mut response = Vec::new();
        for host in 0..=host_names.len() {
            let host_name = host.checked_sub(1).and_then(|i| host_names.get(i));
            for route in 0..route_count {
                let route_name = route.checked_sub(1).and_then(|i| route_names.get(i));
                let runs = |hook: Hooks| -> Vec<usize> {
                    (0..plugins.len())
                        .filter(|&i| {
                            plugins.get(i).is_some_and(|p| {
                                p.hooks.contains(hook)
                                    && applies(p.policy, host_name, route_name)
                                    && declared_for(p.declared, route_name)
                            })
                        })
                        .collect()
                };
                request.push(Arc::from(runs(Hooks::ON_REQUEST)));
                let mut back = runs(Hooks::ON_RESPONSE);
                back.reverse();
                response.push(Arc::from(back));
            }
        }
        let on_failure = plugins
            .iter()
            .map(|p| p.policy.map(|p| p.on_failure).unwrap_or_default())
            .collect();
        Scopes {
            hosts,
            routes,
            route_count,
            request,
            response,
            on_failure,
        }
    }

    /// Where a request for `host` (a `Host` header or URI authority,
    /// perhaps with a port) stands before any route is known.
    pub fn place(&self, host: Option<&str>) -> Place {
        if self.hosts.is_empty() {
            return Place::default();
        }
        let name = host.map(strip_port).unwrap_or("");
        let host = self
            .hosts
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map_or(0, |(_, group)| *group);
        Place { host, route: 0 }
    }

    /// `place` once the router has named `route`.
    pub fn routed(&self, place: Place, route: &str) -> Place {
        Place {
            route: self.routes.get(route).copied().unwrap_or(0),
            ..place
        }
    }

    /// The plugins whose `on-request` runs at `place`, in order.
    pub fn request_chain(&self, place: Place) -> &[usize] {
        self.request
            .get(place.host * self.route_count + place.route)
            .map_or(&[], |c| c)
    }

    /// The plugins whose `on-response` runs at `place`, in reverse order.
    pub fn response_chain(&self, place: Place) -> &[usize] {
        self.response
            .get(place.host * self.route_count + place.route)
            .map_or(&[], |c| c)
    }

    /// What a failure of plugin `index` does.
    pub fn on_failure(&self, index: usize) -> OnFailure {
        self.on_failure.get(index).copied().unwrap_or_default()
    }
}

/// Whether a plugin with `policy` runs for `host` (None: a host no plugin
/// names) and `route` (None: not known yet, or named by no plugin).
fn applies(policy: Option<&PluginPolicy>, host: Option<&String>, route: Option<&String>) -> bool {
    let Some(policy) = policy else {
        return true;
    };
    let host_ok = match &policy.hosts {
        None => true,
        Some(hosts) => host.is_some_and(|h| hosts.iter().any(|x| x.eq_ignore_ascii_case(h))),
    };
    let route_ok = match &policy.routes {
        None => true,
        Some(routes) => route.is_some_and(|r| routes.contains(r)),
    };
    host_ok && route_ok
}

/// Whether a plugin that declared `declared` routes wants `route` (None:
/// not known yet, or named by no plugin).
fn declared_for(declared: Option<&[String]>, route: Option<&String>) -> bool {
    match declared {
        None => true,
        Some(routes) => route.is_some_and(|r| routes.contains(r)),
    }
}

fn push_new(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> PluginPolicy {
        toml::from_str(text).unwrap()
    }

    fn both() -> Hooks {
        Hooks::ON_REQUEST | Hooks::ON_RESPONSE
    }

    #[test]
    fn unscoped_plugins_run_everywhere() {
        let scopes = Scopes::build(&[
            Scoped {
                hooks: both(),
                policy: None,
                declared: None,
            },
            Scoped {
                hooks: Hooks::ON_RESPONSE,
                policy: None,
                declared: None,
            },
        ]);
        let place = scopes.place(Some("any.example:80"));
        assert_eq!(scopes.request_chain(place), [0]);
        assert_eq!(scopes.response_chain(place), [1, 0]);
        assert_eq!(scopes.request_chain(scopes.routed(place, "x")), [0]);
    }

    #[test]
    fn route_scoped_plugins_join_once_their_route_is_known() {
        let orders = policy("routes = [\"orders\"]");
        let scopes = Scopes::build(&[
            Scoped {
                hooks: both(),
                policy: None,
                declared: None,
            },
            Scoped {
                hooks: both(),
                policy: Some(&orders),
                declared: None,
            },
            Scoped {
                hooks: both(),
                policy: None,
                declared: None,
            },
        ]);
        let start = scopes.place(None);
        assert_eq!(scopes.request_chain(start), [0, 2]);
        let routed = scopes.routed(start, "orders");
        assert_eq!(scopes.request_chain(routed), [0, 1, 2]);
        assert_eq!(scopes.response_chain(routed), [2, 1, 0]);
        let users = scopes.routed(start, "users");
        assert_eq!(scopes.request_chain(users), [0, 2]);
        assert_eq!(scopes.response_chain(users), [2, 0]);
    }

    #[test]
    fn host_and_route_scopes_combine() {
        let api = policy("hosts = [\"API.example.com\"]");
        let api_orders = policy("hosts = [\"api.example.com\"]\nroutes = [\"orders\"]");
        let scopes = Scopes::build(&[
            Scoped {
                hooks: both(),
                policy: Some(&api),
                declared: None,
            },
            Scoped {
                hooks: both(),
                policy: Some(&api_orders),
                declared: None,
            },
        ]);
        let api_place = scopes.place(Some("api.example.COM:8443"));
        assert_eq!(scopes.request_chain(api_place), [0]);
        assert_eq!(
            scopes.request_chain(scopes.routed(api_place, "orders")),
            [0, 1]
        );
        let other = scopes.place(Some("www.example.com"));
        assert!(
            scopes
                .request_chain(scopes.routed(other, "orders"))
                .is_empty()
        );
        assert!(scopes.request_chain(scopes.place(None)).is_empty());
    }

    #[test]
    fn declared_routes_scope_a_plugin_and_meet_the_operators() {
        let orders_users = policy("routes = [\"orders\", \"users\"]");
        let declared = ["orders".to_string(), "carts".to_string()];
        let none: [String; 0] = [];
        let scopes = Scopes::build(&[
            // The router: everywhere.
            Scoped {
                hooks: both(),
                policy: None,
                declared: None,
            },
            // Declared orders and carts.
            Scoped {
                hooks: both(),
                policy: None,
                declared: Some(&declared),
            },
            // Declared orders and carts, scoped by the operator to orders
            // and users: orders only.
            Scoped {
                hooks: Hooks::ON_REQUEST,
                policy: Some(&orders_users),
                declared: Some(&declared),
            },
            // Declared no route at all.
            Scoped {
                hooks: both(),
                policy: None,
                declared: Some(&none),
            },
        ]);
        let start = scopes.place(None);
        assert_eq!(scopes.request_chain(start), [0]);
        assert_eq!(scopes.response_chain(start), [0]);
        let orders = scopes.routed(start, "orders");
        assert_eq!(scopes.request_chain(orders), [0, 1, 2]);
        assert_eq!(scopes.response_chain(orders), [1, 0]);
        let carts = scopes.routed(start, "carts");
        assert_eq!(scopes.request_chain(carts), [0, 1]);
        let users = scopes.routed(start, "users");
        assert_eq!(scopes.request_chain(users), [0]);
        // A route nobody names shares the "no route" chain.
        assert_eq!(scopes.request_chain(scopes.routed(start, "other")), [0]);
    }

    #[test]
    fn failure_policy_is_per_plugin() {
        let skip = policy("on_failure = \"skip\"");
        let scopes = Scopes::build(&[
            Scoped {
                hooks: both(),
                policy: None,
                declared: None,
            },
            Scoped {
                hooks: both(),
                policy: Some(&skip),
                declared: None,
            },
        ]);
        assert_eq!(scopes.on_failure(0), OnFailure::Reject);
        assert_eq!(scopes.on_failure(1), OnFailure::Skip);
        assert_eq!(scopes.on_failure(7), OnFailure::Reject);
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("a.example:80"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
