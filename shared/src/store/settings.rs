//! Small singleton settings kept in the `settings` table.

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;

/// Key of the SHA-256 hash of the admin token.
pub const ADMIN_TOKEN_HASH: &str = "admin_token_sha256";

/// Reads a setting.
pub fn get(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Writes a setting, replacing any earlier value.
pub fn set(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO settings(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}
