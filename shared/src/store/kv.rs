//! Per-app key-value storage behind `fazt.app.kv` (SPEC §5), with optional
//! expiry. Values are JSON text; keys are scoped by app id, so one app can
//! never name another's keys.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{now_ms, StoreError};
use crate::units::format_bytes;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 512;
/// Largest value (its JSON text), in bytes: kv is for small state, not files.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;
/// Most entries one `list` returns.
pub const MAX_LIST: usize = 1000;

/// Why a kv call failed.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The key is empty or too long.
    #[error("kv key must be 1 to {MAX_KEY_LEN} bytes (got {0})")]
    BadKey(usize),
    /// The value is too large.
    #[error("kv value is {} (the maximum is {})", format_bytes(*.0 as u64), format_bytes(MAX_VALUE_LEN as u64))]
    TooLarge(usize),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for KvError {
    fn from(e: rusqlite::Error) -> Self {
        KvError::Store(e.into())
    }
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(KvError::BadKey(key.len()));
    }
    Ok(())
}

/// Stores `value` (JSON text) under `key`, expiring after `ttl_ms` when given.
pub fn set(
    conn: &Connection,
    app_id: i64,
    key: &str,
    value: &str,
    ttl_ms: Option<u64>,
) -> Result<(), KvError> {
    check_key(key)?;
    if value.len() > MAX_VALUE_LEN {
        return Err(KvError::TooLarge(value.len()));
    }
    let now = now_ms();
    let expires = ttl_ms.map(|t| now.saturating_add(i64::try_from(t).unwrap_or(i64::MAX)));
    conn.execute(
        "INSERT INTO app_kv(app_id, key, value, expires_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(app_id, key) DO UPDATE SET value = excluded.value,
             expires_at = excluded.expires_at, updated_at = excluded.updated_at",
        params![app_id, key, value, expires, now],
    )?;
    Ok(())
}

/// The value (JSON text) under `key`, unless missing or expired.
pub fn get(conn: &Connection, app_id: i64, key: &str) -> Result<Option<String>, KvError> {
    check_key(key)?;
    Ok(conn
        .query_row(
            "SELECT value FROM app_kv WHERE app_id = ?1 AND key = ?2
             AND (expires_at IS NULL OR expires_at > ?3)",
            params![app_id, key, now_ms()],
            |r| r.get(0),
        )
        .optional()?)
}

/// Deletes `key`; `true` when a live entry was there.
pub fn delete(conn: &Connection, app_id: i64, key: &str) -> Result<bool, KvError> {
    check_key(key)?;
    let n = conn.execute(
        "DELETE FROM app_kv WHERE app_id = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
        params![app_id, key, now_ms()],
    )?;
    Ok(n > 0)
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Key.
    pub key: String,
    /// Value as JSON text.
    pub value: String,
    /// Expiry, ms since the epoch.
    pub expires_at: Option<i64>,
}

/// Live entries whose key starts with `prefix`, by key, at most `limit`
/// (capped at [`MAX_LIST`]).
pub fn list(
    conn: &Connection,
    app_id: i64,
    prefix: &str,
    limit: usize,
) -> Result<Vec<Entry>, KvError> {
    // A range scan on the primary key; the prefix test in Rust avoids LIKE
    // and its escaping.
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, expires_at FROM app_kv WHERE app_id = ?1 AND key >= ?2
         AND (expires_at IS NULL OR expires_at > ?3) ORDER BY key",
    )?;
    let mut rows = stmt.query(params![app_id, prefix, now_ms()])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        if !key.starts_with(prefix) || out.len() >= limit.min(MAX_LIST) {
            break;
        }
        out.push(Entry {
            key,
            value: row.get(1)?,
            expires_at: row.get(2)?,
        });
    }
    Ok(out)
}

/// Deletes expired entries of every app; returns how many.
pub fn purge_expired(conn: &Connection) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM app_kv WHERE expires_at IS NOT NULL AND expires_at <= ?1",
        [now_ms()],
    )?)
}
