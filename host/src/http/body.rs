//! Bodies: one boxed body type for everything the gateway sends and
//! receives; [`BodyState`], which streams a body untouched until a plugin
//! asks to read it, then buffers it (up to a limit) without losing any of
//! it; and [`ClientBody`], which bounds how long a client may stall its body
//! and records whose fault a broken body is.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};

/// Error type carried by bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response inside the gateway.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Box any body into [`Body`].
pub fn boxed<B>(body: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Why a body could not be buffered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BufferError {
    /// Larger than the limit (given). The body is intact and still streams.
    #[error("body is larger than {0} bytes")]
    TooLarge(u64),
    /// The peer failed mid-body.
    #[error("body read failed: {0}")]
    ReadFailed(String),
}

/// A body that is either still streaming or has been read into memory.
pub enum BodyState {
    /// Not read by anyone yet: passed through as it arrives.
    Streaming(Body),
    /// Read by a plugin (or replaced): held in memory.
    Buffered {
        /// The data.
        data: Bytes,
        /// Trailers, if the body had them.
        trailers: Option<HeaderMap>,
    },
}

impl BodyState {
    /// A body that starts out streaming.
    pub fn streaming(body: Body) -> Self {
        BodyState::Streaming(body)
    }

    /// A buffered body.
    pub fn buffered(data: impl Into<Bytes>) -> Self {
        BodyState::Buffered {
            data: data.into(),
            trailers: None,
        }
    }

    /// Read the whole body into memory (once) and return it. Past `limit`
    /// bytes, stops with [`BufferError::TooLarge`] and puts back what it read
    /// in front of the rest, so the body still streams on whole.
    pub async fn buffer(&mut self, limit: u64) -> Result<Bytes, BufferError> {
        let body = match self {
            BodyState::Buffered { data, .. } => return Ok(data.clone()),
            BodyState::Streaming(body) => body,
        };
        if body.size_hint().lower() > limit {
            return Err(BufferError::TooLarge(limit));
        }
        let mut frames: VecDeque<Frame<Bytes>> = VecDeque::new();
        let mut total: u64 = 0;
        let outcome = loop {
            match body.frame().await {
                None => break Ok(()),
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        total += data.len() as u64;
                    }
                    frames.push_back(frame);
                    if total > limit {
                        break Err(BufferError::TooLarge(limit));
                    }
                }
                Some(Err(e)) => break Err(BufferError::ReadFailed(e.to_string())),
            }
        };
        match outcome {
            Ok(()) => {
                let mut data = BytesMut::with_capacity(total as usize);
                let mut trailers = None;
                for frame in frames {
                    match frame.into_data() {
                        Ok(chunk) => data.extend_from_slice(&chunk),
                        Err(frame) => trailers = frame.into_trailers().ok(),
                    }
                }
                let data = data.freeze();
                *self = BodyState::Buffered {
                    data: data.clone(),
                    trailers,
                };
                Ok(data)
            }
            Err(e) => {
                let rest = std::mem::replace(body, empty());
                *self = BodyState::Streaming(Replay { frames, rest }.boxed_unsync());
                Err(e)
            }
        }
    }

    /// Replace the body with `data`.
    pub fn replace(&mut self, data: impl Into<Bytes>) {
        *self = BodyState::buffered(data);
    }

    /// Length if known without reading: buffered, or an exact size hint.
    pub fn known_len(&self) -> Option<u64> {
        match self {
            BodyState::Buffered { data, .. } => Some(data.len() as u64),
            BodyState::Streaming(body) => body.size_hint().exact(),
        }
    }

    /// The body to send on. A buffered body stays readable here (its bytes
    /// are shared, not copied); a streaming one is moved out, leaving an
    /// empty body behind.
    pub fn send(&mut self) -> Body {
        match self {
            BodyState::Buffered { data, trailers } => Buffered {
                data: (!data.is_empty()).then(|| data.clone()),
                trailers: trailers.clone(),
            }
            .boxed_unsync(),
            BodyState::Streaming(_) => {
                std::mem::replace(self, BodyState::buffered(Bytes::new())).into_body()
            }
        }
    }

    /// The body to send on.
    pub fn into_body(self) -> Body {
        match self {
            BodyState::Streaming(body) => body,
            BodyState::Buffered { data, trailers } => Buffered {
                data: (!data.is_empty()).then_some(data),
                trailers,
            }
            .boxed_unsync(),
        }
    }
}

