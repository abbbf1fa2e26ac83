//! Refusals as RFC 9457 problem details (`application/problem+json`), with
//! every violation in `errors`, each with its JSON pointer.

use serde_json::json;
use weir_sdk::Reply;

use crate::schema::{Class, Violation};

fn title(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        _ => "Unprocessable Content",
    }
}

/// The status for these violations: the most fundamental problem wins
/// (too large, then media type, then malformed, then shape).
pub fn status_of(violations: &[Violation]) -> u16 {
    violations
        .iter()
        .map(|v| v.class)
        .max()
        .unwrap_or(Class::Shape)
        .status()
}

/// The problem reply for `violations` on `route`.
pub fn refusal(status: u16, route: Option<&str>, violations: &[Violation]) -> Reply {
    let detail = match (violations.len(), route) {
        (1, Some(r)) => format!("1 problem with the request to route `{r}`"),
        (n, Some(r)) => format!("{n} problems with the request to route `{r}`"),
        (1, None) => "1 problem with the request".to_string(),
        (n, None) => format!("{n} problems with the request"),
    };
    let body = json!({
        "type": "about:blank",
        "title": title(status),
        "status": status,
        "detail": detail,
        "errors": violations,
    });
    let text = serde_json::to_vec(&body).unwrap_or_default();
    Reply::new(status)
        .header("content-type", "application/problem+json")
        .body(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_fundamental_problem_sets_the_status() {
        let v = |class| Violation::new(class, "/x", "k", "d");
        assert_eq!(status_of(&[v(Class::Shape)]), 422);
        assert_eq!(status_of(&[v(Class::Shape), v(Class::Malformed)]), 400);
        assert_eq!(status_of(&[v(Class::Malformed), v(Class::MediaType)]), 415);
        assert_eq!(status_of(&[v(Class::TooLarge), v(Class::Shape)]), 413);
    }

    #[test]
    fn problems_follow_rfc_9457() {
        let reply = refusal(
            422,
            Some("orders"),
            &[Violation::new(Class::Shape, "/body/qty", "type", "wrong")],
        );
        assert_eq!(reply.status, 422);
        assert!(
            reply
                .headers
                .contains(&("content-type".into(), "application/problem+json".into()))
        );
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["title"], "Unprocessable Content");
        assert_eq!(body["status"], 422);
        assert_eq!(
            body["errors"][0],
            json!({"pointer": "/body/qty", "keyword": "type", "detail": "wrong"})
        );
    }
}
