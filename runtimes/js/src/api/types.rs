//! `weir:plugin/types`: the `Request` and `Response` classes whose objects
//! the hooks receive, with every method of the contract's resources.

use rquickjs::function::This;
use rquickjs::object::Property;
use rquickjs::{Ctx, Function, IntoJs, Object, Result, Value};
use weir_sdk::{BodyError, EditError, Request, Response};

use crate::convert::{self, bytes_from_js, bytes_to_js, pairs_from_js, pairs_to_js};
use crate::live;

/// The hidden property holding the number of the hook call an object
/// belongs to.
const CALL_KEY: &str = "__weirCall";

/// The two classes, made once per context.
pub struct Classes<'js> {
    pub request: Function<'js>,
    pub response: Function<'js>,
}

/// An object of `class` for hook call `call`.
pub fn instance<'js>(ctx: &Ctx<'js>, class: &Function<'js>, call: u64) -> Result<Object<'js>> {
    let proto: Object<'js> = class.get("prototype")?;
    let object = Object::new(ctx.clone())?;
    object.set_prototype(Some(&proto))?;
    // Not writable, enumerable or configurable: a plugin cannot retarget it.
    // A JavaScript number holds call numbers exactly up to 2^53.
    object.prop(CALL_KEY, Property::from(call as f64))?;
    Ok(object)
}

fn class<'js>(ctx: &Ctx<'js>, name: &'static str) -> Result<(Function<'js>, Object<'js>)> {
    super::host_class(
        ctx,
        name,
        format!("{name} objects come from the host; a hook receives them"),
    )
}

fn gone(ctx: &Ctx<'_>, what: &str) -> rquickjs::Error {
    convert::type_error(
        ctx,
        &format!("this {what} belongs to a hook call that has returned"),
    )
}

fn with_req<'js, T>(
    ctx: &Ctx<'js>,
    this: &Object<'js>,
    f: impl FnOnce(&Request) -> T,
) -> Result<T> {
    let call: f64 = this.get(CALL_KEY).map_err(|_| gone(ctx, "request"))?;
    let call = call as u64;
    live::request(call, f).ok_or_else(|| gone(ctx, "request"))
}

fn with_resp<'js, T>(
    ctx: &Ctx<'js>,
    this: &Object<'js>,
    f: impl FnOnce(&Response) -> T,
) -> Result<T> {
    let call: f64 = this.get(CALL_KEY).map_err(|_| gone(ctx, "response"))?;
    let call = call as u64;
    live::response(call, f).ok_or_else(|| gone(ctx, "response"))
}

/// `result<_, edit-error>`: nothing, or a thrown `ComponentError`.
fn edited(ctx: &Ctx<'_>, result: std::result::Result<(), EditError>) -> Result<()> {
    result.map_err(|e| {
        let name = match e {
            EditError::InvalidMethod => "invalid-method",
            EditError::InvalidPath => "invalid-path",
            EditError::InvalidAuthority => "invalid-authority",
            EditError::InvalidHeaderName => "invalid-header-name",
            EditError::InvalidHeaderValue => "invalid-header-value",
            EditError::InvalidStatus => "invalid-status",
            EditError::UnknownUpstream => "unknown-upstream",
            EditError::LimitExceeded => "limit-exceeded",
        };
        match name.into_js(ctx) {
            Ok(payload) => convert::throw_error(ctx, payload),
            Err(e) => e,
        }
    })
}

/// `result<list<u8>, body-error>`.
fn body<'js>(
    ctx: &Ctx<'js>,
    result: std::result::Result<Vec<u8>, BodyError>,
) -> Result<Value<'js>> {
    match result {
        Ok(bytes) => bytes_to_js(ctx, bytes),
        Err(BodyError::TooLarge(limit)) => {
            let val = convert::u64_to_js(ctx, limit)?;
            let payload = convert::variant(ctx, "too-large", Some(val))?;
            Err(convert::throw_error(ctx, payload))
        }
        Err(BodyError::ReadFailed(why)) => {
            let payload = convert::variant(ctx, "read-failed", Some(why.into_js(ctx)?))?;
            Err(convert::throw_error(ctx, payload))
        }
    }
}