/// What went wrong with a client's body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientBodyError {
    /// No part of the body arrived for this long (slow POST).
    #[error("the client sent no body data for {} ms", .0.as_millis())]
    Idle(Duration),
    /// The body was malformed (a bad chunk size, say) or cut short.
    #[error("the client's body is malformed: {0}")]
    Malformed(String),
}

/// Shared between a [`ClientBody`] and the request it belongs to: the first
/// failure of the client's body, if any, so an upstream error that follows
/// from it is blamed on the client.
#[derive(Debug, Clone, Default)]
pub struct BodyWatch(Arc<OnceLock<ClientBodyError>>);

impl BodyWatch {
    /// The client body's failure, if it failed.
    pub fn failure(&self) -> Option<&ClientBodyError> {
        self.0.get()
    }

    fn record(&self, error: ClientBodyError) {
        let _ = self.0.set(error);
    }
}

pin_project_lite::pin_project! {
    /// A client's request body: passed through untouched, but failing with
    /// [`ClientBodyError::Idle`] when no frame arrives for `idle`, and
    /// recording any failure in its [`BodyWatch`].
    pub struct ClientBody<B> {
        #[pin]
        inner: B,
        idle: Duration,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        watch: BodyWatch,
    }
}

impl<B> ClientBody<B> {
    /// Watch `inner`, allowing `idle` between frames.
    pub fn new(inner: B, idle: Duration, watch: BodyWatch) -> Self {
        ClientBody {
            inner,
            idle,
            timer: None,
            watch,
        }
    }
}

impl<B> HttpBody for ClientBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                // Data came: the next wait starts afresh.
                *this.timer = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                this.watch.record(ClientBodyError::Malformed(e.to_string()));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let idle = *this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if timer.as_mut().poll(cx).is_ready() {
                    let error = ClientBodyError::Idle(idle);
                    this.watch.record(error.clone());
                    return Poll::Ready(Some(Err(Box::new(error))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Frames already read, then the rest of the original body.
struct Replay {
    frames: VecDeque<Frame<Bytes>>,
    rest: Body,
}

impl HttpBody for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + buffered);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + buffered);
        }
        hint
    }
}

/// A buffered body with optional trailers.
struct Buffered {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl HttpBody for Buffered {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    fn chunked(chunks: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        StreamBody::new(futures::stream::iter(frames)).boxed_unsync()
    }

    #[tokio::test]
    async fn buffers_once_and_replays() {
        let mut state = BodyState::streaming(chunked(&[b"hello ", b"world"]));
        assert_eq!(
            state.buffer(100).await.unwrap(),
            Bytes::from_static(b"hello world")
        );
        assert_eq!(
            state.buffer(100).await.unwrap(),
            Bytes::from_static(b"hello world")
        );
        let all = state.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(all, Bytes::from_static(b"hello world"));
    }

    #[tokio::test]
    async fn too_large_loses_nothing() {
        let mut state = BodyState::streaming(chunked(&[b"0123", b"4567", b"89"]));
        assert_eq!(state.buffer(5).await, Err(BufferError::TooLarge(5)));
        let all = state.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(all, Bytes::from_static(b"0123456789"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_client_body_fails_idle_and_is_recorded() {
        let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let watch = BodyWatch::default();
        let body = ClientBody::new(
            StreamBody::new(rx),
            Duration::from_millis(100),
            watch.clone(),
        );
        tx.try_send(Ok(Frame::data(Bytes::from_static(b"part"))))
            .unwrap();
        // One frame, then nothing (the sender stays open): with time
        // paused, the idle timer fires as soon as the body waits.
        let started = tokio::time::Instant::now();
        assert!(body.collect().await.is_err());
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert_eq!(
            watch.failure(),
            Some(&ClientBodyError::Idle(Duration::from_millis(100)))
        );
        drop(tx);
    }

    #[tokio::test]
    async fn a_broken_client_body_is_recorded_as_malformed() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"ok"))),
            Err("invalid chunk size".into()),
        ];
        let watch = BodyWatch::default();
        let body = ClientBody::new(
            StreamBody::new(futures::stream::iter(frames)),
            Duration::from_secs(1),
            watch.clone(),
        );
        assert!(body.collect().await.is_err());
        assert!(matches!(
            watch.failure(),
            Some(ClientBodyError::Malformed(why)) if why.contains("chunk")
        ));
    }

    #[tokio::test]
    async fn exact_size_hint_over_limit_reads_nothing() {
        let mut state = BodyState::streaming(full(vec![7u8; 64]));
        assert_eq!(state.buffer(10).await, Err(BufferError::TooLarge(10)));
        assert_eq!(
            state.into_body().collect().await.unwrap().to_bytes().len(),
            64
        );
    }
}
