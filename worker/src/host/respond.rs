//! `respond(status, body, headers)` and the completion-value response
//! (SPEC §5): both end in [`build`], so an envelope `{status, body, headers}`
//! and a `respond` call mean exactly the same thing.

use std::rc::Rc;

use fazt_ipc::msg::HttpResponse;
use rquickjs::{Ctx, Object, Value};

use super::{js_string_len, set_function, undefined, Args, Current, HostError, HostResult, Scope};

/// Largest response body JS may produce; with the headers it must fit one
/// IPC frame (16 MiB).
pub const MAX_BODY: usize = 10 * 1024 * 1024;
/// Most response headers JS may set.
pub const MAX_HEADERS: usize = 100;
/// Longest header name or value, in UTF-16 units (checked before copying).
pub const MAX_HEADER_LEN: usize = 8 * 1024;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const BINARY: &str = "application/octet-stream";

/// Installs `respond`.
pub fn install<'js>(
    ctx: &Ctx<'js>,
    globals: &Object<'js>,
    current: &Current,
) -> rquickjs::Result<()> {
    set_function(ctx, globals, current, "respond", 3, respond)
}

/// `respond(status, body?, headers?)`, or `respond(body, headers?)` for 200.
fn respond<'js>(ctx: &Ctx<'js>, scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    let first = args.get(0);
    let (status, body, headers) = if first.is_number() {
        (Some(first), args.get(1), args.get(2))
    } else {
        (None, first, args.get(1))
    };
    let response = build(ctx, status, body, headers)?;
    let mut slot = scope.response.borrow_mut();
    if slot.is_some() {
        return Err(HostError::Message("respond() was already called".into()));
    }
    *slot = Some(response);
    Ok(undefined(ctx))
}

/// The response for a script's completion value: an envelope object (only
/// `status`/`body`/`headers` keys, a numeric `status`) is taken apart; any
/// other value is sent as JSON with 200.
pub fn response_from_value<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> HostResult<HttpResponse> {
    if let Some(obj) = value
        .as_object()
        .filter(|o| !o.is_array() && !o.is_function())
    {
        if is_envelope(obj)? {
            return build(
                ctx,
                obj.get("status")?,
                obj.get("body")?,
                obj.get("headers")?,
            );
        }
    }
    let body = checked_body(json_bytes(ctx, value)?)?;
    Ok(HttpResponse {
        status: 200,
        headers: vec![("content-type".into(), JSON.into())],
        body,
    })
}

fn is_envelope(obj: &Object<'_>) -> HostResult<bool> {
    let mut has_status = false;
    for key in obj.keys::<String>() {
        match key?.as_str() {
            "status" => has_status = true,
            "body" | "headers" => {}
            _ => return Ok(false),
        }
    }
    Ok(has_status && obj.get::<_, Value>("status")?.is_number())
}

fn json_bytes<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> HostResult<Vec<u8>> {
    Ok(match ctx.json_stringify(value)? {
        Some(s) => s.to_string()?.into_bytes(),
        // undefined, a function or a symbol: JSON has no spelling for them.
        None => b"null".to_vec(),
    })
}

/// Builds a response from JS values, checking every part.
fn build<'js>(
    ctx: &Ctx<'js>,
    status: Option<Value<'js>>,
    body: Value<'js>,
    headers: Value<'js>,
) -> HostResult<HttpResponse> {
    let status = match status.filter(|s| !s.is_undefined()) {
        None => 200,
        Some(s) => match s.as_number() {
            // 1xx are interim answers, not a response an app can end with.
            Some(n) if n.fract() == 0.0 && (200.0..=599.0).contains(&n) => n as u16,
            _ => {
                return Err(HostError::Range(
                    "status must be an integer from 200 to 599".into(),
                ))
            }
        },
    };

    let (bytes, default_type) = if body.is_undefined() || body.is_null() {
        (Vec::new(), None)
    } else if let Some(s) = body.as_string() {
        (s.to_string()?.into_bytes(), Some(TEXT))
    } else if let Some(bytes) = binary(&body) {
        (bytes, Some(BINARY))
    } else {
        (json_bytes(ctx, body)?, Some(JSON))
    };
    let bytes = checked_body(bytes)?;

    let mut out_headers: Vec<(String, String)> = Vec::new();
    if let Some(obj) = headers.as_object() {
        for pair in obj.props::<Value, Value>() {
            let (name, value) = pair?;
            if out_headers.len() >= MAX_HEADERS {
                return Err(HostError::Range(format!(
                    "at most {MAX_HEADERS} response headers"
                )));
            }
            // Lengths are checked before anything is copied out of the JS heap.
            let too_long = |v: &Value<'js>| v.is_string() && js_string_len(ctx, v) > MAX_HEADER_LEN;
            if too_long(&name) || too_long(&value) {
                return Err(HostError::Range(format!(
                    "header names and values are limited to {MAX_HEADER_LEN} characters"
                )));
            }
            let name = rquickjs::convert::Coerced::<String>::from_js(ctx, name)?.0;
            let value = match value.as_string() {
                Some(s) => s.to_string()?,
                None if value.is_number() || value.is_bool() => {
                    rquickjs::convert::Coerced::<String>::from_js(ctx, value)?.0
                }
                None => return Err(HostError::Type(format!("header {name:?} must be a string"))),
            };
            if !valid_header_name(&name) {
                return Err(HostError::Type(format!("invalid header name {name:?}")));
            }
            // RFC 9110 §5.5: no control characters but tab. Refused here,
            // so a value is never silently dropped on the way out.
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(HostError::Type(format!(
                    "header {name:?} contains a control character (a line break, NUL, …)"
                )));
            }
            out_headers.push((name.to_ascii_lowercase(), value));
        }
    } else if !headers.is_undefined() && !headers.is_null() {
        return Err(HostError::Type("headers must be an object".into()));
    }
    if let Some(t) = default_type {
        if !out_headers.iter().any(|(k, _)| k == "content-type") {
            out_headers.push(("content-type".into(), t.into()));
        }
    }
    Ok(HttpResponse {
        status,
        headers: out_headers,
        body: bytes,
    })
}

fn checked_body(bytes: Vec<u8>) -> HostResult<Vec<u8>> {
    if bytes.len() > MAX_BODY {
        return Err(HostError::Range(format!(
            "response body is {} bytes; the maximum is {MAX_BODY}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Bytes of an ArrayBuffer or `Uint8Array`, copied at once.
fn binary(v: &Value<'_>) -> Option<Vec<u8>> {
    let obj = v.as_object()?;
    // SAFETY: the slices are copied before any JS runs again, so JS cannot
    // detach or resize the buffer while they are alive.
    if let Some(buf) = obj.as_array_buffer() {
        return unsafe { buf.as_bytes() }.map(<[u8]>::to_vec);
    }
    if let Ok(arr) = rquickjs::TypedArray::<u8>::from_object(obj.clone()) {
        return unsafe { arr.as_bytes() }.map(<[u8]>::to_vec);
    }
    None
}

/// RFC 9110 token characters.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

use rquickjs::FromJs;
