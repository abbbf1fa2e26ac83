//! The host functions of the proxy-wasm ABI 0.2.1 (module `env`), linked
//! beside WASI preview 1. Each reads its arguments out of the filter's
//! memory (never trusting a pointer or size), acts on the stream's
//! [`StreamState`](super::state::StreamState) or one of Weir's governed
//! capabilities, and answers a [`Status`]. Calls Weir does not offer
//! (shared queues, gRPC calls, foreign functions, tick periods) answer
//! `Unimplemented`; docs/plugins.md lists them.

use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Linker};

use super::abi::{self, Status, buffer, metric, stream};
use super::headers::{self, Edit};
use super::state::{FilterState, LocalReply, Metric};
use super::{properties, shared};
use crate::governance::grants::Capability;
use crate::runtime::bindings::weir::plugin::{log, outbound};
use crate::runtime::within;
use crate::telemetry::plugin_metrics::{Definition, Kind};

type R = wasmtime::Result<u32>;
type Cx<'a> = Caller<'a, FilterState>;

fn ok(status: Status) -> R {
    Ok(status as u32)
}

/// Whether the filter's grant includes `capability`; a refusal is logged
/// within the plugin's log budget (the filter decides how often).
fn granted(state: &FilterState, capability: Capability, call: &str) -> bool {
    let host = &state.host;
    if host.grants.allows(capability) {
        return true;
    }
    let plugin = &*host.plugin;
    let message = format!(
        "{call} refused: the plugin's grant does not include {:?} ([plugins.{plugin}] capabilities)",
        capability.name()
    );
    if host.budget.admit_log(message.len()) {
        tracing::warn!(plugin, "{message}");
    }
    false
}

/// Add every ABI function to `linker`.
pub fn add_to_linker(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    logging(linker)?;
    buffers(linker)?;
    header_maps(linker)?;
    property_calls(linker)?;
    shared_data(linker)?;
    stream_control(linker)?;
    http_calls(linker)?;
    metrics(linker)?;
    unimplemented(linker)?;
    Ok(())
}

fn logging(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut cx: Cx<'_>, level: u32, ptr: u32, len: u32| -> R {
            let Some(message) = abi::read(&mut cx, ptr, len) else {
                return ok(Status::BadArgument);
            };
            if !cx.data().host.grants.allows(Capability::Log) {
                // Like a component without `log`, it is not heard; the filter
                // goes on (every SDK logs).
                return ok(Status::Ok);
            }
            let message = String::from_utf8_lossy(&message).into_owned();
            let level = match level {
                0 => log::Level::Trace,
                1 => log::Level::Debug,
                2 => log::Level::Info,
                3 => log::Level::Warn,
                _ => log::Level::Error,
            };
            log::Host::log(&mut cx.data_mut().host, level, message)?;
            ok(Status::Ok)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut cx: Cx<'_>, out: u32| -> R {
            let level = [
                (tracing::Level::TRACE, 0),
                (tracing::Level::DEBUG, 1),
                (tracing::Level::INFO, 2),
                (tracing::Level::WARN, 3),
            ]
            .into_iter()
            .find(|(level, _)| enabled(*level))
            .map_or(4, |(_, n)| n);
            ok(match abi::write_u32(&mut cx, out, level) {
                true => Status::Ok,
                false => Status::BadArgument,
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut cx: Cx<'_>, out: u32| -> R {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            ok(match abi::write_u64(&mut cx, out, now) {
                true => Status::Ok,
                false => Status::BadArgument,
            })
        },
    )?;
    Ok(())
}

fn enabled(level: tracing::Level) -> bool {
    match level {
        tracing::Level::TRACE => tracing::enabled!(target: "weir::plugin", tracing::Level::TRACE),
        tracing::Level::DEBUG => tracing::enabled!(target: "weir::plugin", tracing::Level::DEBUG),
        tracing::Level::INFO => tracing::enabled!(target: "weir::plugin", tracing::Level::INFO),
        _ => tracing::enabled!(target: "weir::plugin", tracing::Level::WARN),
    }
}

