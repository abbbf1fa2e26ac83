//! The soak's upstreams, in-process on loopback: an HTTP service answering
//! a fixed 64-byte JSON body, a WebSocket echo, and a gRPC echo (bidi
//! streaming over h2c, raw-bytes messages), plus a real `redis-server`
//! that can be stopped and started again on its port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};

use bytes::{Buf, BufMut, Bytes};
use futures::{SinkExt, Stream, StreamExt};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Request, Response, Status, Streaming};

/// The HTTP service: every request gets the same small JSON answer.
pub async fn http_service() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    let body = Full::new(Bytes::from_static(
                        br#"{"ok":true,"service":"one","pad":"xxxxxxxxxxxxxxxxxxxx"}"#,
                    ));
                    Ok::<_, Infallible>(http::Response::new(body))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The WebSocket echo: every text or binary message comes back.
pub async fn websocket_echo() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(message)) = rx.next().await {
                    if (message.is_text() || message.is_binary()) && tx.send(message).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// gRPC messages as raw bytes: no protobuf compiler needed.
#[derive(Clone, Copy, Default)]
pub struct Raw;

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

async fn bidi(request: Request<Streaming<Vec<u8>>>) -> Result<Response<Replies>, Status> {
    let replies = request
        .into_inner()
        .map(|m| m.map(|bytes| bytes.to_ascii_uppercase()));
    Ok(Response::new(Box::pin(replies)))
}

/// The gRPC echo: `/echo.Echo/Bidi` answers every message upper-cased.
pub async fn grpc_echo() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let mut grpc = tonic::server::Grpc::new(Raw);
                        let response = match req.uri().path() {
                            "/echo.Echo/Bidi" => grpc.streaming(tower::service_fn(bidi), req).await,
                            _ => Status::unimplemented("no such method").into_http(),
                        };
                        Ok::<_, Infallible>(response)
                    },
                );
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// A `redis-server` on a fixed loopback port, restartable.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Start one on a free port.
    pub fn start() -> anyhow::Result<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut redis = Redis { port, child: None };
        redis.up()?;
        Ok(redis)
    }

    /// Start it (again) and wait until it answers.
    pub fn up(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("redis-server is needed (apt-get install redis-server): {e}")
            })?;
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        anyhow::bail!("redis-server did not start on port {}", self.port)
    }

    /// Kill it (SIGKILL: a crash, not a shutdown).
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.down();
    }
}
