//! The auth service's answer turned into a decision, and the answers the
//! plugin gives the client itself.
//!
//! A 2xx allows, and the configured headers are taken from it. Any other
//! answer is the client's answer, as the auth service gave it (a 401 with
//! its `WWW-Authenticate`, a 302 to a login page, a 403 with a body), less
//! the headers that belonged to the connection to the auth service. No
//! answer at all fails closed with a 503 problem.

use weir_sdk::Reply;
use weir_sdk::outbound::{CallError, CallResponse};

use crate::config::HOP_BY_HOP;

/// What the auth service decided.
#[derive(Debug)]
pub enum Verdict {
    /// 2xx: go on, with these `(name, value)` pairs of the configured
    /// response headers (all their values, in order).
    Allow(Vec<(String, String)>),
    /// Anything else: answer the client with this.
    Deny(Reply),
}

/// Judge the auth service's answer; `copy` are the configured
/// `response_headers`, lower-case.
pub fn judge(answer: CallResponse, copy: &[String]) -> Verdict {
    if (200..300).contains(&answer.status) {
        let kept = answer
            .headers
            .into_iter()
            .filter(|(name, _)| copy.iter().any(|c| c.eq_ignore_ascii_case(name)))
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        return Verdict::Allow(kept);
    }
    Verdict::Deny(passed_on(answer))
}

/// The auth service's answer as the client's, without hop-by-hop headers
/// (those RFC 9110 lists and those its `Connection` names) or
/// `Content-Length`, which the gateway sets from the body.
fn passed_on(answer: CallResponse) -> Reply {
    let named_by_connection: Vec<String> = answer
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .collect();
    let headers = answer
        .headers
        .into_iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !HOP_BY_HOP.contains(&name.as_str()) && !named_by_connection.contains(&name)
        })
        .collect();
    Reply {
        status: answer.status,
        headers,
        body: answer.body,
    }
}

/// What a failed call is called in the 503's `detail`: the kind only. The
/// full cause (addresses, budget names) goes to the gateway's log, not to
/// clients.
pub fn failure_kind(error: &CallError) -> &'static str {
    match error {
        CallError::Timeout => "did not answer in time",
        CallError::ConnectFailed(_) => "is unreachable",
        CallError::Failed(_) => "broke off its answer",
        CallError::TooLarge(_) => "answered with more than the gateway accepts",
        CallError::UnknownUpstream(_)
        | CallError::NotGranted(_)
        | CallError::InvalidRequest(_)
        | CallError::BudgetExceeded(_) => "could not be called",
    }
}

/// The 503 problem (RFC 9457) for a check that got no decision.
pub fn unavailable(why: &str) -> Reply {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": format!("the authorization service {why}"),
    });
    Reply::new(503)
        .header("content-type", "application/problem+json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
}

/// A cached allowing decision: the headers to copy, as JSON.
pub fn encode(headers: &[(String, String)]) -> Vec<u8> {
    serde_json::to_vec(headers).unwrap_or_default()
}

/// A cached decision read back; `None` for anything unreadable (then the
/// auth service is asked again).
pub fn decode(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> CallResponse {
        CallResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn pair(n: &str, v: &str) -> (String, String) {
        (n.to_string(), v.to_string())
    }

    fn allowed(verdict: Verdict) -> Vec<(String, String)> {
        match verdict {
            Verdict::Allow(headers) => headers,
            Verdict::Deny(reply) => panic!("denied with {}", reply.status),
        }
    }

    #[test]
    fn a_2xx_allows_and_keeps_only_the_configured_headers() {
        let copy = vec!["x-user-id".to_string(), "x-role".to_string()];
        let ok = answer(
            204,
            &[
                ("x-user-id", "42"),
                ("set-cookie", "a=b"),
                ("x-role", "r1"),
                ("x-role", "r2"),
            ],
            "",
        );
        assert_eq!(
            allowed(judge(ok, &copy)),
            vec![
                pair("x-user-id", "42"),
                pair("x-role", "r1"),
                pair("x-role", "r2")
            ]
        );
        assert_eq!(allowed(judge(answer(200, &[], "fine"), &copy)), vec![]);
    }

    #[test]
    fn any_other_answer_is_passed_on_as_given() {
        let denied = answer(
            401,
            &[
                ("www-authenticate", r#"Bearer realm="x""#),
                ("content-type", "text/plain"),
            ],
            "no",
        );
        let Verdict::Deny(reply) = judge(denied, &[]) else {
            panic!("a 401 must deny")
        };
        assert_eq!(reply.status, 401);
        assert_eq!(
            reply.headers,
            vec![
                pair("www-authenticate", r#"Bearer realm="x""#),
                pair("content-type", "text/plain")
            ]
        );
        assert_eq!(reply.body, b"no");
        // Redirects and server errors of the auth service deny too.
        for status in [302, 304, 403, 500] {
            assert!(
                matches!(judge(answer(status, &[], ""), &[]), Verdict::Deny(r) if r.status == status)
            );
        }
    }

    #[test]
    fn hop_by_hop_headers_are_not_passed_on() {
        let denied = answer(
            302,
            &[
                ("location", "https://login.example.com/?rd=%2F"),
                ("connection", "keep-alive, x-auth-hop"),
                ("keep-alive", "timeout=5"),
                ("transfer-encoding", "chunked"),
                ("content-length", "0"),
                ("x-auth-hop", "1"),
                ("set-cookie", "state=abc"),
            ],
            "",
        );
        let Verdict::Deny(reply) = judge(denied, &[]) else {
            panic!("a 302 must deny")
        };
        assert_eq!(
            reply.headers,
            vec![
                pair("location", "https://login.example.com/?rd=%2F"),
                pair("set-cookie", "state=abc")
            ]
        );
    }

    #[test]
    fn no_answer_is_a_503_problem_naming_only_the_kind_of_failure() {
        let reply = unavailable(failure_kind(&CallError::ConnectFailed(
            "10.1.2.3:80 refused".into(),
        )));
        assert_eq!(reply.status, 503);
        assert_eq!(
            reply.headers,
            vec![pair("content-type", "application/problem+json")]
        );
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "about:blank",
                "title": "Service Unavailable",
                "status": 503,
                "detail": "the authorization service is unreachable",
            })
        );
        assert_eq!(failure_kind(&CallError::Timeout), "did not answer in time");
    }

    #[test]
    fn cached_decisions_round_trip_and_garbage_is_a_miss() {
        let headers = vec![pair("x-user-id", "42")];
        assert_eq!(decode(&encode(&headers)), Some(headers));
        assert_eq!(decode(&encode(&[])), Some(vec![]));
        assert_eq!(decode(b"not json"), None);
    }
}
