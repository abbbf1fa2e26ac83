//! The plugin's life in this runtime: `init` evaluates the bundled entry
//! module and calls its `handler.init(config)`; each hook calls
//! `handler.onRequest(req)` or `handler.onResponse(req, resp)` and turns
//! the returned action into the contract's.
//!
//! A JavaScript exception in a hook is printed to stderr (the gateway logs
//! it under the plugin's name) with its stack, and the instance traps: the
//! gateway then answers that request as for any failing plugin. An
//! exception in `init` becomes `init`'s error, so the plugin is refused at
//! load with the message.

use std::cell::RefCell;

use rquickjs::convert::Coerced;
use rquickjs::function::This;
use rquickjs::promise::MaybePromise;
use rquickjs::{
    CatchResultExt, CaughtError, Context, Ctx, Function, Object, Persistent, Runtime, Value,
};
use weir_sdk::{Action, Hooks, Reply, Request, Response, Wait};

use crate::convert::{self, bytes_from_js, field, pairs_from_js, record, string_from_js};
use crate::modules::Bundle;
use crate::{api, bundle, globals, live};

/// A loaded plugin.
struct Plugin {
    // Declared first so they drop before the context and runtime do.
    handler: Persistent<Object<'static>>,
    on_request: Option<Persistent<Function<'static>>>,
    on_response: Option<Persistent<Function<'static>>>,
    context: Context,
    _runtime: Runtime,
}

thread_local! {
    static PLUGIN: RefCell<Option<Plugin>> = const { RefCell::new(None) };
}

/// `handler.init`: load the bundle and ask the plugin for its hooks.
pub fn init(config: String) -> Result<Hooks, String> {
    let modules = bundle::parse(bundle::slot()).map_err(|e| e.to_string())?;
    load(modules, config)
}

/// Load `modules` (the entry first) and run `init(config)`.
pub fn load(modules: Vec<bundle::Module>, config: String) -> Result<Hooks, String> {
    let Some(entry) = modules.first().cloned() else {
        return Err("the bundle has no modules".into());
    };
    let runtime = Runtime::new().map_err(|e| format!("starting QuickJS: {e}"))?;
    let context = Context::full(&runtime).map_err(|e| format!("starting QuickJS: {e}"))?;
    let sources: Vec<(String, String)> = modules.into_iter().map(|m| (m.name, m.source)).collect();
    runtime.set_loader(Bundle::new(sources.clone()), Bundle::new(sources));
    let loaded = context.with(|ctx| -> Result<Plugin, String> {
        let started = start(&ctx, &entry, config)?;
        Ok(Plugin {
            handler: started.handler,
            on_request: started.on_request,
            on_response: started.on_response,
            context: context.clone(),
            _runtime: runtime.clone(),
        })
    });
    let plugin = match loaded {
        Ok(plugin) => plugin,
        Err(e) => {
            // The contexts' saved values (classes, `ComponentError`) still
            // hold objects, and QuickJS asserts that a runtime it frees
            // holds none. The instance is discarded after a failed `init`
            // anyway, so keep them.
            std::mem::forget(context);
            std::mem::forget(runtime);
            return Err(e);
        }
    };
    let hooks = hooks_of(&plugin);
    PLUGIN.with(|cell| *cell.borrow_mut() = Some(plugin));
    Ok(hooks)
}

type SavedFunction = Persistent<Function<'static>>;

/// What `start` returns: the handler and the hooks `init` declared.
struct Started {
    handler: Persistent<Object<'static>>,
    on_request: Option<SavedFunction>,
    on_response: Option<SavedFunction>,
}

/// In a fresh context: the globals and classes, the entry module, then
/// `handler.init(config)`; returns the handler and its declared hooks.
fn start(ctx: &Ctx<'_>, entry: &bundle::Module, config: String) -> Result<Started, String> {
    globals::install(ctx).catch(ctx).map_err(|e| describe(&e))?;
    api::install(ctx).catch(ctx).map_err(|e| describe(&e))?;
    let handler = evaluate_entry(ctx, entry)?;
    let init: Function<'_> = handler
        .get::<_, Value<'_>>("init")
        .ok()
        .and_then(|v| v.into_function())
        .ok_or_else(|| format!("{}: `handler.init` is not a function", entry.name))?;
    let returned: MaybePromise<'_> = init
        .call((This(handler.clone()), config))
        .catch(ctx)
        .map_err(|e| thrown(&e))?;
    let returned: Value<'_> = returned.finish().catch(ctx).map_err(|e| thrown(&e))?;
    let hooks = init_result(&returned).map_err(|why| format!("{}: {why}", entry.name))?;
    // Only the declared hooks must exist.
    let hook = |flag: Hooks, name: &str| -> Result<Option<SavedFunction>, String> {
        if !hooks.contains(flag) {
            return Ok(None);
        }
        let f = handler
            .get::<_, Value<'_>>(name)
            .ok()
            .and_then(|v| v.into_function());
        match f {
            Some(f) => Ok(Some(Persistent::save(ctx, f))),
            None => Err(format!(
                "{}: `handler.init` declared `{name}` but `handler.{name}` is not a function",
                entry.name
            )),
        }
    };
    let on_request = hook(Hooks::ON_REQUEST, "onRequest")?;
    let on_response = hook(Hooks::ON_RESPONSE, "onResponse")?;
    Ok(Started {
        handler: Persistent::save(ctx, handler),
        on_request,
        on_response,
    })
}