/// The bytes of buffer `kind` as the filter sees them now.
fn buffer_bytes(state: &FilterState, kind: u32) -> Option<Vec<u8>> {
    match kind {
        buffer::HTTP_REQUEST_BODY | buffer::HTTP_RESPONSE_BODY => state.exchange.body.clone(),
        buffer::HTTP_CALL_RESPONSE_BODY => state
            .exchange
            .call_response
            .as_ref()
            .map(|r| r.body.clone()),
        buffer::PLUGIN_CONFIGURATION => Some(state.config.to_vec()),
        buffer::VM_CONFIGURATION => Some(Vec::new()),
        _ => None,
    }
}

fn buffers(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        "env",
        "proxy_get_buffer_bytes",
        |mut cx: Cx<'_>, (kind, start, max, ptr_out, size_out): (u32, u32, u32, u32, u32)| {
            Box::new(async move {
                let Some(bytes) = buffer_bytes(cx.data(), kind) else {
                    return ok(Status::NotFound);
                };
                let start = (start as usize).min(bytes.len());
                let end = start.saturating_add(max as usize).min(bytes.len());
                let slice = bytes.get(start..end).unwrap_or_default();
                let status = abi::give(&mut cx, slice, ptr_out, size_out).await?;
                ok(status)
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut cx: Cx<'_>, kind: u32, start: u32, size: u32, ptr: u32, len: u32| -> R {
            if kind != buffer::HTTP_REQUEST_BODY && kind != buffer::HTTP_RESPONSE_BODY {
                return ok(Status::BadArgument);
            }
            let Some(data) = abi::read(&mut cx, ptr, len) else {
                return ok(Status::BadArgument);
            };
            let max = cx.data().host.caps.max_body_bytes;
            let exchange = &mut cx.data_mut().exchange;
            let Some(body) = exchange.body.as_mut() else {
                return ok(Status::NotFound);
            };
            // Replace `size` bytes from `start` (clamped to the body): the
            // whole body, a prefix, or an append past the end.
            let start = (start as usize).min(body.len());
            let end = start.saturating_add(size as usize).min(body.len());
            if (body.len() - (end - start) + data.len()) as u64 > max {
                return ok(Status::BadArgument);
            }
            body.splice(start..end, data);
            exchange.body_changed = true;
            ok(Status::Ok)
        },
    )?;
    Ok(())
}

fn header_maps(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        "env",
        "proxy_get_header_map_pairs",
        |mut cx: Cx<'_>, (kind, ptr_out, size_out): (u32, u32, u32)| {
            Box::new(async move {
                let Some(pairs) = headers::pairs(&cx.data().exchange, kind) else {
                    return ok(Status::NotFound);
                };
                let bytes =
                    abi::serialize_map(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
                ok(abi::give(&mut cx, &bytes, ptr_out, size_out).await?)
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut cx: Cx<'_>, kind: u32, ptr: u32, len: u32| -> R {
            let Some(pairs) = abi::read(&mut cx, ptr, len).and_then(|b| abi::deserialize_map(&b))
            else {
                return ok(Status::BadArgument);
            };
            let limits = cx.data().host.caps.header_limits;
            ok(headers::set_all(
                &mut cx.data_mut().exchange,
                kind,
                pairs,
                limits,
            ))
        },
    )?;
    linker.func_wrap_async(
        "env",
        "proxy_get_header_map_value",
        |mut cx: Cx<'_>, (kind, key_ptr, key_len, ptr_out, size_out): (u32, u32, u32, u32, u32)| {
            Box::new(async move {
                let Some(key) = abi::read_str(&mut cx, key_ptr, key_len) else {
                    return ok(Status::BadArgument);
                };
                match headers::get(&cx.data().exchange, kind, &key) {
                    Ok(value) => ok(abi::give(&mut cx, &value, ptr_out, size_out).await?),
                    Err(status) => ok(status),
                }
            })
        },
    )?;
    for name in [
        "proxy_add_header_map_value",
        "proxy_replace_header_map_value",
    ] {
        let add = name == "proxy_add_header_map_value";
        linker.func_wrap(
            "env",
            name,
            move |mut cx: Cx<'_>, kind: u32, key_ptr: u32, key_len: u32, ptr: u32, len: u32| -> R {
                let (Some(key), Some(value)) = (
                    abi::read_str(&mut cx, key_ptr, key_len),
                    abi::read_str(&mut cx, ptr, len),
                ) else {
                    return ok(Status::BadArgument);
                };
                let limits = cx.data().host.caps.header_limits;
                let edit = match add {
                    true => Edit::Add(&key, &value),
                    false => Edit::Replace(&key, &value),
                };
                ok(headers::edit(
                    &mut cx.data_mut().exchange,
                    kind,
                    edit,
                    limits,
                ))
            },
        )?;
    }
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut cx: Cx<'_>, kind: u32, key_ptr: u32, key_len: u32| -> R {
            let Some(key) = abi::read_str(&mut cx, key_ptr, key_len) else {
                return ok(Status::BadArgument);
            };
            let limits = cx.data().host.caps.header_limits;
            ok(headers::edit(
                &mut cx.data_mut().exchange,
                kind,
                Edit::Remove(&key),
                limits,
            ))
        },
    )?;
    Ok(())
}

