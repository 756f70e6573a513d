//! `fazt limits show|set|reset`: overrides stored in SQLite, validated against
//! the schema before anything is written.

use anyhow::Result;
use fazt_shared::limits::{LimitKey, Resolved, SCHEMA};
use fazt_shared::store::overrides;
use fazt_shared::{DataDir, Limits, Probe};
use serde_json::json;

use super::{existing_store, open_store};
use crate::cli::LimitsCommand;
use crate::usage::UsageError;

/// Runs one `fazt limits` subcommand.
pub fn run(data: &DataDir, cmd: LimitsCommand) -> Result<()> {
    match cmd {
        LimitsCommand::Show { json } => show(data, json),
        LimitsCommand::Set { path, value } => {
            // Validate before the data dir is even opened: bad input writes nothing.
            let key = LimitKey::parse(&path).map_err(UsageError::from_display)?;
            let value = key
                .leaf()
                .validate(&value)
                .map_err(UsageError::from_display)?;
            let store = open_store(data)?;
            overrides::set(&mut *store.conn()?, key, value)?;
            println!(
                "{key} = {} (override; applies at the next start)",
                key.leaf().unit.format(value)
            );
            Ok(())
        }
        LimitsCommand::Reset { path } => {
            let key = LimitKey::parse(&path).map_err(UsageError::from_display)?;
            if key.leaf().read_only {
                return Err(UsageError(format!("{key} is read-only and has no override")).into());
            }
            let store = open_store(data)?;
            let removed = overrides::reset(&mut *store.conn()?, key)?;
            let default = key.leaf().default_for(&Probe::detect());
            let shown = key.leaf().unit.format(default);
            if removed {
                println!("{key} reset to its default {shown} (applies at the next start)");
            } else {
                println!("{key} had no override; it is at its default {shown}");
            }
            Ok(())
        }
    }
}

fn show(data: &DataDir, as_json: bool) -> Result<()> {
    // Reading never creates the data dir; without one, nothing is overridden.
    let resolved = match existing_store(data)? {
        Some(store) => overrides::resolve(&*store.conn()?, &Probe::detect())?,
        None => Limits::resolve(&Probe::detect(), &[]),
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&to_json(&resolved))?);
        return Ok(());
    }
    let values = resolved.limits.values();
    let rows: Vec<[String; 4]> = SCHEMA
        .iter()
        .zip(&values)
        .zip(&resolved.sources)
        .map(|((leaf, value), source)| {
            let range = match leaf.range {
                Some(r) => format!("{} – {}", leaf.unit.format(r.min), leaf.unit.format(r.max)),
                None => "read-only".to_string(),
            };
            [
                leaf.path(),
                leaf.unit.format(*value),
                source.to_string(),
                range,
            ]
        })
        .collect();
    let header = ["LIMIT", "VALUE", "SOURCE", "RANGE"].map(String::from);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in [&header].into_iter().chain(&rows) {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    for ignored in &resolved.ignored {
        eprintln!("warning: stored override ignored: {ignored}");
    }
    Ok(())
}

/// `{"data": rows, "ignored": [...]}`, for the CLI and the admin API.
pub fn to_json(resolved: &Resolved) -> serde_json::Value {
    let ignored: Vec<String> = resolved.ignored.iter().map(ToString::to_string).collect();
    json!({ "data": resolved.rows(), "ignored": ignored })
}
