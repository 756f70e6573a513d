//! Response builders: the admin envelope (`{"data"}` / `{"error":{code,message}}`,
//! SPEC §9) and the app error body (`{"error","code"}`, SPEC §5).

use bytes::Bytes;
use fazt_shared::ErrorCode;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::json;

pub use super::body::Body;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response with a pre-rendered body.
pub fn json_bytes(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, JSON);
    resp
}

/// `{"data": value}` with 200.
pub fn data(value: serde_json::Value) -> Response<Body> {
    json_bytes(StatusCode::OK, json!({ "data": value }).to_string().into())
}

fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `{"error": {"code", "message"}}`, the admin API's error envelope.
pub fn admin_error(code: ErrorCode, message: &str) -> Response<Body> {
    let body = json!({ "error": { "code": code, "message": message } });
    with_retry(code, json_bytes(status_of(code), body.to_string().into()))
}

/// `{"error": message, "code": code}`, what an app's client sees (SPEC §5);
/// retryable codes add `"retryable": true` and `Retry-After: 1`.
pub fn app_error(code: ErrorCode, message: &str) -> Response<Body> {
    let mut body = json!({ "error": message, "code": code });
    if code.retryable() {
        body["retryable"] = json!(true);
    }
    with_retry(code, json_bytes(status_of(code), body.to_string().into()))
}

fn with_retry(code: ErrorCode, mut resp: Response<Body>) -> Response<Body> {
    if code.retryable() {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}
