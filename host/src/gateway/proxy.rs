//! The **proxy** phase: the request as the plugins left it goes to the
//! upstream a plugin chose, with hop-by-hop headers stripped and
//! `X-Forwarded-*` set; the response comes back with its body streaming.
//! An upgrade request (WebSocket) keeps its `Upgrade` headers, and a 101
//! answer joins the two connections into a tunnel (`tunnel.rs`).

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;

use super::tunnel;
use crate::error::{GatewayError, UpstreamFailure};
use crate::exchange::{RequestState, ResponseState};
use crate::http::body::BodyState;
use crate::http::headers;
use crate::lifecycle::Drain;
use crate::pipeline::Pipeline;
use crate::upstream::{Affinity, Head, Outgoing};

/// Send the request to the chosen upstream and return its response head
/// with the body still streaming.
pub async fn proxy(
    pipeline: &Pipeline,
    req: &mut RequestState,
    drain: &Drain,
) -> Result<ResponseState, GatewayError> {
    let name = req.upstream.clone().ok_or(GatewayError::NoUpstream)?;
    let upstream = pipeline
        .upstreams()
        .get(&name)
        .ok_or_else(|| GatewayError::Internal(format!("upstream `{name}` vanished")))?;

    let upgrade = tunnel::requested(&req.head.headers, req.head.version);
    let client_upgrade = match upgrade {
        Some(_) => req.head.extensions.remove::<OnUpgrade>(),
        None => None,
    };
    let mut outgoing = req.head.headers.clone();
    let headers = &mut outgoing;
    headers::strip_hop_by_hop(headers);
    if let Some(protocol) = upgrade {
        tunnel::ask_for(headers, protocol);
    }
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
    // The upstream call's span, and its `traceparent` for the upstream.
    let span = req
        .trace
        .as_ref()
        .map(|trace| trace.client("upstream", &name, &req.head.method));
    if let Some(span) = &span {
        span.inject(headers);
    }
    let proto = if req.tls.is_some() { "https" } else { "http" };
    headers::add_forwarded(
        headers,
        req.client.ip(),
        proto,
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
        client_ip: Some(req.client_ip),
        headers: Some(&req.head.headers),
    };
    let sent = upstream.send(head, body, affinity, None).await;
    if let Some(span) = &span {
        match &sent {
            Ok(response) => span.set(opentelemetry::KeyValue::new(
                "http.response.status_code",
                i64::from(response.status().as_u16()),
            )),
            Err(failure) => span.fail(failure.to_string()),
        }
        span.end();
    }
    let response = sent.map_err(|failure| GatewayError::Upstream {
        upstream: name.clone(),
        failure,
    })?;
    let (mut head, body) = response.into_parts();
    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = head.extensions.remove::<OnUpgrade>();
        let protocol = head.headers.get(http::header::UPGRADE).cloned();
        match (client_upgrade, upstream_upgrade, protocol) {
            (Some(client), Some(upstream_side), Some(protocol)) => {
                tunnel::spawn(client, upstream_side, upstream.tunnel_idle(), drain.track());
                headers::strip_hop_by_hop(&mut head.headers);
                tunnel::ask_for(&mut head.headers, protocol);
            }
            _ => {
                return Err(GatewayError::Upstream {
                    upstream: name,
                    failure: UpstreamFailure::Protocol(
                        "101 Switching Protocols to a request that asked for no upgrade".into(),
                    ),
                });
            }
        }
    } else {
        headers::strip_hop_by_hop(&mut head.headers);
    }
    Ok(ResponseState {
        head,
        body: BodyState::streaming(body),
    })
}
