//! How each listener learns its clients' addresses: `trusted_proxies`,
//! `forwarded_header` and `proxy_protocol` at the top of `weir.toml` (the
//! plain listener, and the TLS one unless `[tls]` sets its own), checked
//! once here so a typo names itself before anything listens.

use std::sync::Arc;

use crate::client_ip::{ChainHeader, Cidr, ClientAddressing};

/// The plain listener's and the TLS listener's client addressing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerClients {
    /// `listen`.
    pub plain: ClientAddressing,
    /// `[tls] listen`.
    pub tls: ClientAddressing,
}

/// Parse `blocks` (CIDRs or addresses); the error names `key` and the entry.
fn blocks(key: &str, blocks: &[String]) -> Result<Arc<[Cidr]>, String> {
    blocks
        .iter()
        .map(|b| Cidr::parse(b.trim()).map_err(|e| format!("`{key}`: {e}")))
        .collect()
}

impl super::Config {
    /// The client addressing of both listeners, or what is wrong with it.
    pub fn listener_clients(&self) -> Result<ListenerClients, String> {
        let header = ChainHeader::parse(&self.forwarded_header).ok_or_else(|| {
            format!(
                "`forwarded_header` = {:?}: use \"x-forwarded-for\" or \"forwarded\"",
                self.forwarded_header
            )
        })?;
        let plain = ClientAddressing {
            trusted_proxies: blocks("trusted_proxies", &self.trusted_proxies)?,
            header,
            proxy_protocol: self.proxy_protocol,
        };
        let tls = match &self.tls {
            None => plain.clone(),
            Some(tls) => ClientAddressing {
                trusted_proxies: match &tls.trusted_proxies {
                    Some(list) => blocks("tls.trusted_proxies", list)?,
                    None => plain.trusted_proxies.clone(),
                },
                header,
                proxy_protocol: tls.proxy_protocol,
            },
        };
        for (key, clients) in [("", &plain), ("tls.", &tls)] {
            if clients.proxy_protocol && clients.trusted_proxies.is_empty() {
                return Err(format!(
                    "`{key}proxy_protocol = true` needs `{key}trusted_proxies`: the addresses of \
                     the load balancers that send PROXY headers (a PROXY header from anyone \
                     else would let a client choose its own address)"
                ));
            }
        }
        Ok(ListenerClients { plain, tls })
    }
}

pub(super) fn default_forwarded_header() -> String {
    "x-forwarded-for".into()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("weir.toml"), Path::new(".")).map_err(|e| e.to_string())
    }

    #[test]
    fn tls_inherits_the_trusted_proxies_unless_it_names_its_own() {
        let config = parse(
            "trusted_proxies = [\"10.0.0.0/8\"]\nproxy_protocol = true\n\
             [tls]\nlisten = \"127.0.0.1:8443\"\ncertificates = [{cert = \"c\", key = \"k\"}]\n",
        )
        .unwrap();
        let clients = config.listener_clients().unwrap();
        assert!(clients.plain.proxy_protocol && !clients.tls.proxy_protocol);
        assert!(clients.tls.trusts("10.1.1.1".parse().unwrap()));
        let config = parse(
            "trusted_proxies = [\"10.0.0.0/8\"]\n[tls]\nlisten = \"127.0.0.1:8443\"\n\
             certificates = [{cert = \"c\", key = \"k\"}]\ntrusted_proxies = [\"192.168.0.0/16\"]\n\
             proxy_protocol = true\n",
        )
        .unwrap();
        let clients = config.listener_clients().unwrap();
        assert!(!clients.tls.trusts("10.1.1.1".parse().unwrap()));
        assert!(clients.tls.proxy_protocol);
    }

    #[test]
    fn bad_blocks_and_headers_are_named() {
        let err = parse("trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/40\"]").unwrap_err();
        assert!(
            err.contains("`trusted_proxies`") && err.contains("10.0.0.0/40"),
            "{err}"
        );
        let err = parse("forwarded_header = \"x-real-ip\"").unwrap_err();
        assert!(
            err.contains("forwarded_header") && err.contains("x-real-ip"),
            "{err}"
        );
    }
}