/// Define a method on `proto`.
macro_rules! method {
    ($ctx:expr, $proto:expr, $name:literal, |$c:ident, $this:ident $(, $arg:ident)*| $body:expr) => {
        $proto.set(
            $name,
            Function::new(
                $ctx.clone(),
                move |$c: Ctx<'js>, This($this): This<Object<'js>> $(, $arg: Value<'js>)*| -> Result<_> { $body },
            )?
            .with_name($name)?,
        )?;
    };
}

/// Make both classes.
pub fn define<'js>(ctx: &Ctx<'js>) -> Result<Classes<'js>> {
    let (request, proto) = class(ctx, "Request")?;
    define_request(ctx, &proto)?;
    let (response, proto) = class(ctx, "Response")?;
    define_response(ctx, &proto)?;
    Ok(Classes { request, response })
}

fn define_request<'js>(ctx: &Ctx<'js>, proto: &Object<'js>) -> Result<()> {
    method!(ctx, proto, "method", |c, this| with_req(&c, &this, |r| r
        .method()));
    method!(ctx, proto, "setMethod", |c, this, m| {
        let m = convert::string_from_js(&c, &m, "setMethod")?;
        let result = with_req(&c, &this, |r| r.set_method(&m))?;
        edited(&c, result)
    });
    method!(ctx, proto, "pathWithQuery", |c, this| with_req(
        &c,
        &this,
        |r| r.path_with_query()
    ));
    method!(ctx, proto, "setPathWithQuery", |c, this, p| {
        let p = convert::string_from_js(&c, &p, "setPathWithQuery")?;
        let result = with_req(&c, &this, |r| r.set_path_with_query(&p))?;
        edited(&c, result)
    });
    method!(ctx, proto, "authority", |c, this| with_req(
        &c,
        &this,
        |r| r.authority()
    ));
    method!(ctx, proto, "clientAddr", |c, this| {
        let addr = with_req(&c, &this, |r| r.client_addr())?;
        let object = Object::new(c.clone())?;
        object.set("ip", addr.ip)?;
        object.set("port", addr.port)?;
        Ok(object)
    });
    method!(ctx, proto, "clientIp", |c, this| with_req(&c, &this, |r| r
        .client_ip()));
    method!(ctx, proto, "tls", |c, this| {
        let Some(tls) = with_req(&c, &this, |r| r.tls())? else {
            return Ok(Value::new_undefined(c.clone()));
        };
        let object = Object::new(c.clone())?;
        object.set("version", tls.version)?;
        object.set("cipherSuite", tls.cipher_suite)?;
        object.set("sni", tls.sni)?;
        object.set("alpn", tls.alpn)?;
        if let Some(cert) = tls.client_certificate {
            let cert_object = Object::new(c.clone())?;
            cert_object.set("subject", cert.subject)?;
            cert_object.set("sans", cert.sans)?;
            cert_object.set("fingerprintSha256", cert.fingerprint_sha256)?;
            object.set("clientCertificate", cert_object)?;
        } else {
            object.set("clientCertificate", Value::new_undefined(c.clone()))?;
        }
        Ok(object.into_value())
    });
    method!(ctx, proto, "header", |c, this, name| {
        let name = convert::string_from_js(&c, &name, "header")?;
        with_req(&c, &this, |r| r.header(&name))
    });
    method!(ctx, proto, "headerAll", |c, this, name| {
        let name = convert::string_from_js(&c, &name, "headerAll")?;
        with_req(&c, &this, |r| r.header_all(&name))
    });
    method!(ctx, proto, "headers", |c, this| {
        let pairs = with_req(&c, &this, |r| r.headers())?;
        pairs_to_js(&c, pairs)
    });
    method!(ctx, proto, "setHeader", |c, this, name, value| {
        let name = convert::string_from_js(&c, &name, "setHeader")?;
        let value = convert::string_from_js(&c, &value, "setHeader")?;
        let result = with_req(&c, &this, |r| r.set_header(&name, &value))?;
        edited(&c, result)
    });
    method!(ctx, proto, "appendHeader", |c, this, name, value| {
        let name = convert::string_from_js(&c, &name, "appendHeader")?;
        let value = convert::string_from_js(&c, &value, "appendHeader")?;
        let result = with_req(&c, &this, |r| r.append_header(&name, &value))?;
        edited(&c, result)
    });
    method!(ctx, proto, "setHeaders", |c, this, list| {
        let pairs = pairs_from_js(&c, &list, "setHeaders")?;
        let result = with_req(&c, &this, |r| r.set_headers(&pairs))?;
        edited(&c, result)
    });
    method!(ctx, proto, "removeHeader", |c, this, name| {
        let name = convert::string_from_js(&c, &name, "removeHeader")?;
        with_req(&c, &this, |r| r.remove_header(&name))
    });
    method!(ctx, proto, "setResponseHeaders", |c, this, list| {
        let pairs = pairs_from_js(&c, &list, "setResponseHeaders")?;
        let result = with_req(&c, &this, |r| r.set_response_headers(&pairs))?;
        edited(&c, result)
    });
    method!(ctx, proto, "body", |c, this| {
        let result = with_req(&c, &this, |r| r.body())?;
        body(&c, result)
    });
    method!(ctx, proto, "setBody", |c, this, bytes| {
        let bytes = bytes_from_js(&c, &bytes, "setBody")?;
        with_req(&c, &this, |r| r.set_body(&bytes))
    });
    method!(ctx, proto, "getContext", |c, this, key| {
        let key = convert::string_from_js(&c, &key, "getContext")?;
        with_req(&c, &this, |r| r.get_context(&key))
    });
    method!(ctx, proto, "setContext", |c, this, key, value| {
        let key = convert::string_from_js(&c, &key, "setContext")?;
        let value = convert::string_from_js(&c, &value, "setContext")?;
        with_req(&c, &this, |r| r.set_context(&key, &value))
    });
    method!(ctx, proto, "upstream", |c, this| with_req(&c, &this, |r| r
        .upstream()));
    method!(ctx, proto, "setUpstream", |c, this, name| {
        let name = convert::string_from_js(&c, &name, "setUpstream")?;
        let result = with_req(&c, &this, |r| r.set_upstream(&name))?;
        edited(&c, result)
    });
    Ok(())
}

