//! `/api` and `/api/*` of an app: read the request (bounded), hand it to
//! the worker pool, turn the outcome into the response (SPEC §5).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fazt_ipc::msg::{AppRef, HttpRequest, Outcome};
use fazt_shared::store::apps::AppRow;
use fazt_shared::{AppName, ErrorCode};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};

use super::reply::{self, Body};
use super::request_body::{self, Bounds};
use super::FrontDoor;

/// Response headers JS may not set: the framing ones (hyper frames the body
/// itself), and one that would widen a service worker over other apps.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    // Apps served as /_app/<app>/ share an origin: a service worker of one
    // must not widen its scope over the others.
    "service-worker-allowed",
];

/// A request id: a per-process random prefix and a counter, cheap and unique.
fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(rand::random);
    format!("{prefix:08x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Runs the request on a lane.
pub async fn handle(
    door: &FrontDoor,
    name: AppName,
    app: AppRow,
    path: String,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    if let Some(left) = door.pool.quarantined(app.id) {
        let secs = left.as_secs() + 1;
        let mut resp = reply::app_error(
            ErrorCode::AppQuarantined,
            &format!("{name} crashed workers repeatedly and is paused for {secs} s"),
        );
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
        return resp;
    }
    let limits = &door.limits.capacity;
    let deadline = started + Duration::from_millis(limits.timeout_ms);
    let (parts, body) = req.into_parts();
    // In this order: refuse an oversized declared body at once, take a
    // place among the requests in flight, then read the body within the
    // shared budget, so unread bodies wait in the client's socket.
    if let Err(e) = request_body::check_declared(&parts.headers, limits.max_body) {
        return reply::app_error(e.code(), &e.to_string());
    }
    let Some(admission) = door.pool.admit() else {
        return reply::app_error(
            ErrorCode::Overloaded,
            "too many requests in flight (capacity.max_requests); try again",
        );
    };
    let bounds = Bounds {
        max: limits.max_body,
        budget: Some(&door.bodies),
        stall: Duration::from_millis(limits.body_timeout_ms),
        deadline,
    };
    let (body, _room) = match request_body::read(&parts.headers, body, bounds).await {
        Ok(read) => read,
        Err(e) => return reply::app_error(e.code(), &e.to_string()),
    };
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let id = request_id();
    let request = HttpRequest {
        method: parts.method.as_str().to_string(),
        path,
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers,
        body: Vec::from(body),
    };
    let app_ref = AppRef {
        id: app.id,
        name: name.to_string(),
        version: app.version,
    };
    let outcome = door
        .pool
        .dispatch(admission, app_ref, request, id.clone(), deadline)
        .await;
    let mut resp = match outcome {
        Outcome::Response(r) => {
            let mut resp = Response::new(Body::full(r.body));
            *resp.status_mut() =
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            for (k, v) in r.headers {
                if NOT_FORWARDED.contains(&k.as_str()) {
                    continue;
                }
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(&v),
                ) {
                    resp.headers_mut().append(k, v);
                }
            }
            resp
        }
        Outcome::Error { code, message } => {
            let level_warn = matches!(
                code,
                ErrorCode::JsMemory
                    | ErrorCode::JsTimeout
                    | ErrorCode::WorkerCrashed
                    | ErrorCode::Internal
            );
            // The message may come from the app: one escaped, clipped line.
            let shown = crate::log_text::escape(&message);
            if level_warn {
                tracing::warn!(app = %name, request_id = %id, code = code.as_str(), "request failed: {shown}");
            } else {
                tracing::debug!(app = %name, request_id = %id, code = code.as_str(), "request failed: {shown}");
            }
            reply::app_error(code, &message)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
