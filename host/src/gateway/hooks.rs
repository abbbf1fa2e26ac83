//! Phases 2 and 4 of a request: the plugins' `on-request` hooks in chain
//! order until one answers, and their `on-response` hooks in reverse. Also
//! what two `on-request` actions start beyond the hook call (contract
//! 0.3.0, see `deferred.rs`): a `wait` parks the request and runs the same
//! hook again; a `respond-then-continue` answers and carries a copy of the
//! request on in the background, through the later plugins, the upstream
//! and the `on-response` hooks from the answering plugin on.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use super::deferred::{self, BackgroundSlot};
use super::{Seen, governed, proxy};
use crate::error::{GatewayError, PluginFailure};
use crate::exchange::{Exchange, HeldRequest, HeldResponse, ResponseState};
use crate::governance::scope::Place;
use crate::lifecycle::Drain;
use crate::pipeline::Pipeline;
use crate::runtime::bindings::{Action, Reply as PluginReply, Wait};

/// A plugin's answer in `on-request`: its index, name and response.
pub type Reply = (usize, String, ResponseState);

/// Where the on-request phase starts: the chain of `place`, from position
/// `next`; `background` for a request carried on after
/// `respond-then-continue`.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    place: Place,
    next: usize,
    background: bool,
}

impl Start {
    /// The start of a request that just arrived.
    pub fn first(pipeline: &Pipeline, req: &HeldRequest) -> Start {
        Start {
            place: pipeline.scopes().place(req.original_authority.as_deref()),
            next: 0,
            background: false,
        }
    }
}

/// Why an `on-response` hook's `respond-then-continue` or `wait` is a
/// plugin failure.
const ON_REQUEST_ONLY: &str = "`respond-then-continue` and `wait` are for on-request only";

/// Phase 2, **on-request**: the plugins of the request's chain in order,
/// until one answers. The chain is the one for the request's host and, once
/// a plugin (the router) names it, its route; each place runs under its
/// governance (`governed.rs`: canary, quarantine, failure policy).
pub async fn request_hooks(
    pipeline: &Arc<Pipeline>,
    mut req: HeldRequest,
    seen: &mut Seen,
    start: Start,
    drain: &Drain,
) -> Result<(HeldRequest, Place, Option<Reply>), GatewayError> {
    let scopes = pipeline.scopes();
    let plugins = pipeline.plugins();
    let mut place = start.place;
    let mut chain = scopes.request_chain(place);
    let mut next = start.next;
    // Waits so far, by plugin index (a request seldom waits at all).
    let mut waits: Vec<(usize, u32)> = Vec::new();
    while let Some(&index) = chain.get(next) {
        next += 1;
        let governed::Turn {
            exchange,
            action,
            ran,
        } = governed::call(pipeline, index, Exchange::request(req)).await?;
        req = exchange.req;
        if let Some(answer) = req.answer.take() {
            let name = plugins
                .get(ran)
                .map_or_else(String::new, |p| p.name().to_string());
            return Ok((req, place, Some((index, name, *answer))));
        }
        if seen.route.is_none()
            && let Some(route) = req.context.get("route")
        {
            seen.route = Some(route.clone());
            // The route's chain from here on: plugins scoped to it join,
            // the ones already run are not run again.
            place = scopes.routed(place, route);
            chain = scopes.request_chain(place);
            next = chain.partition_point(|&i| i <= index);
        }
        let Some(plugin) = plugins.get(ran) else {
            continue;
        };
        let reply = match action {
            Action::Continue => continue,
            Action::Wait(wait) => {
                if park(pipeline, plugin.name(), &wait, index, &mut waits).await {
                    // The same plugin's hook again: at its place in the
                    // (possibly routed) chain.
                    next = chain.partition_point(|&i| i < index);
                }
                continue;
            }
            Action::Respond(reply) => reply,
            Action::RespondThenContinue(reply) => {
                if !start.background {
                    carry_on(pipeline, &req, place, index, ran, drain);
                }
                reply
            }
        };
        let resp = to_response(pipeline, ran, reply)?;
        return Ok((req, place, Some((index, plugin.name().to_string(), resp))));
    }
    Ok((req, place, None))
}

fn to_response(
    pipeline: &Pipeline,
    ran: usize,
    reply: PluginReply,
) -> Result<ResponseState, GatewayError> {
    crate::runtime::reply_to_response(reply, pipeline.limits().header_limits()).map_err(|why| {
        match pipeline.plugins().get(ran) {
            Some(plugin) => plugin.failed(PluginFailure::BadAction(why)),
            None => GatewayError::Internal(why),
        }
    })
}

