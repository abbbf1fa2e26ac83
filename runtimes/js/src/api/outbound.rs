//! `weir:plugin/outbound`: `send(call)` and `sendAll(calls)`.

use rquickjs::module::{Declarations, Exports, ModuleDef};
use rquickjs::{Array, Ctx, Function, IntoJs, Object, Result, Value};
use weir_sdk::bindings::weir::plugin::outbound;

use super::export_fn;
use crate::convert::{
    self, bytes_from_js, bytes_to_js, field, pairs_from_js, pairs_to_js, record, string_from_js,
    u64_to_js, uint_from_js,
};

/// `weir:plugin/outbound`: `send(call)`, `sendAll(calls)`.
pub struct OutboundModule;

fn call_from_js<'js>(ctx: &Ctx<'js>, value: &Value<'js>) -> Result<outbound::Call> {
    let call = record(ctx, value, "call")?;
    let headers = field(&call, "headers")?;
    let body = field(&call, "body")?;
    let timeout = field(&call, "timeoutMs")?;
    Ok(outbound::Call {
        upstream: string_from_js(ctx, &field(&call, "upstream")?, "call.upstream")?,
        method: string_from_js(ctx, &field(&call, "method")?, "call.method")?,
        path_with_query: string_from_js(
            ctx,
            &field(&call, "pathWithQuery")?,
            "call.pathWithQuery",
        )?,
        headers: if headers.is_undefined() {
            Vec::new()
        } else {
            pairs_from_js(ctx, &headers, "call.headers")?
        },
        body: if body.is_undefined() {
            Vec::new()
        } else {
            bytes_from_js(ctx, &body, "call.body")?
        },
        timeout_ms: if timeout.is_undefined() || timeout.is_null() {
            None
        } else {
            Some(uint_from_js(ctx, &timeout, u32::MAX, "call.timeoutMs")?)
        },
    })
}

fn call_response_to_js<'js>(ctx: &Ctx<'js>, resp: outbound::CallResponse) -> Result<Value<'js>> {
    let object = Object::new(ctx.clone())?;
    object.set("status", resp.status)?;
    object.set("headers", pairs_to_js(ctx, resp.headers)?)?;
    object.set("body", bytes_to_js(ctx, resp.body)?)?;
    Ok(object.into_value())
}

fn call_error_to_js<'js>(ctx: &Ctx<'js>, error: outbound::CallError) -> Result<Value<'js>> {
    use outbound::CallError as E;
    let (tag, val) = match error {
        E::UnknownUpstream(s) => ("unknown-upstream", Some(s.into_js(ctx)?)),
        E::InvalidRequest(s) => ("invalid-request", Some(s.into_js(ctx)?)),
        E::ConnectFailed(s) => ("connect-failed", Some(s.into_js(ctx)?)),
        E::Timeout => ("timeout", None),
        E::TooLarge(n) => ("too-large", Some(u64_to_js(ctx, n)?)),
        E::Failed(s) => ("failed", Some(s.into_js(ctx)?)),
        E::NotGranted(s) => ("not-granted", Some(s.into_js(ctx)?)),
        E::BudgetExceeded(s) => ("budget-exceeded", Some(s.into_js(ctx)?)),
    };
    convert::variant(ctx, tag, val)
}

impl ModuleDef for OutboundModule {
    fn declare(decl: &Declarations<'_>) -> Result<()> {
        decl.declare("send")?.declare("sendAll")?;
        Ok(())
    }

    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> Result<()> {
        let f = Function::new(
            ctx.clone(),
            |c: Ctx<'js>, call: Value<'js>| -> Result<Value<'js>> {
                let call = call_from_js(&c, &call)?;
                match outbound::send(&call) {
                    Ok(resp) => call_response_to_js(&c, resp),
                    Err(e) => Err(convert::throw_error(&c, call_error_to_js(&c, e)?)),
                }
            },
        )?;
        export_fn(exports, "send", f)?;
        let f = Function::new(
            ctx.clone(),
            |c: Ctx<'js>, calls: Value<'js>| -> Result<Value<'js>> {
                let Some(list) = calls.as_array() else {
                    return Err(convert::type_error(
                        &c,
                        "sendAll: expected an array of calls",
                    ));
                };
                let calls = list
                    .iter::<Value<'js>>()
                    .map(|call| call_from_js(&c, &call?))
                    .collect::<Result<Vec<_>>>()?;
                let out = Array::new(c.clone())?;
                for (i, result) in outbound::send_all(&calls).into_iter().enumerate() {
                    // A `result` inside a list is `{tag: 'ok' | 'err', val}`.
                    let item = match result {
                        Ok(resp) => {
                            convert::variant(&c, "ok", Some(call_response_to_js(&c, resp)?))?
                        }
                        Err(e) => convert::variant(&c, "err", Some(call_error_to_js(&c, e)?))?,
                    };
                    out.set(i, item)?;
                }
                Ok(out.into_value())
            },
        )?;
        export_fn(exports, "sendAll", f)
    }
}
