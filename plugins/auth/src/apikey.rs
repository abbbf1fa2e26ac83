//! API keys: consumers are configured with the SHA-256 of their key, a
//! presented key is hashed and compared in constant time with every entry
//! (no early exit), so neither the keys nor which entry matched leak through
//! timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ApiKeyConfig;

/// A consumer that presented a valid key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// Its id.
    pub id: String,
    /// Scopes granted to it.
    pub scopes: Vec<String>,
}

/// The configured keys.
pub struct ApiKeys {
    /// Header holding a key.
    pub header: String,
    /// Query parameter holding a key.
    pub query: Option<String>,
    /// Forward the key upstream.
    pub keep_credential: bool,
    entries: Vec<([u8; 32], Consumer)>,
}

impl ApiKeys {
    /// Check and index the config.
    pub fn new(config: ApiKeyConfig) -> Result<ApiKeys, String> {
        let mut entries = Vec::new();
        for c in config.consumers {
            let digest = match (&c.sha256, &c.key) {
                (Some(hex_digest), None) => hex::decode(hex_digest)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        format!("consumer `{}`: `sha256` must be 64 hex digits", c.id)
                    })?,
                (None, Some(key)) if config.allow_plaintext => {
                    Sha256::digest(key.as_bytes()).into()
                }
                (None, Some(_)) => {
                    return Err(format!(
                        "consumer `{}`: plaintext `key` needs `allow_plaintext: true` (use `sha256` in production)",
                        c.id
                    ));
                }
                _ => {
                    return Err(format!(
                        "consumer `{}`: give exactly one of `sha256` and `key`",
                        c.id
                    ));
                }
            };
            entries.push((
                digest,
                Consumer {
                    id: c.id,
                    scopes: c.scopes,
                },
            ));
        }
        if http_header_invalid(&config.header) {
            return Err(format!(
                "`api_key.header` `{}` is not a header name",
                config.header
            ));
        }
        Ok(ApiKeys {
            header: config.header.to_ascii_lowercase(),
            query: config.query,
            keep_credential: config.keep_credential,
            entries,
        })
    }

    /// The consumer owning `key`, if any.
    pub fn find(&self, key: &str) -> Option<&Consumer> {
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for (digest, consumer) in &self.entries {
            if bool::from(digest.ct_eq(&presented)) {
                found = Some(consumer);
            }
        }
        found
    }
}

fn http_header_invalid(name: &str) -> bool {
    name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Percent-decode a query value (`+` is a space).
pub fn decode_query_value(value: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query without parameter `name`.
pub fn without_param(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConsumerKey;

    fn keys() -> ApiKeys {
        ApiKeys::new(ApiKeyConfig {
            header: "x-api-key".into(),
            query: Some("api_key".into()),
            keep_credential: false,
            allow_plaintext: false,
            consumers: vec![ConsumerKey {
                id: "alice".into(),
                sha256: Some(hex::encode(Sha256::digest(b"s3cret"))),
                key: None,
                scopes: vec!["read".into()],
            }],
        })
        .unwrap()
    }

    #[test]
    fn finds_by_hash() {
        let k = keys();
        assert_eq!(k.find("s3cret").unwrap().id, "alice");
        assert!(k.find("s3cre").is_none());
        assert!(k.find("").is_none());
    }

    #[test]
    fn plaintext_needs_the_flag() {
        let config = |allow| ApiKeyConfig {
            header: "x-api-key".into(),
            query: None,
            keep_credential: false,
            allow_plaintext: allow,
            consumers: vec![ConsumerKey {
                id: "dev".into(),
                sha256: None,
                key: Some("k".into()),
                scopes: vec![],
            }],
        };
        let Err(message) = ApiKeys::new(config(false)) else {
            panic!("plaintext accepted")
        };
        assert!(message.contains("allow_plaintext"));
        assert_eq!(
            ApiKeys::new(config(true)).unwrap().find("k").unwrap().id,
            "dev"
        );
    }

    #[test]
    fn query_helpers() {
        assert_eq!(decode_query_value("a%2Bb+c%zz%4"), "a+b c%zz%4");
        assert_eq!(without_param("a=1&api_key=x&b=2", "api_key"), "a=1&b=2");
        assert_eq!(without_param("api_key=x", "api_key"), "");
    }
}
