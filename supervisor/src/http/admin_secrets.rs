//! `/api/secrets` (SPEC §7, §9): secrets over the admin API, with the
//! CLI's rules (`NewSecret`) and its store calls. No answer carries a
//! value: listings are masked, and a set answers with the name alone.
//!
//! - `GET [?app=A]`: the secrets, global first, values masked.
//! - `POST {"name", "value", "domain", "as"?, "key"?, "app"?}`: sets one,
//!   replacing a secret of the same name in that scope.
//! - `DELETE ?name=N[&app=A]`: removes one.

use fazt_shared::net::secret::NewSecret;
use fazt_shared::net::SecretName;
use fazt_shared::store::secrets::{self, Set};
use fazt_shared::ErrorCode;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};

use super::admin_net::{bad, query, scope, small_body, Refused};
use super::reply::{self, Body};
use super::FrontDoor;

/// `GET /api/secrets[?app=A]`.
pub async fn list(door: &FrontDoor, req: &Request<Incoming>) -> Response<Body> {
    let listed = async {
        let only = match query(req, "app") {
            Some(a) => Some(scope(door, Some(&a)).await?),
            None => None,
        };
        super::admin::blocking(door, move |conn| secrets::list(conn, only.as_ref()))
            .await
            .map_err(Refused::Store)
    };
    match listed.await {
        Ok(list) => reply::data(json!(list)),
        Err(refused) => refused.answer(),
    }
}

const FIELDS: [&str; 6] = ["name", "value", "domain", "as", "key", "app"];

/// Reads a secret with the CLI's rules; the app name comes back apart.
fn parse_secret(body: &[u8]) -> Result<(NewSecret, Option<String>), Refused> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(bad(
            "the body must be a JSON object like {\"name\": \"API_KEY\", \"value\": \"…\", \"domain\": \"api.example.com\"}",
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown field {unknown:?}; fields are {}",
            FIELDS.join(", ")
        )));
    }
    let text = |key: &str| -> Result<Option<&str>, Refused> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            // The field's name only: the value may be the secret.
            Some(_) => Err(bad(format!("\"{key}\" must be a string"))),
        }
    };
    let name = text("name")?.ok_or_else(|| bad("\"name\" is required"))?;
    let value = text("value")?.ok_or_else(|| bad("\"value\" is required"))?;
    let new =
        NewSecret::parse(name, value, text("as")?, text("key")?, text("domain")?).map_err(bad)?;
    Ok((new, text("app")?.map(str::to_string)))
}

/// `POST /api/secrets`.
pub async fn set(door: &FrontDoor, req: Request<Incoming>) -> Response<Body> {
    let body = match small_body(door, req).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let done = async {
        let (new, app) = parse_secret(&body)?;
        let scope = scope(door, app.as_deref()).await?;
        let (s, n) = (scope.clone(), new.clone());
        let done = super::admin::blocking(door, move |conn| secrets::set(conn, &s, &n))
            .await
            .map_err(Refused::Store)?;
        Ok::<_, Refused>((new, scope, done))
    };
    match done.await {
        Ok((new, scope, done)) => {
            let result = match done {
                Set::Added => "set",
                Set::Replaced => "replaced",
            };
            tracing::info!(secret = %new.name, app = ?scope.app_id(), domain = %new.domain, result, "secret changed");
            reply::data(json!({
                "result": result,
                "name": new.name,
                "app": scope,
                "domain": new.domain,
            }))
        }
        Err(refused) => refused.answer(),
    }
}

/// `DELETE /api/secrets?name=N[&app=A]`.
pub async fn remove(door: &FrontDoor, req: &Request<Incoming>) -> Response<Body> {
    let removed = async {
        let name = query(req, "name")
            .ok_or_else(|| bad("give the secret as ?name=N (and &app=A for an app's secret)"))?;
        let name = SecretName::parse(&name).map_err(bad)?;
        let scope = scope(door, query(req, "app").as_deref()).await?;
        let (n, s) = (name.clone(), scope.clone());
        let removed = super::admin::blocking(door, move |conn| secrets::remove(conn, &s, &n))
            .await
            .map_err(Refused::Store)?;
        Ok::<_, Refused>((name, scope, removed))
    };
    match removed.await {
        Ok((name, scope, true)) => {
            tracing::info!(secret = %name, app = ?scope.app_id(), "secret removed");
            reply::data(json!({ "result": "removed", "name": name, "app": scope }))
        }
        Ok((name, _, false)) => reply::admin_error(
            ErrorCode::NotFound,
            &format!("no secret {name} in that scope"),
        ),
        Err(refused) => refused.answer(),
    }
}
