//! The secrets table (SPEC §7): set, listed (masked), removed by the CLI
//! and the admin API, loaded whole by egress. A change bumps the `net`
//! config revision, the one egress polls for the allowlist too, so both
//! reload together.

use rusqlite::{params, Connection, TransactionBehavior};

use super::net::CONFIG_KIND;
use super::{bump_config_rev, now_ms, StoreError};
use crate::net::secret::NewSecret;
use crate::net::{DomainPattern, Injection, Scope, Secret, SecretName, SecretValue, Secrets};

/// What `set` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    /// A new secret.
    Added,
    /// An existing one, replaced.
    Replaced,
}

/// Sets `new` in `scope`, replacing a secret of the same name there.
pub fn set(conn: &mut Connection, scope: &Scope, new: &NewSecret) -> Result<Set, StoreError> {
    let NewSecret {
        name,
        injection,
        domain,
        value,
    } = new;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    // Every set takes a version never used before by any secret.
    tx.execute(
        "UPDATE id_sequence SET last = last + 1 WHERE name = 'secret_versions'",
        [],
    )?;
    let version: i64 = tx.query_row(
        "SELECT last FROM id_sequence WHERE name = 'secret_versions'",
        [],
        |r| r.get(0),
    )?;
    let domain = domain.to_string();
    // The same numbered values for the update and, when none matched, the insert.
    let values = params![
        scope.app_id(),
        name.as_str(),
        value.expose(),
        injection.kind(),
        injection.key(),
        domain,
        now,
        version
    ];
    let replaced = tx.execute(
        "UPDATE net_secrets SET value = ?3, kind = ?4, key = ?5, domain = ?6,
                version = ?8, updated_at = ?7
         WHERE COALESCE(app_id, 0) = COALESCE(?1, 0) AND name = ?2",
        values,
    )?;
    if replaced == 0 {
        tx.execute(
            "INSERT INTO net_secrets(app_id, name, value, kind, key, domain, version, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8, ?7, ?7)",
            values,
        )?;
    }
    bump_config_rev(&tx, CONFIG_KIND)?;
    tx.commit()?;
    Ok(if replaced == 0 {
        Set::Added
    } else {
        Set::Replaced
    })
}

/// Removes `name` from `scope`; `false` when there was none.
pub fn remove(conn: &mut Connection, scope: &Scope, name: &SecretName) -> Result<bool, StoreError> {
    super::net::remove_scoped(conn, "net_secrets", "name", scope, name.as_str())
}

/// Secrets, global ones first, then by app and name. With `only`, the
/// secrets of that scope alone.
pub fn list(conn: &Connection, only: Option<&Scope>) -> Result<Vec<Secret>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT s.app_id, a.name, s.name, s.value, s.kind, s.key, s.domain, s.version, s.updated_at
         FROM net_secrets s LEFT JOIN apps a ON a.id = s.app_id
         WHERE ?1 = 0 OR COALESCE(s.app_id, 0) = ?2
         ORDER BY s.app_id IS NOT NULL, a.name, s.name",
    )?;
    let filter = only.is_some() as i64;
    let app = only.and_then(Scope::app_id).unwrap_or(0);
    let rows = stmt.query_map(params![filter, app], |r| {
        Ok((
            r.get::<_, Option<i64>>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, i64>(8)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (app_id, app, name, value, kind, key, domain, version, updated_at) = row?;
        // Rows are written only through `set`, which validated them; one
        // that no longer parses is skipped, named, never shown.
        let parsed = (|| {
            let name = SecretName::parse(&name).ok()?;
            let injection = Injection::parse(Some(&kind), key.as_deref()).ok()?;
            let value = SecretValue::parse(&value, &injection).ok()?;
            let domain = DomainPattern::parse(&domain).ok()?;
            Some((name, injection, value, domain))
        })();
        let Some((name, injection, value, domain)) = parsed else {
            tracing::warn!(secret = %name, "secret skipped: it no longer validates");
            continue;
        };
        let Some(scope) = Scope::from_row(app_id, app.as_deref()) else {
            continue;
        };
        out.push(Secret {
            scope,
            name,
            injection,
            domain,
            value,
            version,
            updated_at,
        });
    }
    Ok(out)
}

/// Every secret, as egress uses them.
pub fn load(conn: &Connection) -> Result<Secrets, StoreError> {
    list(conn, None).map(Secrets::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_set_again_after_a_remove_never_reuses_a_version() {
        let mut conn = Connection::open_in_memory().expect("db");
        super::super::migrations::migrate(&mut conn).expect("migrate");
        let new = |v: &str| {
            NewSecret::parse("K", v, None, None, Some("api.example.com")).expect("secret")
        };
        let version = |conn: &Connection| load(conn).expect("load").all()[0].version;
        set(&mut conn, &Scope::Global, &new("value-one")).expect("set");
        let first = version(&conn);
        set(&mut conn, &Scope::Global, &new("value-two")).expect("set");
        let second = version(&conn);
        assert!(second > first);
        remove(
            &mut conn,
            &Scope::Global,
            &SecretName::parse("K").expect("name"),
        )
        .expect("rm");
        set(&mut conn, &Scope::Global, &new("value-three")).expect("set");
        assert!(
            version(&conn) > second,
            "a rotated secret gets a new version"
        );
    }
}
