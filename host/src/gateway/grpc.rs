//! gRPC answers from the gateway itself. When the gateway or a plugin (not
//! the upstream) answers a gRPC request — no route, 401, 429, the upstream
//! down — a gRPC client needs a gRPC status, not a JSON body: HTTP 200 with
//! `grpc-status` and `grpc-message` in a headers-only ("trailers-only")
//! response, as Envoy answers. The HTTP status maps as gRPC's own
//! HTTP-to-gRPC table says, except that 429 is RESOURCE_EXHAUSTED (a rate
//! limit) and 504/408 DEADLINE_EXCEEDED.

use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::http::body::{self, Body};

/// Whether a request is gRPC (its `content-type` says so).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The gRPC status code for an HTTP status the gateway answered with.
pub fn code_for(status: StatusCode) -> u32 {
    match status.as_u16() {
        200..=299 => 0,
        400 => 13,       // INTERNAL, as gRPC's mapping says
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        404 | 405 => 12, // UNIMPLEMENTED
        408 | 504 => 4,  // DEADLINE_EXCEEDED
        413 | 429 => 8,  // RESOURCE_EXHAUSTED
        502 | 503 => 14, // UNAVAILABLE
        500 => 13,       // INTERNAL
        _ => 2,          // UNKNOWN
    }
}

/// `response` (the gateway's or a plugin's answer to a gRPC request) as a
/// trailers-only gRPC response carrying the same meaning. A response that
/// already carries `grpc-status` is left as it is.
pub async fn localize(response: Response<Body>) -> Response<Body> {
    if response.headers().contains_key("grpc-status") {
        return response;
    }
    let (head, body) = response.into_parts();
    let message = message_of(head.status, body).await;
    let mut answer = Response::new(body::empty());
    let headers = answer.headers_mut();
    for (name, value) in &head.headers {
        // Keep what plugins added (RateLimit, WWW-Authenticate, CORS...),
        // not the framing of the JSON body.
        if name != http::header::CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code_for(head.status)));
    if let Ok(value) = HeaderValue::from_str(&percent_encode(&message)) {
        headers.insert("grpc-message", value);
    }
    answer
}

/// A short message: the JSON body's `message` or `error`, else the reason.
async fn message_of(status: StatusCode, body: Body) -> String {
    use http_body_util::BodyExt;
    let reason = status.canonical_reason().unwrap_or("error").to_string();
    // Gateway and plugin answers are small and already in memory; cap the
    // read anyway.
    let mut body = body;
    let mut bytes = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            bytes.extend_from_slice(data);
        }
        if bytes.len() > 16 * 1024 {
            return reason;
        }
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return reason;
    };
    ["message", "error"]
        .iter()
        .find_map(|key| json.get(key).and_then(|v| v.as_str()))
        .map_or(reason, str::to_string)
}

/// gRPC's percent-encoding of `grpc-message`: bytes outside printable
/// ASCII, and `%`, as `%XX`.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_json_401_becomes_unauthenticated() {
        let mut response = crate::error::json_response(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error": "unauthorized", "message": "credentials required"}),
        );
        response
            .headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        let answer = localize(response).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["content-type"], "application/grpc");
        assert_eq!(answer.headers()["grpc-status"], "16");
        assert_eq!(answer.headers()["grpc-message"], "credentials required");
        assert_eq!(answer.headers()["www-authenticate"], "Bearer");
    }

    #[test]
    fn codes_and_encoding() {
        assert_eq!(code_for(StatusCode::TOO_MANY_REQUESTS), 8);
        assert_eq!(code_for(StatusCode::NOT_FOUND), 12);
        assert_eq!(code_for(StatusCode::BAD_GATEWAY), 14);
        assert_eq!(percent_encode("50% off: é"), "50%25 off: %C3%A9");
        let grpc: HeaderMap = [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        )]
        .into_iter()
        .collect();
        assert!(is_grpc(&grpc));
        assert!(!is_grpc(&HeaderMap::new()));
    }
}
