//! `fazt.app`: the app's `id` and `name`, and `fazt.app.kv`, its key-value
//! store (SPEC §5). kv calls block the lane; the JS clock is paused meanwhile.

use std::rc::Rc;

use fazt_shared::store::kv::{self, KvError, MAX_LIST};
use fazt_shared::store::Conn;
use rquickjs::{Array, Ctx, Object, Value};

use super::{arg_string, set_function, undefined, Args, Current, HostError, HostResult, Scope};

/// Installs `fazt.app`.
pub fn install<'js>(
    ctx: &Ctx<'js>,
    fazt: &Object<'js>,
    current: &Current,
    app_id: i64,
    app_name: &str,
) -> rquickjs::Result<()> {
    let app = Object::new(ctx.clone())?;
    app.set("id", app_id)?;
    app.set("name", app_name)?;
    let kv = Object::new(ctx.clone())?;
    set_function(ctx, &kv, current, "set", 3, set)?;
    set_function(ctx, &kv, current, "get", 1, get)?;
    set_function(ctx, &kv, current, "delete", 1, delete)?;
    set_function(ctx, &kv, current, "list", 1, list)?;
    app.set("kv", kv)?;
    fazt.set("app", app)
}

/// Runs a kv operation with the JS clock paused.
fn blocking<T>(
    scope: &Scope,
    op: impl FnOnce(&mut Conn, i64) -> Result<T, KvError>,
) -> Result<T, KvError> {
    let _paused = scope.clock.pause();
    let mut conn = scope.store.conn()?;
    op(&mut conn, scope.app_id)
}

/// `kv.set(key, value, ttlMs?)`.
fn set<'js>(ctx: &Ctx<'js>, scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    let key = arg_string(&args.get(0), "kv.set: key")?;
    let Some(json) = ctx.json_stringify(args.get(1))? else {
        return Err(HostError::Type(
            "kv.set: value must be JSON-serialisable (not undefined or a function)".into(),
        ));
    };
    let json = json.to_string()?;
    let ttl_ms = match args.given(2) {
        None => None,
        Some(t) => match t.as_number() {
            Some(0.0) => None,
            Some(n) if n.is_finite() && n > 0.0 => Some(n.ceil() as u64),
            _ => {
                return Err(HostError::Range(
                    "kv.set: ttlMs must be a positive number of milliseconds".into(),
                ))
            }
        },
    };
    let quota = scope.kv;
    blocking(scope, |conn, app| {
        kv::set(conn, app, &key, &json, ttl_ms, &quota)
    })
    .map_err(|e| HostError::kv("kv.set", e))?;
    Ok(undefined(ctx))
}

/// `kv.get(key)`: the value, or `undefined`.
fn get<'js>(ctx: &Ctx<'js>, scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    let key = arg_string(&args.get(0), "kv.get: key")?;
    match blocking(scope, |conn, app| kv::get(conn, app, &key))
        .map_err(|e| HostError::kv("kv.get", e))?
    {
        Some(json) => Ok(ctx.json_parse(json)?),
        None => Ok(undefined(ctx)),
    }
}

/// `kv.delete(key)`: whether there was a value.
fn delete<'js>(ctx: &Ctx<'js>, scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    let key = arg_string(&args.get(0), "kv.delete: key")?;
    let deleted = blocking(scope, |conn, app| kv::delete(conn, app, &key))
        .map_err(|e| HostError::kv("kv.delete", e))?;
    Ok(Value::new_bool(ctx.clone(), deleted))
}

/// `kv.list(prefix?)`: `[{key, value, expiresAt}]`.
fn list<'js>(ctx: &Ctx<'js>, scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    let prefix = match args.given(0) {
        Some(p) => arg_string(&p, "kv.list: prefix")?,
        None => String::new(),
    };
    // What the listing brings into the heap counts against the lane's
    // memory: a listing larger than the room left is JS_MEMORY, found out
    // before the values leave SQLite.
    let room = scope.memory.remaining() as u64;
    let entries = match blocking(scope, |conn, app| {
        kv::list(conn, app, &prefix, MAX_LIST, room)
    }) {
        Ok(entries) => entries,
        Err(e @ KvError::ListTooLarge(_)) => {
            scope.memory.refuse();
            return Err(HostError::kv("kv.list", e));
        }
        Err(e) => return Err(HostError::kv("kv.list", e)),
    };
    let out = Array::new(ctx.clone())?;
    for (i, e) in entries.into_iter().enumerate() {
        let obj = Object::new(ctx.clone())?;
        obj.set("key", e.key)?;
        obj.set("value", ctx.json_parse(e.value)?)?;
        match e.expires_at {
            Some(at) => obj.set("expiresAt", at)?,
            None => obj.set("expiresAt", Value::new_null(ctx.clone()))?,
        }
        out.set(i, obj)?;
    }
    Ok(out.into_value())
}
