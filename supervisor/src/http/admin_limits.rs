//! Limit overrides over the admin API (SPEC §3, §9), with the CLI's rules
//! (`LimitKey`, the leaf's `validate`) and its store calls. Overrides
//! apply at the next start; `GET /api/system/limits` is what runs now.
//!
//! - `GET /api/system/limits/next`: every limit as it will be at the next
//!   start, with its source (default, probe, override), and overrides that
//!   no longer validate.
//! - `PUT /api/system/limits/GROUP/FIELD {"value": 123 | "64MiB"}`: set an
//!   override.
//! - `DELETE /api/system/limits/GROUP/FIELD`: back to the default.

use fazt_shared::limits::LimitKey;
use fazt_shared::store::overrides;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};

use super::admin_net::{bad, small_body, Refused};
use super::reply::{self, Body};
use super::FrontDoor;

/// `GET /api/system/limits/next`.
pub async fn next(door: &FrontDoor) -> Response<Body> {
    let probe = door.probe;
    match super::admin::blocking(door, move |conn| overrides::resolve(conn, &probe)).await {
        Ok(resolved) => {
            let ignored: Vec<String> = resolved.ignored.iter().map(ToString::to_string).collect();
            let body = json!({ "data": resolved.rows(), "ignored": ignored }).to_string();
            reply::json_bytes(hyper::StatusCode::OK, body.into())
        }
        Err(e) => super::admin::store_error(&e),
    }
}

fn key(path: &str) -> Result<LimitKey, Refused> {
    LimitKey::parse(path).map_err(bad)
}

/// `PUT /api/system/limits/GROUP/FIELD`.
pub async fn set(door: &FrontDoor, path: String, req: Request<Incoming>) -> Response<Body> {
    let body = match small_body(door, req).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let done = async {
        let key = key(&path)?;
        let raw = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(o)) if o.len() == 1 => match o.get("value") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(bad(
                        "give the value as {\"value\": 123} or {\"value\": \"64MiB\"}",
                    ))
                }
            },
            _ => return Err(bad("the body must be {\"value\": …}")),
        };
        let value = key.leaf().validate(&raw).map_err(bad)?;
        super::admin::blocking(door, move |conn| overrides::set(conn, key, value))
            .await
            .map_err(Refused::Store)?;
        Ok::<_, Refused>((key, value))
    };
    match done.await {
        Ok((key, value)) => {
            tracing::info!(limit = %key, value, "limit override set");
            reply::data(json!({
                "path": key.to_string(),
                "value": value,
                "display": key.leaf().unit.format(value),
                "applies": "at the next start",
            }))
        }
        Err(refused) => refused.answer(),
    }
}

/// `DELETE /api/system/limits/GROUP/FIELD`.
pub async fn reset(door: &FrontDoor, path: String) -> Response<Body> {
    let done = async {
        let key = key(&path)?;
        if key.leaf().read_only {
            return Err(bad(format!("{key} is read-only and has no override")));
        }
        let removed = super::admin::blocking(door, move |conn| overrides::reset(conn, key))
            .await
            .map_err(Refused::Store)?;
        Ok::<_, Refused>((key, removed))
    };
    match done.await {
        Ok((key, removed)) => {
            let default = key.leaf().default_for(&door.probe);
            if removed {
                tracing::info!(limit = %key, "limit override reset");
            }
            reply::data(json!({
                "path": key.to_string(),
                "result": if removed { "reset" } else { "no override" },
                "default": default,
                "display": key.leaf().unit.format(default),
                "applies": "at the next start",
            }))
        }
        Err(refused) => refused.answer(),
    }
}
