//! Weir's default forward-auth plugin: each request is first put to an
//! auth service over HTTP, as Traefik's `forwardAuth` and Envoy's
//! `ext_authz` (HTTP mode) do.
//!
//! The check goes to a `[upstreams.NAME]` through the `outbound`
//! capability, with the chosen client headers and `X-Forwarded-Method`,
//! `-Proto`, `-Host`, `-Uri` and `-For` (the client IP as the gateway
//! resolved it). A 2xx lets the request go on, carrying the chosen headers
//! of that answer, whose client-sent values are removed first so they
//! cannot be forged. Any other answer (401, 403, a 302 to a login page) is
//! what the client gets, as the auth service gave it. No answer (timeout,
//! connection failure, any call error) fails closed: 503 with an RFC 9457
//! problem. Allowing decisions may be kept in `kv` for `cache_ttl_ms`.

mod call;
mod config;
mod verdict;

use call::Facts;
use config::{Config, Scope, Settings};
use verdict::Verdict;
use weir_sdk::outbound::{self, Call};
use weir_sdk::{Action, Hooks, Plugin, Request, export_plugin, kv};

/// The plugin.
pub struct ForwardAuth {
    settings: Settings,
}

impl Plugin for ForwardAuth {
    type Config = Config;
    const HOOKS: Hooks = Hooks::ON_REQUEST;

    fn new(config: Config) -> Result<Self, String> {
        Ok(ForwardAuth {
            settings: Settings::from_config(config)?,
        })
    }

    fn on_request(&mut self, req: &Request) -> Action {
        // The route is asked of the host only when it decides something.
        let route = match self.settings.needs_route() {
            true => req.get_context("route"),
            false => None,
        };
        match self.settings.scope(route.as_deref()) {
            // Wherever the plugin does not ask, a client still cannot claim
            // an identity the auth service vouches for: an upstream that
            // trusts `x-user-id` on one route may serve others too.
            Scope::Untouched | Scope::Public => {
                self.remove_vouched_headers(req);
                return Action::Continue;
            }
            Scope::Checked => {}
        }
        let sent = call::headers(self.facts(req));
        let key = (self.settings.cache_ttl_ms > 0).then(|| call::cache_key(&self.settings, &sent));
        if let Some(copy) = key.as_deref().and_then(cached) {
            return self.admit(req, &copy);
        }
        let check = Call {
            upstream: self.settings.upstream.clone(),
            method: self.settings.method.clone(),
            path_with_query: self.settings.path.clone(),
            headers: sent,
            body: Vec::new(),
            timeout_ms: Some(self.settings.timeout_ms),
        };
        let answer = match outbound::send(&check) {
            Ok(answer) => answer,
            Err(error) => {
                weir_sdk::warn!(
                    "auth service `{}` gave no decision: {error:?}",
                    self.settings.upstream
                );
                return verdict::unavailable(verdict::failure_kind(&error)).into();
            }
        };
        match verdict::judge(answer, &self.settings.response_headers) {
            Verdict::Allow(copy) => {
                if let Some(key) = &key {
                    self.remember(key, &copy);
                }
                self.admit(req, &copy)
            }
            Verdict::Deny(reply) => reply.into(),
        }
    }
}

/// A decision kept in `kv`, if any. A store that fails is a miss: the auth
/// service is asked, so an outage of the store never lets a request by.
fn cached(key: &str) -> Option<Vec<(String, String)>> {
    match kv::get(key) {
        Ok(Some(bytes)) => verdict::decode(&bytes),
        Ok(None) => None,
        Err(error) => {
            weir_sdk::debug!("decision cache unavailable: {error:?}");
            None
        }
    }
}

impl ForwardAuth {
    /// What the check needs to know of the client's request.
    fn facts(&self, req: &Request) -> Facts {
        let copied = self
            .settings
            .request_headers
            .iter()
            .flat_map(|name| {
                req.header_all(name)
                    .into_iter()
                    .map(move |value| (name.clone(), value))
            })
            .collect();
        Facts {
            method: req.method(),
            uri: req.path_with_query(),
            host: req.authority(),
            proto: if req.tls().is_some() { "https" } else { "http" },
            client_ip: req.client_ip(),
            copied,
        }
    }

    /// Keep an allowing decision. A failed write (quota, store outage) only
    /// costs a later request a call to the auth service.
    fn remember(&self, key: &str, copy: &[(String, String)]) {
        let bytes = verdict::encode(copy);
        if let Err(error) = kv::set(key, &bytes, Some(self.settings.cache_ttl_ms)) {
            weir_sdk::debug!("decision not cached: {error:?}");
        }
    }

    /// Let the request go on with the auth service's headers, replacing
    /// whatever the client sent under those names; names the answer lacks
    /// are removed.
    fn admit(&self, req: &Request, copy: &[(String, String)]) -> Action {
        for name in &self.settings.response_headers {
            if !copy.iter().any(|(n, _)| n == name) {
                req.remove_header(name);
            }
        }
        if copy.is_empty() {
            return Action::Continue;
        }
        match req.set_headers(copy) {
            Ok(()) => Action::Continue,
            Err(error) => {
                // The decision cannot be carried out as given: refuse
                // rather than pass the request on without it.
                weir_sdk::warn!("auth service headers could not be set: {error:?}");
                self.remove_vouched_headers(req);
                verdict::unavailable("answered with headers that could not be applied").into()
            }
        }
    }

    /// On public routes no client may claim what the auth service vouches
    /// for.
    fn remove_vouched_headers(&self, req: &Request) {
        for name in &self.settings.response_headers {
            req.remove_header(name);
        }
    }
}

export_plugin!(ForwardAuth);
