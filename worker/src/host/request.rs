//! The `request` global: `{method, path, query, headers, body}` (SPEC §5).
//! `query` maps each name to its value, or to an array when repeated;
//! `headers` has lower-case names, repeated headers joined with `, `;
//! `body` is JSON-decoded for JSON content types, else a string, else null.

use fazt_ipc::msg::HttpRequest;
use rquickjs::{Array, Ctx, Object, Value};

use super::define;

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

    // Repeated headers are joined here, in Rust: names come from the client
    // and must never be looked up on the object's prototype chain.
    let mut headers: Vec<(&str, String)> = Vec::new();
    for (name, value) in &req.headers {
        match headers.iter_mut().find(|(n, _)| *n == name.as_str()) {
            Some((_, joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            None => headers.push((name, value.clone())),
        }
    }
    let content_type = headers
        .iter()
        .find(|(n, _)| *n == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let headers_obj = Object::new(ctx.clone())?;
    for (name, value) in headers {
        define(&headers_obj, name, value)?;
    }
    obj.set("headers", headers_obj)?;
    obj.set("body", body(ctx, &content_type, &req.body)?)?;
    globals.set("request", obj)
}

fn query<'js>(ctx: &Ctx<'js>, raw: &str) -> rquickjs::Result<Object<'js>> {
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        match grouped.iter_mut().find(|(name, _)| *name == k) {
            Some((_, values)) => values.push(v.into_owned()),
            None => grouped.push((k.into_owned(), vec![v.into_owned()])),
        }
    }
    let out = Object::new(ctx.clone())?;
    for (k, mut values) in grouped {
        if values.len() == 1 {
            define(&out, &k, values.pop().unwrap_or_default())?;
        } else {
            let list = Array::new(ctx.clone())?;
            for (i, v) in values.into_iter().enumerate() {
                list.set(i, v)?;
            }
            define(&out, &k, list)?;
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
