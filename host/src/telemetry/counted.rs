//! A body that counts its data bytes into a metric as they pass, so
//! `weir_request_body_bytes_total` and `weir_response_body_bytes_total`
//! hold what was really streamed, chunked bodies included; a [`Tally`]
//! holds a request's count until its route is known.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;

/// Where counted bytes go.
#[derive(Debug)]
pub enum Sink {
    /// A counter known now (a response: its route is known).
    Counter(Counter),
    /// A tally settled later (a request: routed after its body started).
    Tally(Arc<Tally>),
}

impl Sink {
    fn add(&self, n: u64) {
        match self {
            Sink::Counter(counter) => {
                counter.inc_by(n);
            }
            Sink::Tally(tally) => tally.add(n),
        }
    }
}

/// `inner`, with every data frame's length added to `sink`.
#[derive(Debug)]
pub struct Counted<B> {
    inner: B,
    sink: Sink,
}

impl<B> Counted<B> {
    /// Count `inner`'s bytes into `sink`.
    pub fn new(inner: B, sink: Sink) -> Self {
        Counted { inner, sink }
    }
}

impl<B> HttpBody for Counted<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.sink.add(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Body bytes counted before the route (and so the counter) is known,
/// then into the route's counter. A request's body is read on its
/// worker's thread, so the two atomics never race in practice; if they
/// did, bytes would be counted late, never lost or twice.
#[derive(Debug, Default)]
pub struct Tally {
    pending: AtomicU64,
    counter: OnceLock<Counter>,
}

impl Tally {
    /// Count `n` bytes.
    pub fn add(&self, n: u64) {
        match self.counter.get() {
            Some(counter) => {
                counter.inc_by(n);
            }
            None => {
                self.pending.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// From now on count into `counter`, with what was counted so far.
    pub fn settle(&self, counter: Counter) {
        let counter = self.counter.get_or_init(|| counter);
        self.flush(counter);
    }

    fn flush(&self, counter: &Counter) {
        let pending = self.pending.swap(0, Ordering::Relaxed);
        if pending > 0 {
            counter.inc_by(pending);
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if let Some(counter) = self.counter.get() {
            self.flush(counter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn every_data_frame_is_counted() {
        let counter = Counter::<u64>::default();
        let chunks = futures::stream::iter(
            ["hello ", "world"]
                .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c)))),
        );
        let body = http_body_util::StreamBody::new(chunks);
        let counted = Counted::new(body, Sink::Counter(counter.clone()));
        let bytes = counted.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "hello world");
        assert_eq!(counter.get(), 11);
    }

    #[test]
    fn a_tally_counts_bytes_before_and_after_the_counter_is_known() {
        let counter = Counter::<u64>::default();
        let tally = Tally::default();
        tally.add(10);
        tally.settle(counter.clone());
        tally.add(5);
        assert_eq!(counter.get(), 15);
    }
}
