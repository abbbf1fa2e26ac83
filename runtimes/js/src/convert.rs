//! Values between JavaScript and the contract, as ComponentizeJS maps them,
//! so a plugin written for it runs here unchanged: kebab-case names become
//! camelCase, an `enum` case is its name as a string, a `variant` is
//! `{tag, val}`, an `option` is the value or `undefined`, `list<u8>` is a
//! `Uint8Array`, `u64` a `BigInt`, a `result` error is thrown as a
//! `ComponentError` whose `payload` is the error value.

use std::cell::RefCell;

use rquickjs::convert::Coerced;
use rquickjs::function::Constructor;
use rquickjs::{
    Array, BigInt, Ctx, Exception, IntoJs, Object, Persistent, Result, TypedArray, Value,
};

thread_local! {
    static COMPONENT_ERROR: RefCell<Option<Persistent<Constructor<'static>>>> =
        const { RefCell::new(None) };
}

/// jco's `ComponentError`, which ComponentizeJS throws for a `result`'s error.
const COMPONENT_ERROR_SOURCE: &str = "(class ComponentError extends Error {
  constructor(value) {
    const enumerable = typeof value !== 'string';
    super(enumerable ? `${String(value)} (see error.payload)` : value);
    Object.defineProperty(this, 'payload', { value, enumerable });
  }
})";

/// `ComponentError`, defined the first time one is thrown (parsing it at
/// start would cost every fresh instance).
fn component_error<'js>(ctx: &Ctx<'js>) -> Result<Constructor<'js>> {
    if let Some(saved) = COMPONENT_ERROR.with(|cell| cell.borrow().clone()) {
        return saved.restore(ctx);
    }
    let class: Constructor<'js> = ctx.eval(COMPONENT_ERROR_SOURCE)?;
    let saved = Persistent::save(ctx, class.clone());
    COMPONENT_ERROR.with(|cell| *cell.borrow_mut() = Some(saved));
    Ok(class)
}

/// Throw a `ComponentError` carrying `payload`.
pub fn throw_error<'js>(ctx: &Ctx<'js>, payload: Value<'js>) -> rquickjs::Error {
    let made = component_error(ctx).and_then(|class| class.construct::<_, Value<'js>>((payload,)));
    match made {
        Ok(error) => ctx.throw(error),
        Err(e) => e,
    }
}

/// A `TypeError` for a value of the wrong shape.
pub fn type_error(ctx: &Ctx<'_>, message: &str) -> rquickjs::Error {
    Exception::throw_type(ctx, message)
}

/// `{tag}` or `{tag, val}`.
pub fn variant<'js>(ctx: &Ctx<'js>, tag: &str, val: Option<Value<'js>>) -> Result<Value<'js>> {
    let object = Object::new(ctx.clone())?;
    object.set("tag", tag)?;
    if let Some(val) = val {
        object.set("val", val)?;
    }
    Ok(object.into_value())
}

/// A `list<u8>` for JavaScript.
pub fn bytes_to_js<'js>(ctx: &Ctx<'js>, bytes: Vec<u8>) -> Result<Value<'js>> {
    Ok(TypedArray::<u8>::new(ctx.clone(), bytes)?.into_value())
}

/// A `list<u8>` from a `Uint8Array`, any other typed array or `DataView`
/// (its bytes), an `ArrayBuffer`, or an array of byte values.
pub fn bytes_from_js<'js>(ctx: &Ctx<'js>, value: &Value<'js>, what: &str) -> Result<Vec<u8>> {
    let Some(object) = value.as_object() else {
        return Err(type_error(ctx, &format!("{what}: expected a Uint8Array")));
    };
    if let Some(typed) = object.as_typed_array::<u8>() {
        return Ok(typed.as_bytes().unwrap_or_default().to_vec());
    }
    if let Some(buffer) = object.as_array_buffer() {
        return Ok(buffer.as_bytes().unwrap_or_default().to_vec());
    }
    if let Some(array) = object.as_array() {
        let mut out = Vec::with_capacity(array.len());
        for item in array.iter::<Value<'js>>() {
            let byte = item?
                .as_number()
                .filter(|n| n.fract() == 0.0 && (0.0..=255.0).contains(n));
            match byte {
                Some(byte) => out.push(byte as u8),
                None => return Err(type_error(ctx, &format!("{what}: not a byte value"))),
            }
        }
        return Ok(out);
    }
    // Any other view: its window on its buffer.
    let buffer: Value<'js> = object.get("buffer")?;
    if let Some(buffer) = buffer.as_object().and_then(|b| b.as_array_buffer()) {
        let offset: f64 = object.get("byteOffset")?;
        let length: f64 = object.get("byteLength")?;
        let (offset, length) = (offset as usize, length as usize);
        let window = offset
            .checked_add(length)
            .and_then(|end| buffer.as_bytes().unwrap_or_default().get(offset..end));
        if let Some(window) = window {
            return Ok(window.to_vec());
        }
    }
    Err(type_error(ctx, &format!("{what}: expected a Uint8Array")))
}

/// A `u64` for JavaScript: a `BigInt`.
pub fn u64_to_js<'js>(ctx: &Ctx<'js>, value: u64) -> Result<Value<'js>> {
    Ok(BigInt::from_u64(ctx.clone(), value)?.into_value())
}

