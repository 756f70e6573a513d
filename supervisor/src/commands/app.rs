//! `fazt app deploy|list|remove`: writes SQLite directly (so it works with
//! or without a running supervisor), then tells a running supervisor to
//! drop its cached lookups so the change shows on the next request.

use anyhow::Result;
use fazt_ipc::msg::{ControlRequest, ControlResponse};
use fazt_shared::store::apps::{self, SizeLimits};
use fazt_shared::store::overrides;
use fazt_shared::units::format_bytes;
use fazt_shared::{AppName, DataDir, Limits, Probe};
use serde_json::json;

use super::{existing_store, open_store};
use crate::cli::AppCommand;
use crate::control::{self, ControlError};
use crate::deploy;
use crate::usage::UsageError;

/// Runs one `fazt app` subcommand.
pub fn run(data: &DataDir, cmd: AppCommand) -> Result<()> {
    match cmd {
        AppCommand::Deploy { dir, name, json } => {
            let name = match name {
                Some(n) => n,
                None => dir
                    .canonicalize()
                    .ok()
                    .and_then(|d| d.file_name().map(|f| f.to_string_lossy().into_owned()))
                    .ok_or_else(|| {
                        UsageError(format!("{}: not a folder; give --name", dir.display()))
                    })?,
            };
            let name = AppName::parse(&name).map_err(UsageError::from_display)?;
            if !dir.is_dir() {
                return Err(UsageError(format!("{} is not a folder", dir.display())).into());
            }
            // Read (and refuse) the folder before anything is created: a
            // failed deploy writes nothing, not even the data dir.
            let limits = match existing_store(data)? {
                Some(store) => overrides::resolve(&*store.conn()?, &Probe::detect())?.limits,
                None => Limits::defaults(&Probe::detect()),
            };
            let size_limits = SizeLimits::from(&limits);
            let files = deploy::from_dir(&dir, &size_limits).map_err(UsageError::from_display)?;
            let store = open_store(data)?;
            let deployed = apps::deploy(&mut *store.conn()?, &name, &files, &size_limits).map_err(
                |e| match e {
                    apps::DeployError::Store(s) => anyhow::Error::from(s),
                    refused => UsageError::from_display(refused).into(),
                },
            )?;
            notify(data);
            if json {
                println!(
                    "{}",
                    json!({"data": {"name": name.as_str(), "id": deployed.id, "version": deployed.version, "files": deployed.files, "bytes": deployed.bytes}})
                );
            } else {
                println!(
                    "deployed {name} version {} ({} files, {})",
                    deployed.version,
                    deployed.files,
                    format_bytes(deployed.bytes)
                );
            }
            Ok(())
        }
        AppCommand::List { json } => {
            let list = match existing_store(data)? {
                Some(store) => apps::list(&*store.conn()?)?,
                None => Vec::new(),
            };
            // Quarantine lives in the running supervisor, if there is one.
            let quarantined = match control::request(data, ControlRequest::WorkersStatus) {
                Ok(ControlResponse::Workers { quarantined, .. }) => quarantined,
                _ => Vec::new(),
            };
            let quarantine_of =
                |id: i64| quarantined.iter().find(|q| q.id == id).map(|q| q.left_ms);
            if json {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|a| {
                        let mut v = json!(a);
                        v["quarantined_for_ms"] = json!(quarantine_of(a.id));
                        v
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "data": rows }))?
                );
                return Ok(());
            }
            if list.is_empty() {
                println!("no apps deployed; deploy one with `fazt app deploy <folder>`");
                return Ok(());
            }
            println!(
                "{:<24} {:>7} {:>6} {:>10} {:>8} {:>10}  {:<3}  STATE",
                "NAME", "VERSION", "FILES", "SIZE", "KV KEYS", "KV SIZE", "API"
            );
            for a in list {
                let state = match quarantine_of(a.id) {
                    Some(ms) => format!("quarantined ({:.0}s)", (ms as f64 / 1000.0).ceil()),
                    None => "ok".to_string(),
                };
                println!(
                    "{:<24} {:>7} {:>6} {:>10} {:>8} {:>10}  {:<3}  {}",
                    a.name,
                    a.version,
                    a.files,
                    format_bytes(a.bytes.max(0) as u64),
                    a.kv_keys,
                    format_bytes(a.kv_bytes.max(0) as u64),
                    if a.has_api { "yes" } else { "no" },
                    state
                );
            }
            Ok(())
        }
        AppCommand::Remove { name } => {
            let name = AppName::parse(&name).map_err(UsageError::from_display)?;
            let Some(store) = existing_store(data)? else {
                anyhow::bail!("no app named {name}");
            };
            if !apps::remove(&mut *store.conn()?, &name)? {
                anyhow::bail!("no app named {name}");
            }
            notify(data);
            println!("removed {name} with its files and kv data");
            Ok(())
        }
    }
}

/// Tells a running supervisor; without one there is nothing to tell.
fn notify(data: &DataDir) {
    match control::request(data, ControlRequest::AppsChanged) {
        Ok(_) | Err(ControlError::NotRunning(_)) => {}
        Err(e) => eprintln!(
            "warning: the running supervisor was not told ({e}); it will notice within a second"
        ),
    }
}
