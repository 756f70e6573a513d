//! `fazt.net.fetch(url, {method, headers, body, timeout, auth, encoding})`
//! (SPEC §6): the call goes to egress, which decides everything; this
//! side only shapes it. The lane blocks with its JS clock paused. The
//! response is `{status, ok, headers, body, text(), json()}`: header names
//! lower-case, repeated headers joined with `, ` (WHATWG `Headers.get`)
//! except `set-cookie`, an array; `body` a string, or base64 with
//! `encoding: "base64"`. A failure throws an Error whose message starts
//! with its code and whose `code` is that code.

use std::rc::Rc;
use std::time::Instant;

use base64::Engine as _;
use fazt_ipc::msg::{NetOutcome, NetRequest, NetResponse};
use fazt_shared::ErrorCode;
use rquickjs::{Array, Ctx, Object, Value};

use super::{arg_string, define, set_function, Args, Current, HostError, HostResult, Scope};
use crate::net::Outbound;

/// Installs `fazt.net`.
pub fn install<'js>(ctx: &Ctx<'js>, fazt: &Object<'js>, current: &Current) -> rquickjs::Result<()> {
    let net = Object::new(ctx.clone())?;
    set_function(ctx, &net, current, "fetch", 2, fetch)?;
    fazt.set("net", net)
}

/// How the body comes back to JS.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Text,
    Base64,
}

/// `fazt.net.fetch(url, opts?)`.
fn fetch<'js>(ctx: &Ctx<'js>, scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    let url = arg_string(&args.get(0), "fetch: url")?;
    let (request, encoding) = options(ctx, url, args.given(1))?;
    let Some(net) = &scope.net else {
        return Err(net_error(
            ErrorCode::NetError,
            "NET_ERROR: this worker has no egress",
        ));
    };
    let time_left = scope.deadline.saturating_duration_since(Instant::now());
    let outcome = {
        let _paused = scope.clock.pause();
        net.call(Outbound {
            app_id: scope.app_id,
            app: scope.app_name.clone(),
            request_id: scope.request_id.clone(),
            time_left,
            ticket: scope.ticket.clone(),
            request,
        })
    };
    match outcome {
        NetOutcome::Response(resp) => response(ctx, scope, resp, encoding),
        NetOutcome::Failed { code, message } => Err(net_error(code, &message)),
    }
}

fn net_error(code: ErrorCode, message: &str) -> HostError {
    HostError::Coded {
        code,
        message: message.to_string(),
    }
}

