//! Origins: parsing the `Origin` request header and the configured origin
//! patterns, and matching one against the other.
//!
//! An origin is serialized as `scheme://host[:port]`, lower-case, with no
//! path, no trailing slash and no default port (Fetch, "`Origin` header",
//! and HTML's serialization of an origin), or as `null` for an opaque
//! origin. Patterns are that form with two wildcards and nothing else:
//!
//! - `*.` as the first label: `https://*.example.com` matches any
//!   subdomain at any depth (`a.example.com`, `a.b.example.com`), never
//!   `example.com` itself nor `evil-example.com`;
//! - `*` as the port: `http://localhost:*` matches any port, and none.
//!
//! No regular expressions: an unanchored or unescaped pattern
//! (`https://app.example.com` matching `https://app-example.com.evil.net`)
//! is the classic way a CORS allow-list leaks, and these two forms cover
//! what allow-lists need.

/// A parsed origin, or a configured pattern of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Lower-case scheme, e.g. `https`.
    scheme: String,
    host: Host,
    port: Port,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// A host name, IPv4 address or bracketed IPv6 address, lower-case.
    Exact(String),
    /// `*.SUFFIX`: any name ending in `.SUFFIX` (patterns only).
    Subdomains(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// No port: the scheme's default.
    Default,
    Exact(u16),
    /// `:*` (patterns only).
    Any,
}

/// The default port a serialized origin leaves out.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

fn valid_scheme(scheme: &str) -> bool {
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// A host name or IPv4 address: dot-separated labels of letters, digits,
/// `-` and `_`, lower-case already.
fn valid_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        })
}

fn valid_ipv6(host: &str) -> bool {
    host.len() > 2
        && host.starts_with('[')
        && host.ends_with(']')
        && host[1..host.len() - 1]
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
}

impl Origin {
    /// Parse an `Origin` header value. `None` for anything a browser would
    /// not send (a path, user info, a bad host): such a request matches no
    /// pattern. `null` is handled by the caller.
    pub fn parse_header(value: &str) -> Option<Origin> {
        Origin::parse(&value.to_ascii_lowercase(), false).ok()
    }

    /// Parse a configured pattern (any case; compared lower-case).
    pub fn parse_pattern(text: &str) -> Result<Origin, String> {
        if !text.is_ascii() {
            return Err(format!(
                "`{text}` is not ASCII: write an internationalized host in its punycode \
                 form (`xn--...`), as browsers send it"
            ));
        }
        Origin::parse(&text.to_ascii_lowercase(), true).map_err(|why| format!("`{text}`: {why}"))
    }

    fn parse(text: &str, pattern: bool) -> Result<Origin, String> {
        let shape = "an origin is `scheme://host` or `scheme://host:port`";
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("no `://`: {shape}"))?;
        if !valid_scheme(scheme) {
            return Err(format!("`{scheme}` is not a scheme"));
        }
        if let Some(bad) = rest.chars().find(|c| "/?#@\\ \t,".contains(*c)) {
            return Err(format!(
                "`{bad}` is not allowed: {shape}, with no path or trailing slash"
            ));
        }
        let (host, port) = split_port(rest);
        let port = match port {
            None => Port::Default,
            Some("*") if pattern => Port::Any,
            Some(digits) => match digits.parse::<u16>() {
                Ok(0) | Err(_) => return Err(format!("`{digits}` is not a port")),
                Ok(p) if Some(p) == default_port(scheme) => Port::Default,
                Ok(p) => Port::Exact(p),
            },
        };
        let host = match host.strip_prefix("*.") {
            Some(suffix) if pattern => {
                // `*.com` would admit every site under a top-level domain.
                if !valid_name(suffix) || !suffix.contains('.') {
                    return Err(format!(
                        "`*.{suffix}`: a wildcard needs a domain of at least two labels after it"
                    ));
                }
                Host::Subdomains(suffix.to_string())
            }
            _ if host.contains('*') => {
                return Err(
                    "`*` is allowed only as the whole first label (`https://*.example.com`) \
                     or as the port (`http://localhost:*`)"
                        .to_string(),
                );
            }
            _ if valid_name(host) || valid_ipv6(host) => Host::Exact(host.to_string()),
            _ => return Err(format!("`{host}` is not a host name or address")),
        };
        Ok(Origin {
            scheme: scheme.to_string(),
            host,
            port,
        })
    }

    /// Whether the request origin `origin` matches this pattern.
    pub fn matches(&self, origin: &Origin) -> bool {
        let port = match self.port {
            Port::Any => true,
            port => port == origin.port,
        };
        let host = match (&self.host, &origin.host) {
            (Host::Exact(want), Host::Exact(got)) => want == got,
            (Host::Subdomains(suffix), Host::Exact(got)) => got
                .strip_suffix(suffix.as_str())
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
            (_, Host::Subdomains(_)) => false,
        };
        self.scheme == origin.scheme && port && host
    }
}

