//! `/api/net/…` (SPEC §6, §8, §9): the network over the admin API, with
//! the CLI's rules (`DomainPattern`, `Setting`) and its store calls.
//!
//! - `GET allowlist[?app=A]`: the entries, global first.
//! - `POST allowlist {"domain", "app"?, "http"?, "rate"?, "burst"?,
//!   "timeout_ms"?, "max_response"?, "cache_ttl_s"?}`: adds or replaces
//!   one entry.
//! - `DELETE allowlist?domain=D[&app=A]`: removes one entry.
//! - `GET logs[?app=A][&domain=D][&errors=true][&limit=N]`: log rows,
//!   newest first.
//! - `GET stats[?app=A]`: numbers per domain.
//! - `GET cache[?app=A]`: the response cache's numbers; `DELETE` empties
//!   it first.

use std::time::{Duration, Instant};

use fazt_shared::net::allowlist::Setting;
use fazt_shared::net::{Domain, DomainPattern, DomainSettings, Scope};
use fazt_shared::store::net::{self, Allowed};
use fazt_shared::store::net_log::{self, Filter};
use fazt_shared::{AppName, ErrorCode};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};

use super::reply::{self, Body};
use super::request_body::{self, Bounds};
use super::FrontDoor;

/// Largest POST body: one entry (or one secret).
const MAX_BODY: u64 = 16 * 1024;

/// Why a request was refused; [`Refused::answer`] is what the client gets.
pub(super) enum Refused {
    Bad(String),
    NoApp(String),
    Store(fazt_shared::StoreError),
}

impl Refused {
    pub(super) fn answer(self) -> Response<Body> {
        match self {
            Refused::Bad(m) => reply::admin_error(ErrorCode::BadRequest, &m),
            Refused::NoApp(name) => {
                reply::admin_error(ErrorCode::NotFound, &format!("no app named {name}"))
            }
            Refused::Store(e) => super::admin::store_error(&e),
        }
    }
}

pub(super) fn bad(e: impl std::fmt::Display) -> Refused {
    Refused::Bad(e.to_string())
}

/// The query's value of `key`.
pub(super) fn query(req: &Request<Incoming>, key: &str) -> Option<String> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The scope of `app` (global without one).
pub(super) async fn scope(door: &FrontDoor, app: Option<&str>) -> Result<Scope, Refused> {
    let name = app.map(AppName::parse).transpose().map_err(bad)?;
    let key = name.clone();
    match super::admin::blocking(door, move |conn| net::scope_of(conn, key.as_ref())).await {
        Ok(Some(scope)) => Ok(scope),
        Ok(None) => Err(Refused::NoApp(
            name.map(|n| n.to_string()).unwrap_or_default(),
        )),
        Err(e) => Err(Refused::Store(e)),
    }
}

/// `GET /api/net/allowlist[?app=A]`.
pub async fn list(door: &FrontDoor, req: &Request<Incoming>) -> Response<Body> {
    let listed = async {
        let only = match query(req, "app") {
            Some(a) => Some(scope(door, Some(&a)).await?),
            None => None,
        };
        super::admin::blocking(door, move |conn| net::list(conn, only.as_ref()))
            .await
            .map_err(Refused::Store)
    };
    match listed.await {
        Ok(entries) => reply::data(json!(entries)),
        Err(refused) => refused.answer(),
    }
}

/// Most rows one `GET /api/net/logs` answers.
const MAX_LOG_ROWS: u64 = 10_000;

/// The app id of `?app=`, when given.
async fn app_id(door: &FrontDoor, req: &Request<Incoming>) -> Result<Option<i64>, Refused> {
    match query(req, "app") {
        Some(a) => Ok(scope(door, Some(&a)).await?.app_id()),
        None => Ok(None),
    }
}

/// `GET /api/net/logs`.
pub async fn logs(door: &FrontDoor, req: &Request<Incoming>) -> Response<Body> {
    let listed = async {
        let app_id = app_id(door, req).await?;
        let domain = query(req, "domain")
            .map(|d| Domain::parse(&d).map(|d| d.to_string()))
            .transpose()
            .map_err(bad)?;
        let errors = match query(req, "errors").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") | Some("") => true,
            Some(_) => return Err(bad("errors is true or false")),
        };
        let limit = match query(req, "limit") {
            None => 50,
            Some(n) => match n.parse::<u64>() {
                Ok(n) if (1..=MAX_LOG_ROWS).contains(&n) => n,
                _ => return Err(bad(format!("limit is a number from 1 to {MAX_LOG_ROWS}"))),
            },
        };
        let filter = Filter {
            app_id,
            domain,
            errors,
            limit,
        };
        super::admin::blocking(door, move |conn| net_log::logs(conn, &filter))
            .await
            .map_err(Refused::Store)
    };
    match listed.await {
        Ok(rows) => reply::data(json!(rows)),
        Err(refused) => refused.answer(),
    }
}

/// `GET /api/net/stats`.
pub async fn stats(door: &FrontDoor, req: &Request<Incoming>) -> Response<Body> {
    let counted = async {
        let app_id = app_id(door, req).await?;
        super::admin::blocking(door, move |conn| net_log::stats(conn, app_id))
            .await
            .map_err(Refused::Store)
    };
    match counted.await {
        Ok(per_domain) => reply::data(json!(per_domain)),
        Err(refused) => refused.answer(),
    }
}

