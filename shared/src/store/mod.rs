//! SQLite store (SPEC §4): the data dir, the database file, its connection
//! pool and migrations, and the small typed queries every process shares.
//!
//! All calls here are blocking; async callers run them on `spawn_blocking`
//! and never hold a pooled connection across an `.await`.

pub mod apps;
pub mod kv;
mod migrations;
pub mod net;
pub mod net_log;
pub mod overrides;
pub mod secrets;
pub mod settings;

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

pub use migrations::{migrate, LATEST as SCHEMA_VERSION};

/// A pool of connections to `fazt.db`.
pub type Pool = r2d2::Pool<SqliteConnectionManager>;
/// One connection taken from the pool.
pub type Conn = r2d2::PooledConnection<SqliteConnectionManager>;

/// How long a connection waits for another writer before giving up with
/// `SQLITE_BUSY` (which reaches a JS app as a retryable 503, SPEC §4).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be created or opened. (The OS error
    /// is part of the message, not a `source`, so a report of the whole
    /// chain says it once.)
    #[error("{path}: {error}")]
    Io {
        /// Which path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The database was written by a newer fazt.
    #[error("the database has schema version {found}, newer than this fazt supports ({supported}); upgrade fazt or restore a backup")]
    NewerSchema {
        /// Version found in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// Another writer held the lock past the busy timeout; retryable.
    #[error("the database is busy")]
    Busy,
    /// Any other SQLite error.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// No connection came free in time.
    #[error("database pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// The task running the query panicked or was cancelled.
    #[error("the database task did not finish")]
    TaskFailed,
}

impl StoreError {
    /// The user-visible code: a busy database is retryable (`DB_BUSY`, SPEC
    /// §4); anything else is an internal error.
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            StoreError::Busy => crate::ErrorCode::DbBusy,
            _ => crate::ErrorCode::Internal,
        }
    }

    /// What a client may be told; the SQL error itself stays in the log.
    pub fn public_message(&self) -> &'static str {
        match self {
            StoreError::Busy => "the database is busy, try again",
            _ => "database error",
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Busy
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

/// The data directory: `fazt.db`, the admin token and the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir(PathBuf);

impl DataDir {
    /// Wraps a path (from `--data-dir`, `FAZT_DATA` or the default).
    pub fn new(path: impl Into<PathBuf>) -> DataDir {
        DataDir(path.into())
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `<data>/fazt.db`.
    pub fn db_path(&self) -> PathBuf {
        self.0.join("fazt.db")
    }

    /// `<data>/admin.token` (mode 0600).
    pub fn admin_token_path(&self) -> PathBuf {
        self.0.join("admin.token")
    }

    /// `<data>/control.sock` (mode 0600), where the CLI reaches the supervisor.
    pub fn control_socket_path(&self) -> PathBuf {
        self.0.join("control.sock")
    }

    /// `<data>/children.sock` (mode 0600), where the supervisor's children
    /// (workers, egress) connect back to it.
    pub fn children_socket_path(&self) -> PathBuf {
        self.0.join("children.sock")
    }

    /// `<data>/egress.sock` (mode 0600), where workers reach egress.
    pub fn egress_socket_path(&self) -> PathBuf {
        self.0.join("egress.sock")
    }

    /// Creates the directory with mode 0700 when missing: the database in it
    /// holds secrets.
    pub fn create(&self) -> Result<(), StoreError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.0)
            .map_err(|error| StoreError::Io {
                path: self.0.clone(),
                error,
            })
    }
}

/// The opened, migrated database and its pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Creates the data dir and database as needed, migrates, and opens a
    /// pool of `pool_size` connections (at least 2, so a query run while
    /// another connection holds an open cursor never waits on itself).
    pub fn open(dir: &DataDir, pool_size: u32) -> Result<Store, StoreError> {
        dir.create()?;
        let path = dir.db_path();
        create_private_file(&path)?;
        let mut conn = Connection::open(&path)?;
        // WAL is a property of the file; set once, it stays.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "SQLite refused WAL mode; writers will block readers");
        }
        conn.busy_timeout(BUSY_TIMEOUT)?;
        migrate(&mut conn)?;
        drop(conn);

        let manager = SqliteConnectionManager::file(&path).with_init(configure);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(2))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        Ok(Store { pool })
    }

    /// Opens the database when it exists, without creating the data dir or
    /// the file: for commands that only read (`app list`, `limits show`).
    pub fn open_existing(dir: &DataDir, pool_size: u32) -> Result<Option<Store>, StoreError> {
        if !dir.db_path().is_file() {
            return Ok(None);
        }
        Store::open(dir, pool_size).map(Some)
    }

    /// Writes a consistent copy of the database to `to` (`VACUUM INTO`),
    /// readable while other processes write. The copy holds secrets: `to`
    /// is opened (never through a symlink), emptied and made mode 0600
    /// before SQLite writes into that same file.
    pub fn backup_to(&self, to: &Path) -> Result<u64, StoreError> {
        let io = |error| StoreError::Io {
            path: to.to_path_buf(),
            error,
        };
        let target = to
            .to_str()
            .ok_or_else(|| io(std::io::Error::other("the path is not UTF-8")))?;
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(to)
            .map_err(io)?;
        // An existing file keeps its mode through open(); narrow it first.
        file.set_permissions(Permissions::from_mode(0o600))
            .map_err(io)?;
        // VACUUM INTO writes into an existing file only when it is empty,
        // which it now is.
        self.conn()?.execute("VACUUM INTO ?1", [target])?;
        file.metadata().map(|m| m.len()).map_err(io)
    }

    /// Checks the database file (`PRAGMA quick_check`); the problems found,
    /// at most `max` of them, empty when it is sound.
    pub fn quick_check(&self, max: u32) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let run = || -> rusqlite::Result<Vec<String>> {
            let mut stmt = conn.prepare(&format!("PRAGMA quick_check({max})"))?;
            let found = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(found)
        };
        match run() {
            Ok(found) => Ok(found.into_iter().filter(|l| l != "ok").collect()),
            // Damage bad enough that the check itself cannot finish is a
            // finding too, not a reason to stop.
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
                ) =>
            {
                Ok(vec![e.to_string()])
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A connection from the pool; blocks until one is free.
    pub fn conn(&self) -> Result<Conn, StoreError> {
        Ok(self.pool.get()?)
    }
}

/// Per-connection settings (these do not persist in the file).
fn configure(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // In WAL mode NORMAL loses at most the last transactions on power loss,
    // never consistency, and saves an fsync per commit.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// Creates `path` with mode 0600 when missing and tightens it when it exists.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let io = |error| StoreError::Io {
        path: path.to_path_buf(),
        error,
    };
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    std::fs::set_permissions(path, Permissions::from_mode(0o600)).map_err(io)
}

/// Milliseconds since the Unix epoch, the time unit of every table.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Bumps the revision of one kind of configuration so running processes that
/// poll [`config_rev`] reload it.
pub fn bump_config_rev(conn: &Connection, kind: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO config_rev(kind, rev) VALUES (?1, 1)
         ON CONFLICT(kind) DO UPDATE SET rev = rev + 1",
        [kind],
    )?;
    Ok(())
}

/// The current revision of one kind of configuration (0 when never changed).
pub fn config_rev(conn: &Connection, kind: &str) -> Result<i64, StoreError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row("SELECT rev FROM config_rev WHERE kind = ?1", [kind], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

#[cfg(test)]
mod tests;
