//! The allowlist table (SPEC §6): entries added, updated, listed and
//! removed by the CLI and the admin API, loaded whole by egress. Every
//! change bumps the `net` config revision, which egress polls.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{bump_config_rev, now_ms, StoreError};
use crate::net::{AllowEntry, Allowlist, DomainPattern, DomainSettings, Scope};
use crate::AppName;

/// Config kind bumped by every allowlist change.
pub const CONFIG_KIND: &str = "net";

/// What `allow` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// A new entry.
    Added,
    /// An existing entry, now with the new settings.
    Updated,
}

/// The scope of `app`, or an error naming it when it does not exist.
pub fn scope_of(conn: &Connection, app: Option<&AppName>) -> Result<Option<Scope>, StoreError> {
    let Some(name) = app else {
        return Ok(Some(Scope::Global));
    };
    Ok(super::apps::lookup(conn, name)?.map(|row| Scope::App {
        id: row.id,
        name: name.clone(),
    }))
}

/// Adds an entry, or updates the one with the same scope and pattern.
pub fn allow(
    conn: &mut Connection,
    scope: &Scope,
    pattern: &DomainPattern,
    allow_http: bool,
    settings: &DomainSettings,
) -> Result<Allowed, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    let domain = pattern.to_string();
    let s = settings;
    let [rate, burst, timeout, max_response, cache_ttl] =
        [s.rate, s.burst, s.timeout_ms, s.max_response, s.cache_ttl_s].map(to_sql);
    let existing: Option<i64> = tx
        .query_row(
            "SELECT id FROM net_allowlist WHERE COALESCE(app_id, 0) = COALESCE(?1, 0) AND domain = ?2",
            params![scope.app_id(), domain],
            |r| r.get(0),
        )
        .optional()?;
    let done =
        match existing {
            Some(id) => {
                tx.execute(
                "UPDATE net_allowlist SET allow_http = ?2, rate = ?3, burst = ?4, timeout_ms = ?5,
                 max_response = ?6, cache_ttl_s = ?7, updated_at = ?8 WHERE id = ?1",
                params![id, allow_http, rate, burst, timeout, max_response, cache_ttl, now],
            )?;
                Allowed::Updated
            }
            None => {
                tx.execute(
                    "INSERT INTO net_allowlist(app_id, domain, allow_http, rate, burst, timeout_ms,
                 max_response, cache_ttl_s, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                    params![
                        scope.app_id(),
                        domain,
                        allow_http,
                        rate,
                        burst,
                        timeout,
                        max_response,
                        cache_ttl,
                        now
                    ],
                )?;
                Allowed::Added
            }
        };
    bump_config_rev(&tx, CONFIG_KIND)?;
    tx.commit()?;
    Ok(done)
}

/// Removes the entry of `scope` for `pattern`; `false` when there was none.
pub fn remove(
    conn: &mut Connection,
    scope: &Scope,
    pattern: &DomainPattern,
) -> Result<bool, StoreError> {
    remove_scoped(conn, "net_allowlist", "domain", scope, &pattern.to_string())
}

/// Removes the row of `table` (the allowlist or the secrets, both keyed by
/// scope and one name column) whose scope is `scope` and whose `column` is
/// `key`, bumping the `net` revision when there was one; `false` when not.
pub(super) fn remove_scoped(
    conn: &mut Connection,
    table: &'static str,
    column: &'static str,
    scope: &Scope,
    key: &str,
) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let removed = tx.execute(
        &format!(
            "DELETE FROM {table} WHERE COALESCE(app_id, 0) = COALESCE(?1, 0) AND {column} = ?2"
        ),
        params![scope.app_id(), key],
    )?;
    if removed > 0 {
        bump_config_rev(&tx, CONFIG_KIND)?;
    }
    tx.commit()?;
    Ok(removed > 0)
}

/// Entries, global ones first, then by app and domain. With `only`, the
/// entries of that scope alone.
pub fn list(conn: &Connection, only: Option<&Scope>) -> Result<Vec<AllowEntry>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT n.app_id, a.name, n.domain, n.allow_http, n.rate, n.burst, n.timeout_ms,
                n.max_response, n.cache_ttl_s, n.updated_at
         FROM net_allowlist n LEFT JOIN apps a ON a.id = n.app_id
         WHERE ?1 = 0 OR COALESCE(n.app_id, 0) = ?2
         ORDER BY n.app_id IS NOT NULL, a.name, n.domain",
    )?;
    let filter = only.is_some() as i64;
    let app = only.and_then(Scope::app_id).unwrap_or(0);
    let rows = stmt.query_map(params![filter, app], |r| {
        Ok((
            r.get::<_, Option<i64>>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, bool>(3)?,
            [
                r.get::<_, i64>(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ],
            r.get::<_, i64>(9)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (app_id, name, domain, allow_http, v, updated_at) = row?;
        // Rows are written only through `allow`, which validated them; a
        // row that no longer parses (a newer fazt wrote it) is skipped.
        let Ok(pattern) = DomainPattern::parse(&domain) else {
            tracing::warn!(%domain, "allowlist entry skipped: not a valid domain");
            continue;
        };
        let Some(scope) = Scope::from_row(app_id, name.as_deref()) else {
            continue;
        };
        out.push(AllowEntry {
            scope,
            pattern,
            allow_http,
            settings: DomainSettings {
                rate: from_sql(v[0]),
                burst: from_sql(v[1]),
                timeout_ms: from_sql(v[2]),
                max_response: from_sql(v[3]),
                cache_ttl_s: from_sql(v[4]),
            },
            updated_at,
        });
    }
    Ok(out)
}

/// The whole allowlist, as egress uses it.
pub fn load(conn: &Connection) -> Result<Allowlist, StoreError> {
    list(conn, None).map(Allowlist::new)
}

fn to_sql(v: Option<u64>) -> i64 {
    v.map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn from_sql(v: i64) -> Option<u64> {
    u64::try_from(v).ok().filter(|v| *v > 0)
}
