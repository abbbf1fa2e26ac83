//! Reading a request for the cache: its key, the entry stored under it,
//! and the client's conditional headers, which go into the context while
//! the cache asks the upstream for a whole response.

use weir_sdk::Request;
use weir_sdk::kv::{self, KvError};

use crate::conditional::Conditions;
use crate::config::Rule;
use crate::directives::CacheControl;
use crate::entry::{self, Meta, Stored};
use crate::headers::Headers;
use crate::key;
use crate::policy::Plan;

/// Context keys of the client's conditions while the upstream is asked.
const IF_NONE_MATCH: &str = "cache.if-none-match";
const IF_MODIFIED_SINCE: &str = "cache.if-modified-since";

/// What a request looks up.
pub struct Lookup<'a> {
    pub base: &'a str,
    pub plan: Plan,
    pub directives: &'a CacheControl,
    pub credentialed: bool,
}

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

/// The entry for a request: under the base key, or under its variant key
/// when the base holds a Vary list. `(key, meta, body)`.
pub fn find(headers: &Headers, base: &str) -> Result<Option<(String, Meta, Vec<u8>)>, KvError> {
    match kv::get(base)?.and_then(entry::decode) {
        Some(Stored::Entry(meta, body)) => Ok(Some((base.to_string(), meta, body))),
        Some(Stored::Vary(names)) => {
            let key = key::variant_key(base, &varied(headers, &names));
            Ok(match kv::get(&key)?.and_then(entry::decode) {
                Some(Stored::Entry(meta, body)) => Some((key, meta, body)),
                _ => None,
            })
        }
        None => Ok(None),
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