/// `host[:port]` → host and port text; a bracketed IPv6 host keeps its
/// colons.
fn split_port(rest: &str) -> (&str, Option<&str>) {
    if rest.starts_with('[') {
        return match rest.find(']') {
            Some(end) => match rest[end + 1..].strip_prefix(':') {
                Some(port) => (&rest[..=end], Some(port)),
                None => (rest, None),
            },
            None => (rest, None),
        };
    }
    match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Origin {
        Origin::parse_pattern(text).unwrap()
    }

    fn allows(pattern_text: &str, origin: &str) -> bool {
        let origin = Origin::parse_header(origin).expect("a valid origin");
        pattern(pattern_text).matches(&origin)
    }

    #[test]
    fn exact_origins_compare_scheme_host_and_port() {
        assert!(allows("https://app.example.com", "https://app.example.com"));
        // Fetch "`Origin` header": scheme and host are serialized lower-case.
        assert!(allows("https://App.Example.com", "https://app.example.com"));
        assert!(!allows("https://app.example.com", "http://app.example.com"));
        assert!(!allows(
            "https://app.example.com",
            "https://app.example.com:8443"
        ));
        assert!(!allows(
            "https://app.example.com",
            "https://api.example.com"
        ));
        assert!(allows("http://127.0.0.1:8080", "http://127.0.0.1:8080"));
        // `localhost` and `127.0.0.1` are different origins.
        assert!(!allows("http://localhost:8080", "http://127.0.0.1:8080"));
        assert!(allows("http://[::1]:3000", "http://[::1]:3000"));
    }

    #[test]
    fn a_default_port_is_the_same_origin_as_none() {
        // HTML's origin serialization omits the default port, so a
        // configured `:443` must match what browsers send.
        assert!(allows(
            "https://app.example.com:443",
            "https://app.example.com"
        ));
        assert!(allows(
            "http://app.example.com",
            "http://app.example.com:80"
        ));
        assert!(!allows(
            "http://app.example.com",
            "http://app.example.com:443"
        ));
    }

    #[test]
    fn a_wildcard_label_matches_subdomains_at_any_depth_only() {
        let p = "https://*.example.com";
        assert!(allows(p, "https://a.example.com"));
        assert!(allows(p, "https://a.b.example.com"));
        assert!(!allows(p, "https://example.com"));
        assert!(!allows(p, "https://evil-example.com"));
        assert!(!allows(p, "https://a.example.com.evil.net"));
        assert!(!allows(p, "http://a.example.com"));
        assert!(!allows(p, "https://a.example.com:8443"));
    }

    #[test]
    fn a_wildcard_port_matches_any_port_and_none() {
        assert!(allows("http://localhost:*", "http://localhost:5173"));
        assert!(allows("http://localhost:*", "http://localhost"));
        assert!(!allows(
            "http://localhost:*",
            "http://localhost.evil.net:80"
        ));
        assert!(allows(
            "https://*.example.com:*",
            "https://a.example.com:8443"
        ));
    }

    #[test]
    fn header_values_a_browser_never_sends_match_nothing() {
        for bad in [
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "app.example.com",
            "https://app.example.com, https://b.example.com",
            "https://*.example.com",
            "https://app.example.com:*",
            "https://app.example.com:0",
            "https://app..example.com",
            "",
        ] {
            assert_eq!(Origin::parse_header(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        let why = |text: &str| Origin::parse_pattern(text).unwrap_err();
        assert!(why("https://app.example.com/").contains("trailing slash"));
        assert!(why("app.example.com").contains("://"));
        assert!(why("https://*.com").contains("two labels"));
        assert!(why("https://a.*.example.com").contains("first label"));
        assert!(why("https://*example.com").contains("first label"));
        assert!(why("https://app.example.com:99999").contains("port"));
        assert!(why("https://bücher.example").contains("punycode"));
        assert!(why("1https://x.example").contains("scheme"));
    }
}
