//! Numbered schema migrations (SPEC §4), applied at start in one transaction.
//!
//! The schema version is SQLite's `user_version`, which lives in the database
//! header and is changed inside the same transaction as the migration, so a
//! crash mid-migration leaves the old version and the old schema together.
//! Migrations are append-only: never edit one that has shipped.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Migration `i` (0-based) brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the tables of SPEC §4.
    r#"
    CREATE TABLE apps (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        -- bumped by every deploy; workers key compiled code on it
        version     INTEGER NOT NULL DEFAULT 1,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );

    CREATE TABLE files (
        app_id      INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        path        TEXT NOT NULL,
        content     BLOB NOT NULL,
        size        INTEGER NOT NULL,
        mime        TEXT NOT NULL,
        hash        TEXT NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (app_id, path)
    ) WITHOUT ROWID;

    CREATE TABLE app_kv (
        app_id      INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        key         TEXT NOT NULL,
        value       TEXT NOT NULL,
        expires_at  INTEGER,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (app_id, key)
    );
    CREATE INDEX app_kv_expires ON app_kv(expires_at) WHERE expires_at IS NOT NULL;

    -- app_id NULL = a global entry; uniqueness must hold for it too, and a plain
    -- UNIQUE(app_id, domain) treats every NULL as distinct, hence COALESCE.
    CREATE TABLE net_allowlist (
        id              INTEGER PRIMARY KEY,
        app_id          INTEGER REFERENCES apps(id) ON DELETE CASCADE,
        domain          TEXT NOT NULL,
        allow_http      INTEGER NOT NULL DEFAULT 0,
        rate            INTEGER NOT NULL DEFAULT 0,
        burst           INTEGER NOT NULL DEFAULT 0,
        timeout_ms      INTEGER NOT NULL DEFAULT 0,
        max_response    INTEGER NOT NULL DEFAULT 0,
        cache_ttl_s     INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX net_allowlist_scope ON net_allowlist(COALESCE(app_id, 0), domain);

    CREATE TABLE net_secrets (
        id          INTEGER PRIMARY KEY,
        app_id      INTEGER REFERENCES apps(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        value       TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('bearer', 'header', 'query')),
        key         TEXT,
        domain      TEXT NOT NULL,
        -- bumped on every change so cached responses of an old value never serve
        version     INTEGER NOT NULL DEFAULT 1,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX net_secrets_scope ON net_secrets(COALESCE(app_id, 0), name);

    CREATE TABLE net_log (
        id              INTEGER PRIMARY KEY,
        app_id          INTEGER,
        domain          TEXT NOT NULL,
        method          TEXT NOT NULL,
        path            TEXT NOT NULL,
        status          INTEGER,
        error_code      TEXT,
        cache_hit       INTEGER NOT NULL DEFAULT 0,
        duration_ms     INTEGER NOT NULL,
        request_bytes   INTEGER NOT NULL DEFAULT 0,
        response_bytes  INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL
    );
    CREATE INDEX net_log_app ON net_log(app_id, created_at);
    CREATE INDEX net_log_domain ON net_log(domain, created_at);

    -- app_id NULL = the global override; per-app overrides come later.
    CREATE TABLE limits_override (
        app_id      INTEGER REFERENCES apps(id) ON DELETE CASCADE,
        path        TEXT NOT NULL,
        value       INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX limits_override_scope ON limits_override(COALESCE(app_id, 0), path);

    -- One counter per kind of configuration; running processes poll it to pick
    -- up CLI changes without a restart.
    CREATE TABLE config_rev (
        kind        TEXT PRIMARY KEY,
        rev         INTEGER NOT NULL
    );

    -- Small singleton settings (the admin token hash).
    CREATE TABLE settings (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL
    );
    "#,
    // 2: app ids are never reused. SQLite hands out the highest rowid again
    // once that row is deleted, and workers and the front door cache code and
    // files under (app id, version): a new app would run a removed one's code.
    r#"
    CREATE TABLE id_sequence (
        name        TEXT PRIMARY KEY,
        -- the last id given out; ids above it are free
        last        INTEGER NOT NULL
    );
    INSERT INTO id_sequence(name, last) SELECT 'apps', COALESCE(MAX(id), 0) FROM apps;
    "#,
    // 3: files get a row id, so large files stream with incremental BLOB
    // reads (a WITHOUT ROWID table cannot), and the id is never reused, so a
    // download in progress notices a redeploy instead of mixing versions.
    // Nothing references `files`, so it is rebuilt in place; the content
    // goes last so the other columns are read without touching it.
    r#"
    CREATE TABLE files_v3 (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id      INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        path        TEXT NOT NULL,
        size        INTEGER NOT NULL,
        mime        TEXT NOT NULL,
        hash        TEXT NOT NULL,
        updated_at  INTEGER NOT NULL,
        content     BLOB NOT NULL,
        UNIQUE (app_id, path)
    );
    INSERT INTO files_v3(app_id, path, size, mime, hash, updated_at, content)
        SELECT app_id, path, size, mime, hash, updated_at, content FROM files;
    DROP TABLE files;
    ALTER TABLE files_v3 RENAME TO files;
    "#,
    // 4: what each app holds in kv, kept by triggers in the same transaction
    // as every write, so a quota check reads one row instead of summing.
    // Bytes are key plus value bytes (octet_length, not characters).
    r#"
    CREATE TABLE app_kv_usage (
        app_id      INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
        keys        INTEGER NOT NULL,
        bytes       INTEGER NOT NULL
    );
    INSERT INTO app_kv_usage(app_id, keys, bytes)
        SELECT app_id, count(*), sum(octet_length(key) + octet_length(value))
        FROM app_kv GROUP BY app_id;
    CREATE TRIGGER app_kv_usage_insert AFTER INSERT ON app_kv BEGIN
        INSERT OR IGNORE INTO app_kv_usage(app_id, keys, bytes) VALUES (NEW.app_id, 0, 0);
        UPDATE app_kv_usage
            SET keys = keys + 1, bytes = bytes + octet_length(NEW.key) + octet_length(NEW.value)
            WHERE app_id = NEW.app_id;
    END;
    CREATE TRIGGER app_kv_usage_update AFTER UPDATE OF value ON app_kv BEGIN
        UPDATE app_kv_usage
            SET bytes = bytes - octet_length(OLD.value) + octet_length(NEW.value)
            WHERE app_id = NEW.app_id;
    END;
    CREATE TRIGGER app_kv_usage_delete AFTER DELETE ON app_kv BEGIN
        UPDATE app_kv_usage
            SET keys = keys - 1, bytes = bytes - octet_length(OLD.key) - octet_length(OLD.value)
            WHERE app_id = OLD.app_id;
    END;
    "#,
    // 5: network log rows the flusher could not keep, per app and domain
    // (app 0: no app), so `fazt net stats` can say what is missing. No
    // foreign key: the log outlives apps.
    r#"
    CREATE TABLE net_log_drops (
        app_id          INTEGER NOT NULL,
        domain          TEXT NOT NULL,
        dropped         INTEGER NOT NULL DEFAULT 0,
        errors_dropped  INTEGER NOT NULL DEFAULT 0,
        lost            INTEGER NOT NULL DEFAULT 0,
        updated_at      INTEGER NOT NULL,
        PRIMARY KEY (app_id, domain)
    );
    CREATE INDEX net_log_created ON net_log(created_at);
    -- Secret versions never repeat, not even after a remove and a set: a
    -- cached response is keyed on the version it was made with.
    INSERT INTO id_sequence(name, last)
        SELECT 'secret_versions', COALESCE(MAX(version), 0) FROM net_secrets;
    "#,
];

/// The schema version this build writes.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Brings the database to [`LATEST`]; a no-op when it is there already.
///
/// Refuses a database from a newer fazt instead of guessing at its schema.
pub fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    // IMMEDIATE takes the write lock up front, so two processes starting at
    // once serialise here instead of both applying migration 1.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Err(StoreError::NewerSchema {
            found: current,
            supported: LATEST,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
    }
    tx.commit()?;
    Ok(LATEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_keep_their_content_through_the_row_id_migration() {
        let mut conn = Connection::open_in_memory().expect("db");
        conn.execute_batch("PRAGMA foreign_keys = ON").expect("fk");
        for sql in &MIGRATIONS[..2] {
            conn.execute_batch(sql).expect("old migration");
        }
        conn.pragma_update(None, "user_version", 2)
            .expect("version");
        conn.execute_batch(
            "INSERT INTO apps(id, name, version, created_at, updated_at) VALUES (7, 'a', 3, 0, 0);
             INSERT INTO files(app_id, path, content, size, mime, hash, updated_at)
                 VALUES (7, 'index.html', x'3c683e', 3, 'text/html', 'h', 0);
             INSERT INTO app_kv(app_id, key, value, updated_at) VALUES (7, 'k', '1', 0);",
        )
        .expect("old rows");
        assert_eq!(migrate(&mut conn).expect("migrate"), LATEST);
        let (id, content): (i64, Vec<u8>) = conn
            .query_row(
                "SELECT id, content FROM files WHERE app_id = 7 AND path = 'index.html'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("file kept");
        assert!(id > 0);
        assert_eq!(content, b"<h>");
        let kv: i64 = conn
            .query_row("SELECT count(*) FROM app_kv", [], |r| r.get(0))
            .expect("kv");
        assert_eq!(kv, 1, "nothing else touched");
        // Removing the app still removes its files.
        conn.execute("DELETE FROM apps WHERE id = 7", [])
            .expect("remove");
        let left: i64 = conn
            .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
            .expect("files");
        assert_eq!(left, 0);
    }
}
