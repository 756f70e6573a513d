//! `console.log/info/debug/warn/error`: forwarded to the supervisor's log,
//! tagged with app and request id (SPEC §5), bounded per request.

use std::rc::Rc;

use fazt_ipc::msg::{LogLevel, LogRecord};
use rquickjs::{Ctx, Object, Value};

use super::{set_function, undefined, Args, Current, HostResult, Scope, MAX_LOG_LINES};

/// Longest forwarded line; the rest is cut.
const MAX_LINE: usize = 8 * 1024;

/// Installs `console`.
pub fn install<'js>(
    ctx: &Ctx<'js>,
    globals: &Object<'js>,
    current: &Current,
) -> rquickjs::Result<()> {
    let console = Object::new(ctx.clone())?;
    set_function(ctx, &console, current, "log", 0, info)?;
    set_function(ctx, &console, current, "info", 0, info)?;
    set_function(ctx, &console, current, "debug", 0, info)?;
    set_function(ctx, &console, current, "warn", 0, warn)?;
    set_function(ctx, &console, current, "error", 0, error)?;
    globals.set("console", console)
}

fn info<'js>(ctx: &Ctx<'js>, scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    emit(ctx, scope, LogLevel::Info, &args)
}

fn warn<'js>(ctx: &Ctx<'js>, scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    emit(ctx, scope, LogLevel::Warn, &args)
}

fn error<'js>(ctx: &Ctx<'js>, scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    emit(ctx, scope, LogLevel::Error, &args)
}

fn emit<'js>(
    ctx: &Ctx<'js>,
    scope: &Scope,
    level: LogLevel,
    args: &Args<'js>,
) -> HostResult<Value<'js>> {
    let left = scope.logs_left.get();
    if left == 0 {
        return Ok(undefined(ctx));
    }
    scope.logs_left.set(left - 1);
    let mut message = if left == 1 {
        format!("log limit of {MAX_LOG_LINES} lines per request reached; further lines dropped")
    } else {
        // Stop converting once the line is full: every argument copied
        // here is memory outside the JS heap limit.
        let mut line = String::new();
        for v in args.all() {
            if line.len() > MAX_LINE {
                break;
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&show(ctx, v));
        }
        line
    };
    if message.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    (scope.log)(LogRecord {
        level,
        app: scope.app_name.clone(),
        request_id: scope.request_id.clone(),
        message,
    });
    Ok(undefined(ctx))
}

/// How one console argument is shown: strings as they are, errors as
/// `Name: message`, other values as JSON where possible.
fn show<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> String {
    if let Some(s) = v.as_string() {
        return s.to_string().unwrap_or_default();
    }
    if let Some(e) = v.as_exception() {
        let name: String = e.get("name").unwrap_or_else(|_| "Error".into());
        return format!("{name}: {}", e.message().unwrap_or_default());
    }
    if v.is_undefined() {
        return "undefined".into();
    }
    if v.is_function() {
        return "[function]".into();
    }
    match ctx.json_stringify(v.clone()) {
        Ok(Some(s)) => s.to_string().unwrap_or_default(),
        _ => {
            // A cycle, a BigInt: fall back to String(v).
            let _ = ctx.catch();
            rquickjs::convert::Coerced::<String>::from_js(ctx, v.clone())
                .map(|c| c.0)
                .unwrap_or_else(|_| "[value]".into())
        }
    }
}

use rquickjs::FromJs;
