//! The `request` global: `{method, path, query, headers, body}` (SPEC §5).
//! `query` maps each name to its value, or to an array when repeated;
//! `headers` has lower-case names, repeated headers joined with `, `;
//! `body` is JSON-decoded for JSON content types, else a string, else null.

use fazt_ipc::msg::HttpRequest;
use rquickjs::{Array, Ctx, Object, Value};

/// Installs `request`.
pub fn install<'js>(
    ctx: &Ctx<'js>,
    globals: &Object<'js>,
    req: &HttpRequest,
) -> rquickjs::Result<()> {
    let obj = Object::new(ctx.clone())?;
    obj.set("method", req.method.as_str())?;
    obj.set("path", req.path.as_str())?;
    obj.set("query", query(ctx, &req.query)?)?;

    let headers = Object::new(ctx.clone())?;
    let mut content_type = "";
    for (name, value) in &req.headers {
        if name == "content-type" {
            content_type = value;
        }
        let joined = match headers.get::<_, Option<String>>(name.as_str())? {
            Some(prev) => format!("{prev}, {value}"),
            None => value.clone(),
        };
        headers.set(name.as_str(), joined)?;
    }
    obj.set("headers", headers)?;
    obj.set("body", body(ctx, content_type, &req.body)?)?;
    globals.set("request", obj)
}

fn query<'js>(ctx: &Ctx<'js>, raw: &str) -> rquickjs::Result<Object<'js>> {
    let out = Object::new(ctx.clone())?;
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        let k = k.as_ref();
        match out.get::<_, Value>(k)? {
            prev if prev.is_undefined() => out.set(k, v.as_ref())?,
            prev => {
                let list = match prev.as_array() {
                    Some(a) => a.clone(),
                    None => {
                        let a = Array::new(ctx.clone())?;
                        a.set(0, prev)?;
                        a
                    }
                };
                list.set(list.len(), v.as_ref())?;
                out.set(k, list)?;
            }
        }
    }
    Ok(out)
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

fn body<'js>(ctx: &Ctx<'js>, content_type: &str, bytes: &[u8]) -> rquickjs::Result<Value<'js>> {
    if bytes.is_empty() {
        return Ok(Value::new_null(ctx.clone()));
    }
    let text = String::from_utf8_lossy(bytes);
    if is_json(content_type) {
        // Invalid JSON reaches the app as the raw string rather than failing
        // the request before the app can answer it.
        if let Ok(v) = ctx.json_parse(text.as_ref()) {
            return Ok(v);
        }
        let _ = ctx.catch();
    }
    rquickjs::String::from_str(ctx.clone(), &text).map(|s| s.into_value())
}
