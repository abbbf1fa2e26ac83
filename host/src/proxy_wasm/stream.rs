//! One HTTP stream through a filter, callback by callback, as Envoy drives
//! it: `proxy_on_context_create`, the request headers, then the request
//! body (buffered up to `limits.max_body_bytes` and given whole, with
//! `end_of_stream` set); in the response hook the response headers and
//! body; then `proxy_on_log`, `proxy_on_done` and `proxy_on_delete`.
//!
//! A callback that returns `Pause` suspends the stream (the task waits; the
//! worker thread serves others) until the filter calls
//! `proxy_continue_stream` or `proxy_send_local_response`, typically from
//! `proxy_on_http_call_response` after a `proxy_http_call` the host makes
//! meanwhile. The whole of it runs within the hook's deadline.

use bytes::Bytes;
use http::HeaderValue;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use tokio::sync::OwnedSemaphorePermit;

use super::abi::action;
use super::instance::{Instances, Warm};
use super::state::LocalReply;
use crate::exchange::{HeldRequest, HeldResponse};
use crate::http::body::{BodyState, BufferError};
use crate::runtime::DeadlineReached;
use crate::runtime::bindings::weir::plugin::outbound;

/// How a callback sequence ended.
pub enum Flow {
    /// Go on.
    Continue,
    /// Answer with the filter's reply.
    Respond(LocalReply),
}

/// An instance serving one stream, with its slot.
pub struct Held {
    pub warm: Warm,
    pub ctx: u32,
    pub permit: OwnedSemaphorePermit,
}

type Res<T> = wasmtime::Result<T>;

/// Which half of the stream a callback belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Request,
    Response,
}

impl Held {
    /// A new context on `warm` (deleting a context a dropped request left).
    pub async fn open(mut warm: Warm, permit: OwnedSemaphorePermit) -> Res<Held> {
        if let Some(old) = warm.unfinished.take() {
            finish_context(&mut warm, old).await?;
        }
        warm.last_id = warm
            .last_id
            .wrapping_add(1)
            .max(super::instance::ROOT_ID + 1);
        let ctx = warm.last_id;
        warm.store.data_mut().stream_id = Some(ctx);
        warm.exports
            .context_create
            .call_async(&mut warm.store, (ctx, super::instance::ROOT_ID))
            .await?;
        Ok(Held { warm, ctx, permit })
    }

    /// The headers callback, then (when the filter goes on and there is a
    /// body to give it) the body callback, of one half.
    pub async fn run_half(&mut self, half: Half) -> Res<Flow> {
        let (headers_cb, body_cb) = match half {
            Half::Request => (
                self.warm.exports.request_headers.clone(),
                self.warm.exports.request_body.clone(),
            ),
            Half::Response => (
                self.warm.exports.response_headers.clone(),
                self.warm.exports.response_body.clone(),
            ),
        };
        let (count, body_len) = self.counts(half);
        let eos = body_len == Some(0);
        if let Some(cb) = headers_cb {
            let act = cb
                .call_async(&mut self.warm.store, (self.ctx, count, u32::from(eos)))
                .await?;
            if let Flow::Respond(reply) = self.settle_action(act).await? {
                return Ok(Flow::Respond(reply));
            }
        }
        let Some(cb) = body_cb else {
            return Ok(Flow::Continue);
        };
        if eos || !self.has_filterable_body(half) {
            return Ok(Flow::Continue);
        }
        let max = self.warm.store.data().host.caps.max_body_bytes;
        let deadline = self.warm.store.data().host.deadline;
        let body = match self.body_state(half) {
            Some(body) => crate::runtime::within(deadline, body.buffer(max)).await?,
            None => return Ok(Flow::Continue),
        };
        let (bytes, end) = match body {
            Ok(bytes) => (bytes.to_vec(), true),
            // Too large to buffer: the filter is told there is more to come
            // with nothing buffered; one that wants the whole body (Pause)
            // is answered as Envoy answers a filter over its buffer limit.
            Err(BufferError::TooLarge(_)) => (Vec::new(), false),
            Err(BufferError::ReadFailed(why)) => {
                return Err(wasmtime::Error::msg(format!("reading the body: {why}")));
            }
        };
        let len = bytes.len() as u32;
        self.warm.store.data_mut().exchange.body = Some(bytes);
        self.warm.store.data_mut().exchange.body_changed = false;
        let act = cb
            .call_async(&mut self.warm.store, (self.ctx, len, u32::from(end)))
            .await?;
        let flow = self.settle_action(act).await?;
        let exchange = &mut self.warm.store.data_mut().exchange;
        let body = exchange.body.take();
        if !end && act == action::PAUSE && matches!(flow, Flow::Continue) && !exchange.resumed {
            return Ok(Flow::Respond(too_large(half)));
        }
        if exchange.body_changed
            && let Some(body) = body
        {
            let target = match half {
                Half::Request => exchange
                    .req
                    .as_mut()
                    .map(|r| (&mut r.head.headers, &mut r.body)),
                Half::Response => exchange
                    .resp
                    .as_mut()
                    .map(|r| (&mut r.head.headers, &mut r.body)),
            };
            if let Some((headers, state)) = target {
                headers.remove(TRANSFER_ENCODING);
                headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
                state.replace(Bytes::from(body));
            }
        }
        Ok(flow)
    }

    /// Header count (pseudo-headers included) and known body length.
    fn counts(&self, half: Half) -> (u32, Option<u64>) {
        let exchange = &self.warm.store.data().exchange;
        match half {
            Half::Request => exchange.req.as_ref().map_or((0, Some(0)), |r| {
                (r.head.headers.len() as u32 + 4, r.body.known_len())
            }),
            Half::Response => exchange.resp.as_ref().map_or((0, Some(0)), |r| {
                (r.head.headers.len() as u32 + 1, r.body.known_len())
            }),
        }
    }

