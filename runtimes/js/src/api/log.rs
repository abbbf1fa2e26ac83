//! `weir:plugin/log`: `log(level, message)` and `enabled(level)`.

use rquickjs::module::{Declarations, Exports, ModuleDef};
use rquickjs::{Ctx, Function, Result, Value};
use weir_sdk::bindings::weir::plugin::log;

use super::export_fn;
use crate::convert::{self, string_from_js};

/// `weir:plugin/log`: `log(level, message)`, `enabled(level)`.
pub struct LogModule;

fn level(ctx: &Ctx<'_>, value: &Value<'_>) -> Result<log::Level> {
    let name = value.as_string().map(|s| s.to_string()).transpose()?;
    match name.as_deref() {
        Some("trace") => Ok(log::Level::Trace),
        Some("debug") => Ok(log::Level::Debug),
        Some("info") => Ok(log::Level::Info),
        Some("warn") => Ok(log::Level::Warn),
        Some("error") => Ok(log::Level::Error),
        _ => Err(convert::type_error(
            ctx,
            "level: expected 'trace', 'debug', 'info', 'warn' or 'error'",
        )),
    }
}

impl ModuleDef for LogModule {
    fn declare(decl: &Declarations<'_>) -> Result<()> {
        decl.declare("log")?.declare("enabled")?;
        Ok(())
    }

    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> Result<()> {
        let f = Function::new(
            ctx.clone(),
            |c: Ctx<'js>, lvl: Value<'js>, message: Value<'js>| -> Result<()> {
                let lvl = level(&c, &lvl)?;
                let message = string_from_js(&c, &message, "log")?;
                log::log(lvl, &message);
                Ok(())
            },
        )?;
        export_fn(exports, "log", f)?;
        let f = Function::new(
            ctx.clone(),
            |c: Ctx<'js>, lvl: Value<'js>| -> Result<bool> { Ok(log::enabled(level(&c, &lvl)?)) },
        )?;
        export_fn(exports, "enabled", f)
    }
}
