//! Rules compiled from the config, and the decision for one client address.
//!
//! The semantics are nginx's `allow`/`deny` and Traefik's `ipAllowList`
//! combined: deny wins over allow, and a non-empty allow list refuses
//! everyone it does not name. A route's rule replaces the default rule
//! whole, as an nginx `location` with its own `allow`/`deny` does not
//! inherit the server's.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::cidr::Cidr;
use crate::config::{Config, RuleConfig};

/// One compiled rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

/// What a rule says about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It may pass.
    Allowed,
    /// It is in the deny list (whatever the allow list says).
    Denied,
    /// The allow list is not empty and does not name it.
    NotAllowed,
}

impl Rule {
    /// Compile `config`; `at` names the rule in errors (`default`,
    /// `routes.admin`).
    fn compile(at: &str, config: &RuleConfig) -> Result<Rule, String> {
        let list = |name: &str, entries: &[String]| {
            entries
                .iter()
                .enumerate()
                .map(|(i, e)| Cidr::parse(e).map_err(|why| format!("{at}.{name}[{i}]: {why}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Rule {
            allow: list("allow", &config.allow)?,
            deny: list("deny", &config.deny)?,
        })
    }

    /// Whether the rule lets every address through, so the client address
    /// need not even be asked for.
    pub fn allows_all(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// The decision for `ip`.
    pub fn decide(&self, ip: IpAddr) -> Decision {
        if self.deny.iter().any(|c| c.contains(ip)) {
            Decision::Denied
        } else if !self.allow.is_empty() && !self.allow.iter().any(|c| c.contains(ip)) {
            Decision::NotAllowed
        } else {
            Decision::Allowed
        }
    }
}

/// Every rule of the config.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    default: Rule,
    routes: BTreeMap<String, Rule>,
}

impl Policy {
    /// Compile the config; the first invalid entry is the error, named by
    /// its place (`routes.admin.allow[1]: ...`).
    pub fn compile(config: &Config) -> Result<Policy, String> {
        let default = Rule::compile("default", &config.default)?;
        let routes = config
            .routes
            .iter()
            .map(|(name, rule)| {
                Ok((
                    name.clone(),
                    Rule::compile(&format!("routes.{name}"), rule)?,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(Policy { default, routes })
    }

    /// Whether any route has a rule of its own: otherwise the route need
    /// not be asked for.
    pub fn has_routes(&self) -> bool {
        !self.routes.is_empty()
    }

    /// The rule for `route`, and whether it is the route's own.
    pub fn rule_for(&self, route: Option<&str>) -> (&Rule, bool) {
        match route.and_then(|r| self.routes.get(r)) {
            Some(rule) => (rule, true),
            None => (&self.default, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn rule(allow: &[&str], deny: &[&str]) -> Rule {
        let config = RuleConfig {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        };
        Rule::compile("test", &config).unwrap()
    }

    fn policy(json: serde_json::Value) -> Result<Policy, String> {
        let config: Config = serde_json::from_value(json).map_err(|e| e.to_string())?;
        Policy::compile(&config)
    }

    #[test]
    fn empty_lists_allow_everyone() {
        let r = rule(&[], &[]);
        assert!(r.allows_all());
        assert_eq!(r.decide(ip("203.0.113.9")), Decision::Allowed);
        assert_eq!(r.decide(ip("::1")), Decision::Allowed);
    }

    #[test]
    fn a_deny_list_alone_refuses_only_its_addresses() {
        let r = rule(&[], &["203.0.113.0/24"]);
        assert!(!r.allows_all());
        assert_eq!(r.decide(ip("203.0.113.9")), Decision::Denied);
        assert_eq!(r.decide(ip("198.51.100.1")), Decision::Allowed);
    }

    #[test]
    fn an_allow_list_refuses_everyone_else() {
        let r = rule(&["10.0.0.0/8", "::1"], &[]);
        assert_eq!(r.decide(ip("10.2.3.4")), Decision::Allowed);
        assert_eq!(r.decide(ip("::1")), Decision::Allowed);
        assert_eq!(r.decide(ip("11.0.0.1")), Decision::NotAllowed);
        assert_eq!(r.decide(ip("::2")), Decision::NotAllowed);
    }

    #[test]
    fn deny_wins_over_allow() {
        let r = rule(&["10.0.0.0/8"], &["10.6.6.0/24"]);
        assert_eq!(r.decide(ip("10.6.6.6")), Decision::Denied);
        assert_eq!(r.decide(ip("10.7.0.1")), Decision::Allowed);
        // Even when the same block is on both lists.
        let r = rule(&["127.0.0.1"], &["127.0.0.1"]);
        assert_eq!(r.decide(ip("127.0.0.1")), Decision::Denied);
    }

    #[test]
    fn ipv4_mapped_clients_are_judged_as_ipv4() {
        let r = rule(&["127.0.0.0/8"], &["127.0.0.2"]);
        assert_eq!(r.decide(ip("::ffff:127.0.0.1")), Decision::Allowed);
        assert_eq!(r.decide(ip("::ffff:127.0.0.2")), Decision::Denied);
    }

    #[test]
    fn a_route_rule_replaces_the_default_whole() {
        let p = policy(serde_json::json!({
            "default": {"deny": ["203.0.113.0/24"]},
            "routes": {
                "admin": {"allow": ["10.0.0.0/8"]},
                "open": {}
            }
        }))
        .unwrap();
        assert!(p.has_routes());
        let (default, own) = p.rule_for(None);
        assert!(!own);
        assert_eq!(default.decide(ip("203.0.113.9")), Decision::Denied);
        // A route without a rule of its own gets the default.
        let (other, own) = p.rule_for(Some("users"));
        assert!(!own);
        assert_eq!(other, default);
        // admin's allow list applies, and the default's deny list does not.
        let (admin, own) = p.rule_for(Some("admin"));
        assert!(own);
        assert_eq!(admin.decide(ip("10.1.1.1")), Decision::Allowed);
        assert_eq!(admin.decide(ip("198.51.100.1")), Decision::NotAllowed);
        // An empty route rule opens its route.
        let (open, _) = p.rule_for(Some("open"));
        assert_eq!(open.decide(ip("203.0.113.9")), Decision::Allowed);
    }

    #[test]
    fn an_invalid_entry_is_named_by_its_place() {
        let err = policy(serde_json::json!({"default": {"deny": ["10.0.0.0/8", "10.0.0.300"]}}))
            .unwrap_err();
        assert_eq!(
            err,
            "default.deny[1]: `10.0.0.300` is not an IP address or CIDR"
        );
        let err =
            policy(serde_json::json!({"routes": {"admin": {"allow": ["::1/200"]}}})).unwrap_err();
        assert_eq!(
            err,
            "routes.admin.allow[0]: `::1/200`: the prefix must be 0..=128"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(policy(serde_json::json!({"default": {"alow": []}})).is_err());
        assert!(policy(serde_json::json!({"route": {}})).is_err());
    }

    #[test]
    fn the_sample_config_allows_everyone() {
        let p = policy(serde_json::from_str(include_str!("../sample.json")).unwrap()).unwrap();
        assert!(!p.has_routes());
        assert!(p.rule_for(None).0.allows_all());
    }
}
