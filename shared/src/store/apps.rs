//! Apps and their files (SPEC §4, §5): atomic deploys, lookups for routing and
//! static serving, and the code bundle a worker runs.

use std::collections::HashSet;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{bump_config_rev, now_ms, StoreError};
use crate::app::{AppName, FilePath, PublicPath};
use crate::limits::Limits;
use crate::mime;
use crate::units::format_bytes;

/// Config kind bumped by every deploy and removal.
pub const CONFIG_KIND: &str = "apps";

/// One file of a deploy.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Where it goes.
    pub path: FilePath,
    /// Its bytes.
    pub content: Vec<u8>,
}

/// The size bounds a deploy must respect (from `Limits.storage`).
#[derive(Debug, Clone, Copy)]
pub struct SizeLimits {
    /// Largest single file.
    pub max_file_size: u64,
    /// Largest app in total.
    pub max_site_size: u64,
    /// All apps together.
    pub max_vfs: u64,
}

impl From<&Limits> for SizeLimits {
    fn from(l: &Limits) -> SizeLimits {
        SizeLimits {
            max_file_size: l.storage.max_file_size,
            max_site_size: l.storage.max_site_size,
            max_vfs: l.storage.max_vfs,
        }
    }
}

/// Why a deploy was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// No files at all.
    #[error("nothing to deploy: the app has no files")]
    Empty,
    /// Two entries with one path.
    #[error("{0} appears twice")]
    Duplicate(String),
    /// One file is over `storage.max_file_size`.
    #[error("{path} is {} (storage.max_file_size is {})", format_bytes(*size), format_bytes(*max))]
    FileTooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The app is over `storage.max_site_size`.
    #[error("the app is {} (storage.max_site_size is {})", format_bytes(*size), format_bytes(*max))]
    SiteTooLarge {
        /// Total size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// All apps together would be over `storage.max_vfs`.
    #[error("all apps together would take {} (storage.max_vfs is {})", format_bytes(*size), format_bytes(*max))]
    StoreFull {
        /// Total after the deploy.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for DeployError {
    fn from(e: rusqlite::Error) -> Self {
        DeployError::Store(e.into())
    }
}

/// What a deploy wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    /// App id.
    pub id: i64,
    /// The new version.
    pub version: i64,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Checks sizes before anything touches the database; also run by callers
/// that want to refuse early (the admin API before reading a whole zip).
pub fn check_sizes(files: &[NewFile], limits: &SizeLimits) -> Result<u64, DeployError> {
    if files.is_empty() {
        return Err(DeployError::Empty);
    }
    let mut seen = HashSet::new();
    let mut total = 0u64;
    for f in files {
        if !seen.insert(f.path.as_str()) {
            return Err(DeployError::Duplicate(f.path.to_string()));
        }
        let size = f.content.len() as u64;
        if size > limits.max_file_size {
            return Err(DeployError::FileTooLarge {
                path: f.path.to_string(),
                size,
                max: limits.max_file_size,
            });
        }
        total += size;
    }
    if total > limits.max_site_size {
        return Err(DeployError::SiteTooLarge {
            size: total,
            max: limits.max_site_size,
        });
    }
    Ok(total)
}

/// SHA-256 of `bytes` as lower-case hex: the file hash, the ETag and the key
/// of compiled code.
pub fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Replaces all files of `name` (creating the app when new) in one
/// transaction: a reader sees the old files or the new ones, never a mix.
pub fn deploy(
    conn: &mut Connection,
    name: &AppName,
    files: &[NewFile],
    limits: &SizeLimits,
) -> Result<Deployed, DeployError> {
    let total = check_sizes(files, limits)?;
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let others: i64 = tx.query_row(
        "SELECT COALESCE(SUM(f.size), 0) FROM files f JOIN apps a ON a.id = f.app_id WHERE a.name != ?1",
        [name.as_str()],
        |r| r.get(0),
    )?;
    let after = others.max(0) as u64 + total;
    if after > limits.max_vfs {
        return Err(DeployError::StoreFull {
            size: after,
            max: limits.max_vfs,
        });
    }
    // A new app takes the next id of `id_sequence`, never a freed one.
    let (id, version): (i64, i64) = tx.query_row(
        "INSERT INTO apps(id, name, version, created_at, updated_at)
         VALUES ((SELECT MAX(last, (SELECT COALESCE(MAX(id), 0) FROM apps)) + 1
                  FROM id_sequence WHERE name = 'apps'), ?1, 1, ?2, ?2)
         ON CONFLICT(name) DO UPDATE SET version = version + 1, updated_at = excluded.updated_at
         RETURNING id, version",
        params![name.as_str(), now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    tx.execute(
        "UPDATE id_sequence SET last = MAX(last, ?1) WHERE name = 'apps'",
        [id],
    )?;
    tx.execute("DELETE FROM files WHERE app_id = ?1", [id])?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO files(app_id, path, content, size, mime, hash, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for f in files {
            insert.execute(params![
                id,
                f.path.as_str(),
                f.content,
                f.content.len() as i64,
                mime::for_path(&f.path),
                content_hash(&f.content),
                now
            ])?;
        }
    }
    bump_config_rev(&tx, CONFIG_KIND)?;
    tx.commit()?;
    Ok(Deployed {
        id,
        version,
        files: files.len(),
        bytes: total,
    })
}

/// An app as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppInfo {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Deploy version.
    pub version: i64,
    /// Number of files.
    pub files: i64,
    /// Total bytes.
    pub bytes: i64,
    /// Whether it has server code (`api/main.js`).
    pub has_api: bool,
    /// Keys it keeps in kv.
    pub kv_keys: i64,
    /// Bytes of keys and values it keeps in kv.
    pub kv_bytes: i64,
    /// First deploy, ms since the epoch.
    pub created_at: i64,
    /// Last deploy, ms since the epoch.
    pub updated_at: i64,
}

/// Every app, by name.
pub fn list(conn: &Connection) -> Result<Vec<AppInfo>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT a.id, a.name, a.version, COUNT(f.path), COALESCE(SUM(f.size), 0),
                MAX(f.path = 'api/main.js'), a.created_at, a.updated_at,
                COALESCE(u.keys, 0), COALESCE(u.bytes, 0)
         FROM apps a LEFT JOIN files f ON f.app_id = a.id
         LEFT JOIN app_kv_usage u ON u.app_id = a.id
         GROUP BY a.id ORDER BY a.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AppInfo {
            id: r.get(0)?,
            name: r.get(1)?,
            version: r.get(2)?,
            files: r.get(3)?,
            bytes: r.get(4)?,
            has_api: r.get::<_, Option<bool>>(5)?.unwrap_or(false),
            created_at: r.get(6)?,
            updated_at: r.get(7)?,
            kv_keys: r.get(8)?,
            kv_bytes: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The id and current version of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppRow {
    /// Row id.
    pub id: i64,
    /// Deploy version.
    pub version: i64,
}

/// Looks an app up by name.
pub fn lookup(conn: &Connection, name: &AppName) -> Result<Option<AppRow>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, version FROM apps WHERE name = ?1",
            [name.as_str()],
            |r| {
                Ok(AppRow {
                    id: r.get(0)?,
                    version: r.get(1)?,
                })
            },
        )
        .optional()?)
}