/// `GET /api/net/cache` (and `DELETE`, `clear`: empty it first).
pub async fn cache(door: &FrontDoor, req: &Request<Incoming>, clear: bool) -> Response<Body> {
    let app_id = match app_id(door, req).await {
        Ok(id) => id,
        Err(refused) => return refused.answer(),
    };
    match door.egress.cache(app_id, clear).await {
        Some(s) => {
            let looked = s.hits + s.misses;
            reply::data(json!({
                "items": s.items,
                "bytes": s.bytes,
                "hits": s.hits,
                "misses": s.misses,
                "hit_ratio": if looked == 0 { 0.0 } else { s.hits as f64 / looked as f64 },
                "cleared": clear.then_some(s.cleared),
            }))
        }
        None => reply::admin_error(
            ErrorCode::Unavailable,
            "egress is not running; try again when it is back",
        ),
    }
}

/// An entry as POSTed.
struct NewEntry {
    pattern: DomainPattern,
    app: Option<String>,
    http: bool,
    settings: DomainSettings,
}

const FIELDS: [&str; 8] = [
    "domain",
    "app",
    "http",
    "rate",
    "burst",
    "timeout_ms",
    "max_response",
    "cache_ttl_s",
];

/// Reads an entry with the CLI's rules: numbers, or strings with units
/// ("2MiB"); 0 or null inherits.
fn parse_entry(body: &[u8]) -> Result<NewEntry, Refused> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(bad(
            "the body must be a JSON object like {\"domain\": \"api.example.com\"}",
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown field {unknown:?}; fields are {}",
            FIELDS.join(", ")
        )));
    }
    let domain = fields
        .get("domain")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("\"domain\" is required: a domain or *. wildcard"))?;
    let http = match fields.get("http") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("\"http\" must be true or false")),
    };
    let app = match fields.get("app") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("\"app\" must be an app name or null")),
    };
    let setting = |s: Setting, key: &str| -> Result<Option<u64>, Refused> {
        let raw = match fields.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad(format!("\"{key}\" must be a number"))),
        };
        s.parse(&raw).map_err(bad)
    };
    Ok(NewEntry {
        pattern: DomainPattern::parse(domain).map_err(bad)?,
        app,
        http,
        settings: DomainSettings {
            rate: setting(Setting::Rate, "rate")?,
            burst: setting(Setting::Burst, "burst")?,
            timeout_ms: setting(Setting::Timeout, "timeout_ms")?,
            max_response: setting(Setting::MaxResponse, "max_response")?,
            cache_ttl_s: setting(Setting::CacheTtl, "cache_ttl_s")?,
        },
    })
}

/// A small JSON body, read within the front door's bounds; the answer to
/// give when it cannot be.
pub(super) async fn small_body(
    door: &FrontDoor,
    req: Request<Incoming>,
) -> Result<bytes::Bytes, Response<Body>> {
    let (parts, body) = req.into_parts();
    let bounds = Bounds {
        max: MAX_BODY,
        budget: Some(&door.bodies),
        stall: Duration::from_millis(door.limits.capacity.body_timeout_ms),
        deadline: Instant::now() + Duration::from_millis(door.limits.capacity.timeout_ms),
    };
    match request_body::read(&parts.headers, body, bounds).await {
        Ok((body, _)) => Ok(body),
        Err(e) => Err(reply::admin_error(e.code(), &e.to_string())),
    }
}

/// `POST /api/net/allowlist`.
pub async fn allow(door: &FrontDoor, req: Request<Incoming>) -> Response<Body> {
    let body = match small_body(door, req).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let done = async {
        let entry = parse_entry(&body)?;
        let scope = scope(door, entry.app.as_deref()).await?;
        let (p, s, http, settings) = (
            entry.pattern.clone(),
            scope.clone(),
            entry.http,
            entry.settings,
        );
        let done =
            super::admin::blocking(door, move |conn| net::allow(conn, &s, &p, http, &settings))
                .await
                .map_err(Refused::Store)?;
        Ok::<_, Refused>((entry.pattern, scope, done))
    };
    match done.await {
        Ok((pattern, scope, done)) => {
            let result = match done {
                Allowed::Added => "allowed",
                Allowed::Updated => "updated",
            };
            tracing::info!(domain = %pattern, app = ?scope.app_id(), result, "allowlist changed");
            reply::data(json!({ "result": result, "domain": pattern, "app": scope }))
        }
        Err(refused) => refused.answer(),
    }
}

/// `DELETE /api/net/allowlist?domain=D[&app=A]`.
pub async fn remove(door: &FrontDoor, req: &Request<Incoming>) -> Response<Body> {
    let removed = async {
        let domain = query(req, "domain")
            .ok_or_else(|| bad("give the entry as ?domain=D (and &app=A for an app's entry)"))?;
        let pattern = DomainPattern::parse(&domain).map_err(bad)?;
        let scope = scope(door, query(req, "app").as_deref()).await?;
        let (p, s) = (pattern.clone(), scope.clone());
        let removed = super::admin::blocking(door, move |conn| net::remove(conn, &s, &p))
            .await
            .map_err(Refused::Store)?;
        Ok::<_, Refused>((pattern, scope, removed))
    };
    match removed.await {
        Ok((pattern, scope, true)) => {
            tracing::info!(domain = %pattern, app = ?scope.app_id(), "allowlist entry removed");
            reply::data(json!({ "result": "removed", "domain": pattern, "app": scope }))
        }
        Ok((pattern, _, false)) => reply::admin_error(
            ErrorCode::NotFound,
            &format!("{pattern} is not on the allowlist for that scope"),
        ),
        Err(refused) => refused.answer(),
    }
}
