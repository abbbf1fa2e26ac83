//! Cache keys, readable so operators can purge by pattern:
//!
//! ```text
//! ROUTE|UPSTREAM|CONSUMER|PATH?QUERY|HEADERS          the entry, or its Vary list
//! ROUTE|UPSTREAM|CONSUMER|PATH?QUERY|HEADERS|GEN|VARIED   one variant
//! ```
//!
//! `PATH` is the path the upstream gets (after the router's rewrite),
//! `QUERY` the parameters that form the key, sorted by name, `HEADERS` and
//! `VARIED` are `name=value` pairs joined with `&`, `GEN` the generation of
//! the Vary list the variant was stored under. An absent part is empty.
//! Route, upstream, consumer and header values are percent-escaped where
//! they hold `%`, `|`, `&` or `=`, and the path and query where they hold
//! `|`, so a part can never pass for a separator: two different requests
//! never share a key.

use std::borrow::Cow;

/// Which query parameters form the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuerySpec {
    /// All of them, sorted by name.
    All,
    /// None: `?a=1` and `?a=2` share an entry.
    None,
    /// Only these names.
    Only(Vec<String>),
}

/// Escape the characters that separate parts.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_set(text, &['%', '|', '&', '='])
}

/// Escape only `|` in a path or query: `%` already means an escape there.
fn escape_uri(text: &str) -> Cow<'_, str> {
    escape_set(text, &['|'])
}

fn escape_set<'a>(text: &'a str, set: &[char]) -> Cow<'a, str> {
    if !text.contains(set) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if set.contains(&c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The query parameters that form the key, sorted by name (a stable sort:
/// repeated names keep their order).
pub fn select_query(query: Option<&str>, spec: &QuerySpec) -> String {
    let Some(query) = query else {
        return String::new();
    };
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split_once('=').map_or(*p, |(n, _)| n);
            match spec {
                QuerySpec::All => true,
                QuerySpec::None => false,
                QuerySpec::Only(names) => names.iter().any(|n| n == name),
            }
        })
        .collect();
    pairs.sort_by_key(|p| p.split_once('=').map_or(*p, |(n, _)| n));
    escape_uri(&pairs.join("&")).into_owned()
}

/// A header's values as one, for the key: joined with `,`, spaces around
/// commas dropped, so `en, fr` and `en,fr` share an entry.
pub fn normalize_values(values: &[String]) -> String {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// `name=value&...` for the key.
pub fn header_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={}", escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// What the base key is built from.
#[derive(Debug, Default)]
pub struct KeyParts<'a> {
    pub route: &'a str,
    pub upstream: &'a str,
    pub consumer: &'a str,
    pub path: &'a str,
    /// Already selected with [`select_query`].
    pub query: &'a str,
    /// The configured key headers with their values.
    pub headers: &'a [(String, String)],
}

/// The key of the entry (or of its Vary list).
pub fn base_key(parts: &KeyParts<'_>) -> String {
    format!(
        "{}|{}|{}|{}?{}|{}",
        escape(parts.route),
        escape(parts.upstream),
        escape(parts.consumer),
        escape_uri(parts.path),
        parts.query,
        header_pairs(parts.headers)
    )
}

/// The key of one variant of `base`, under the Vary list of `generation`.
pub fn variant_key(base: &str, generation: &str, varied: &[(String, String)]) -> String {
    format!("{base}|{}|{}", escape(generation), header_pairs(varied))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_as_documented() {
        let headers = vec![("accept".to_string(), "application/json".to_string())];
        let key = base_key(&KeyParts {
            route: "user",
            upstream: "users",
            consumer: "",
            path: "/7.json",
            query: &select_query(Some("b=2&a=1&a=0"), &QuerySpec::All),
            headers: &headers,
        });
        assert_eq!(
            key,
            "user|users||/7.json?a=1&a=0&b=2|accept=application/json"
        );
        let varied = vec![("accept-language".to_string(), "fr".to_string())];
        assert_eq!(
            variant_key(&key, "7", &varied),
            format!("{key}|7|accept-language=fr")
        );
    }

    #[test]
    fn parts_cannot_pass_for_separators() {
        let key = |consumer: &str, path: &str| {
            base_key(&KeyParts {
                consumer,
                path,
                ..KeyParts::default()
            })
        };
        assert_ne!(key("a|b", "/x"), key("a", "b|/x"));
        assert_ne!(key("a%7Cb", "/"), key("a|b", "/"));
        assert_eq!(key("a|b", "/p|q"), "||a%7Cb|/p%7Cq?|");
        let pairs = |v: &str| header_pairs(&[("x".to_string(), v.to_string())]);
        assert_ne!(pairs("1&y=2"), "x=1&y=2");
    }

    #[test]
    fn query_selection() {
        let q = Some("utm=x&id=7&lang=en");
        assert_eq!(select_query(q, &QuerySpec::All), "id=7&lang=en&utm=x");
        assert_eq!(select_query(q, &QuerySpec::None), "");
        let only = QuerySpec::Only(vec!["lang".into(), "id".into()]);
        assert_eq!(select_query(q, &only), "id=7&lang=en");
        assert_eq!(select_query(None, &QuerySpec::All), "");
        assert_eq!(select_query(Some("a|b=1"), &QuerySpec::All), "a%7Cb=1");
    }

    #[test]
    fn header_values_normalize() {
        let v = |s: &[&str]| normalize_values(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["en, fr"]), "en,fr");
        assert_eq!(v(&["en", " fr "]), "en,fr");
        assert_eq!(v(&[]), "");
    }
}