/// Removes an app with its files and kv data; `false` when there was none.
pub fn remove(conn: &mut Connection, name: &AppName) -> Result<bool, StoreError> {
    let tx = conn.transaction()?;
    let removed = tx.execute("DELETE FROM apps WHERE name = ?1", [name.as_str()])?;
    if removed > 0 {
        bump_config_rev(&tx, CONFIG_KIND)?;
    }
    tx.commit()?;
    Ok(removed > 0)
}

/// A stored file, for static serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Row id; never reused, so it names this exact content.
    pub id: i64,
    /// Size in bytes.
    pub size: u64,
    /// Content type.
    pub mime: String,
    /// SHA-256 hex (the ETag).
    pub hash: String,
    /// The bytes, when the file is at most the `inline_max` asked for;
    /// larger files are read in chunks with [`read_chunk`].
    pub content: Option<Vec<u8>>,
}

/// One file of an app that may be served: the type makes server code and
/// hidden files unreachable from here. Its bytes come along only when it is
/// at most `inline_max` bytes.
pub fn file(
    conn: &Connection,
    app_id: i64,
    path: &PublicPath,
    inline_max: u64,
) -> Result<Option<StoredFile>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, size, mime, hash, CASE WHEN size <= ?3 THEN content END
             FROM files WHERE app_id = ?1 AND path = ?2",
            params![
                app_id,
                path.as_str(),
                i64::try_from(inline_max).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok(StoredFile {
                    id: r.get(0)?,
                    size: r.get::<_, i64>(1)?.max(0) as u64,
                    mime: r.get(2)?,
                    hash: r.get(3)?,
                    content: r.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Reads up to `buf.len()` bytes of file `id` at `offset` with an
/// incremental BLOB read: only the pages holding them are touched, and no
/// transaction outlives the call. `Ok(None)` when the file is gone (a
/// redeploy replaced it); `Ok(Some(0))` at its end.
pub fn read_chunk(
    conn: &Connection,
    id: i64,
    offset: u64,
    buf: &mut [u8],
) -> Result<Option<usize>, StoreError> {
    // Asked first, so only a missing row reads as "gone"; a row removed
    // between the two calls makes the open fail, which ends the download
    // with an error as well.
    let exists = conn
        .query_row("SELECT 1 FROM files WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Ok(None);
    }
    let blob = conn.blob_open(rusqlite::MAIN_DB, "files", "content", id, true)?;
    let Ok(offset) = usize::try_from(offset) else {
        return Ok(Some(0));
    };
    if offset >= blob.len() {
        return Ok(Some(0));
    }
    let n = buf.len().min(blob.len() - offset);
    blob.read_at_exact(&mut buf[..n], offset)?;
    Ok(Some(n))
}

/// One source file of an app's server code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path inside the app (`api/lib/x.js`).
    pub path: String,
    /// SHA-256 hex; compiled code is cached under it.
    pub hash: String,
    /// The source text.
    pub source: String,
}

/// The server code of an app at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The version these files belong to.
    pub version: i64,
    /// Every `.js` file under `api/`.
    pub files: Vec<SourceFile>,
}

/// Reads an app's version and its `api/**/*.js` files in one read
/// transaction, so the files always belong to the version returned.
/// `None` when the app no longer exists.
pub fn bundle(conn: &mut Connection, app_id: i64) -> Result<Option<Bundle>, StoreError> {
    let tx = conn.transaction()?;
    let Some(version) = tx
        .query_row("SELECT version FROM apps WHERE id = ?1", [app_id], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
    else {
        return Ok(None);
    };
    let files = {
        let mut stmt = tx.prepare(
            "SELECT path, hash, content FROM files
             WHERE app_id = ?1 AND path >= 'api/' AND path < 'api0' AND path LIKE '%.js'",
        )?;
        let rows = stmt.query_map([app_id], |r| {
            let bytes: Vec<u8> = r.get(2)?;
            Ok(SourceFile {
                path: r.get(0)?,
                hash: r.get(1)?,
                source: String::from_utf8_lossy(&bytes).into_owned(),
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    tx.commit()?;
    Ok(Some(Bundle { version, files }))
}
