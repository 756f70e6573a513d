//! The admin API (SPEC §9): bearer token first, then the resource by path,
//! then the method. Every answer is an envelope.

use std::time::{Duration, Instant};

use bytes::Bytes;
use fazt_shared::store::apps::{self, DeployError, SizeLimits};
use fazt_shared::store::SCHEMA_VERSION;
use fazt_shared::units::format_bytes;
use fazt_shared::{AppName, ErrorCode, StoreError};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::reply::{self, Body};
use super::request_body::{self, Bounds};
use super::FrontDoor;
use super::{admin_limits, admin_net, admin_secrets};
use crate::deploy::{self, InputError};
use crate::phase::Phase;

/// The longest a deploy upload may take to arrive, on top of the stall bound:
/// 100 MiB (the largest `storage.max_upload`) at about 1 Mbit/s.
const UPLOAD_TIME: Duration = Duration::from_secs(15 * 60);

/// What a path names.
enum Resource<'a> {
    Health,
    Limits,
    Schema,
    LimitsNext,
    Limit(String),
    Workers,
    Apps,
    App(&'a str),
    NetAllowlist,
    NetLogs,
    NetStats,
    NetCache,
    Secrets,
}

impl Resource<'_> {
    fn parse(path: &str) -> Option<Resource<'_>> {
        let segments: Vec<&str> = path
            .trim_start_matches("/api/")
            .trim_end_matches('/')
            .split('/')
            .collect();
        Some(match segments.as_slice() {
            ["system", "health"] => Resource::Health,
            ["system", "limits"] => Resource::Limits,
            ["system", "limits", "schema"] => Resource::Schema,
            ["system", "limits", "next"] => Resource::LimitsNext,
            ["system", "limits", group, field] => Resource::Limit(format!("{group}.{field}")),
            ["workers"] => Resource::Workers,
            ["apps"] => Resource::Apps,
            ["apps", name] => Resource::App(name),
            ["net", "allowlist"] => Resource::NetAllowlist,
            ["net", "logs"] => Resource::NetLogs,
            ["net", "stats"] => Resource::NetStats,
            ["net", "cache"] => Resource::NetCache,
            ["secrets"] => Resource::Secrets,
            _ => return None,
        })
    }

    fn allowed(&self) -> &'static str {
        match self {
            Resource::App(_) => "POST, DELETE",
            Resource::NetAllowlist | Resource::Secrets => "GET, POST, DELETE",
            Resource::NetCache => "GET, DELETE",
            Resource::Limit(_) => "PUT, DELETE",
            _ => "GET",
        }
    }
}

