//! The globals app JS sees (SPEC §5), one module per namespace, each with an
//! `install`; [`install_all`] lists them. Per-request state lives in the
//! runtime's userdata as a [`Scope`] (several lanes share a process, so
//! nothing here is static), and errors become JS exceptions in one place,
//! [`throw`].

mod app;
mod console;
mod request;
mod require;
mod respond;

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use fazt_ipc::msg::{HttpResponse, LogRecord};
use fazt_shared::{ErrorCode, Store, StoreError};
use rquickjs::{Ctx, Exception, JsLifetime, Object};

use crate::code::{AppCode, CodeCache};
use crate::js::clock::Clock;

pub use require::compile as compile_file;
pub use respond::response_from_value;

/// Where console output goes (the supervisor's log, or a test's buffer).
pub type LogSink = Arc<dyn Fn(LogRecord) + Send + Sync>;

/// Log lines one request may write; more are dropped (and counted in one
/// final line) so a looping app cannot flood the supervisor's log.
pub const MAX_LOG_LINES: u32 = 200;

/// Everything the host functions of one request need.
pub struct Scope {
    /// App row id.
    pub app_id: i64,
    /// App name.
    pub app_name: String,
    /// Request id, for log lines.
    pub request_id: String,
    /// The database (kv).
    pub store: Store,
    /// The lane's JS clock; blocking host calls pause it.
    pub clock: std::rc::Rc<Clock>,
    /// Console output.
    pub log: LogSink,
    /// Log lines left for this request.
    pub logs_left: Cell<u32>,
    /// Set by `respond()`.
    pub response: RefCell<Option<HttpResponse>>,
    /// The app's code, for `require`.
    pub code: Arc<AppCode>,
    /// The worker's bytecode cache.
    pub cache: Arc<CodeCache>,
}

// SAFETY: Scope holds no JS values, so it has no `'js` lifetime to change.
unsafe impl<'js> JsLifetime<'js> for Scope {
    type Changed<'to> = Scope;
}

/// Installs every global of SPEC §5 into a fresh context.
pub fn install_all<'js>(
    ctx: &Ctx<'js>,
    scope: &Scope,
    request: &fazt_ipc::msg::HttpRequest,
) -> rquickjs::Result<()> {
    let globals = ctx.globals();
    request::install(ctx, &globals, request)?;
    respond::install(ctx, &globals)?;
    console::install(ctx, &globals)?;
    let fazt = Object::new(ctx.clone())?;
    app::install(ctx, &fazt, scope)?;
    globals.set("fazt", fazt)?;
    require::install(ctx, &globals)?;
    Ok(())
}

/// Runs `f` with the request's scope.
pub fn with_scope<'js, T>(
    ctx: &Ctx<'js>,
    f: impl FnOnce(&Scope) -> rquickjs::Result<T>,
) -> rquickjs::Result<T> {
    let scope = ctx
        .userdata::<Scope>()
        .ok_or_else(|| throw(ctx, None, "fazt host API called outside a request"))?;
    f(&scope)
}

/// Throws a JS `Error` with `message` and, when given, a stable `code`
/// property (`DB_BUSY`, `NET_…`) that survives to the HTTP answer.
pub fn throw(ctx: &Ctx<'_>, code: Option<ErrorCode>, message: &str) -> rquickjs::Error {
    let Ok(err) = Exception::from_message(ctx.clone(), message) else {
        return rquickjs::Error::Exception;
    };
    if let Some(code) = code {
        let _ = err.as_object().set("code", code.as_str());
    }
    ctx.throw(err.into_value())
}

/// Turns a store failure inside a host call into a JS error: a busy
/// database is retryable (`DB_BUSY`, 503), anything else is internal.
pub fn throw_store(ctx: &Ctx<'_>, what: &str, e: &StoreError) -> rquickjs::Error {
    if e.code() == ErrorCode::Internal {
        tracing::warn!(error = %e, "{what} failed");
    }
    throw(
        ctx,
        Some(e.code()),
        &format!("{what}: {}", e.public_message()),
    )
}

/// Length of a JS string in UTF-16 units, read without copying it, so a
/// limit can refuse a huge string before Rust allocates for it. Anything
/// that is not a string counts as `usize::MAX`.
pub fn js_string_len<'js>(ctx: &Ctx<'js>, v: &rquickjs::Value<'js>) -> usize {
    if !v.is_string() {
        return usize::MAX;
    }
    // SAFETY: reading `length` of a live string value returns a new owned
    // JSValue, which `Value::from_raw` takes over and frees; strings' length
    // is a plain data property, so nothing runs and nothing throws.
    let len = unsafe {
        rquickjs::Value::from_raw(
            ctx.clone(),
            rquickjs::qjs::JS_GetPropertyStr(ctx.as_raw().as_ptr(), v.as_raw(), c"length".as_ptr()),
        )
    };
    len.as_int()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX)
}

/// Defines `obj[key] = value` as an own data property, the way object
/// literals do: a key such as `__proto__` or `constructor` becomes a plain
/// property instead of reaching `Object.prototype`.
pub fn define<'js, V: rquickjs::IntoJs<'js>>(
    obj: &Object<'js>,
    key: &str,
    value: V,
) -> rquickjs::Result<()> {
    obj.prop(
        key,
        rquickjs::object::Property::from(value)
            .writable()
            .enumerable()
            .configurable(),
    )
}

/// The string in `v`, or a `TypeError` naming the argument.
pub fn arg_string<'js>(
    ctx: &Ctx<'js>,
    v: &rquickjs::Value<'js>,
    what: &str,
) -> rquickjs::Result<String> {
    match v.as_string() {
        Some(s) => s.to_string(),
        None => Err(Exception::throw_type(
            ctx,
            &format!("{what} must be a string"),
        )),
    }
}
