//! `weir:plugin/metrics`: the `Counter`, `Gauge` and `Histogram` classes.

use rquickjs::function::This;
use rquickjs::module::{Declarations, Exports, ModuleDef};
use rquickjs::{Ctx, Function, IntoJs, Object, Result, Value};
use weir_sdk::bindings::weir::plugin::metrics;

use super::crypto::{RESOURCES, handle, not_a, resource_class, store};
use crate::convert::{self, string_from_js, strings_from_js, u64_from_js};

/// `weir:plugin/metrics`: the `Counter`, `Gauge` and `Histogram` classes.
pub struct MetricsModule;

/// `(name, help, labels)` of a `define` call.
fn definition<'js>(
    c: &Ctx<'js>,
    name: &Value<'js>,
    help: &Value<'js>,
    labels: &Value<'js>,
) -> Result<(String, String, Vec<String>)> {
    Ok((
        string_from_js(c, name, "define: name")?,
        string_from_js(c, help, "define: help")?,
        strings_from_js(c, labels, "define: labels")?,
    ))
}

fn define_counter<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> Result<()> {
    let (class, proto) = resource_class(ctx, "Counter", "define(name, help, labels)")?;
    let made_proto = proto.clone();
    let define = Function::new(
        ctx.clone(),
        move |c: Ctx<'js>,
              name: Value<'js>,
              help: Value<'js>,
              labels: Value<'js>|
              -> Result<Object<'js>> {
            let (name, help, labels) = definition(&c, &name, &help, &labels)?;
            match metrics::Counter::define(&name, &help, &labels) {
                Ok(counter) => store(&c, &made_proto, "Counter", |r| &mut r.counters, counter),
                Err(why) => Err(convert::throw_error(&c, why.into_js(&c)?)),
            }
        },
    )?;
    class.set("define", define.with_name("define")?)?;
    let add = Function::new(
        ctx.clone(),
        |c: Ctx<'js>,
         This(this): This<Object<'js>>,
         values: Value<'js>,
         value: Value<'js>|
         -> Result<()> {
            let i = handle(&c, &this, "Counter")?;
            let values = strings_from_js(&c, &values, "add: labelValues")?;
            let value = u64_from_js(&c, &value, "add: value")?;
            RESOURCES
                .with(|r| r.borrow().counters.get(i).map(|m| m.add(&values, value)))
                .ok_or_else(|| not_a(&c, "Counter"))
        },
    )?;
    proto.set("add", add.with_name("add")?)?;
    exports.export("Counter", class)?;
    Ok(())
}

fn define_gauge<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> Result<()> {
    let (class, proto) = resource_class(ctx, "Gauge", "define(name, help, labels)")?;
    let made_proto = proto.clone();
    let define = Function::new(
        ctx.clone(),
        move |c: Ctx<'js>,
              name: Value<'js>,
              help: Value<'js>,
              labels: Value<'js>|
              -> Result<Object<'js>> {
            let (name, help, labels) = definition(&c, &name, &help, &labels)?;
            match metrics::Gauge::define(&name, &help, &labels) {
                Ok(gauge) => store(&c, &made_proto, "Gauge", |r| &mut r.gauges, gauge),
                Err(why) => Err(convert::throw_error(&c, why.into_js(&c)?)),
            }
        },
    )?;
    class.set("define", define.with_name("define")?)?;
    let set = Function::new(
        ctx.clone(),
        |c: Ctx<'js>,
         This(this): This<Object<'js>>,
         values: Value<'js>,
         value: Value<'js>|
         -> Result<()> {
            let i = handle(&c, &this, "Gauge")?;
            let values = strings_from_js(&c, &values, "set: labelValues")?;
            let value = convert::f64_from_js(&value)?;
            RESOURCES
                .with(|r| r.borrow().gauges.get(i).map(|m| m.set(&values, value)))
                .ok_or_else(|| not_a(&c, "Gauge"))
        },
    )?;
    proto.set("set", set.with_name("set")?)?;
    let add = Function::new(
        ctx.clone(),
        |c: Ctx<'js>,
         This(this): This<Object<'js>>,
         values: Value<'js>,
         delta: Value<'js>|
         -> Result<()> {
            let i = handle(&c, &this, "Gauge")?;
            let values = strings_from_js(&c, &values, "add: labelValues")?;
            let delta = convert::f64_from_js(&delta)?;
            RESOURCES
                .with(|r| r.borrow().gauges.get(i).map(|m| m.add(&values, delta)))
                .ok_or_else(|| not_a(&c, "Gauge"))
        },
    )?;
    proto.set("add", add.with_name("add")?)?;
    exports.export("Gauge", class)?;
    Ok(())
}

fn define_histogram<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> Result<()> {
    let (class, proto) = resource_class(ctx, "Histogram", "define(name, help, labels, buckets)")?;
    let made_proto = proto.clone();
    let define = Function::new(
        ctx.clone(),
        move |c: Ctx<'js>,
              name: Value<'js>,
              help: Value<'js>,
              labels: Value<'js>,
              buckets: Value<'js>|
              -> Result<Object<'js>> {
            let (name, help, labels) = definition(&c, &name, &help, &labels)?;
            let buckets = convert::numbers_from_js(&c, &buckets, "define: buckets")?;
            match metrics::Histogram::define(&name, &help, &labels, &buckets) {
                Ok(histogram) => store(
                    &c,
                    &made_proto,
                    "Histogram",
                    |r| &mut r.histograms,
                    histogram,
                ),
                Err(why) => Err(convert::throw_error(&c, why.into_js(&c)?)),
            }
        },
    )?;
    class.set("define", define.with_name("define")?)?;
    let observe = Function::new(
        ctx.clone(),
        |c: Ctx<'js>,
         This(this): This<Object<'js>>,
         values: Value<'js>,
         value: Value<'js>|
         -> Result<()> {
            let i = handle(&c, &this, "Histogram")?;
            let values = strings_from_js(&c, &values, "observe: labelValues")?;
            let value = convert::f64_from_js(&value)?;
            RESOURCES
                .with(|r| {
                    r.borrow()
                        .histograms
                        .get(i)
                        .map(|m| m.observe(&values, value))
                })
                .ok_or_else(|| not_a(&c, "Histogram"))
        },
    )?;
    proto.set("observe", observe.with_name("observe")?)?;
    exports.export("Histogram", class)?;
    Ok(())
}

impl ModuleDef for MetricsModule {
    fn declare(decl: &Declarations<'_>) -> Result<()> {
        decl.declare("Counter")?
            .declare("Gauge")?
            .declare("Histogram")?;
        Ok(())
    }

    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> Result<()> {
        define_counter(ctx, exports)?;
        define_gauge(ctx, exports)?;
        define_histogram(ctx, exports)
    }
}
