//! A compiled rule and the CORS decisions it makes, free of host calls so
//! they are unit-tested natively: the answer to a preflight, and the
//! header edits on any other response.
//!
//! Section numbers are the Fetch standard's (fetch.spec.whatwg.org, the
//! living standard as of July 2026): §3.3 "CORS protocol", §4.8
//! "CORS-preflight fetch", §4.10 "CORS check", and the non-normative "CORS
//! protocol and HTTP caches".

use crate::config::RuleConfig;
use crate::origin::Origin;

/// `Vary` of every preflight answer: it depends on all three.
pub const PREFLIGHT_VARY: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// Response headers of the CORS protocol (§3.3.3). On a route a rule
/// covers they are the gateway's alone: an upstream's are removed.
pub const CORS_RESPONSE_HEADERS: [&str; 7] = [
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
    "access-control-expose-headers",
    "access-control-allow-private-network",
];

/// What a rule allows.
#[derive(Debug)]
pub struct Rule {
    origins: Origins,
    methods: Allowed,
    headers: Allowed,
    expose: Expose,
    credentials: bool,
    max_age: Option<String>,
}

#[derive(Debug)]
enum Origins {
    /// `*`: every origin (never with credentials).
    Any,
    /// These patterns, and `null` when listed.
    List { patterns: Vec<Origin>, null: bool },
}

/// Methods or header names.
#[derive(Debug)]
enum Allowed {
    /// `*`: whatever the preflight asks for, echoed back. Never the literal
    /// `*`, which browsers ignore with credentials (§3.3.4) and which never
    /// covers `Authorization` (§4.8 step 7.6).
    Mirror,
    /// Methods as written (compared case-sensitively, as browsers do);
    /// header names lower-case (compared case-insensitively).
    List(Vec<String>),
}

#[derive(Debug)]
enum Expose {
    Nothing,
    /// `*`: the literal wildcard without credentials; with credentials,
    /// where it would be a header named `*`, the response's own names.
    All,
    List(String),
}

/// How a preflight was decided; the `outcome` label of the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    OriginRefused,
    MethodRefused,
    HeadersRefused,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::OriginRefused => "origin_refused",
            Outcome::MethodRefused => "method_refused",
            Outcome::HeadersRefused => "headers_refused",
        }
    }
}

/// The gateway's answer to a preflight: always 204, with `headers`.
#[derive(Debug)]
pub struct Preflight {
    pub outcome: Outcome,
    pub headers: Vec<(String, String)>,
}

/// Edits to a response that is not a preflight answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Edits {
    /// Set, replacing any values.
    pub set: Vec<(String, String)>,
    /// CORS headers of the response not in `set`, to remove.
    pub remove: Vec<&'static str>,
    /// Append `Vary: Origin`.
    pub vary_origin: bool,
}

/// RFC 9110 `token`: what methods and field names are made of.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Fetch §2.2.1 "CORS-safelisted method": a preflight never needs to allow it.
fn safelisted_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "POST")
}

/// `["*"]` → `Mirror`; otherwise checked tokens, `normalize`d.
fn allowed(
    at: &str,
    items: Vec<String>,
    normalize: fn(String) -> String,
) -> Result<Allowed, String> {
    if items.iter().any(|i| i == "*") {
        return match items.len() {
            1 => Ok(Allowed::Mirror),
            _ => Err(format!("{at}: `*` allows everything; list it alone")),
        };
    }
    for (i, item) in items.iter().enumerate() {
        if !is_token(item) {
            return Err(format!("{at}[{i}]: `{item}` is not an HTTP token"));
        }
    }
    Ok(Allowed::List(items.into_iter().map(normalize).collect()))
}

/// Fetch "normalize a method": browsers upper-case these six, and send any
/// other method exactly as the page wrote it.
fn normalize_method(method: String) -> String {
    let upper = method.to_ascii_uppercase();
    match upper.as_str() {
        "DELETE" | "GET" | "HEAD" | "OPTIONS" | "POST" | "PUT" => upper,
        _ => method,
    }
}

fn lower(name: String) -> String {
    name.to_ascii_lowercase()
}