fn property_calls(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        "env",
        "proxy_get_property",
        |mut cx: Cx<'_>, (path_ptr, path_len, ptr_out, size_out): (u32, u32, u32, u32)| {
            Box::new(async move {
                let Some(path) =
                    abi::read(&mut cx, path_ptr, path_len).and_then(|b| properties::split_path(&b))
                else {
                    return ok(Status::BadArgument);
                };
                let plugin = cx.data().host.plugin.clone();
                match properties::get(&cx.data().exchange, &plugin, &path) {
                    Some(value) => ok(abi::give(&mut cx, &value, ptr_out, size_out).await?),
                    None => ok(Status::NotFound),
                }
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut cx: Cx<'_>, path_ptr: u32, path_len: u32, ptr: u32, len: u32| -> R {
            let (Some(path), Some(value)) = (
                abi::read(&mut cx, path_ptr, path_len).and_then(|b| properties::split_path(&b)),
                abi::read(&mut cx, ptr, len),
            ) else {
                return ok(Status::BadArgument);
            };
            ok(
                match properties::set(&mut cx.data_mut().exchange, &path, &value) {
                    true => Status::Ok,
                    false => Status::BadArgument,
                },
            )
        },
    )?;
    Ok(())
}

fn shared_data(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        "env",
        "proxy_get_shared_data",
        |mut cx: Cx<'_>,
         (key_ptr, key_len, ptr_out, size_out, cas_out): (u32, u32, u32, u32, u32)| {
            Box::new(async move {
                let Some(key) = abi::read_str(&mut cx, key_ptr, key_len) else {
                    return ok(Status::BadArgument);
                };
                if !granted(cx.data(), Capability::Kv, "proxy_get_shared_data") {
                    return ok(Status::InternalFailure);
                }
                let host = &cx.data().host;
                let (kv, ns, deadline) = (host.caps.kv.clone(), host.plugin.clone(), host.deadline);
                let found = within(deadline, shared::get(&*kv, &ns, &key)).await?;
                match found {
                    Ok(Some((value, cas))) => {
                        if !abi::write_u32(&mut cx, cas_out, cas) {
                            return ok(Status::BadArgument);
                        }
                        ok(abi::give(&mut cx, &value, ptr_out, size_out).await?)
                    }
                    Ok(None) => ok(Status::NotFound),
                    Err(why) => {
                        tracing::debug!("proxy_get_shared_data: {why}");
                        ok(Status::InternalFailure)
                    }
                }
            })
        },
    )?;
    linker.func_wrap_async(
        "env",
        "proxy_set_shared_data",
        |mut cx: Cx<'_>, (key_ptr, key_len, ptr, len, cas): (u32, u32, u32, u32, u32)| {
            Box::new(async move {
                let (Some(key), Some(value)) = (
                    abi::read_str(&mut cx, key_ptr, key_len),
                    abi::read(&mut cx, ptr, len),
                ) else {
                    return ok(Status::BadArgument);
                };
                if !granted(cx.data(), Capability::Kv, "proxy_set_shared_data") {
                    return ok(Status::InternalFailure);
                }
                let host = &cx.data().host;
                let (kv, ns, deadline, quota) = (
                    host.caps.kv.clone(),
                    host.plugin.clone(),
                    host.deadline,
                    host.caps.kv_quota(),
                );
                match within(deadline, shared::set(&*kv, &ns, &key, &value, cas, quota)).await? {
                    Ok(status) => ok(status),
                    Err(why) => {
                        tracing::debug!("proxy_set_shared_data: {why}");
                        ok(Status::InternalFailure)
                    }
                }
            })
        },
    )?;
    Ok(())
}