    /// Bodies of upgrades (WebSocket) stream both ways for as long as the
    /// connection lives and are never buffered for a filter.
    fn has_filterable_body(&self, half: Half) -> bool {
        let exchange = &self.warm.store.data().exchange;
        let upgrade = exchange
            .req
            .as_ref()
            .is_some_and(|r| r.head.headers.contains_key(http::header::UPGRADE));
        let switching = half == Half::Response
            && exchange
                .resp
                .as_ref()
                .is_some_and(|r| r.head.status == http::StatusCode::SWITCHING_PROTOCOLS);
        !upgrade && !switching
    }

    fn body_state(&mut self, half: Half) -> Option<&mut BodyState> {
        let exchange = &mut self.warm.store.data_mut().exchange;
        match half {
            Half::Request => exchange.req.as_mut().map(|r| &mut r.body),
            Half::Response => exchange.resp.as_mut().map(|r| &mut r.body),
        }
    }

    /// After a callback returned `act`: a local reply wins; `Continue` goes
    /// on; `Pause` waits for the calls the filter dispatched, delivering
    /// each answer to `proxy_on_http_call_response`, until the filter
    /// resumes or replies. A pause with nothing left to wait for lasts
    /// until the hook's deadline, as the filter asked.
    async fn settle_action(&mut self, act: u32) -> Res<Flow> {
        self.warm.store.data_mut().exchange.resumed = false;
        let mut paused = act == action::PAUSE;
        loop {
            let exchange = &mut self.warm.store.data_mut().exchange;
            if let Some(reply) = exchange.local.take() {
                return Ok(Flow::Respond(reply));
            }
            if exchange.closed {
                return Err(wasmtime::Error::msg(
                    "the filter closed the stream (proxy_close_stream)",
                ));
            }
            if exchange.resumed {
                paused = false;
                exchange.resumed = false;
            }
            let dispatched = std::mem::take(&mut exchange.dispatched);
            if dispatched.is_empty() {
                if !paused {
                    return Ok(Flow::Continue);
                }
                let deadline = self.warm.store.data().host.deadline;
                tokio::time::sleep_until(deadline).await;
                return Err(wasmtime::Error::new(DeadlineReached));
            }
            for (token, call) in dispatched {
                self.deliver(token, call).await?;
            }
            // Calls made by a callback that continued without waiting
            // still get their answers; the stream goes on after them.
        }
    }

    /// Make one dispatched call and hand its answer to the filter.
    async fn deliver(&mut self, token: u32, call: outbound::Call) -> Res<()> {
        let answer = outbound::Host::send(&mut self.warm.store.data_mut().host, call).await?;
        let answer = answer.unwrap_or_else(|error| {
            tracing::debug!(
                plugin = &*self.warm.store.data().host.plugin,
                "proxy_http_call failed: {error:?}"
            );
            // A failed call is reported as Envoy reports one: no headers,
            // no body (`:status` absent).
            outbound::CallResponse {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
            }
        });
        let headers = if answer.status == 0 {
            0
        } else {
            answer.headers.len() as u32 + 1
        };
        let body = answer.body.len() as u32;
        self.warm.store.data_mut().exchange.call_response = Some(answer);
        if let Some(cb) = self.warm.exports.http_call_response.clone() {
            cb.call_async(&mut self.warm.store, (self.ctx, token, headers, body, 0))
                .await?;
        }
        self.warm.store.data_mut().exchange.call_response = None;
        Ok(())
    }

    /// `proxy_on_log`, `proxy_on_done` and `proxy_on_delete`.
    pub async fn finish(&mut self) -> Res<()> {
        finish_context(&mut self.warm, self.ctx).await
    }

    /// Lend the request (and response) to the exchange.
    pub fn lend(&mut self, req: HeldRequest, resp: Option<HeldResponse>) {
        let exchange = &mut self.warm.store.data_mut().exchange;
        exchange.req = Some(req);
        exchange.resp = resp;
    }

    /// Take them back.
    pub fn take(&mut self) -> (Option<HeldRequest>, Option<HeldResponse>) {
        let exchange = &mut self.warm.store.data_mut().exchange;
        (exchange.req.take(), exchange.resp.take())
    }

    /// Return the instance to `instances`; an unfinished stream's context
    /// is deleted when the instance next serves.
    pub fn release(mut self, instances: &Instances, finished: bool) {
        if !finished {
            self.warm.unfinished = Some(self.ctx);
        }
        instances.give_back(self.warm);
        drop(self.permit);
    }
}

async fn finish_context(warm: &mut Warm, ctx: u32) -> Res<()> {
    if let Some(log) = warm.exports.log.clone() {
        log.call_async(&mut warm.store, ctx).await?;
    }
    if let Some(done) = warm.exports.done.clone() {
        done.call_async(&mut warm.store, ctx).await?;
    }
    if let Some(delete) = warm.exports.delete.clone() {
        delete.call_async(&mut warm.store, ctx).await?;
    }
    Ok(())
}

/// The answer Envoy gives when a filter wants a body past the buffer
/// limit: 413 for a request, 500 for a response.
fn too_large(half: Half) -> LocalReply {
    let (status, text) = match half {
        Half::Request => (413, "payload too large\n"),
        Half::Response => (500, "response body too large for the filter\n"),
    };
    LocalReply {
        status,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: text.as_bytes().to_vec(),
    }
}