/// A `u64` as ComponentizeJS makes one: `BigInt.asUintN(64, BigInt(v))`,
/// so a `BigInt` wraps modulo 2^64 and a whole `Number` is accepted.
pub fn u64_from_js<'js>(ctx: &Ctx<'js>, value: &Value<'js>, what: &str) -> Result<u64> {
    if let Some(big) = value.as_big_int() {
        // QuickJS's ToBigInt64 is the value modulo 2^64, as a signed
        // number: the same bits as `asUintN(64, ...)`.
        return Ok(big.clone().to_i64()? as u64);
    }
    match value.as_number() {
        Some(n) if n.is_finite() && n.fract() == 0.0 => {
            Ok(if n < 0.0 { (n as i64) as u64 } else { n as u64 })
        }
        _ => Err(type_error(
            ctx,
            &format!("{what}: expected a BigInt (or a whole number)"),
        )),
    }
}

/// An optional `u64`: `undefined` and `null` are `None`.
pub fn opt_u64_from_js<'js>(ctx: &Ctx<'js>, value: &Value<'js>, what: &str) -> Result<Option<u64>> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    u64_from_js(ctx, value, what).map(Some)
}

/// A `u32` (`max` = `u32::MAX`) or `u16` (`max` = `u16::MAX`) as
/// ComponentizeJS makes one: JavaScript's ToUint32 (`v >>> 0`: `undefined`
/// and `NaN` are 0, fractions truncate, values wrap), then modulo 2^16 for
/// a `u16`.
pub fn uint_from_js<'js>(
    _ctx: &Ctx<'js>,
    value: &Value<'js>,
    max: u32,
    _what: &str,
) -> Result<u32> {
    let n = value.get::<Coerced<f64>>()?.0;
    let wrapped = if n.is_finite() {
        n.trunc().rem_euclid(4_294_967_296.0) as u32
    } else {
        0
    };
    Ok(if max == u32::MAX {
        wrapped
    } else {
        wrapped % (max + 1)
    })
}

/// An `f64` as ComponentizeJS makes one: `+v`.
pub fn f64_from_js(value: &Value<'_>) -> Result<f64> {
    Ok(value.get::<Coerced<f64>>()?.0)
}

/// `list<f64>` from an array or typed array, each value as `+v`.
pub fn numbers_from_js<'js>(ctx: &Ctx<'js>, value: &Value<'js>, what: &str) -> Result<Vec<f64>> {
    let Some(object) = value.as_object() else {
        return Err(type_error(
            ctx,
            &format!("{what}: expected an array of numbers"),
        ));
    };
    let length: f64 = object
        .get::<_, Option<f64>>("length")?
        .ok_or_else(|| type_error(ctx, &format!("{what}: expected an array of numbers")))?;
    (0..length as usize)
        .map(|i| f64_from_js(&object.get::<_, Value<'js>>(i as u32)?))
        .collect()
}

/// A string, refusing anything else (as ComponentizeJS does).
pub fn string_from_js<'js>(ctx: &Ctx<'js>, value: &Value<'js>, what: &str) -> Result<String> {
    match value.as_string() {
        Some(s) => s.to_string(),
        None => Err(type_error(ctx, &format!("{what}: expected a string"))),
    }
}

/// `list<string>` from an array of strings.
pub fn strings_from_js<'js>(ctx: &Ctx<'js>, value: &Value<'js>, what: &str) -> Result<Vec<String>> {
    let Some(array) = value.as_array() else {
        return Err(type_error(
            ctx,
            &format!("{what}: expected an array of strings"),
        ));
    };
    array
        .iter::<Value<'js>>()
        .map(|item| string_from_js(ctx, &item?, what))
        .collect()
}

/// `list<tuple<string, string>>` for JavaScript: `[[name, value], ...]`.
pub fn pairs_to_js<'js>(ctx: &Ctx<'js>, pairs: Vec<(String, String)>) -> Result<Value<'js>> {
    let array = Array::new(ctx.clone())?;
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        let pair = Array::new(ctx.clone())?;
        pair.set(0, name)?;
        pair.set(1, value)?;
        array.set(i, pair)?;
    }
    Ok(array.into_value())
}

/// `list<tuple<string, string>>` from `[[name, value], ...]`.
pub fn pairs_from_js<'js>(
    ctx: &Ctx<'js>,
    value: &Value<'js>,
    what: &str,
) -> Result<Vec<(String, String)>> {
    let shape = || {
        type_error(
            ctx,
            &format!("{what}: expected a list of [name, value] pairs"),
        )
    };
    let array = value.as_array().ok_or_else(shape)?;
    let mut out = Vec::with_capacity(array.len());
    for item in array.iter::<Value<'js>>() {
        let item = item?;
        let pair = item.as_array().filter(|p| p.len() == 2).ok_or_else(shape)?;
        let name = string_from_js(ctx, &pair.get(0)?, what)?;
        let value = string_from_js(ctx, &pair.get(1)?, what)?;
        out.push((name, value));
    }
    Ok(out)
}

/// `list<string>` for JavaScript.
pub fn strings_to_js<'js>(ctx: &Ctx<'js>, items: Vec<String>) -> Result<Value<'js>> {
    items.into_js(ctx)
}

/// A field of a record, `undefined` when absent.
pub fn field<'js>(object: &Object<'js>, name: &str) -> Result<Value<'js>> {
    object.get(name)
}

/// A record argument.
pub fn record<'js>(ctx: &Ctx<'js>, value: &Value<'js>, what: &str) -> Result<Object<'js>> {
    value
        .as_object()
        .cloned()
        .ok_or_else(|| type_error(ctx, &format!("{what}: expected an object")))
}
