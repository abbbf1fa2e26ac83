//! `weir:plugin/rate`: `take(key, cost, limit)` and `takeAll(takes)`.

use rquickjs::module::{Declarations, Exports, ModuleDef};
use rquickjs::{Array, Ctx, Function, Object, Result, Value};
use weir_sdk::bindings::weir::plugin::rate;

use super::export_fn;
use crate::convert::{self, field, record, string_from_js, u64_from_js, u64_to_js, uint_from_js};

/// `weir:plugin/rate`: `take(key, cost, limit)`, `takeAll(takes)`.
pub struct RateModule;

fn limit_from_js<'js>(ctx: &Ctx<'js>, value: &Value<'js>) -> Result<rate::Limit> {
    let limit = record(ctx, value, "limit")?;
    Ok(rate::Limit {
        rate: uint_from_js(ctx, &field(&limit, "rate")?, u32::MAX, "limit.rate")?,
        period_ms: u64_from_js(ctx, &field(&limit, "periodMs")?, "limit.periodMs")?,
        burst: uint_from_js(ctx, &field(&limit, "burst")?, u32::MAX, "limit.burst")?,
    })
}

fn decision_to_js<'js>(ctx: &Ctx<'js>, d: rate::Decision) -> Result<Value<'js>> {
    let object = Object::new(ctx.clone())?;
    object.set("allowed", d.allowed)?;
    object.set("limit", d.limit)?;
    object.set("remaining", d.remaining)?;
    object.set("retryAfterMs", u64_to_js(ctx, d.retry_after_ms)?)?;
    object.set("resetAfterMs", u64_to_js(ctx, d.reset_after_ms)?)?;
    Ok(object.into_value())
}

impl ModuleDef for RateModule {
    fn declare(decl: &Declarations<'_>) -> Result<()> {
        decl.declare("take")?.declare("takeAll")?;
        Ok(())
    }

    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> Result<()> {
        let f = Function::new(
            ctx.clone(),
            |c: Ctx<'js>,
             key: Value<'js>,
             cost: Value<'js>,
             limit: Value<'js>|
             -> Result<Value<'js>> {
                let key = string_from_js(&c, &key, "take")?;
                let cost = uint_from_js(&c, &cost, u32::MAX, "take: cost")?;
                let limit = limit_from_js(&c, &limit)?;
                decision_to_js(&c, rate::take(&key, cost, limit))
            },
        )?;
        export_fn(exports, "take", f)?;
        let f = Function::new(
            ctx.clone(),
            |c: Ctx<'js>, takes: Value<'js>| -> Result<Value<'js>> {
                let Some(list) = takes.as_array() else {
                    return Err(convert::type_error(&c, "takeAll: expected an array"));
                };
                let mut requests = Vec::with_capacity(list.len());
                for take in list.iter::<Value<'js>>() {
                    let take = take?;
                    let object = record(&c, &take, "takeAll")?;
                    requests.push(rate::TakeRequest {
                        key: string_from_js(&c, &field(&object, "key")?, "takeAll: key")?,
                        cost: uint_from_js(
                            &c,
                            &field(&object, "cost")?,
                            u32::MAX,
                            "takeAll: cost",
                        )?,
                        limit: limit_from_js(&c, &field(&object, "limit")?)?,
                    });
                }
                let out = Array::new(c.clone())?;
                for (i, d) in rate::take_all(&requests).into_iter().enumerate() {
                    out.set(i, decision_to_js(&c, d)?)?;
                }
                Ok(out.into_value())
            },
        )?;
        export_fn(exports, "takeAll", f)
    }
}