/// Answers one admin request.
pub async fn handle(door: &FrontDoor, req: Request<Incoming>) -> Response<Body> {
    if !authorized(door, &req) {
        // No detail: the same answer for a missing, malformed or wrong token.
        let mut resp = reply::admin_error(ErrorCode::Unauthorized, "unauthorized");
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    // As routing saw it: decoded and normalised once.
    let path = match super::path::RequestPath::parse(req.uri().path()) {
        Ok(p) => p.to_string(),
        Err(e) => return reply::admin_error(ErrorCode::BadRequest, &e.to_string()),
    };
    let Some(resource) = Resource::parse(&path) else {
        return reply::admin_error(ErrorCode::NotFound, "no such endpoint");
    };
    match (req.method().clone(), &resource) {
        (Method::GET, Resource::Health) => health(door).await,
        (Method::GET, Resource::Limits) => {
            reply::json_bytes(StatusCode::OK, door.limits_body.clone())
        }
        (Method::GET, Resource::Schema) => {
            reply::json_bytes(StatusCode::OK, door.schema_body.clone())
        }
        (Method::GET, Resource::LimitsNext) => admin_limits::next(door).await,
        (Method::PUT, Resource::Limit(path)) => admin_limits::set(door, path.clone(), req).await,
        (Method::DELETE, Resource::Limit(path)) => admin_limits::reset(door, path.clone()).await,
        (Method::GET, Resource::Workers) => reply::data(json!(door.roster.rows())),
        (Method::GET, Resource::Apps) => list_apps(door).await,
        (Method::POST, Resource::App(name)) => deploy_app(door, name, req).await,
        (Method::DELETE, Resource::App(name)) => remove_app(door, name).await,
        (Method::GET, Resource::NetAllowlist) => admin_net::list(door, &req).await,
        (Method::POST, Resource::NetAllowlist) => admin_net::allow(door, req).await,
        (Method::DELETE, Resource::NetAllowlist) => admin_net::remove(door, &req).await,
        (Method::GET, Resource::NetLogs) => admin_net::logs(door, &req).await,
        (Method::GET, Resource::NetStats) => admin_net::stats(door, &req).await,
        (Method::GET, Resource::NetCache) => admin_net::cache(door, &req, false).await,
        (Method::DELETE, Resource::NetCache) => admin_net::cache(door, &req, true).await,
        (Method::GET, Resource::Secrets) => admin_secrets::list(door, &req).await,
        (Method::POST, Resource::Secrets) => admin_secrets::set(door, req).await,
        (Method::DELETE, Resource::Secrets) => admin_secrets::remove(door, &req).await,
        (method, resource) => {
            let mut resp = reply::admin_error(
                ErrorCode::MethodNotAllowed,
                &format!("{path} answers {}, not {method}", resource.allowed()),
            );
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(resource.allowed()));
            resp
        }
    }
}

/// A bearer token whose scheme is spelled in any case (RFC 9110 §11.1).
fn authorized<B>(door: &FrontDoor, req: &Request<B>) -> bool {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, token)| door.token.verify(token.trim()))
}

/// Runs a store operation off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    door: &FrontDoor,
    op: impl FnOnce(&mut fazt_shared::store::Conn) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = door.store.clone();
    tokio::task::spawn_blocking(move || op(&mut store.conn()?))
        .await
        .map_err(|_| StoreError::TaskFailed)?
}

pub(super) fn store_error(e: &StoreError) -> Response<Body> {
    if e.code() == ErrorCode::Internal {
        tracing::error!(error = %e, "admin API database error");
    }
    reply::admin_error(e.code(), e.public_message())
}

async fn health(door: &FrontDoor) -> Response<Body> {
    // Read real tables: a database that opens but answers errors is not ok.
    let db = blocking(door, |conn| {
        conn.execute_batch("SELECT 1 FROM apps LIMIT 1; SELECT 1 FROM config_rev LIMIT 1;")?;
        Ok(())
    })
    .await;
    if let Err(e) = &db {
        tracing::warn!(error = %e, "health check: the database answers errors");
    }
    let database = match (&db, door.db_problems.is_empty()) {
        (Err(_), _) => "error",
        (Ok(()), false) => "corrupt",
        (Ok(()), true) => "ok",
    };
    let readiness = *door.pool.readiness().borrow();
    let phase = *door.phase.borrow();
    let mut problems: Vec<String> = door.db_problems.clone();
    if db.is_err() {
        problems.push("the database answers errors".into());
    }
    problems.extend(door.roster.problems());
    if !readiness.all() {
        problems.push(format!(
            "{} of {} workers ready",
            readiness.ready, readiness.total
        ));
    }
    // One definition of ready (the pool's): starting until every worker is
    // up once, degraded whenever something is wrong after that.
    let status = match (phase, problems.is_empty()) {
        (Phase::Starting, _) => "starting",
        (_, true) => "ok",
        (_, false) => "degraded",
    };
    reply::data(json!({
        "status": status,
        "problems": problems,
        "database": database,
        "phase": phase,
        "workers": { "ready": readiness.ready, "total": readiness.total },
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_ms": door.started.elapsed().as_millis() as u64,
        "schema_version": SCHEMA_VERSION,
    }))
}

