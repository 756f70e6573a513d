//! `fazt.app`: the app's `id` and `name`, and `fazt.app.kv`, its key-value
//! store (SPEC §5). kv calls block the lane; the JS clock is paused meanwhile.

use fazt_shared::store::kv::{self, KvError, MAX_LIST};
use fazt_shared::store::Conn;
use rquickjs::function::Opt;
use rquickjs::{Array, Ctx, Exception, Function, Object, Value};

use super::{arg_string, throw_store, with_scope, Scope};

/// Installs `fazt.app`.
pub fn install<'js>(ctx: &Ctx<'js>, fazt: &Object<'js>, scope: &Scope) -> rquickjs::Result<()> {
    let app = Object::new(ctx.clone())?;
    app.set("id", scope.app_id)?;
    app.set("name", scope.app_name.as_str())?;
    let kv = Object::new(ctx.clone())?;
    kv.set("set", Function::new(ctx.clone(), set)?)?;
    kv.set("get", Function::new(ctx.clone(), get)?)?;
    kv.set("delete", Function::new(ctx.clone(), delete)?)?;
    kv.set("list", Function::new(ctx.clone(), list)?)?;
    app.set("kv", kv)?;
    fazt.set("app", app)
}

fn kv_error(ctx: &Ctx<'_>, what: &str, e: KvError) -> rquickjs::Error {
    match e {
        KvError::Store(s) => throw_store(ctx, what, &s),
        limit => Exception::throw_range(ctx, &format!("{what}: {limit}")),
    }
}

/// Runs a kv operation with the JS clock paused.
fn blocking<T>(
    ctx: &Ctx<'_>,
    what: &str,
    op: impl FnOnce(&Conn, i64) -> Result<T, KvError>,
) -> rquickjs::Result<T> {
    with_scope(ctx, |scope| {
        let _paused = scope.clock.pause();
        let conn = scope.store.conn().map_err(|e| throw_store(ctx, what, &e))?;
        op(&conn, scope.app_id).map_err(|e| kv_error(ctx, what, e))
    })
}

fn set<'js>(
    ctx: Ctx<'js>,
    key: Value<'js>,
    value: Value<'js>,
    ttl: Opt<Value<'js>>,
) -> rquickjs::Result<()> {
    let key = arg_string(&ctx, &key, "kv.set: key")?;
    let Some(json) = ctx.json_stringify(value)? else {
        return Err(Exception::throw_type(
            &ctx,
            "kv.set: value must be JSON-serialisable (not undefined or a function)",
        ));
    };
    let json = json.to_string()?;
    let ttl_ms = match ttl.0.filter(|t| !t.is_undefined() && !t.is_null()) {
        None => None,
        Some(t) => match t.as_number() {
            Some(0.0) => None,
            Some(n) if n.is_finite() && n > 0.0 => Some(n.ceil() as u64),
            _ => {
                return Err(Exception::throw_range(
                    &ctx,
                    "kv.set: ttlMs must be a positive number of milliseconds",
                ))
            }
        },
    };
    blocking(&ctx, "kv.set", |conn, app| {
        kv::set(conn, app, &key, &json, ttl_ms)
    })
}

fn get<'js>(ctx: Ctx<'js>, key: Value<'js>) -> rquickjs::Result<Value<'js>> {
    let key = arg_string(&ctx, &key, "kv.get: key")?;
    match blocking(&ctx, "kv.get", |conn, app| kv::get(conn, app, &key))? {
        Some(json) => ctx.json_parse(json),
        None => Ok(Value::new_undefined(ctx.clone())),
    }
}

fn delete<'js>(ctx: Ctx<'js>, key: Value<'js>) -> rquickjs::Result<bool> {
    let key = arg_string(&ctx, &key, "kv.delete: key")?;
    blocking(&ctx, "kv.delete", |conn, app| kv::delete(conn, app, &key))
}

fn list<'js>(ctx: Ctx<'js>, prefix: Opt<Value<'js>>) -> rquickjs::Result<Array<'js>> {
    let prefix = match prefix.0.filter(|p| !p.is_undefined() && !p.is_null()) {
        Some(p) => arg_string(&ctx, &p, "kv.list: prefix")?,
        None => String::new(),
    };
    let entries = blocking(&ctx, "kv.list", |conn, app| {
        kv::list(conn, app, &prefix, MAX_LIST)
    })?;
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
    Ok(out)
}
