//! `fazt net allow|list|remove`: the allowlist in SQLite (SPEC §6). Input
//! is parsed whole before the database is opened, so bad input writes
//! nothing; egress notices a change through the `net` config revision.

use anyhow::Result;
use fazt_shared::net::allowlist::Setting;
use fazt_shared::net::{AllowEntry, DomainPattern, DomainSettings, Scope};
use fazt_shared::store::net::{self, Allowed};
use fazt_shared::units::format_bytes;
use fazt_shared::{AppName, DataDir, Store};
use serde_json::json;

use super::{existing_store, open_store};
use crate::cli::NetCommand;
use crate::usage::UsageError;

/// Runs one `fazt net` subcommand.
pub fn run(data: &DataDir, cmd: NetCommand) -> Result<()> {
    match cmd {
        NetCommand::Allow {
            domain,
            app,
            http,
            rate,
            burst,
            timeout,
            max_response,
            cache_ttl,
            json,
        } => {
            let pattern = DomainPattern::parse(&domain).map_err(UsageError::from_display)?;
            let app = parse_app(app.as_deref())?;
            let setting = |s: Setting, raw: Option<String>| -> Result<Option<u64>> {
                match raw {
                    Some(raw) => Ok(s.parse(&raw).map_err(UsageError::from_display)?),
                    None => Ok(None),
                }
            };
            let settings = DomainSettings {
                rate: setting(Setting::Rate, rate)?,
                burst: setting(Setting::Burst, burst)?,
                timeout_ms: setting(Setting::Timeout, timeout)?,
                max_response: setting(Setting::MaxResponse, max_response)?,
                cache_ttl_s: setting(Setting::CacheTtl, cache_ttl)?,
            };
            let store = match &app {
                // An app's entry needs the app, so the database exists.
                Some(_) => existing_store(data)?,
                None => Some(open_store(data)?),
            };
            let (store, scope) = scope(store, app.as_ref())?;
            let done = net::allow(&mut *store.conn()?, &scope, &pattern, http, &settings)?;
            let verb = match done {
                Allowed::Added => "allowed",
                Allowed::Updated => "updated",
            };
            if json {
                println!(
                    "{}",
                    json!({"data": {"result": verb, "domain": pattern, "app": scope}})
                );
            } else {
                println!("{verb} {pattern} for {}", scope_text(&scope));
            }
            Ok(())
        }
        NetCommand::List { app, json } => {
            let app = parse_app(app.as_deref())?;
            let entries = match existing_store(data)? {
                None if app.is_some() => return Err(no_app(app.as_ref()).into()),
                None => Vec::new(),
                Some(store) => {
                    let (store, scope) = scope(Some(store), app.as_ref())?;
                    let only = app.is_some().then_some(&scope);
                    net::list(&*store.conn()?, only)?
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "data": entries }))?
                );
            } else {
                print_table(&entries);
            }
            Ok(())
        }
        NetCommand::Remove { domain, app, json } => {
            let pattern = DomainPattern::parse(&domain).map_err(UsageError::from_display)?;
            let app = parse_app(app.as_deref())?;
            let (store, scope) = scope(existing_store(data)?, app.as_ref())?;
            if !net::remove(&mut *store.conn()?, &scope, &pattern)? {
                anyhow::bail!(
                    "{pattern} is not on the allowlist for {}",
                    scope_text(&scope)
                );
            }
            if json {
                println!(
                    "{}",
                    json!({"data": {"result": "removed", "domain": pattern, "app": scope}})
                );
            } else {
                println!("removed {pattern} for {}", scope_text(&scope));
            }
            Ok(())
        }
    }
}

pub(super) fn parse_app(app: Option<&str>) -> Result<Option<AppName>> {
    Ok(app
        .map(AppName::parse)
        .transpose()
        .map_err(UsageError::from_display)?)
}

pub(super) fn no_app(app: Option<&AppName>) -> UsageError {
    match app {
        Some(name) => UsageError(format!("no app named {name}")),
        None => UsageError("no fazt database yet: nothing is set".into()),
    }
}

/// The store with the scope of `app` in it; an app that does not exist is
/// a usage error.
pub(super) fn scope(store: Option<Store>, app: Option<&AppName>) -> Result<(Store, Scope)> {
    let Some(store) = store else {
        return Err(no_app(app).into());
    };
    let found = net::scope_of(&*store.conn()?, app)?;
    let scope = found.ok_or_else(|| no_app(app))?;
    Ok((store, scope))
}

pub(super) fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::Global => "every app".into(),
        Scope::App { name, .. } => format!("app {name}"),
    }
}

fn print_table(entries: &[AllowEntry]) {
    if entries.is_empty() {
        println!(
            "the allowlist is empty: apps may fetch nothing. Allow a domain with `fazt net allow api.example.com`"
        );
        return;
    }
    let or_inherit = |v: Option<u64>, show: &dyn Fn(u64) -> String| v.map_or("-".into(), show);
    println!(
        "{:<32} {:<16} {:<6} {:>9} {:>6} {:>9} {:>12} {:>9}",
        "DOMAIN", "APP", "SCHEME", "RATE/MIN", "BURST", "TIMEOUT", "MAX RESPONSE", "CACHE TTL"
    );
    for e in entries {
        let s = &e.settings;
        println!(
            "{:<32} {:<16} {:<6} {:>9} {:>6} {:>9} {:>12} {:>9}",
            e.pattern.to_string(),
            match &e.scope {
                Scope::Global => "(all)".to_string(),
                Scope::App { name, .. } => name.to_string(),
            },
            if e.allow_http { "http+s" } else { "https" },
            or_inherit(s.rate, &|v| v.to_string()),
            or_inherit(s.burst, &|v| v.to_string()),
            or_inherit(s.timeout_ms, &|v| format!("{v} ms")),
            or_inherit(s.max_response, &format_bytes),
            or_inherit(s.cache_ttl_s, &|v| format!("{v} s")),
        );
    }
    println!("(- inherits the net limit; see `fazt limits show`)");
}