fn stream_control(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut cx: Cx<'_>, kind: u32| -> R {
            ok(match kind {
                stream::HTTP_REQUEST | stream::HTTP_RESPONSE => {
                    cx.data_mut().exchange.resumed = true;
                    Status::Ok
                }
                _ => Status::BadArgument,
            })
        },
    )?;
    // ABI 0.1.0 / early 0.2 names, still imported by some SDK builds.
    for name in ["proxy_continue_request", "proxy_continue_response"] {
        linker.func_wrap("env", name, |mut cx: Cx<'_>| -> R {
            cx.data_mut().exchange.resumed = true;
            ok(Status::Ok)
        })?;
    }
    linker.func_wrap(
        "env",
        "proxy_close_stream",
        |mut cx: Cx<'_>, kind: u32| -> R {
            ok(match kind {
                stream::HTTP_REQUEST | stream::HTTP_RESPONSE => {
                    cx.data_mut().exchange.closed = true;
                    Status::Ok
                }
                _ => Status::BadArgument,
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut cx: Cx<'_>,
         status: u32,
         _details_ptr: u32,
         _details_len: u32,
         body_ptr: u32,
         body_len: u32,
         headers_ptr: u32,
         headers_len: u32,
         _grpc_status: i32|
         -> R {
            let (Some(body), Some(pairs)) = (
                abi::read(&mut cx, body_ptr, body_len),
                abi::read(&mut cx, headers_ptr, headers_len).and_then(|b| abi::deserialize_map(&b)),
            ) else {
                return ok(Status::BadArgument);
            };
            let Ok(status) = u16::try_from(status) else {
                return ok(Status::BadArgument);
            };
            let headers = pairs
                .into_iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(&k).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
                .collect();
            cx.data_mut().exchange.local = Some(LocalReply {
                status,
                headers,
                body,
            });
            ok(Status::Ok)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |cx: Cx<'_>, id: u32| -> R {
            let state = cx.data();
            ok(match id == state.root_id || Some(id) == state.stream_id {
                true => Status::Ok,
                false => Status::BadArgument,
            })
        },
    )?;
    linker.func_wrap("env", "proxy_done", |_: Cx<'_>| -> R { ok(Status::Ok) })?;
    // Route caches are rebuilt on every request here: nothing to clear.
    linker.func_wrap("env", "proxy_clear_route_cache", |_: Cx<'_>| -> R {
        ok(Status::Ok)
    })?;
    Ok(())
}

fn http_calls(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut cx: Cx<'_>,
         upstream_ptr: u32,
         upstream_len: u32,
         headers_ptr: u32,
         headers_len: u32,
         body_ptr: u32,
         body_len: u32,
         _trailers_ptr: u32,
         _trailers_len: u32,
         timeout_ms: u32,
         token_out: u32|
         -> R {
            let (Some(upstream), Some(pairs), Some(body)) = (
                abi::read_str(&mut cx, upstream_ptr, upstream_len),
                abi::read(&mut cx, headers_ptr, headers_len).and_then(|b| abi::deserialize_map(&b)),
                abi::read(&mut cx, body_ptr, body_len),
            ) else {
                return ok(Status::BadArgument);
            };
            // An unknown upstream and one outside the grant are refused at
            // once, as Envoy refuses an unknown cluster (`BadArgument`); the
            // refusal of an ungranted one is logged within the plugin's log
            // budget.
            let host = &cx.data().host;
            if !host.caps.outbound.knows(&upstream) || host.refuse_ungranted(&upstream).is_some() {
                return ok(Status::BadArgument);
            }
            let Some(call) = call_of(upstream, pairs, body, timeout_ms) else {
                return ok(Status::BadArgument);
            };
            // Calls wait here until the callback returns: no more of them
            // than the hook's outbound budget, whatever the filter loops.
            let budget = host.caps.budgets.outbound_calls_per_hook as usize;
            let queued = cx.data().exchange.dispatched.len();
            if queued + host.outbound_calls as usize >= budget {
                return ok(Status::InternalFailure);
            }
            let exchange = &mut cx.data_mut().exchange;
            exchange.next_token = exchange.next_token.wrapping_add(1).max(1);
            let token = exchange.next_token;
            exchange.dispatched.push((token, call));
            ok(match abi::write_u32(&mut cx, token_out, token) {
                true => Status::Ok,
                false => Status::BadArgument,
            })
        },
    )?;
    Ok(())
}

