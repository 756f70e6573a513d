//! The admin API (SPEC §9): bearer token first, then one match over method
//! and path. Every answer is an envelope.

use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use fazt_shared::store::SCHEMA_VERSION;
use fazt_shared::ErrorCode;

use super::reply::{self, Body};
use crate::supervise::State;

/// Endpoints and the one method each answers.
const ENDPOINTS: &[(&str, Method)] = &[
    ("/api/system/health", Method::GET),
    ("/api/system/limits", Method::GET),
    ("/api/system/limits/schema", Method::GET),
];

/// Answers one admin request.
pub async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    if !authorized(state, &req) {
        // No detail: the same answer for a missing, malformed or wrong token.
        let mut resp = reply::admin_error(ErrorCode::Unauthorized, "unauthorized");
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    let path = req.uri().path();
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    match (req.method(), path) {
        (&Method::GET, "/api/system/health") => health(state).await,
        (&Method::GET, "/api/system/limits") => {
            reply::json_bytes(StatusCode::OK, state.limits_body.clone())
        }
        (&Method::GET, "/api/system/limits/schema") => {
            reply::json_bytes(StatusCode::OK, state.schema_body.clone())
        }
        (method, path) => match ENDPOINTS.iter().find(|(p, _)| *p == path) {
            Some((_, allowed)) => reply::admin_error(
                ErrorCode::MethodNotAllowed,
                &format!("{path} answers {allowed} only, not {method}"),
            ),
            None => reply::admin_error(ErrorCode::NotFound, "no such endpoint"),
        },
    }
}

fn authorized<B>(state: &State, req: &Request<B>) -> bool {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| state.token.verify(token.trim()))
}

async fn health(state: &State) -> Response<Body> {
    let store = state.store.clone();
    let db = tokio::task::spawn_blocking(move || -> Result<(), fazt_shared::StoreError> {
        store.conn()?.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    })
    .await;
    let db_ok = matches!(db, Ok(Ok(())));
    if !db_ok {
        tracing::warn!(?db, "health check: database not answering");
    }
    reply::data(json!({
        "status": if db_ok { "ok" } else { "degraded" },
        "database": if db_ok { "ok" } else { "unavailable" },
        "phase": *state.phase.borrow(),
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_ms": state.started.elapsed().as_millis() as u64,
        "schema_version": SCHEMA_VERSION,
    }))
}