/// Park a request for `wait`, within `limits.wait_max_ms` and
/// `limits.waits_per_request`; false when it may not wait again (the
/// action then counts as `continue`).
async fn park(
    pipeline: &Pipeline,
    namespace: &str,
    wait: &Wait,
    index: usize,
    waits: &mut Vec<(usize, u32)>,
) -> bool {
    let limits = pipeline.limits();
    if !waits.iter().any(|(i, _)| *i == index) {
        waits.push((index, 0));
    }
    let Some((_, count)) = waits.iter_mut().find(|(i, _)| *i == index) else {
        return false;
    };
    if *count >= limits.waits_per_request {
        tracing::debug!(
            plugin = namespace,
            "wait past waits_per_request: continuing"
        );
        return false;
    }
    *count += 1;
    let timeout = Duration::from_millis(u64::from(wait.timeout_ms).min(limits.wait_max_ms));
    deferred::until_absent(pipeline.kv().as_ref(), namespace, &wait.key, timeout).await;
    true
}

/// Start the background half of `respond-then-continue`: a copy of `req`
/// goes on from the plugin at chain index `index`, if it has no body and
/// the plugin has a background slot free.
fn carry_on(
    pipeline: &Arc<Pipeline>,
    req: &HeldRequest,
    place: Place,
    index: usize,
    ran: usize,
    drain: &Drain,
) {
    let Some(fork) = req.fork() else {
        return;
    };
    let Some(slot) = pipeline.background_slot(ran) else {
        tracing::debug!(
            plugin = pipeline.plugins().get(ran).map(|p| p.name()),
            "background_per_plugin reached: answering without carrying on"
        );
        return;
    };
    let next = pipeline
        .scopes()
        .request_chain(place)
        .partition_point(|&i| i <= index);
    let start = Start {
        place,
        next,
        background: true,
    };
    let task = background(
        pipeline.clone(),
        Box::new(fork),
        start,
        index,
        drain.clone(),
        slot,
    );
    tokio::spawn(task);
}

/// The background request: the rest of the chain, the upstream, and the
/// `on-response` hooks from plugin `index` on; its response is dropped.
async fn background(
    pipeline: Arc<Pipeline>,
    req: HeldRequest,
    start: Start,
    index: usize,
    drain: Drain,
    _slot: BackgroundSlot,
) {
    let mut seen = Seen {
        route: req.context.get("route").cloned(),
        ..Seen::default()
    };
    let result = async {
        let (mut req, place, reply) =
            request_hooks(&pipeline, req, &mut seen, start, &drain).await?;
        let (resp, reached) = match reply {
            Some((reached, _, resp)) => (resp, reached),
            None => {
                let resp = match proxy::proxy(&pipeline, &mut req, &drain).await {
                    Ok(resp) => resp,
                    Err(error @ GatewayError::Upstream { .. }) => {
                        ResponseState::from_response(error.to_response())
                    }
                    Err(error) => return Err(error),
                };
                (resp, pipeline.plugins().len())
            }
        };
        let mut resp = Box::new(resp);
        req.apply_response_headers(&mut resp, pipeline.limits().header_limits());
        response_hooks(&pipeline, place, index..reached, req, resp, None).await?;
        Ok::<_, GatewayError>(())
    }
    .await;
    if let Err(error) = result {
        tracing::debug!("background request after respond-then-continue: {error}");
    }
}

/// Phase 4, **on-response**: in reverse, the plugins of the request's chain
/// whose index is in `range` (before the one that answered, if one did;
/// from the one that carried the request on, in the background).
pub async fn response_hooks(
    pipeline: &Pipeline,
    place: Place,
    range: Range<usize>,
    mut req: HeldRequest,
    mut resp: HeldResponse,
    mut answered_by: Option<String>,
) -> Result<(HeldRequest, HeldResponse, Option<String>), GatewayError> {
    let scopes = pipeline.scopes();
    let plugins = pipeline.plugins();
    for &index in scopes
        .response_chain(place)
        .iter()
        .filter(|&&i| range.contains(&i))
    {
        let governed::Turn {
            exchange,
            action,
            ran,
        } = governed::call(pipeline, index, Exchange::response(req, resp)).await?;
        req = exchange.req;
        resp = match exchange.resp {
            Some(resp) => resp,
            None => {
                return Err(GatewayError::Internal(
                    "on-response gave no response back".into(),
                ));
            }
        };
        let Some(plugin) = plugins.get(ran) else {
            continue;
        };
        match action {
            Action::Continue => {}
            Action::Respond(r) => {
                resp = Box::new(to_response(pipeline, ran, r)?);
                answered_by = Some(plugin.name().to_string());
            }
            // The response is already on its way: there is nothing to
            // carry on with, nor a request to park.
            Action::RespondThenContinue(_) | Action::Wait(_) => {
                return Err(plugin.failed(PluginFailure::BadAction(ON_REQUEST_ONLY.to_string())));
            }
        }
    }
    Ok((req, resp, answered_by))
}
