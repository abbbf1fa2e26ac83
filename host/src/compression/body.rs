//! A response body compressed as it streams: each chunk is encoded as it
//! arrives, and whatever the encoder holds is flushed whenever the
//! upstream has nothing more ready, so a slow stream (a long poll, a
//! chunked feed) reaches the client as it comes rather than when the
//! encoder's window fills. Memory stays at the encoder's window plus one
//! chunk, whatever the body's size.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use compression_codecs::EncodeV2;
use compression_core::util::{PartialBuffer, WriteBuffer};
use http_body::{Frame, SizeHint};

use crate::http::body::{Body, BoxError};

/// Room added to the output per step.
const STEP: usize = 8 * 1024;

/// The body of a compressed response.
pub struct Compressed {
    inner: Body,
    encoder: Box<dyn EncodeV2 + Send>,
    /// Input was encoded since the last flush.
    dirty: bool,
    done: bool,
    /// Trailers that came after the body, sent after its last bytes.
    trailers: Option<http::HeaderMap>,
}

impl Compressed {
    /// `inner` encoded by `encoder`.
    pub fn new(inner: Body, encoder: Box<dyn EncodeV2 + Send>) -> Compressed {
        Compressed {
            inner,
            encoder,
            dirty: false,
            done: false,
            trailers: None,
        }
    }

    fn encode(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut input = PartialBuffer::new(input);
        let mut out = Vec::new();
        while !input.unwritten().is_empty() {
            step(&mut out, input.unwritten().len() / 2, |w| {
                self.encoder.encode(&mut input, w).map(|()| true)
            })?;
        }
        Ok(out)
    }

    fn drain(&mut self, finish: bool) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let complete = step(&mut out, 0, |w| {
                if finish {
                    self.encoder.finish(w)
                } else {
                    self.encoder.flush(w)
                }
            })?;
            if complete {
                return Ok(out);
            }
        }
    }
}

/// Give `f` a buffer of `room` (at least [`STEP`]) bytes, and append what
/// it wrote to `out`.
fn step(
    out: &mut Vec<u8>,
    room: usize,
    f: impl FnOnce(&mut WriteBuffer<'_>) -> io::Result<bool>,
) -> io::Result<bool> {
    let mut spare = vec![0u8; room.max(STEP)];
    let mut buffer = WriteBuffer::new_initialized(&mut spare);
    let result = f(&mut buffer);
    out.extend_from_slice(buffer.written());
    result
}

fn frame(out: Vec<u8>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
}

impl http_body::Body for Compressed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame_in))) => {
                    // Trailers end the body: the encoder is finished, and
                    // they follow its last bytes.
                    let data = match frame_in.into_data() {
                        Ok(data) => data,
                        Err(frame_in) => {
                            if let Ok(trailers) = frame_in.into_trailers() {
                                this.trailers = Some(trailers);
                                this.done = true;
                                return frame(this.drain(true)?);
                            }
                            continue;
                        }
                    };
                    if data.is_empty() {
                        continue;
                    }
                    let out = this.encode(&data)?;
                    this.dirty = true;
                    if !out.is_empty() {
                        return frame(out);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.done = true;
                    return frame(this.drain(true)?);
                }
                Poll::Pending => {
                    if this.dirty {
                        this.dirty = false;
                        let out = this.drain(false)?;
                        if !out.is_empty() {
                            return frame(out);
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
