//! Global limit overrides (`fazt limits set/reset`), stored in `limits_override`.

use rusqlite::Connection;

use super::{bump_config_rev, now_ms, StoreError};
use crate::limits::{LimitKey, Limits, Override, Probe, Resolved};

/// Config kind bumped when an override changes.
pub const CONFIG_KIND: &str = "limits";

/// All global overrides as stored (validated again when applied).
pub fn list(conn: &Connection) -> Result<Vec<Override>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT path, value FROM limits_override WHERE app_id IS NULL ORDER BY path")?;
    let rows = stmt.query_map([], |r| {
        Ok(Override {
            path: r.get(0)?,
            value: r.get::<_, i64>(1)?.max(0) as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stores a validated value for `key`, replacing an earlier override.
pub fn set(conn: &mut Connection, key: LimitKey, value: u64) -> Result<(), StoreError> {
    // Validated values are far below i64::MAX (the largest range ends at 5 GiB).
    let stored = i64::try_from(value).unwrap_or(i64::MAX);
    let tx = conn.transaction()?;
    let path = key.to_string();
    tx.execute(
        "DELETE FROM limits_override WHERE app_id IS NULL AND path = ?1",
        [&path],
    )?;
    tx.execute(
        "INSERT INTO limits_override(app_id, path, value, updated_at) VALUES (NULL, ?1, ?2, ?3)",
        rusqlite::params![path, stored, now_ms()],
    )?;
    bump_config_rev(&tx, CONFIG_KIND)?;
    tx.commit()?;
    Ok(())
}

/// Removes the override of `key`; `false` when there was none.
pub fn reset(conn: &mut Connection, key: LimitKey) -> Result<bool, StoreError> {
    let tx = conn.transaction()?;
    let removed = tx.execute(
        "DELETE FROM limits_override WHERE app_id IS NULL AND path = ?1",
        [key.to_string()],
    )?;
    if removed > 0 {
        bump_config_rev(&tx, CONFIG_KIND)?;
    }
    tx.commit()?;
    Ok(removed > 0)
}

/// Limits in effect on a machine with this probe: defaults plus the stored
/// overrides that still validate.
pub fn resolve(conn: &Connection, probe: &Probe) -> Result<Resolved, StoreError> {
    Ok(Limits::resolve(probe, &list(conn)?))
}
