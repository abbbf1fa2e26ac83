//! A/B splitting: sends a share of the traffic to a second upstream.
//!
//! - A request with `x-variant: a` or `x-variant: b` (the `header`) goes to
//!   that variant: for testers and for pinning.
//! - Otherwise the variant is chosen by a stable hash of the `sticky_header`
//!   (a user id, say) or, without it, of the client IP: the same user always
//!   lands on the same variant. `percent_b` percent of them get `b`.
//!
//! The chosen variant is sent upstream in `x-variant` and returned to the
//! client in `x-variant` too.

use weir_sdk::{Action, Plugin, Request, Response, export_plugin};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    upstream_a: String,
    upstream_b: String,
    #[serde(default)]
    percent_b: u8,
    #[serde(default = "variant_header")]
    header: String,
    #[serde(default)]
    sticky_header: Option<String>,
}

fn variant_header() -> String {
    "x-variant".into()
}

struct AbSplit(Config);

/// FNV-1a: stable everywhere, so a user keeps its variant across gateways.
fn bucket(key: &str) -> u8 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % 100) as u8
}

impl AbSplit {
    fn choose(&self, req: &Request) -> &'static str {
        match req.header(&self.0.header).as_deref() {
            Some("a") => return "a",
            Some("b") => return "b",
            _ => {}
        }
        let key = self
            .0
            .sticky_header
            .as_ref()
            .and_then(|h| req.header(h))
            .unwrap_or_else(|| req.client_addr().ip);
        if bucket(&key) < self.0.percent_b {
            "b"
        } else {
            "a"
        }
    }
}

impl Plugin for AbSplit {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if config.percent_b > 100 {
            return Err("`percent_b` must be 0..=100".into());
        }
        Ok(AbSplit(config))
    }

    fn on_request(&mut self, req: &Request) -> Action {
        let variant = self.choose(req);
        let upstream = if variant == "b" {
            &self.0.upstream_b
        } else {
            &self.0.upstream_a
        };
        if req.set_upstream(upstream).is_err() {
            weir_sdk::error!("unknown upstream `{upstream}`");
        }
        let _ = req.set_header(&self.0.header, variant);
        req.set_context("variant", variant);
        Action::Continue
    }

    fn on_response(&mut self, req: &Request, resp: &Response) -> Action {
        if let Some(variant) = req.get_context("variant") {
            let _ = resp.set_header(&self.0.header, &variant);
        }
        Action::Continue
    }
}

export_plugin!(AbSplit);

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket("user-1"), bucket("user-1"));
        let in_b = (0..1000)
            .filter(|i| bucket(&format!("user-{i}")) < 30)
            .count();
        assert!((220..380).contains(&in_b), "{in_b} of 1000 below 30");
    }
}
