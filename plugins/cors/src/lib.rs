//! Weir's default CORS plugin: the gateway speaks the Fetch standard's CORS
//! protocol for the routes it is configured for, so upstreams need not.
//!
//! It runs after the router (it reads the `route` context value) and
//! before auth: a preflight carries no credentials, so it must be answered
//! before auth would refuse it, and auth's 401s must carry CORS headers
//! for the page to read them.
//!
//! - `on-request` answers every CORS preflight (`OPTIONS` with `Origin` and
//!   `Access-Control-Request-Method`) on a covered route itself, with 204:
//!   with the CORS headers when allowed, without any when not. The
//!   upstream never sees a preflight. Anything else goes on.
//! - `on-response` sets `Access-Control-Allow-Origin` and the rest on every
//!   other response of a covered route (the upstream's, a later plugin's
//!   reply, the gateway's own 502), removes an upstream's CORS headers, and
//!   appends `Vary: Origin` when the answer depends on the origin.
//!
//! `request.set-response-headers` would save the `on-response` call, but it
//! can only set: it cannot append to an upstream's `Vary`, remove an
//! upstream's `Access-Control-Allow-Origin` for a refused origin, or reach
//! the gateway's own error answers.
//!
//! Preflight decisions are counted in `weir_plugin_cors_preflights_total
//! {outcome}` (`allowed`, `origin_refused`, `method_refused`,
//! `headers_refused`).

mod config;
mod origin;
mod policy;

use std::collections::BTreeMap;

use config::Config;
use policy::Rule;
use weir_sdk::metrics::Counter;
use weir_sdk::{Action, Hooks, Plugin, Reply, Request, Response, export_plugin};

/// The plugin.
pub struct Cors {
    default: Option<Rule>,
    /// Rules by route; `None`: off on that route, whatever `default` says.
    routes: BTreeMap<String, Option<Rule>>,
    /// Whether any rule is on: otherwise both hooks return at once.
    on: bool,
    preflights: Counter,
}

impl Plugin for Cors {
    type Config = Config;
    const HOOKS: Hooks = Hooks::ON_REQUEST.union(Hooks::ON_RESPONSE);

    fn new(config: Config) -> Result<Self, String> {
        let default = match config.default {
            Some(value) => Rule::compile("default", config::rule("default", value)?)?,
            None => None,
        };
        let mut routes = BTreeMap::new();
        for (name, value) in config.routes {
            let at = format!("routes.{name}");
            routes.insert(name, Rule::compile(&at, config::rule(&at, value)?)?);
        }
        let on = default.is_some() || routes.values().any(Option::is_some);
        let preflights = Counter::define(
            "preflights",
            "CORS preflights answered by the gateway, by outcome (allowed, \
             origin_refused, method_refused, headers_refused)",
            &["outcome"],
        )?;
        Ok(Cors {
            default,
            routes,
            on,
            preflights,
        })
    }

    fn on_request(&mut self, req: &Request) -> Action {
        if !self.on || req.method() != "OPTIONS" {
            return Action::Continue;
        }
        // Fetch §3.3.2: a preflight is an OPTIONS request with `Origin` and
        // `Access-Control-Request-Method`; any other OPTIONS goes on.
        let Some(method) = req
            .header("access-control-request-method")
            .filter(|m| !m.is_empty())
        else {
            return Action::Continue;
        };
        let Some(origin) = req.header("origin") else {
            return Action::Continue;
        };
        let Some(rule) = self.rule_for(req) else {
            return Action::Continue;
        };
        let requested = req.header_all("access-control-request-headers").join(",");
        let answer = rule.preflight(&origin, &method, &requested);
        self.preflights.inc(&[answer.outcome.label()]);
        if answer.outcome != policy::Outcome::Allowed {
            weir_sdk::debug!(
                "preflight refused ({}): origin {origin}, method {method}, headers [{requested}]",
                answer.outcome.label()
            );
        }
        Action::Respond(Reply {
            status: 204,
            headers: answer.headers,
            body: Vec::new(),
        })
    }

    fn on_response(&mut self, req: &Request, resp: &Response) -> Action {
        if !self.on {
            return Action::Continue;
        }
        let Some(rule) = self.rule_for(req) else {
            return Action::Continue;
        };
        let origin = req.header("origin");
        let edits = rule.response(origin.as_deref(), &resp.headers());
        if !edits.set.is_empty() {
            // Names and values were checked when the config was: this only
            // fails past the header limits, where leaving the response
            // without CORS headers is the safe side.
            let _ = resp.set_headers(&edits.set);
        }
        for name in edits.remove {
            resp.remove_header(name);
        }
        if edits.vary_origin {
            let _ = resp.append_header("vary", "Origin");
        }
        Action::Continue
    }
}

impl Cors {
    /// The rule for the request's route, or `None` when CORS is off there.
    fn rule_for(&self, req: &Request) -> Option<&Rule> {
        // The route is asked of the host only when some route has a rule.
        if !self.routes.is_empty()
            && let Some(route) = req.get_context("route")
            && let Some(rule) = self.routes.get(&route)
        {
            return rule.as_ref();
        }
        self.default.as_ref()
    }
}

export_plugin!(Cors);

#[cfg(test)]
mod tests {
    use super::*;

    /// `weir init` ships `sample.json`: it must load, and change nothing
    /// until origins are listed; with them, the rest of it must be valid.
    #[test]
    fn the_sample_config_is_valid_and_changes_nothing() {
        let config: Config = serde_json::from_str(include_str!("../sample.json")).unwrap();
        assert!(config.routes.is_empty());
        let mut default = config.default.unwrap();
        let rule = config::rule("default", default.clone()).unwrap();
        assert!(Rule::compile("default", rule).unwrap().is_none());
        default["origins"] = serde_json::json!(["https://app.example.com"]);
        let rule = config::rule("default", default).unwrap();
        assert!(Rule::compile("default", rule).unwrap().is_some());
    }
}
