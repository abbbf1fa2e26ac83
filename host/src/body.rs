//! Bodies: one boxed body type for everything the gateway sends and
//! receives, and [`BodyState`], which streams a body untouched until a plugin
//! asks to read it, then buffers it (up to a limit) without losing any of it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

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