fn origins(at: &str, items: &[String], credentials: bool) -> Result<Origins, String> {
    if items.iter().any(|o| o == "*") {
        if items.len() > 1 {
            return Err(format!(
                "{at}.origins: `*` allows every origin; list it alone"
            ));
        }
        if credentials {
            return Err(format!(
                "{at}.origins: `*` cannot be combined with `allow_credentials`: the Fetch \
                 standard refuses `Access-Control-Allow-Origin: *` with credentials, and \
                 echoing every origin instead would let any site read answers sent with \
                 its visitors' cookies; list the origins"
            ));
        }
        return Ok(Origins::Any);
    }
    let mut patterns = Vec::new();
    let mut null = false;
    for (i, item) in items.iter().enumerate() {
        if item == "null" {
            // Any page can send `Origin: null` (a sandboxed iframe, a
            // data: URL): with credentials that is `*` by another name.
            if credentials {
                return Err(format!(
                    "{at}.origins[{i}]: `null` cannot be combined with `allow_credentials`: any \
                     site can send `Origin: null` from a sandboxed frame, so it would read \
                     answers sent with its visitors' cookies; list the origins"
                ));
            }
            null = true;
            continue;
        }
        patterns.push(Origin::parse_pattern(item).map_err(|e| format!("{at}.origins[{i}]: {e}"))?);
    }
    Ok(Origins::List { patterns, null })
}

impl Rule {
    /// Check and compile the rule at `at` (for errors); `None` when it
    /// lists no origins: the plugin then leaves its routes alone.
    pub fn compile(at: &str, config: RuleConfig) -> Result<Option<Rule>, String> {
        let credentials = config.allow_credentials;
        let origins = origins(at, &config.origins, credentials)?;
        let methods = allowed(&format!("{at}.methods"), config.methods, normalize_method)?;
        let headers = allowed(&format!("{at}.headers"), config.headers, lower)?;
        let expose = match allowed(
            &format!("{at}.expose_headers"),
            config.expose_headers,
            lower,
        )? {
            Allowed::Mirror => Expose::All,
            Allowed::List(names) if names.is_empty() => Expose::Nothing,
            Allowed::List(names) => Expose::List(names.join(", ")),
        };
        if config.origins.is_empty() {
            return Ok(None);
        }
        Ok(Some(Rule {
            origins,
            methods,
            headers,
            expose,
            credentials,
            max_age: config.max_age.map(|s| s.to_string()),
        }))
    }

    /// `*` for everyone: the answer does not depend on the origin, so it
    /// is sent to every request, CORS or not, without `Vary` ("CORS
    /// protocol and HTTP caches").
    fn is_static(&self) -> bool {
        matches!(self.origins, Origins::Any) && !self.credentials
    }

    fn allows_origin(&self, origin: &str) -> bool {
        match &self.origins {
            Origins::Any => true,
            Origins::List { null, .. } if origin == "null" => *null,
            Origins::List { patterns, .. } => Origin::parse_header(origin)
                .is_some_and(|origin| patterns.iter().any(|p| p.matches(&origin))),
        }
    }

    /// `Access-Control-Allow-Origin` for an allowed `origin`: the origin
    /// itself, byte for byte as the browser sent it (§4.10 compares them
    /// exactly), or `*` only when credentials are off (§3.3.5).
    fn allow_origin(&self, origin: &str) -> String {
        match self.is_static() {
            true => "*".to_string(),
            false => origin.to_string(),
        }
    }

    fn allows_method(&self, method: &str) -> bool {
        is_token(method)
            && (safelisted_method(method)
                || match &self.methods {
                    Allowed::Mirror => true,
                    Allowed::List(methods) => methods.iter().any(|m| m == method),
                })
    }

    /// The preflight's requested header names, lower-case, or `None` when
    /// one is not allowed (or not a header name).
    fn requested_headers(&self, requested: &str) -> Option<Vec<String>> {
        let names: Vec<String> = requested
            .split(',')
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        let allowed = |name: &String| match &self.headers {
            Allowed::Mirror => true,
            Allowed::List(list) => list.contains(name),
        };
        names
            .iter()
            .all(|n| is_token(n) && allowed(n))
            .then_some(names)
    }

