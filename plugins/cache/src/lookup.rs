//! Reading a request for the cache: its key, the entry stored under it,
//! and the client's conditional headers, which go into the context while
//! the cache asks the upstream for a whole response.

use weir_sdk::Request;
use weir_sdk::kv::{self, KvError};

use crate::conditional::Conditions;
use crate::config::Rule;
use crate::entry::{self, Meta, Stored, VaryList};
use crate::headers::Headers;
use crate::key;

/// Context keys of the client's conditions while the upstream is asked.
const IF_NONE_MATCH: &str = "cache.if-none-match";
const IF_MODIFIED_SINCE: &str = "cache.if-modified-since";

/// The base key of a request under `rule`.
pub fn base_key(
    req: &Request,
    headers: &Headers,
    rule: &Rule,
    route: Option<&str>,
    consumer: Option<&str>,
) -> String {
    let target = req.path_with_query();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target.as_str(), None),
    };
    let headers = varied(headers, &rule.headers);
    key::base_key(&key::KeyParts {
        route: route.unwrap_or(""),
        upstream: &req.upstream().unwrap_or_default(),
        consumer: consumer.unwrap_or(""),
        path,
        query: &key::select_query(query, &rule.query),
        headers: &headers,
    })
}

/// The request's values of these headers (key headers, `Vary` headers).
pub fn varied(headers: &Headers, names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|name| (name.clone(), key::normalize_values(&headers.all(name))))
        .collect()
}

/// What a lookup found under a base key.
#[derive(Debug, Default)]
pub struct Found {
    /// The entry: `(key, meta, body)`.
    pub entry: Option<(String, Meta, Vec<u8>)>,
    /// The Vary list, when the base holds one.
    pub vary: Option<VaryList>,
}

/// The entry for a request: under the base key, or under its variant key
/// when the base holds a Vary list.
pub fn find(headers: &Headers, base: &str) -> Result<Found, KvError> {
    match kv::get(base)?.and_then(entry::decode) {
        Some(Stored::Entry(meta, body)) => Ok(Found {
            entry: Some((base.to_string(), meta, body)),
            vary: None,
        }),
        Some(Stored::Vary(list)) => {
            let key = key::variant_key(base, &list.generation, &varied(headers, &list.names));
            let entry = match kv::get(&key)?.and_then(entry::decode) {
                Some(Stored::Entry(meta, body)) => Some((key, meta, body)),
                _ => None,
            };
            Ok(Found {
                entry,
                vary: Some(list),
            })
        }
        None => Ok(Found::default()),
    }
}

/// Move the client's conditional headers into the context: the upstream
/// must send a whole response the cache can keep, and the cache answers
/// the conditions itself.
pub fn stash(req: &Request, conditions: &Conditions) {
    if let Some(v) = &conditions.if_none_match {
        req.set_context(IF_NONE_MATCH, v);
        req.remove_header("if-none-match");
    }
    if let Some(v) = &conditions.if_modified_since {
        req.set_context(IF_MODIFIED_SINCE, v);
        req.remove_header("if-modified-since");
    }
}

pub fn stashed(req: &Request) -> Conditions {
    Conditions {
        if_none_match: req.get_context(IF_NONE_MATCH),
        if_modified_since: req.get_context(IF_MODIFIED_SINCE),
    }
}
