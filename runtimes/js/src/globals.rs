//! The few web globals plugins reach for, which QuickJS lacks:
//! `console`, `TextEncoder`/`TextDecoder` (UTF-8, for bodies) and
//! `atob`/`btoa` (Basic credentials, JWT segments).
//!
//! The first three are written in JavaScript, and parsing is most of what
//! a fresh instance costs, so they are defined on first use: each starts
//! as a getter that runs the prelude, which replaces all three with plain
//! values. A plugin that never touches them never parses it.

use rquickjs::convert::Coerced;
use rquickjs::object::Accessor;
use rquickjs::{Ctx, Function, Object, Result, String as JsString, Value};

use crate::convert::{self, bytes_from_js, bytes_to_js};

const PRELUDE: &str = r#"
(function (encode, decode, print) {
  // Lone surrogates become U+FFFD (as the Encoding standard's encoder
  // does) before a string crosses into Rust, which needs UTF-8.
  const wellFormed = (s) => (typeof s.toWellFormed === 'function' ? s.toWellFormed() : s);
  class TextEncoder {
    get encoding() { return 'utf-8'; }
    encode(input = '') { return encode(wellFormed(String(input))); }
  }
  class TextDecoder {
    constructor(label = 'utf-8', options = {}) {
      const name = String(label).replace(/^[\t\n\f\r ]+|[\t\n\f\r ]+$/g, '').toLowerCase();
      const utf8 = ['utf-8', 'utf8', 'unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'x-unicode20utf8'];
      if (!utf8.includes(name)) {
        throw new RangeError(`TextDecoder: only utf-8 is supported, not ${label}`);
      }
      this.fatal = Boolean(options && options.fatal);
      this.ignoreBOM = Boolean(options && options.ignoreBOM);
    }
    get encoding() { return 'utf-8'; }
    decode(input = new Uint8Array(0)) { return decode(input, this.fatal, this.ignoreBOM); }
  }
  const show = (v) => {
    if (typeof v === 'string') return wellFormed(v);
    if (v instanceof Error) return wellFormed(v.stack ? `${v}\n${v.stack}` : String(v));
    if (typeof v === 'object' && v !== null) {
      try { return wellFormed(JSON.stringify(v)); } catch (_) { return wellFormed(String(v)); }
    }
    return wellFormed(String(v));
  };
  const line = (toErr) => (...args) => print(args.map(show).join(' '), toErr);
  const console = {
    log: line(false), info: line(false), debug: line(false), trace: line(false),
    warn: line(true), error: line(true),
  };
  for (const [name, value] of Object.entries({ TextEncoder, TextDecoder, console })) {
    // Only where the lazy getter still stands: a value the plugin set stays.
    if (Object.getOwnPropertyDescriptor(globalThis, name)?.get !== undefined) {
      Object.defineProperty(globalThis, name, { value, writable: true, configurable: true });
    }
  }
})
"#;

/// The globals the prelude defines.
const LAZY: [&str; 3] = ["TextEncoder", "TextDecoder", "console"];

/// Define the globals in this context.
pub fn install<'js>(ctx: &Ctx<'js>) -> Result<()> {
    let globals: Object<'js> = ctx.globals();
    for name in LAZY {
        let getter = move |c: Ctx<'js>| -> Result<Value<'js>> {
            run_prelude(&c)?;
            c.globals().get(name)
        };
        // A plugin may replace one before using it (a polyfill): the value
        // it assigns becomes a plain property, and the prelude leaves it.
        let setter = move |c: Ctx<'js>, value: Value<'js>| -> Result<()> {
            c.globals().prop(
                name,
                rquickjs::object::Property::from(value)
                    .writable()
                    .configurable(),
            )
        };
        globals.prop(name, Accessor::new(getter, setter).configurable())?;
    }
    install_base64(ctx, &globals)
}

/// Replace the lazy globals with the prelude's.
fn run_prelude<'js>(ctx: &Ctx<'js>) -> Result<()> {
    let setup: Function<'js> = ctx.eval(PRELUDE)?;
    let encode = Function::new(ctx.clone(), |c: Ctx<'js>, s: JsString<'js>| {
        bytes_to_js(&c, s.to_string()?.into_bytes())
    })?;
    let decode = Function::new(
        ctx.clone(),
        |c: Ctx<'js>, input: Value<'js>, fatal: bool, ignore_bom: bool| -> Result<String> {
            let bytes = bytes_from_js(&c, &input, "TextDecoder.decode")?;
            let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
                Some(rest) if !ignore_bom => rest,
                _ => &bytes[..],
            };
            match std::str::from_utf8(bytes) {
                Ok(text) => Ok(text.to_string()),
                Err(_) if fatal => Err(convert::type_error(
                    &c,
                    "TextDecoder.decode: the input is not valid UTF-8",
                )),
                Err(_) => Ok(String::from_utf8_lossy(bytes).into_owned()),
            }
        },
    )?;
    let print = Function::new(ctx.clone(), |line: String, to_err: bool| {
        if to_err {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    })?;
    setup.call((encode, decode, print))
}

/// `btoa` and `atob`, native.
fn install_base64<'js>(ctx: &Ctx<'js>, globals: &Object<'js>) -> Result<()> {
    globals.set(
        "btoa",
        Function::new(
            ctx.clone(),
            |c: Ctx<'js>, s: Coerced<String>| -> Result<String> {
                let s = s.0;
                let mut bytes = Vec::with_capacity(s.len());
                for ch in s.chars() {
                    match u8::try_from(u32::from(ch)) {
                        Ok(b) => bytes.push(b),
                        Err(_) => {
                            return Err(invalid_character(
                                &c,
                                "btoa: a character is outside Latin-1",
                            ));
                        }
                    }
                }
                Ok(base64_encode(&bytes))
            },
        )?,
    )?;
    globals.set(
        "atob",
        Function::new(
            ctx.clone(),
            |c: Ctx<'js>, s: Coerced<String>| -> Result<String> {
                let s = s.0;
                match base64_decode(&s) {
                    Some(bytes) => Ok(bytes.into_iter().map(char::from).collect()),
                    None => Err(invalid_character(
                        &c,
                        "atob: the string is not valid base64",
                    )),
                }
            },
        )?,
    )?;
    Ok(())
}

/// The `InvalidCharacterError` the HTML standard names for `atob`/`btoa`.
fn invalid_character(ctx: &Ctx<'_>, message: &str) -> rquickjs::Error {
    let error = rquickjs::Exception::from_message(ctx.clone(), message).and_then(|e| {
        e.as_object().set("name", "InvalidCharacterError")?;
        Ok(e)
    });
    match error {
        Ok(e) => ctx.throw(e.into_value()),
        Err(e) => e,
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `atob`'s "forgiving-base64 decode" (HTML standard): ASCII whitespace is
/// ignored, padding is optional, and anything else invalid is refused.
pub fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut data: Vec<u8> = input
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\x0C' | b'\r'))
        .collect();
    if data.len().is_multiple_of(4) {
        if data.ends_with(b"==") {
            data.truncate(data.len() - 2);
        } else if data.ends_with(b"=") {
            data.truncate(data.len() - 1);
        }
    }
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in data {
        let v = ALPHABET.iter().position(|&a| a == b)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_follows_forgiving_decode() {
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        // Padding optional, whitespace ignored.
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert_eq!(base64_decode(" Y W I = ").unwrap(), b"ab");
        // A lone sixth of a byte, or a character outside the alphabet.
        assert_eq!(base64_decode("YWJjZ"), None);
        assert_eq!(base64_decode("YW-j"), None);
        assert_eq!(base64_decode("Y==="), None);
    }
}