    /// Answer a preflight from `origin` asking for `method` and the
    /// comma-separated `requested` headers. Refused: no CORS header at all,
    /// so the browser's CORS check fails (§4.10 step 2) whichever part was
    /// refused; the metric and the log say which.
    pub fn preflight(&self, origin: &str, method: &str, requested: &str) -> Preflight {
        let vary = ("vary".to_string(), PREFLIGHT_VARY.to_string());
        let refused = |outcome| Preflight {
            outcome,
            headers: vec![vary.clone()],
        };
        if !self.allows_origin(origin) {
            return refused(Outcome::OriginRefused);
        }
        if !self.allows_method(method) {
            return refused(Outcome::MethodRefused);
        }
        let Some(names) = self.requested_headers(requested) else {
            return refused(Outcome::HeadersRefused);
        };
        let mut headers = vec![(
            "access-control-allow-origin".to_string(),
            self.allow_origin(origin),
        )];
        let mut add = |name: &str, value: String| headers.push((name.to_string(), value));
        if self.credentials {
            // §3.3.3: the preflight itself has no credentials, but the
            // request after it may, and the browser checks this answer
            // with that request's credentials mode (§4.8 step 7).
            add("access-control-allow-credentials", "true".into());
        }
        // A whole list lets the browser cache every method and header in
        // it (§4.9); a mirrored one only what was asked.
        let methods = match &self.methods {
            Allowed::Mirror => method.to_string(),
            Allowed::List(methods) => methods.join(", "),
        };
        if !methods.is_empty() {
            add("access-control-allow-methods", methods);
        }
        let names = match &self.headers {
            Allowed::Mirror => names.join(", "),
            Allowed::List(list) => list.join(", "),
        };
        if !names.is_empty() {
            add("access-control-allow-headers", names);
        }
        if let Some(max_age) = &self.max_age {
            add("access-control-max-age", max_age.clone());
        }
        headers.push(vary);
        Preflight {
            outcome: Outcome::Allowed,
            headers,
        }
    }

    /// The edits to a response (the upstream's, another plugin's reply or
    /// the gateway's error) for a request from `origin` (absent: not a
    /// CORS request), given the response's `headers`.
    pub fn response(&self, origin: Option<&str>, headers: &[(String, String)]) -> Edits {
        let mut set = Vec::new();
        let allow_origin = match origin {
            // Sent to non-CORS requests too, so a cached copy serves both.
            _ if self.is_static() => Some("*".to_string()),
            Some(origin) if self.allows_origin(origin) => Some(origin.to_string()),
            _ => None,
        };
        if let Some(allow_origin) = allow_origin {
            set.push(("access-control-allow-origin".to_string(), allow_origin));
            if self.credentials {
                set.push(("access-control-allow-credentials".into(), "true".into()));
            }
            if let Some(expose) = self.expose(headers) {
                set.push(("access-control-expose-headers".into(), expose));
            }
        }
        let remove = CORS_RESPONSE_HEADERS
            .into_iter()
            .filter(|name| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
            .filter(|name| !set.iter().any(|(n, _)| n == name))
            .collect();
        Edits {
            set,
            remove,
            vary_origin: !self.is_static() && !varies_on_origin(headers),
        }
    }

    fn expose(&self, headers: &[(String, String)]) -> Option<String> {
        match &self.expose {
            Expose::Nothing => None,
            Expose::List(list) => Some(list.clone()),
            Expose::All if !self.credentials => Some("*".to_string()),
            Expose::All => {
                let mut names: Vec<String> = headers
                    .iter()
                    .map(|(n, _)| n.to_ascii_lowercase())
                    .filter(|n| !n.starts_with("access-control-") && n != "set-cookie")
                    .collect();
                names.sort();
                names.dedup();
                (!names.is_empty()).then(|| names.join(", "))
            }
        }
    }
}

/// Whether the response's `Vary` already covers `Origin` (or everything).
fn varies_on_origin(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("vary"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .any(|token| token == "*" || token.eq_ignore_ascii_case("origin"))
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
