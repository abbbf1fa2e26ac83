//! The contract as JavaScript sees it: the hook objects' classes
//! (`types`) and one module per capability interface, each importable as
//! `weir:plugin/NAME` with or without a served version.

pub mod crypto;
pub mod interest;
pub mod kv;
pub mod log;
pub mod metrics;
pub mod outbound;
pub mod rate;
pub mod types;

use std::cell::RefCell;

use rquickjs::module::{Declarations, Exports, ModuleDef};
use rquickjs::{Ctx, Function, Persistent, Result};

/// A class whose objects only the runtime makes: its constructor throws
/// `refusal`. Returns the constructor and its prototype.
fn host_class<'js>(
    ctx: &Ctx<'js>,
    name: &'static str,
    refusal: String,
) -> Result<(Function<'js>, rquickjs::Object<'js>)> {
    let constructor = Function::new(ctx.clone(), move |c: Ctx<'js>| -> Result<()> {
        Err(crate::convert::type_error(&c, &refusal))
    })?
    .with_name(name)?;
    constructor.set_constructor(true);
    let proto = rquickjs::Object::new(ctx.clone())?;
    proto.set("constructor", constructor.clone())?;
    constructor.set("prototype", proto.clone())?;
    Ok((constructor, proto))
}

/// Export `function` under `name` (also its `name` property).
fn export_fn<'js>(exports: &Exports<'js>, name: &str, function: Function<'js>) -> Result<()> {
    exports.export(name, function.with_name(name)?)?;
    Ok(())
}

thread_local! {
    static CLASSES: RefCell<Option<(Persistent<Function<'static>>, Persistent<Function<'static>>)>> =
        const { RefCell::new(None) };
}

/// Make the `Request` and `Response` classes of this context.
pub fn install(ctx: &Ctx<'_>) -> Result<()> {
    let classes = types::define(ctx)?;
    let saved = (
        Persistent::save(ctx, classes.request),
        Persistent::save(ctx, classes.response),
    );
    CLASSES.with(|cell| *cell.borrow_mut() = Some(saved));
    Ok(())
}

/// The classes made by [`install`].
pub fn classes<'js>(ctx: &Ctx<'js>) -> Result<types::Classes<'js>> {
    let saved = CLASSES.with(|cell| cell.borrow().clone());
    let Some((request, response)) = saved else {
        return Err(rquickjs::Exception::throw_internal(
            ctx,
            "classes are not installed",
        ));
    };
    Ok(types::Classes {
        request: request.restore(ctx)?,
        response: response.restore(ctx)?,
    })
}

/// `weir:plugin/types`: the `Request` and `Response` classes (for
/// `instanceof`; objects come from the host).
pub struct TypesModule;

impl ModuleDef for TypesModule {
    fn declare(decl: &Declarations<'_>) -> Result<()> {
        decl.declare("Request")?.declare("Response")?;
        Ok(())
    }

    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> Result<()> {
        let classes = classes(ctx)?;
        exports.export("Request", classes.request)?;
        exports.export("Response", classes.response)?;
        Ok(())
    }
}
