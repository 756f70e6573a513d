//! `fazt backup FILE`: a consistent copy of the database while fazt runs.
//! SQLite's `VACUUM INTO` reads one snapshot (WAL mode lets the supervisor
//! and workers keep writing meanwhile) and writes a compact copy.

use std::path::Path;

use anyhow::{Context, Result};
use fazt_shared::units::format_bytes;
use fazt_shared::DataDir;
use serde_json::json;

use crate::usage::UsageError;

/// Runs `fazt backup`.
pub fn run(data: &DataDir, file: &Path, force: bool, as_json: bool) -> Result<()> {
    if file.exists() && !force {
        return Err(UsageError(format!(
            "{} exists; pass --force to replace it",
            file.display()
        ))
        .into());
    }
    if is_part_of_the_database(data, file) {
        return Err(UsageError(format!(
            "{} is fazt's own database; back up to another file",
            file.display()
        ))
        .into());
    }
    let Some(store) = super::existing_store(data)? else {
        anyhow::bail!("no fazt database in {}", data.path().display());
    };
    let bytes = store
        .backup_to(file)
        .with_context(|| format!("writing {}", file.display()))?;
    if as_json {
        println!(
            "{}",
            json!({"data": {"file": file.display().to_string(), "bytes": bytes}})
        );
    } else {
        println!(
            "backed up {} to {} ({})",
            data.db_path().display(),
            file.display(),
            format_bytes(bytes)
        );
    }
    Ok(())
}

/// Whether `file` is the database or its WAL or shared-memory file (by
/// inode, so another name for it counts too): writing a backup there
/// would destroy what it copies.
fn is_part_of_the_database(data: &DataDir, file: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(file) else {
        return false;
    };
    let db = data.db_path();
    let mut parts = vec![db.clone()];
    for suffix in ["-wal", "-shm"] {
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        parts.push(name.into());
    }
    parts.iter().any(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
    })
}