/// An `outbound` call from the ABI's pseudo-headers and headers.
fn call_of(
    upstream: String,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    timeout_ms: u32,
) -> Option<outbound::Call> {
    let mut method = "GET".to_string();
    let mut path = None;
    let mut headers = Vec::new();
    for (name, value) in pairs {
        let name = String::from_utf8(name).ok()?;
        let value = String::from_utf8(value).ok()?;
        match name.as_str() {
            ":method" => method = value,
            ":path" => path = Some(value),
            // The upstream's own address is used; the scheme is its TLS setting.
            ":authority" | ":scheme" => {}
            _ => headers.push((name, value)),
        }
    }
    Some(outbound::Call {
        upstream,
        method,
        path_with_query: path?,
        headers,
        body,
        timeout_ms: (timeout_ms > 0).then_some(timeout_ms),
    })
}

fn metrics(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut cx: Cx<'_>, kind: u32, ptr: u32, len: u32, id_out: u32| -> R {
            let Some(name) = abi::read_str(&mut cx, ptr, len) else {
                return ok(Status::BadArgument);
            };
            if !granted(cx.data(), Capability::Metrics, "proxy_define_metric") {
                return ok(Status::BadArgument);
            }
            // The same name defined again (each request, each instance) is the
            // same metric, with the same id.
            if let Some(at) = cx
                .data()
                .metrics
                .iter()
                .position(|m| m.name == name && m.kind == kind)
            {
                return ok(match abi::write_u32(&mut cx, id_out, at as u32 + 1) {
                    true => Status::Ok,
                    false => Status::BadArgument,
                });
            }
            let (metric_kind, buckets): (Kind, &[f64]) = match kind {
                metric::COUNTER => (Kind::Counter, &[]),
                metric::GAUGE => (Kind::Gauge, &[]),
                metric::HISTOGRAM => (Kind::Histogram, &HISTOGRAM_BUCKETS),
                _ => return ok(Status::BadArgument),
            };
            let family = family_name(&name, metric_kind);
            let help = format!("proxy-wasm metric `{}`", name.escape_debug());
            let def = Definition {
                name: &family,
                help: &help,
                labels: &[],
                kind: metric_kind,
                buckets,
            };
            let state = cx.data_mut();
            let handle = match state.host.caps.metrics.define(&state.host.plugin, &def) {
                Ok(handle) => handle,
                Err(why) => {
                    if state.host.budget.admit_log(why.len()) {
                        tracing::warn!(
                            plugin = &*state.host.plugin,
                            "proxy_define_metric `{name}`: {why}"
                        );
                    }
                    return ok(Status::BadArgument);
                }
            };
            state.metrics.push(Metric { handle, kind, name });
            let id = state.metrics.len() as u32;
            ok(match abi::write_u32(&mut cx, id_out, id) {
                true => Status::Ok,
                false => Status::BadArgument,
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |mut cx: Cx<'_>, id: u32, offset: i64| -> R {
            let Some(metric) = metric_mut(cx.data_mut(), id) else {
                return ok(Status::NotFound);
            };
            ok(match (metric.kind, u64::try_from(offset)) {
                (metric::COUNTER, Ok(n)) => {
                    metric.handle.add_counter(&[], n);
                    Status::Ok
                }
                (metric::GAUGE, _) => {
                    metric.handle.add_gauge(&[], offset as f64);
                    Status::Ok
                }
                _ => Status::BadArgument,
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |mut cx: Cx<'_>, id: u32, value: u64| -> R {
            let Some(metric) = metric_mut(cx.data_mut(), id) else {
                return ok(Status::NotFound);
            };
            match metric.kind {
                // As Envoy does: recording a counter adds to it.
                metric::COUNTER => metric.handle.add_counter(&[], value),
                metric::GAUGE => metric.handle.set_gauge(&[], value as f64),
                _ => metric.handle.observe(&[], value as f64),
            }
            ok(Status::Ok)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut cx: Cx<'_>, id: u32, out: u32| -> R {
            let Some(metric) = metric_mut(cx.data_mut(), id) else {
                return ok(Status::NotFound);
            };
            let Some(value) = metric.handle.value(&[]) else {
                return ok(Status::BadArgument);
            };
            ok(match abi::write_u64(&mut cx, out, value.max(0.0) as u64) {
                true => Status::Ok,
                false => Status::BadArgument,
            })
        },
    )?;
    Ok(())
}

/// Buckets for proxy-wasm histograms, whose values are integers (often
/// milliseconds or bytes).
const HISTOGRAM_BUCKETS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0, 10000.0,
];

fn metric_mut(state: &mut FilterState, id: u32) -> Option<&mut Metric> {
    state.metrics.get_mut((id as usize).checked_sub(1)?)
}

/// The family part of a proxy-wasm metric name: Envoy's dotted names
/// (`my_filter.requests`) become `my_filter_requests`; a counter's
/// `_total` is left to the exporter.
pub fn family_name(name: &str, kind: Kind) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c if c.is_ascii_lowercase() || c.is_ascii_digit() => c,
            _ => '_',
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert(0, 'm');
    }
    if kind == Kind::Counter {
        while let Some(stripped) = out.strip_suffix("_total") {
            out = stripped.to_string();
        }
    }
    out.truncate(64);
    out
}

