//! Per-app key-value storage behind `fazt.app.kv` (SPEC §5), with optional
//! expiry. Values are JSON text; keys are scoped by app id, so one app can
//! never name another's keys.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::{now_ms, StoreError};
use crate::units::format_bytes;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 512;
/// Most entries one `list` returns.
pub const MAX_LIST: usize = 1000;

/// One app's kv bounds (`storage.kv_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KvQuota {
    /// Bytes of keys and values together.
    pub max_bytes: u64,
    /// Keys.
    pub max_keys: u64,
    /// One value's JSON text, in bytes.
    pub max_value: u64,
}

impl From<&crate::Limits> for KvQuota {
    fn from(l: &crate::Limits) -> KvQuota {
        KvQuota {
            max_bytes: l.storage.kv_max_bytes,
            max_keys: l.storage.kv_max_keys,
            max_value: l.storage.kv_max_value,
        }
    }
}

/// Why a kv call failed.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The key is empty or too long.
    #[error("kv key must be 1 to {MAX_KEY_LEN} bytes (got {0})")]
    BadKey(usize),
    /// The value is too large.
    #[error("kv value is {} (storage.kv_max_value is {})", format_bytes(*size), format_bytes(*max))]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The write would take the app over a quota; nothing was written.
    #[error("the app's kv is full: {0}")]
    Quota(String),
    /// A listing holds more bytes than the caller can take.
    #[error("the listing holds more than {}; use a longer prefix", format_bytes(*.0))]
    ListTooLarge(u64),
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

/// What one app holds in kv.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Keys, expired ones included until they are purged.
    pub keys: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

/// What `app_id` holds in kv.
pub fn usage(conn: &Connection, app_id: i64) -> Result<Usage, StoreError> {
    Ok(conn
        .query_row(
            "SELECT keys, bytes FROM app_kv_usage WHERE app_id = ?1",
            [app_id],
            |r| {
                Ok(Usage {
                    keys: r.get::<_, i64>(0)?.max(0) as u64,
                    bytes: r.get::<_, i64>(1)?.max(0) as u64,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

/// Stores `value` (JSON text) under `key`, expiring after `ttl_ms` when
/// given. The quota check and the write are one transaction; when the app
/// is over a quota its expired keys are purged first, and if it still is,
/// nothing is written.
pub fn set(
    conn: &mut Connection,
    app_id: i64,
    key: &str,
    value: &str,
    ttl_ms: Option<u64>,
    quota: &KvQuota,
) -> Result<(), KvError> {
    check_key(key)?;
    if value.len() as u64 > quota.max_value {
        return Err(KvError::TooLarge {
            size: value.len() as u64,
            max: quota.max_value,
        });
    }
    let now = now_ms();
    let expires = ttl_ms.map(|t| now.saturating_add(i64::try_from(t).unwrap_or(i64::MAX)));
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let old: Option<i64> = tx
        .query_row(
            "SELECT octet_length(key) + octet_length(value) FROM app_kv WHERE app_id = ?1 AND key = ?2",
            params![app_id, key],
            |r| r.get(0),
        )
        .optional()?;
    let after = |u: Usage| {
        let keys = u.keys + u64::from(old.is_none());
        let bytes = (u.bytes + (key.len() + value.len()) as u64)
            .saturating_sub(old.unwrap_or(0).max(0) as u64);
        (keys, bytes)
    };
    let over = |(keys, bytes): (u64, u64)| keys > quota.max_keys || bytes > quota.max_bytes;
    let mut projected = after(usage(&tx, app_id)?);
    if over(projected) {
        tx.execute(
            "DELETE FROM app_kv WHERE app_id = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2 AND key != ?3",
            params![app_id, now, key],
        )?;
        projected = after(usage(&tx, app_id)?);
    }
    if projected.0 > quota.max_keys {
        return Err(KvError::Quota(format!(
            "{} keys is the most an app may keep (storage.kv_max_keys)",
            quota.max_keys
        )));
    }
    if projected.1 > quota.max_bytes {
        return Err(KvError::Quota(format!(
            "this write would make {} (storage.kv_max_bytes is {})",
            format_bytes(projected.1),
            format_bytes(quota.max_bytes)
        )));
    }
    tx.execute(
        "INSERT INTO app_kv(app_id, key, value, expires_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(app_id, key) DO UPDATE SET value = excluded.value,
             expires_at = excluded.expires_at, updated_at = excluded.updated_at",
        params![app_id, key, value, expires, now],
    )?;
    tx.commit()?;
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
/// (capped at [`MAX_LIST`]) and at most `max_bytes` of keys and values
/// ([`KvError::ListTooLarge`] beyond, before more is read).
pub fn list(
    conn: &Connection,
    app_id: i64,
    prefix: &str,
    limit: usize,
    max_bytes: u64,
) -> Result<Vec<Entry>, KvError> {
    // A range scan on the primary key; the prefix test in Rust avoids LIKE
    // and its escaping. A value's size is read before the value itself.
    let mut stmt = conn.prepare_cached(
        "SELECT key, octet_length(value), value, expires_at FROM app_kv WHERE app_id = ?1 AND key >= ?2
         AND (expires_at IS NULL OR expires_at > ?3) ORDER BY key",
    )?;
    let mut rows = stmt.query(params![app_id, prefix, now_ms()])?;
    let mut out = Vec::new();
    let mut bytes = 0u64;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        if !key.starts_with(prefix) || out.len() >= limit.min(MAX_LIST) {
            break;
        }
        bytes += key.len() as u64 + row.get::<_, i64>(1)?.max(0) as u64;
        if bytes > max_bytes {
            return Err(KvError::ListTooLarge(max_bytes));
        }
        out.push(Entry {
            key,
            value: row.get(2)?,
            expires_at: row.get(3)?,
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
