//! `fazt net allow|list|remove`: the allowlist in SQLite (SPEC §6). Input
//! is parsed whole before the database is opened, so bad input writes
//! nothing; egress notices a change through the `net` config revision.

use anyhow::Result;
use fazt_ipc::msg::{ControlRequest, ControlResponse};
use fazt_shared::net::allowlist::Setting;
use fazt_shared::net::{AllowEntry, Domain, DomainPattern, DomainSettings, Scope};
use fazt_shared::store::net::{self, Allowed};
use fazt_shared::store::net_log::{self, Filter};
use fazt_shared::units::format_bytes;
use fazt_shared::{AppName, DataDir, Store};
use serde_json::json;

use super::{existing_store, open_store};
use crate::cli::NetCommand;
use crate::control;
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
        NetCommand::Logs {
            app,
            domain,
            errors,
            limit,
            json,
        } => logs(data, app, domain, errors, limit, json),
        NetCommand::Stats { app, json } => stats(data, app, json),
        NetCommand::Cache { action, app, json } => cache(data, app, action.is_some(), json),
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

/// The app id of `--app`, when given (it must exist); `None` for all.
fn app_id(data: &DataDir, app: Option<String>) -> Result<(Option<Store>, Option<i64>)> {
    let app = parse_app(app.as_deref())?;
    let Some(store) = existing_store(data)? else {
        return match app {
            Some(_) => Err(no_app(app.as_ref()).into()),
            None => Ok((None, None)),
        };
    };
    if app.is_none() {
        return Ok((Some(store), None));
    }
    let (store, scope) = scope(Some(store), app.as_ref())?;
    Ok((Some(store), scope.app_id()))
}

fn logs(
    data: &DataDir,
    app: Option<String>,
    domain: Option<String>,
    errors: bool,
    limit: u64,
    json: bool,
) -> Result<()> {
    let domain = domain
        .map(|d| Domain::parse(&d).map(|d| d.to_string()))
        .transpose()
        .map_err(UsageError::from_display)?;
    let (store, app_id) = app_id(data, app)?;
    let rows = match store {
        None => Vec::new(),
        Some(store) => net_log::logs(
            &*store.conn()?,
            &Filter {
                app_id,
                domain,
                errors,
                limit,
            },
        )?,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "data": rows }))?
        );
        return Ok(());
    }
    if rows.is_empty() {
        println!(
            "no fetches logged{}",
            if errors { " with errors" } else { "" }
        );
        return Ok(());
    }
    println!(
        "{:<19} {:<16} {:<32} {:<7} {:<24} {:<12} {:>7} {:>10}",
        "WHEN (UTC)", "APP", "DOMAIN", "METHOD", "PATH", "RESULT", "MS", "BYTES IN"
    );
    for r in rows {
        let result = match (&r.error_code, r.status, r.cache_hit) {
            (Some(code), _, _) => code.clone(),
            (None, Some(s), true) => format!("{s} cached"),
            (None, Some(s), false) => s.to_string(),
            (None, None, _) => "-".into(),
        };
        println!(
            "{:<19} {:<16} {:<32} {:<7} {:<24} {:<12} {:>7} {:>10}",
            utc(r.created_at),
            r.app.unwrap_or_else(|| format!("#{}", r.app_id)),
            r.domain,
            r.method,
            r.path,
            result,
            r.duration_ms,
            format_bytes(r.response_bytes),
        );
    }
    Ok(())
}

fn stats(data: &DataDir, app: Option<String>, json: bool) -> Result<()> {
    let (store, app_id) = app_id(data, app)?;
    let per_domain = match store {
        None => Vec::new(),
        Some(store) => net_log::stats(&*store.conn()?, app_id)?,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "data": per_domain }))?
        );
        return Ok(());
    }
    if per_domain.is_empty() {
        println!("no fetches logged");
        return Ok(());
    }
    println!(
        "{:<32} {:>7} {:>7} {:>8} {:>8} {:>10} {:>10} {:>6} {:>8}  ERRORS",
        "DOMAIN", "CALLS", "ERRORS", "P50", "P99", "BYTES OUT", "BYTES IN", "HITS", "DROPPED"
    );
    for s in per_domain {
        let errors: u64 = s.errors.values().sum();
        let by_code: Vec<String> = s.errors.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!(
            "{:<32} {:>7} {:>7} {:>6}ms {:>6}ms {:>10} {:>10} {:>6} {:>8}  {}",
            s.domain,
            s.calls,
            errors,
            s.p50_ms,
            s.p99_ms,
            format_bytes(s.bytes_out),
            format_bytes(s.bytes_in),
            s.cache_hits,
            s.dropped.total(),
            by_code.join(", ")
        );
    }
    Ok(())
}

fn cache(data: &DataDir, app: Option<String>, clear: bool, json: bool) -> Result<()> {
    let (_, app_id) = app_id(data, app)?;
    let ControlResponse::NetCache(stats) =
        control::request(data, ControlRequest::NetCache { app_id, clear })?
    else {
        anyhow::bail!("the supervisor answered something else");
    };
    let Some(stats) = stats else {
        anyhow::bail!("egress is not running; its cache is empty until it is back");
    };
    let looked = stats.hits + stats.misses;
    let ratio = if looked == 0 {
        0.0
    } else {
        stats.hits as f64 / looked as f64
    };
    if json {
        println!(
            "{}",
            json!({"data": {
                "items": stats.items,
                "bytes": stats.bytes,
                "hits": stats.hits,
                "misses": stats.misses,
                "hit_ratio": ratio,
                "cleared": clear.then_some(stats.cleared),
            }})
        );
    } else {
        if clear {
            println!("cleared {} entries", stats.cleared);
        }
        println!(
            "{} entries, {}; {} hits of {} lookups ({:.0}%)",
            stats.items,
            format_bytes(stats.bytes),
            stats.hits,
            looked,
            ratio * 100.0
        );
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` of ms since the epoch, in UTC.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates_are_civil() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_785_436_545), "2026-11-27 13:17:16");
        assert_eq!(utc(-1000), "1969-12-31 23:59:59");
    }
}
