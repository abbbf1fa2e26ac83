//! What is sent to the auth service, and the decision cache's key for it.
//!
//! As Traefik's forwardAuth does, the check carries the chosen client
//! headers and `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri` and `-For`
//! describing the original request. The `X-Forwarded-*` values are always
//! the plugin's own: a client cannot make the auth service believe another
//! URI or address by sending them.

use sha2::{Digest, Sha256};

use crate::config::Settings;

/// The headers the plugin sets itself on every check.
pub const FORWARDED: [&str; 5] = [
    "x-forwarded-method",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-uri",
    "x-forwarded-for",
];

/// What the plugin read of the client's request.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub method: String,
    /// Path and query, as the request stands when the plugin runs.
    pub uri: String,
    /// The authority the client asked for, if any.
    pub host: Option<String>,
    /// `https` on a TLS listener, else `http`.
    pub proto: &'static str,
    /// `request.client-ip`: the address resolved through trusted proxies.
    pub client_ip: String,
    /// The values of the configured `request_headers`, in config order.
    pub copied: Vec<(String, String)>,
}

/// The headers of the check, in a fixed order (so equal requests give
/// equal cache keys).
pub fn headers(facts: Facts) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = facts
        .copied
        .into_iter()
        .filter(|(name, _)| !FORWARDED.contains(&name.as_str()))
        .collect();
    let mut add = |name: &str, value: String| out.push((name.to_string(), value));
    add("x-forwarded-method", facts.method);
    add("x-forwarded-proto", facts.proto.to_string());
    if let Some(host) = facts.host {
        add("x-forwarded-host", host);
    }
    add("x-forwarded-uri", facts.uri);
    if !facts.client_ip.is_empty() {
        add("x-forwarded-for", facts.client_ip);
    }
    out
}

/// The `kv` key of the decision for a check with these headers.
///
/// Everything the auth service is given is in the key (its answer may
/// depend on any of it), and so is the config that shapes the check and
/// what is kept of the answer: a reload that changes them never reuses an
/// older decision. SHA-256 rather than a fast hash, because two inputs
/// sharing a key would let one client ride on another's decision, and a
/// 64-bit hash's collisions can be searched for.
pub fn cache_key(settings: &Settings, headers: &[(String, String)]) -> String {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so no two lists of fields encode alike.
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    field(settings.upstream.as_bytes());
    field(settings.method.as_bytes());
    field(settings.path.as_bytes());
    for name in &settings.response_headers {
        field(name.as_bytes());
    }
    field(b"--");
    for (name, value) in headers {
        field(name.as_bytes());
        field(value.as_bytes());
    }
    format!("decision:{}", hex::encode(hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Settings};

    fn facts() -> Facts {
        Facts {
            method: "POST".into(),
            uri: "/orders?x=1".into(),
            host: Some("api.example.com".into()),
            proto: "https",
            client_ip: "203.0.113.9".into(),
            copied: vec![("authorization".into(), "Bearer good".into())],
        }
    }

    fn settings() -> Settings {
        let config: Config = serde_json::from_value(serde_json::json!({
            "upstream": "auth", "response_headers": ["x-user-id"]
        }))
        .unwrap();
        Settings::from_config(config).unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_check_carries_the_chosen_headers_and_describes_the_request() {
        assert_eq!(
            headers(facts()),
            pairs(&[
                ("authorization", "Bearer good"),
                ("x-forwarded-method", "POST"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "api.example.com"),
                ("x-forwarded-uri", "/orders?x=1"),
                ("x-forwarded-for", "203.0.113.9"),
            ])
        );
    }

    #[test]
    fn a_client_cannot_supply_the_forwarded_headers() {
        let mut f = facts();
        f.copied.push(("x-forwarded-for".into(), "10.0.0.1".into()));
        f.copied.push(("x-forwarded-uri".into(), "/public".into()));
        f.host = None;
        let sent = headers(f);
        let values = |name: &str| -> Vec<&str> {
            sent.iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(values("x-forwarded-for"), ["203.0.113.9"]);
        assert_eq!(values("x-forwarded-uri"), ["/orders?x=1"]);
        // No authority: no X-Forwarded-Host rather than an empty one.
        assert!(values("x-forwarded-host").is_empty());
    }

    #[test]
    fn equal_checks_share_a_key_and_any_difference_separates_them() {
        let s = settings();
        let base = headers(facts());
        let key = cache_key(&s, &base);
        assert_eq!(key, cache_key(&s, &headers(facts())));
        assert!(key.starts_with("decision:") && key.len() == "decision:".len() + 64);
        let mut other = facts();
        other.copied = vec![("authorization".into(), "Bearer bad".into())];
        assert_ne!(key, cache_key(&s, &headers(other)));
        let mut other = facts();
        other.uri = "/admin".into();
        assert_ne!(key, cache_key(&s, &headers(other)));
        // Moving bytes between a name and a value changes the key.
        let a = pairs(&[("ab", "c")]);
        let b = pairs(&[("a", "bc")]);
        assert_ne!(cache_key(&s, &a), cache_key(&s, &b));
        // So does a config change that alters the check or what is kept.
        let mut changed = s.clone();
        changed.response_headers.push("x-role".into());
        assert_ne!(key, cache_key(&changed, &base));
        let mut changed = s.clone();
        changed.path = "/verify".into();
        assert_ne!(key, cache_key(&changed, &base));
    }
}