fn define_response<'js>(ctx: &Ctx<'js>, proto: &Object<'js>) -> Result<()> {
    method!(ctx, proto, "status", |c, this| with_resp(&c, &this, |r| r
        .status()));
    method!(ctx, proto, "setStatus", |c, this, status| {
        let status = convert::uint_from_js(&c, &status, u32::from(u16::MAX), "setStatus")?;
        let result = with_resp(&c, &this, |r| r.set_status(status as u16))?;
        edited(&c, result)
    });
    method!(ctx, proto, "header", |c, this, name| {
        let name = convert::string_from_js(&c, &name, "header")?;
        with_resp(&c, &this, |r| r.header(&name))
    });
    method!(ctx, proto, "headerAll", |c, this, name| {
        let name = convert::string_from_js(&c, &name, "headerAll")?;
        with_resp(&c, &this, |r| r.header_all(&name))
    });
    method!(ctx, proto, "headers", |c, this| {
        let pairs = with_resp(&c, &this, |r| r.headers())?;
        pairs_to_js(&c, pairs)
    });
    method!(ctx, proto, "setHeader", |c, this, name, value| {
        let name = convert::string_from_js(&c, &name, "setHeader")?;
        let value = convert::string_from_js(&c, &value, "setHeader")?;
        let result = with_resp(&c, &this, |r| r.set_header(&name, &value))?;
        edited(&c, result)
    });
    method!(ctx, proto, "appendHeader", |c, this, name, value| {
        let name = convert::string_from_js(&c, &name, "appendHeader")?;
        let value = convert::string_from_js(&c, &value, "appendHeader")?;
        let result = with_resp(&c, &this, |r| r.append_header(&name, &value))?;
        edited(&c, result)
    });
    method!(ctx, proto, "setHeaders", |c, this, list| {
        let pairs = pairs_from_js(&c, &list, "setHeaders")?;
        let result = with_resp(&c, &this, |r| r.set_headers(&pairs))?;
        edited(&c, result)
    });
    method!(ctx, proto, "removeHeader", |c, this, name| {
        let name = convert::string_from_js(&c, &name, "removeHeader")?;
        with_resp(&c, &this, |r| r.remove_header(&name))
    });
    method!(ctx, proto, "body", |c, this| {
        let result = with_resp(&c, &this, |r| r.body())?;
        body(&c, result)
    });
    method!(ctx, proto, "setBody", |c, this, bytes| {
        let bytes = bytes_from_js(&c, &bytes, "setBody")?;
        with_resp(&c, &this, |r| r.set_body(&bytes))
    });
    Ok(())
}
