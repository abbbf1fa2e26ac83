//! gRPC through the gateway: a real tonic service behind it (HTTP/2, h2c),
//! a real tonic client in front; unary and bidirectional streaming calls,
//! trailers both ways, and gRPC statuses when the gateway itself answers.

use std::net::SocketAddr;
use std::pin::Pin;

use bytes::{Buf, BufMut};
use futures::{Stream, StreamExt};
use http::uri::PathAndQuery;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::support::*;

/// Messages are raw bytes: no protobuf compiler needed.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

type Replies = Pin<Box<dyn Stream<Item = Result<Vec<u8>, Status>> + Send>>;

/// `/echo.Echo/Unary` answers the request reversed (or, for `fail`, an
/// INVALID_ARGUMENT status with `x-detail` trailing metadata);
/// `/echo.Echo/Bidi` answers every message upper-cased, as it comes.
async fn echo_service() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let mut grpc = tonic::server::Grpc::new(Raw);
                        let response = match req.uri().path() {
                            "/echo.Echo/Unary" => grpc.unary(tower::service_fn(unary), req).await,
                            "/echo.Echo/Bidi" => grpc.streaming(tower::service_fn(bidi), req).await,
                            _ => Status::unimplemented("no such method").into_http(),
                        };
                        Ok::<_, std::convert::Infallible>(response)
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    addr
}

async fn unary(request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Status> {
    let message = request.into_inner();
    if message == b"fail" {
        let mut status = Status::invalid_argument("you asked for it");
        status
            .metadata_mut()
            .insert("x-detail", "trailer-intact".parse().unwrap());
        return Err(status);
    }
    let mut response = Response::new(message.into_iter().rev().collect());
    response
        .metadata_mut()
        .insert("x-served-by", "echo".parse().unwrap());
    Ok(response)
}

async fn bidi(request: Request<Streaming<Vec<u8>>>) -> Result<Response<Replies>, Status> {
    let replies = request
        .into_inner()
        .map(|m| m.map(|bytes| bytes.to_ascii_uppercase()));
    Ok(Response::new(Box::pin(replies)))
}

/// A gateway routing `/echo.Echo/*` to the service over h2c, behind the
/// real auth plugin (key `grpc-key`, with `/echo.Echo/Open` public) and a
/// rate limit of 3 per hour per consumer.
async fn gateway(service: SocketAddr) -> Running {
    let key_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"grpc-key"))
    };
    Setup::new()
        .upstream_with(
            "echo",
            &format!("targets = [\"http://{service}\"]\nprotocol = \"h2c\""),
        )
        .router(json!({"routes": [
            {"name": "echo", "match": {"path_prefix": "/echo.Echo/"}, "upstream": "echo"},
            {"name": "limited", "match": {"path": "/limited.Svc/Call"}, "upstream": "echo"}
        ]}))
        .plugin(
            "60-auth",
            "weir_plugin_auth",
            Some(json!({
                "api_key": {"header": "x-api-key", "consumers": [{"id": "grpc-user", "sha256": key_sha}]},
                "default": {"methods": ["api_key"]}
            })),
        )
        .plugin(
            "70-rate-limit",
            "weir_plugin_rate_limit",
            Some(json!({"limits": [{"name": "tiny", "key": "consumer", "rate": 1, "per": "1h", "routes": ["limited"]}]})),
        )
        .serve()
        .await
}

async fn client(gw: &Running) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", gw.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

fn keyed<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", "grpc-key".parse().unwrap());
    request
}

async fn call(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    path: &'static str,
    request: Request<Vec<u8>>,
) -> Result<Response<Vec<u8>>, Status> {
    grpc.ready().await.unwrap();
    grpc.unary(request, PathAndQuery::from_static(path), Raw)
        .await
}

#[tokio::test]
async fn unary_calls_pass_with_headers_and_trailers_intact() {
    let gw = gateway(echo_service().await).await;
    let mut grpc = client(&gw).await;
    let response = call(&mut grpc, "/echo.Echo/Unary", keyed(b"abc".to_vec()))
        .await
        .unwrap();
    assert_eq!(response.metadata().get("x-served-by").unwrap(), "echo");
    assert_eq!(response.into_inner(), b"cba");
    // An error status and its trailing metadata come back as the service
    // sent them.
    let status = call(&mut grpc, "/echo.Echo/Unary", keyed(b"fail".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "you asked for it");
    assert_eq!(status.metadata().get("x-detail").unwrap(), "trailer-intact");
}

#[tokio::test]
async fn bidirectional_streams_flow_without_buffering() {
    let gw = gateway(echo_service().await).await;
    let mut grpc = client(&gw).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    grpc.ready().await.unwrap();
    let response = grpc
        .streaming(
            keyed(tokio_stream_from(rx)),
            PathAndQuery::from_static("/echo.Echo/Bidi"),
            Raw,
        )
        .await
        .unwrap();
    let mut replies = response.into_inner();
    // Each reply arrives before the next message is sent: nothing waits
    // for the whole stream.
    for i in 0..10 {
        tx.send(format!("message {i}").into_bytes()).await.unwrap();
        let reply = replies.message().await.unwrap().unwrap();
        assert_eq!(reply, format!("MESSAGE {i}").into_bytes());
    }
    drop(tx);
    assert!(replies.message().await.unwrap().is_none());
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> impl Stream<Item = Vec<u8>> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn the_gateways_own_answers_are_grpc_statuses() {
    let gw = gateway(echo_service().await).await;
    let mut grpc = client(&gw).await;
    // No route: UNIMPLEMENTED.
    let status = call(&mut grpc, "/nowhere.Svc/Call", keyed(b"x".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    // No key: UNAUTHENTICATED.
    let status = call(&mut grpc, "/echo.Echo/Unary", Request::new(b"x".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // Over the rate limit: RESOURCE_EXHAUSTED (the first call passes and
    // gets UNIMPLEMENTED from the service itself).
    let first = call(&mut grpc, "/limited.Svc/Call", keyed(b"x".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(first.code(), Code::Unimplemented);
    let status = call(&mut grpc, "/limited.Svc/Call", keyed(b"x".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // The service down: UNAVAILABLE.
    drop(gw);
    let gw = gateway("127.0.0.1:9".parse().unwrap()).await;
    let mut grpc = client(&gw).await;
    let status = call(&mut grpc, "/echo.Echo/Unary", keyed(b"x".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}