/// Reads `opts` into the request egress gets.
fn options<'js>(
    ctx: &Ctx<'js>,
    url: String,
    opts: Option<Value<'js>>,
) -> HostResult<(NetRequest, Encoding)> {
    let mut req = NetRequest {
        url,
        method: "GET".into(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout_ms: None,
        auth: None,
    };
    let Some(opts) = opts else {
        return Ok((req, Encoding::Text));
    };
    let Some(opts) = opts.as_object() else {
        return Err(HostError::Type("fetch: options must be an object".into()));
    };
    let given = |key: &str| -> HostResult<Option<Value<'js>>> {
        let v: Value = opts.get(key)?;
        Ok((!v.is_undefined() && !v.is_null()).then_some(v))
    };
    if let Some(m) = given("method")? {
        req.method = arg_string(&m, "fetch: method")?.to_ascii_uppercase();
    }
    if let Some(h) = given("headers")? {
        let Some(h) = h.as_object() else {
            return Err(HostError::Type("fetch: headers must be an object".into()));
        };
        for key in h.keys::<String>() {
            let key = key?;
            let value: Value = h.get(&key)?;
            let value = match value.as_string() {
                Some(s) => s.to_string()?,
                None => {
                    <rquickjs::convert::Coerced<String> as rquickjs::FromJs>::from_js(ctx, value)?.0
                }
            };
            req.headers.push((key, value));
        }
    }
    if let Some(body) = given("body")? {
        if let Some(s) = body.as_string() {
            req.body = s.to_string()?.into_bytes();
        } else if body.is_object() {
            let Some(json) = ctx.json_stringify(body)? else {
                return Err(HostError::Type(
                    "fetch: body must be JSON-serialisable".into(),
                ));
            };
            req.body = json.to_string()?.into_bytes();
            if !req
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                req.headers
                    .push(("content-type".into(), "application/json".into()));
            }
        } else {
            return Err(HostError::Type(
                "fetch: body must be a string or an object (sent as JSON)".into(),
            ));
        }
    }
    if let Some(t) = given("timeout")? {
        match t.as_number() {
            Some(n) if n.is_finite() && n > 0.0 => req.timeout_ms = Some(n.ceil() as u64),
            _ => {
                return Err(HostError::Range(
                    "fetch: timeout must be a positive number of milliseconds".into(),
                ))
            }
        }
    }
    if let Some(a) = given("auth")? {
        req.auth = Some(arg_string(&a, "fetch: auth")?);
    }
    let encoding = match given("encoding")? {
        None => Encoding::Text,
        Some(e) => match arg_string(&e, "fetch: encoding")?.as_str() {
            "text" | "utf8" | "utf-8" => Encoding::Text,
            "base64" => Encoding::Base64,
            other => {
                return Err(HostError::Range(format!(
                    "fetch: encoding {other:?} is not \"text\" or \"base64\""
                )))
            }
        },
    };
    Ok((req, encoding))
}

/// The response object.
fn response<'js>(
    ctx: &Ctx<'js>,
    scope: &Rc<Scope>,
    resp: NetResponse,
    encoding: Encoding,
) -> HostResult<Value<'js>> {
    let obj = Object::new(ctx.clone())?;
    define(&obj, "status", resp.status)?;
    define(&obj, "ok", (200..300).contains(&resp.status))?;
    let headers = Object::new(ctx.clone())?;
    let mut cookies: Vec<String> = Vec::new();
    let mut joined: Vec<(String, String)> = Vec::new();
    for (name, value) in resp.headers {
        if name == "set-cookie" {
            cookies.push(value);
        } else if let Some((_, v)) = joined.iter_mut().find(|(n, _)| *n == name) {
            v.push_str(", ");
            v.push_str(&value);
        } else {
            joined.push((name, value));
        }
    }
    for (name, value) in joined {
        define(&headers, &name, value)?;
    }
    if !cookies.is_empty() {
        let list = Array::new(ctx.clone())?;
        for (i, c) in cookies.into_iter().enumerate() {
            list.set(i, c)?;
        }
        define(&headers, "set-cookie", list)?;
    }
    define(&obj, "headers", headers)?;
    let body = match encoding {
        Encoding::Text => String::from_utf8_lossy(&resp.body).into_owned(),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(&resp.body),
    };
    define(&obj, "body", body)?;
    // Made with the response: they act for this request only.
    let current = Current::of(scope);
    set_function(ctx, &obj, &current, "text", 0, text)?;
    set_function(ctx, &obj, &current, "json", 0, json)?;
    Ok(obj.into_value())
}

/// `response.text()`: the body as a string.
fn text<'js>(_ctx: &Ctx<'js>, _scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    body_of(&args)
}

/// `response.json()`: the body parsed as JSON.
fn json<'js>(ctx: &Ctx<'js>, _scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    let body = body_of(&args)?;
    let text = arg_string(&body, "response.json: body")?;
    Ok(ctx.json_parse(text)?)
}

/// `this.body` of a response method.
fn body_of<'js>(args: &Args<'js>) -> HostResult<Value<'js>> {
    let this = args.this();
    let Some(this) = this.as_object() else {
        return Err(HostError::Type(
            "call text() and json() on the response: response.text()".into(),
        ));
    };
    Ok(this.get("body")?)
}
