//! `weir:plugin/kv`: `get`, `set`, `setIfAbsent` and `delete`.

use rquickjs::function::Opt;
use rquickjs::module::{Declarations, Exports, ModuleDef};
use rquickjs::{Ctx, Function, IntoJs, Result, Value};
use weir_sdk::bindings::weir::plugin::kv;

use super::export_fn;
use crate::convert::{self, bytes_from_js, bytes_to_js, string_from_js};

/// `weir:plugin/kv`: `get`, `set`, `setIfAbsent`, `delete`.
pub struct KvModule;

fn kv_error<'js>(ctx: &Ctx<'js>, error: kv::KvError) -> rquickjs::Error {
    let (tag, why) = match error {
        kv::KvError::Unavailable(why) => ("unavailable", why),
        kv::KvError::QuotaExceeded(why) => ("quota-exceeded", why),
    };
    let payload = why
        .into_js(ctx)
        .and_then(|val| convert::variant(ctx, tag, Some(val)));
    match payload {
        Ok(payload) => convert::throw_error(ctx, payload),
        Err(e) => e,
    }
}

impl ModuleDef for KvModule {
    fn declare(decl: &Declarations<'_>) -> Result<()> {
        decl.declare("get")?
            .declare("set")?
            .declare("setIfAbsent")?
            .declare("delete")?;
        Ok(())
    }

    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> Result<()> {
        let f = Function::new(
            ctx.clone(),
            |c: Ctx<'js>, key: Value<'js>| -> Result<Value<'js>> {
                let key = string_from_js(&c, &key, "get")?;
                match kv::get(&key) {
                    Ok(Some(bytes)) => bytes_to_js(&c, bytes),
                    Ok(None) => Ok(Value::new_undefined(c.clone())),
                    Err(e) => Err(kv_error(&c, e)),
                }
            },
        )?;
        export_fn(exports, "get", f)?;
        let f = Function::new(
            ctx.clone(),
            |c: Ctx<'js>, key: Value<'js>, value: Value<'js>, ttl: Opt<Value<'js>>| -> Result<()> {
                let key = string_from_js(&c, &key, "set")?;
                let value = bytes_from_js(&c, &value, "set")?;
                // The TTL may be left out, as under ComponentizeJS.
                let ttl = match ttl.0 {
                    Some(ttl) => convert::opt_u64_from_js(&c, &ttl, "set: ttlMs")?,
                    None => None,
                };
                kv::set(&key, &value, ttl).map_err(|e| kv_error(&c, e))
            },
        )?;
        export_fn(exports, "set", f)?;
        let f = Function::new(
            ctx.clone(),
            |c: Ctx<'js>,
             key: Value<'js>,
             value: Value<'js>,
             ttl: Opt<Value<'js>>|
             -> Result<bool> {
                let key = string_from_js(&c, &key, "setIfAbsent")?;
                let value = bytes_from_js(&c, &value, "setIfAbsent")?;
                let ttl = match ttl.0 {
                    Some(ttl) => convert::opt_u64_from_js(&c, &ttl, "setIfAbsent: ttlMs")?,
                    None => None,
                };
                kv::set_if_absent(&key, &value, ttl).map_err(|e| kv_error(&c, e))
            },
        )?;
        export_fn(exports, "setIfAbsent", f)?;
        let f = Function::new(
            ctx.clone(),
            |c: Ctx<'js>, key: Value<'js>| -> Result<bool> {
                let key = string_from_js(&c, &key, "delete")?;
                kv::delete(&key).map_err(|e| kv_error(&c, e))
            },
        )?;
        export_fn(exports, "delete", f)
    }
}
