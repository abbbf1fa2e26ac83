//! The **admit** phase: what a request must be before any plugin sees it.
//! HTTP/1.1's edge rules (RFC 9112 §3.2: exactly one `Host`, agreeing with
//! an absolute-form target), the header limits, and the one normal path.

use http::request::Parts;
use http::{Uri, Version};

use crate::error::DownstreamError;
use crate::http::headers::{self, HeaderLimits};

/// Check the head and normalize its path in place.
pub fn admit(head: &mut Parts, limits: HeaderLimits) -> Result<(), DownstreamError> {
    let bytes = headers::block_size(&head.headers);
    if bytes > limits.max_bytes {
        return Err(DownstreamError::HeadersTooLarge(limits.max_bytes));
    }
    if head.headers.len() > limits.max_count {
        return Err(DownstreamError::TooManyHeaders(limits.max_count));
    }
    check_host(head)?;
    normalize(&mut head.uri)
}

/// RFC 9112 §3.2: an HTTP/1.1 request carries exactly one `Host`; with an
/// absolute-form target, `Host` must name the same authority. HTTP/1.0 may
/// omit it; HTTP/2 carries `:authority` (in the URI), and a `Host` beside
/// it must agree.
fn check_host(head: &Parts) -> Result<(), DownstreamError> {
    let mut hosts = head.headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(DownstreamError::BadRequest(
            "more than one Host header".into(),
        ));
    }
    match (head.version, host) {
        (Version::HTTP_11, None) => Err(DownstreamError::BadRequest("missing Host header".into())),
        (_, Some(host)) => match head.uri.authority() {
            Some(authority)
                if !authority
                    .as_str()
                    .eq_ignore_ascii_case(host.to_str().map_err(|_| bad_host())?) =>
            {
                Err(DownstreamError::BadRequest(
                    "Host header disagrees with the request target".into(),
                ))
            }
            _ => {
                let text = host.to_str().map_err(|_| bad_host())?;
                if text.is_empty() || text.parse::<http::uri::Authority>().is_err() {
                    return Err(bad_host());
                }
                Ok(())
            }
        },
        _ => Ok(()),
    }
}

fn bad_host() -> DownstreamError {
    DownstreamError::BadRequest("invalid Host header".into())
}

/// One normal path for plugins and the upstream alike.
fn normalize(uri: &mut Uri) -> Result<(), DownstreamError> {
    let normal = crate::http::normalize::normalize_uri(uri)
        .map_err(|e| DownstreamError::BadRequest(e.to_string()))?;
    if let Some(normal) = normal {
        let mut parts = std::mem::take(uri).into_parts();
        parts.path_and_query = Some(normal);
        *uri = Uri::from_parts(parts).map_err(|e| DownstreamError::BadRequest(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeaderLimits = HeaderLimits {
        max_bytes: 1024,
        max_count: 4,
    };

    fn head(version: Version, uri: &str, hosts: &[&str]) -> Parts {
        let mut builder = http::Request::builder().version(version).uri(uri);
        for host in hosts {
            builder = builder.header("host", *host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        let v11 = Version::HTTP_11;
        assert!(admit(&mut head(v11, "/", &["a.example"]), LIMITS).is_ok());
        assert!(admit(&mut head(v11, "/", &[]), LIMITS).is_err());
        assert!(admit(&mut head(v11, "/", &["a", "b"]), LIMITS).is_err());
        assert!(admit(&mut head(v11, "/", &["a", "a"]), LIMITS).is_err());
        assert!(admit(&mut head(v11, "/", &["bad host"]), LIMITS).is_err());
        // HTTP/1.0 may leave it out.
        assert!(admit(&mut head(Version::HTTP_10, "/", &[]), LIMITS).is_ok());
    }

    #[test]
    fn an_absolute_target_and_host_must_agree() {
        let v11 = Version::HTTP_11;
        let uri = "http://a.example/x";
        assert!(admit(&mut head(v11, uri, &["a.example"]), LIMITS).is_ok());
        assert!(admit(&mut head(v11, uri, &["A.EXAMPLE"]), LIMITS).is_ok());
        assert!(admit(&mut head(v11, uri, &["b.example"]), LIMITS).is_err());
        // HTTP/2 carries the authority in the URI; Host is optional.
        assert!(admit(&mut head(Version::HTTP_2, uri, &[]), LIMITS).is_ok());
        assert!(admit(&mut head(Version::HTTP_2, uri, &["b.example"]), LIMITS).is_err());
    }

    #[test]
    fn header_limits_and_paths() {
        let mut many = head(Version::HTTP_11, "/", &["a"]);
        for i in 0..4 {
            many.headers.insert(
                http::HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                "v".parse().unwrap(),
            );
        }
        assert!(matches!(
            admit(&mut many, LIMITS),
            Err(DownstreamError::TooManyHeaders(4))
        ));
        let mut dotted = head(Version::HTTP_11, "/a/../b?q=1", &["a"]);
        admit(&mut dotted, LIMITS).unwrap();
        assert_eq!(dotted.uri, "/b?q=1");
    }
}
