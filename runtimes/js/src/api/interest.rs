//! `weir:plugin/interest`: `onlyRoutes(routes)`, from `init`.

use rquickjs::module::{Declarations, Exports, ModuleDef};
use rquickjs::{Ctx, Function, Result, Value};
use weir_sdk::bindings::weir::plugin::interest;

use super::export_fn;
use crate::convert::strings_from_js;

/// `weir:plugin/interest`: `onlyRoutes(routes)`.
pub struct InterestModule;

impl ModuleDef for InterestModule {
    fn declare(decl: &Declarations<'_>) -> Result<()> {
        decl.declare("onlyRoutes")?;
        Ok(())
    }

    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> Result<()> {
        let f = Function::new(
            ctx.clone(),
            |c: Ctx<'js>, routes: Value<'js>| -> Result<()> {
                let routes = strings_from_js(&c, &routes, "onlyRoutes")?;
                interest::only_routes(&routes);
                Ok(())
            },
        )?;
        export_fn(exports, "onlyRoutes", f)
    }
}
