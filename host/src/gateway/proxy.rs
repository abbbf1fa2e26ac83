//! The **proxy** phase: the request as the plugins left it goes to the
//! upstream a plugin chose, with hop-by-hop headers stripped and
//! `X-Forwarded-*` set; the response comes back with its body streaming.

use bytes::Bytes;
use http::HeaderValue;

use crate::error::GatewayError;
use crate::exchange::{RequestState, ResponseState};
use crate::http::body::BodyState;
use crate::http::headers;
use crate::pipeline::Pipeline;
use crate::upstream::{Affinity, Head, Outgoing};

/// Send the request to the chosen upstream and return its response head
/// with the body still streaming.
pub async fn proxy(
    pipeline: &Pipeline,
    req: &mut RequestState,
) -> Result<ResponseState, GatewayError> {
    let name = req.upstream.clone().ok_or(GatewayError::NoUpstream)?;
    let upstream = pipeline
        .upstreams()
        .get(&name)
        .ok_or_else(|| GatewayError::Internal(format!("upstream `{name}` vanished")))?;

    let mut outgoing = req.head.headers.clone();
    let headers = &mut outgoing;
    headers::strip_hop_by_hop(headers);
    // Keep the authority the client asked for (HTTP/2 clients send it as
    // `:authority`, not `Host`), as Envoy and Traefik do by default.
    if !headers.contains_key(http::header::HOST)
        && let Some(value) = req
            .original_authority
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
    {
        headers.insert(http::header::HOST, value);
    }
    headers::add_forwarded(
        headers,
        req.client.ip(),
        "http",
        req.original_authority.as_deref(),
    );

    // A buffered body (or none) can be replayed on a retry; a streaming
    // one cannot.
    let replayable = match &req.body {
        BodyState::Buffered {
            data,
            trailers: None,
        } => Some(data.clone()),
        BodyState::Streaming(b) if http_body::Body::size_hint(b).exact() == Some(0) => {
            Some(Bytes::new())
        }
        _ => None,
    };
    let body = match replayable {
        Some(bytes) => Outgoing::Replayable(bytes),
        None => Outgoing::Streaming(req.body.send()),
    };
    let head = Head {
        method: &req.head.method,
        path_and_query: req.path_with_query(),
        headers: outgoing,
    };
    let affinity = Affinity {
        client_ip: Some(req.client.ip()),
        headers: Some(&req.head.headers),
    };
    let response = upstream
        .send(head, body, affinity, None)
        .await
        .map_err(|failure| GatewayError::Upstream {
            upstream: name.clone(),
            failure,
        })?;
    let (mut head, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut head.headers);
    Ok(ResponseState {
        head,
        body: BodyState::streaming(body),
    })
}
