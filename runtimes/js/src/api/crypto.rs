//! `weir:plugin/crypto` (the `VerifyingKey` class), and the table of host
//! resources JavaScript objects hold, which `metrics` shares.

use std::cell::RefCell;

use rquickjs::function::This;
use rquickjs::module::{Declarations, Exports, ModuleDef};
use rquickjs::object::Property;
use rquickjs::{Ctx, Function, IntoJs, Object, Result, Value};
use weir_sdk::bindings::weir::plugin::{crypto, metrics};

use crate::convert::{self, bytes_from_js, string_from_js};

/// Host resources a plugin created (keys, metrics), kept for the life of the
/// instance: plugins make them in `init`, and the host frees them with the
/// instance.
pub(super) struct Resources {
    pub(super) keys: Vec<crypto::VerifyingKey>,
    pub(super) counters: Vec<metrics::Counter>,
    pub(super) gauges: Vec<metrics::Gauge>,
    pub(super) histograms: Vec<metrics::Histogram>,
}

thread_local! {
    pub(super) static RESOURCES: RefCell<Resources> = const {
        RefCell::new(Resources {
            keys: Vec::new(),
            counters: Vec::new(),
            gauges: Vec::new(),
            histograms: Vec::new(),
        })
    };
}

const HANDLE_KEY: &str = "__weirHandle";

/// A class whose constructor refuses `new` (objects come from a static
/// method), with its prototype.
pub(super) fn resource_class<'js>(
    ctx: &Ctx<'js>,
    name: &'static str,
    how: &'static str,
) -> Result<(Function<'js>, Object<'js>)> {
    super::host_class(ctx, name, format!("make a {name} with {name}.{how}"))
}

/// Keep `resource` in its kind's table (`table` picks it) and return a new
/// object of the class whose prototype is `proto`, holding it.
pub(super) fn store<'js, T>(
    ctx: &Ctx<'js>,
    proto: &Object<'js>,
    kind: &str,
    table: impl FnOnce(&mut Resources) -> &mut Vec<T>,
    resource: T,
) -> Result<Object<'js>> {
    let index = RESOURCES.with(|r| {
        let mut r = r.borrow_mut();
        let table = table(&mut r);
        table.push(resource);
        table.len() - 1
    });
    resource_object(ctx, proto, kind, index)
}

/// An object of a resource class holding entry `index` of its kind's table.
/// The hidden property is named after the kind, so a method of one class
/// called on another's object finds no handle.
fn resource_object<'js>(
    ctx: &Ctx<'js>,
    proto: &Object<'js>,
    kind: &str,
    index: usize,
) -> Result<Object<'js>> {
    let object = Object::new(ctx.clone())?;
    object.set_prototype(Some(proto))?;
    // Not writable, enumerable or configurable.
    object.prop(format!("{HANDLE_KEY}{kind}"), Property::from(index as f64))?;
    Ok(object)
}

/// The table index `this` holds for `kind`.
pub(super) fn handle(ctx: &Ctx<'_>, this: &Object<'_>, kind: &str) -> Result<usize> {
    this.get::<_, Option<f64>>(format!("{HANDLE_KEY}{kind}"))
        .ok()
        .flatten()
        .map(|i| i as usize)
        .ok_or_else(|| not_a(ctx, kind))
}

/// The error for a method called on an object that is not of its class.
pub(super) fn not_a(ctx: &Ctx<'_>, kind: &str) -> rquickjs::Error {
    convert::type_error(ctx, &format!("not a {kind}"))
}

/// `weir:plugin/crypto`: the `VerifyingKey` class.
pub struct CryptoModule;

impl ModuleDef for CryptoModule {
    fn declare(decl: &Declarations<'_>) -> Result<()> {
        decl.declare("VerifyingKey")?;
        Ok(())
    }

    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> Result<()> {
        let (class, proto) = resource_class(ctx, "VerifyingKey", "fromJwk(jwk)")?;
        let made_proto = proto.clone();
        let from_jwk = Function::new(
            ctx.clone(),
            move |c: Ctx<'js>, jwk: Value<'js>| -> Result<Object<'js>> {
                let jwk = string_from_js(&c, &jwk, "fromJwk")?;
                match crypto::VerifyingKey::from_jwk(&jwk) {
                    Ok(key) => store(&c, &made_proto, "VerifyingKey", |r| &mut r.keys, key),
                    Err(why) => Err(convert::throw_error(&c, why.into_js(&c)?)),
                }
            },
        )?;
        class.set("fromJwk", from_jwk.with_name("fromJwk")?)?;
        let accepts = Function::new(
            ctx.clone(),
            |c: Ctx<'js>, This(this): This<Object<'js>>, alg: Value<'js>| -> Result<bool> {
                let i = handle(&c, &this, "VerifyingKey")?;
                let alg = string_from_js(&c, &alg, "accepts")?;
                RESOURCES
                    .with(|r| r.borrow().keys.get(i).map(|k| k.accepts(&alg)))
                    .ok_or_else(|| not_a(&c, "VerifyingKey"))
            },
        )?;
        proto.set("accepts", accepts.with_name("accepts")?)?;
        let verify = Function::new(
            ctx.clone(),
            |c: Ctx<'js>,
             This(this): This<Object<'js>>,
             alg: Value<'js>,
             message: Value<'js>,
             signature: Value<'js>|
             -> Result<bool> {
                let i = handle(&c, &this, "VerifyingKey")?;
                let alg = string_from_js(&c, &alg, "verify")?;
                let message = bytes_from_js(&c, &message, "verify: message")?;
                let signature = bytes_from_js(&c, &signature, "verify: signature")?;
                RESOURCES
                    .with(|r| {
                        let r = r.borrow();
                        r.keys.get(i).map(|k| k.verify(&alg, &message, &signature))
                    })
                    .ok_or_else(|| not_a(&c, "VerifyingKey"))
            },
        )?;
        proto.set("verify", verify.with_name("verify")?)?;
        exports.export("VerifyingKey", class)?;
        Ok(())
    }
}