fn hooks_of(plugin: &Plugin) -> Hooks {
    let mut hooks = Hooks::empty();
    if plugin.on_request.is_some() {
        hooks |= Hooks::ON_REQUEST;
    }
    if plugin.on_response.is_some() {
        hooks |= Hooks::ON_RESPONSE;
    }
    hooks
}

/// Evaluate the entry module (and what it imports) and return its
/// `handler` export.
fn evaluate_entry<'js>(ctx: &Ctx<'js>, entry: &bundle::Module) -> Result<Object<'js>, String> {
    let declared = rquickjs::Module::declare(ctx.clone(), entry.name.clone(), entry.source.clone())
        .catch(ctx)
        .map_err(|e| describe(&e))?;
    let (module, done) = declared.eval().catch(ctx).map_err(|e| describe(&e))?;
    // Top-level `await` settles here.
    done.finish::<()>().catch(ctx).map_err(|e| describe(&e))?;
    let namespace = module.namespace().catch(ctx).map_err(|e| describe(&e))?;
    // ComponentizeJS accepts the interface's full name too.
    ["weir:plugin/handler@0.5.0", "handler"]
        .into_iter()
        .find_map(|name| {
            namespace
                .get::<_, Value<'js>>(name)
                .ok()
                .and_then(|v| v.into_object())
        })
        .ok_or_else(|| {
            format!(
                "{}: the module must export `handler`, an object with `init`, `onRequest` \
                 and `onResponse`",
                entry.name
            )
        })
}

/// What `init` returned, read as ComponentizeJS does: an `{tag: 'ok' |
/// 'err', val}` object is the result itself, anything else is the hooks;
/// the hooks are an object whose `onRequest` and `onResponse` are read for
/// truth, or `undefined`/`null` for none.
fn init_result(value: &Value<'_>) -> Result<Hooks, String> {
    let mut hooks_value = value.clone();
    if let Some(object) = value.as_object()
        && let Ok(Some(tag)) = object.get::<_, Option<String>>("tag")
    {
        match tag.as_str() {
            "ok" => hooks_value = object.get("val").unwrap_or_else(|_| value.clone()),
            "err" => {
                let why: Value<'_> = object.get("val").unwrap_or_else(|_| value.clone());
                return Err(coerce_string(&why));
            }
            _ => {}
        }
    }
    if hooks_value.is_undefined() || hooks_value.is_null() {
        return Ok(Hooks::empty());
    }
    let Some(object) = hooks_value.as_object() else {
        return Err("`handler.init` must return the hooks it uses, e.g. \
                    {onRequest: true, onResponse: false}"
            .into());
    };
    let truthy = |name: &str| {
        object
            .get::<_, Coerced<bool>>(name)
            .map(|b| b.0)
            .unwrap_or(false)
    };
    let mut hooks = Hooks::empty();
    if truthy("onRequest") {
        hooks |= Hooks::ON_REQUEST;
    }
    if truthy("onResponse") {
        hooks |= Hooks::ON_RESPONSE;
    }
    Ok(hooks)
}

/// `String(value)`, or a description when even that throws.
fn coerce_string(value: &Value<'_>) -> String {
    value
        .get::<Coerced<String>>()
        .map(|s| s.0)
        .unwrap_or_else(|_| format!("{value:?}"))
}

/// What `init` threw, as its error, as ComponentizeJS reads it: a
/// `payload` property if the value has one, a thrown string as is; an
/// `Error` is described with its stack (printed to the log too).
fn thrown(error: &CaughtError<'_>) -> String {
    let value = match error {
        CaughtError::Value(value) => Some(value.clone()),
        CaughtError::Exception(e) => Some(e.as_object().clone().into_value()),
        CaughtError::Error(_) => None,
    };
    if let Some(value) = &value
        && let Some(object) = value.as_object()
        && object.contains_key("payload").unwrap_or(false)
        && let Ok(payload) = object.get::<_, Value<'_>>("payload")
    {
        return coerce_string(&payload);
    }
    if let Some(value) = &value
        && let Some(s) = value.as_string()
        && let Ok(s) = s.to_string()
    {
        return s;
    }
    let text = describe(error);
    eprintln!("{text}");
    text
}