/// Calls Weir does not offer: they answer `Unimplemented` (a filter built
/// with an SDK that panics on it traps, which costs that request only).
fn unimplemented(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    let no = |_: Cx<'_>| ok(Status::Unimplemented);
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |_: Cx<'_>, period: u32| -> R {
            // Turning ticks off is fine; turning them on is not offered.
            ok(if period == 0 {
                Status::Ok
            } else {
                Status::Unimplemented
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        move |cx: Cx<'_>, _: u32, _: u32, _: u32| no(cx),
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        move |cx: Cx<'_>, _: u32, _: u32, _: u32, _: u32, _: u32| no(cx),
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        move |cx: Cx<'_>, _: u32, _: u32, _: u32| no(cx),
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        move |cx: Cx<'_>, _: u32, _: u32, _: u32| no(cx),
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        move |cx: Cx<'_>,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32| no(cx),
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        move |cx: Cx<'_>,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32,
              _: u32| no(cx),
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_send",
        move |cx: Cx<'_>, _: u32, _: u32, _: u32, _: u32| no(cx),
    )?;
    linker.func_wrap("env", "proxy_grpc_cancel", move |cx: Cx<'_>, _: u32| no(cx))?;
    linker.func_wrap("env", "proxy_grpc_close", move |cx: Cx<'_>, _: u32| no(cx))?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        move |cx: Cx<'_>, _: u32, _: u32, _: u32| no(cx),
    )?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        move |cx: Cx<'_>, _: u32, _: u32, _: u32, _: u32, _: u32, _: u32| no(cx),
    )?;
    Ok(())
}