/// Apps, each with `quarantine_left_ms` when it is paused for crashing
/// workers (null otherwise).
async fn list_apps(door: &FrontDoor) -> Response<Body> {
    match blocking(door, |conn| apps::list(conn)).await {
        Ok(list) => {
            let paused = door.pool.quarantine_list();
            let rows: Vec<serde_json::Value> = list
                .into_iter()
                .map(|app| {
                    let left = paused.iter().find(|q| q.id == app.id).map(|q| q.left_ms);
                    let mut row = json!(app);
                    row["quarantine_left_ms"] = json!(left);
                    row
                })
                .collect();
            reply::data(json!(rows))
        }
        Err(e) => store_error(&e),
    }
}

async fn deploy_app(door: &FrontDoor, name: &str, req: Request<Incoming>) -> Response<Body> {
    let name = match AppName::parse(name) {
        Ok(n) => n,
        Err(e) => return reply::admin_error(ErrorCode::BadRequest, &e.to_string()),
    };
    let max_upload = door.limits.storage.max_upload;
    let (parts, body) = req.into_parts();
    // An authenticated upload has its own cap and no share of the body
    // budget (which may be smaller than storage.max_upload); its pauses and
    // its whole time are bounded like any body's.
    let bounds = Bounds {
        max: max_upload,
        budget: None,
        stall: Duration::from_millis(door.limits.capacity.body_timeout_ms),
        deadline: Instant::now() + UPLOAD_TIME,
    };
    let body: Bytes = match request_body::read(&parts.headers, body, bounds).await {
        Ok((body, _)) => body,
        Err(e @ request_body::BodyError::TooLarge(_)) => {
            return reply::admin_error(
                e.code(),
                &format!(
                    "upload over storage.max_upload ({})",
                    format_bytes(max_upload)
                ),
            )
        }
        Err(e) => return reply::admin_error(e.code(), &e.to_string()),
    };
    let limits = SizeLimits::from(&*door.limits);
    let store = door.store.clone();
    let app = name.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<_, InputError> {
        let files = deploy::from_zip(&body, &limits)?;
        let conn = &mut *store.conn().map_err(DeployError::from)?;
        Ok(apps::deploy(conn, &app, &files, &limits)?)
    })
    .await;
    match result {
        Ok(Ok(d)) => {
            door.apps.invalidate();
            tracing::info!(app = %name, version = d.version, files = d.files, bytes = d.bytes, "app deployed");
            reply::data(json!({
                "name": name.as_str(),
                "id": d.id,
                "version": d.version,
                "files": d.files,
                "bytes": d.bytes,
            }))
        }
        Ok(Err(InputError::Deploy(DeployError::Store(e)))) => store_error(&e),
        Ok(Err(
            e @ InputError::Deploy(
                DeployError::FileTooLarge { .. }
                | DeployError::SiteTooLarge { .. }
                | DeployError::StoreFull { .. },
            ),
        )) => reply::admin_error(ErrorCode::PayloadTooLarge, &e.to_string()),
        Ok(Err(e)) => reply::admin_error(ErrorCode::BadRequest, &e.to_string()),
        Err(_) => reply::admin_error(ErrorCode::Internal, "deploy task failed"),
    }
}

async fn remove_app(door: &FrontDoor, name: &str) -> Response<Body> {
    let Ok(name) = AppName::parse(name) else {
        return reply::admin_error(ErrorCode::NotFound, "no such app");
    };
    let key = name.clone();
    match blocking(door, move |conn| apps::remove(conn, &key)).await {
        Ok(true) => {
            door.apps.invalidate();
            tracing::info!(app = %name, "app removed");
            reply::data(json!({ "removed": name.as_str() }))
        }
        Ok(false) => reply::admin_error(ErrorCode::NotFound, &format!("no app named {name}")),
        Err(e) => store_error(&e),
    }
}