/// An exception with its stack, or any other caught error.
fn describe(error: &CaughtError<'_>) -> String {
    match error {
        CaughtError::Exception(e) => {
            let head = match (
                e.as_object()
                    .get::<_, Option<String>>("name")
                    .ok()
                    .flatten(),
                e.message(),
            ) {
                (Some(name), Some(message)) => format!("{name}: {message}"),
                (None, Some(message)) => message,
                (name, None) => name.unwrap_or_else(|| "Error".into()),
            };
            match e.stack() {
                Some(stack) if !stack.trim().is_empty() => format!("{head}\n{}", stack.trim_end()),
                _ => head,
            }
        }
        CaughtError::Value(value) => {
            let text = value
                .as_string()
                .and_then(|s| s.to_string().ok())
                .unwrap_or_else(|| format!("{value:?}"));
            format!("Uncaught {text}")
        }
        CaughtError::Error(e) => e.to_string(),
    }
}

/// Run hook `which` with the lent objects; a JavaScript exception ends the
/// instance (see the module summary).
fn run_hook(which: &str, req: &Request, resp: Option<&Response>) -> Action {
    let outcome = live::lend(req, resp, |call| {
        PLUGIN.with(|cell| {
            let plugin = cell.borrow();
            let Some(plugin) = plugin.as_ref() else {
                return Ok(Action::Respond(Reply::text(500, "plugin used before init")));
            };
            let hook = match which {
                "onRequest" => plugin.on_request.as_ref(),
                _ => plugin.on_response.as_ref(),
            };
            let Some(hook) = hook else {
                return Ok(Action::Continue);
            };
            plugin
                .context
                .with(|ctx| call_hook(&ctx, plugin, hook, call, resp.is_some()))
        })
    });
    match outcome {
        Ok(action) => action,
        Err(text) => {
            eprintln!("JavaScript exception in {which}: {text}");
            std::process::abort()
        }
    }
}

/// Call `hook` with new objects for call `call`; an exception is described.
fn call_hook(
    ctx: &Ctx<'_>,
    plugin: &Plugin,
    hook: &SavedFunction,
    call: u64,
    with_response: bool,
) -> Result<Action, String> {
    let result = (|| {
        let f = hook.clone().restore(ctx)?;
        let handler = plugin.handler.clone().restore(ctx)?;
        let classes = api::classes(ctx)?;
        let req_obj = api::types::instance(ctx, &classes.request, call)?;
        let returned: MaybePromise<'_> = if with_response {
            let resp_obj = api::types::instance(ctx, &classes.response, call)?;
            f.call((This(handler), req_obj, resp_obj))?
        } else {
            f.call((This(handler), req_obj))?
        };
        let value: Value<'_> = returned.finish()?;
        action_from_js(ctx, &value)
    })();
    result.catch(ctx).map_err(|e| describe(&e))
}

/// `handler.onRequest(req)`.
pub fn on_request(req: &Request) -> Action {
    run_hook("onRequest", req, None)
}

/// `handler.onResponse(req, resp)`.
pub fn on_response(req: &Request, resp: &Response) -> Action {
    run_hook("onResponse", req, Some(resp))
}

/// The contract's `action` from `{tag, val}`.
fn action_from_js<'js>(ctx: &Ctx<'js>, value: &Value<'js>) -> rquickjs::Result<Action> {
    let hint = "a hook must return an action: {tag: 'continue'}, {tag: 'respond', val: reply}, \
                {tag: 'respond-then-continue', val: reply} or {tag: 'wait', val: {key, timeoutMs}}";
    let object = value
        .as_object()
        .ok_or_else(|| convert::type_error(ctx, hint))?;
    let tag = string_from_js(ctx, &field(object, "tag")?, hint)?;
    match tag.as_str() {
        "continue" => Ok(Action::Continue),
        "respond" => Ok(Action::Respond(reply_from_js(ctx, &field(object, "val")?)?)),
        "respond-then-continue" => Ok(Action::RespondThenContinue(reply_from_js(
            ctx,
            &field(object, "val")?,
        )?)),
        "wait" => {
            let wait = record(ctx, &field(object, "val")?, "wait")?;
            Ok(Action::Wait(Wait {
                key: string_from_js(ctx, &field(&wait, "key")?, "wait.key")?,
                timeout_ms: convert::uint_from_js(
                    ctx,
                    &field(&wait, "timeoutMs")?,
                    u32::MAX,
                    "wait.timeoutMs",
                )?,
            }))
        }
        _ => Err(convert::type_error(ctx, hint)),
    }
}

/// A `reply`: `status`, and `headers` and `body` (empty when left out).
fn reply_from_js<'js>(ctx: &Ctx<'js>, value: &Value<'js>) -> rquickjs::Result<Reply> {
    let reply = record(ctx, value, "reply")?;
    let headers = field(&reply, "headers")?;
    let body = field(&reply, "body")?;
    Ok(Reply {
        status: convert::uint_from_js(
            ctx,
            &field(&reply, "status")?,
            u32::from(u16::MAX),
            "reply.status",
        )? as u16,
        headers: if headers.is_undefined() {
            Vec::new()
        } else {
            pairs_from_js(ctx, &headers, "reply.headers")?
        },
        body: if body.is_undefined() {
            Vec::new()
        } else {
            bytes_from_js(ctx, &body, "reply.body")?
        },
    })
}
