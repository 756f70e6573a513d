//! `fazt secret set|list|remove` (SPEC §7): secrets in SQLite, listed
//! masked. Input is parsed whole before the database is opened, so bad
//! input writes nothing; egress notices a change through the `net` config
//! revision. No value is ever printed.

use std::io::Read;

use anyhow::{Context, Result};
use fazt_shared::net::secret::NewSecret;
use fazt_shared::net::SecretName;
use fazt_shared::net::{Scope, Secret};
use fazt_shared::store::secrets::{self, Set};
use fazt_shared::DataDir;
use serde_json::json;

use super::net::{no_app, parse_app, scope, scope_text};
use super::{existing_store, open_store};
use crate::cli::SecretCommand;
use crate::usage::UsageError;

/// Runs one `fazt secret` subcommand.
pub fn run(data: &DataDir, cmd: SecretCommand) -> Result<()> {
    match cmd {
        SecretCommand::Set {
            name,
            value,
            kind,
            key,
            domain,
            app,
            json,
        } => {
            let value = if value == "-" { read_stdin()? } else { value };
            let new = NewSecret::parse(
                &name,
                &value,
                Some(&kind),
                key.as_deref(),
                domain.as_deref(),
            )
            .map_err(UsageError::from_display)?;
            let app = parse_app(app.as_deref())?;
            let store = match &app {
                Some(_) => existing_store(data)?,
                None => Some(open_store(data)?),
            };
            let (store, scope) = scope(store, app.as_ref())?;
            let done = secrets::set(&mut *store.conn()?, &scope, &new)?;
            let verb = match done {
                Set::Added => "set",
                Set::Replaced => "replaced",
            };
            if json {
                println!(
                    "{}",
                    json!({"data": {"result": verb, "name": new.name, "app": scope, "domain": new.domain}})
                );
            } else {
                println!(
                    "{verb} secret {} for {} (sent as {} to {} only)",
                    new.name,
                    scope_text(&scope),
                    new.injection.kind(),
                    new.domain
                );
            }
            Ok(())
        }
        SecretCommand::List { app, json } => {
            let app = parse_app(app.as_deref())?;
            let list = match existing_store(data)? {
                None if app.is_some() => return Err(no_app(app.as_ref()).into()),
                None => Vec::new(),
                Some(store) => {
                    let (store, scope) = scope(Some(store), app.as_ref())?;
                    let only = app.is_some().then_some(&scope);
                    secrets::list(&*store.conn()?, only)?
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "data": list }))?
                );
            } else {
                print_table(&list);
            }
            Ok(())
        }
        SecretCommand::Remove { name, app, json } => {
            let name = SecretName::parse(&name).map_err(UsageError::from_display)?;
            let app = parse_app(app.as_deref())?;
            let (store, scope) = scope(existing_store(data)?, app.as_ref())?;
            if !secrets::remove(&mut *store.conn()?, &scope, &name)? {
                anyhow::bail!("no secret {name} for {}", scope_text(&scope));
            }
            if json {
                println!(
                    "{}",
                    json!({"data": {"result": "removed", "name": name, "app": scope}})
                );
            } else {
                println!("removed secret {name} for {}", scope_text(&scope));
            }
            Ok(())
        }
    }
}

/// The value from standard input, without one trailing newline.
fn read_stdin() -> Result<String> {
    let mut value = String::new();
    std::io::stdin()
        .take(fazt_shared::net::secret::MAX_VALUE_LEN as u64 + 3)
        .read_to_string(&mut value)
        .context("reading the secret from standard input (it must be UTF-8)")?;
    let trimmed = value
        .strip_suffix("\r\n")
        .or_else(|| value.strip_suffix('\n'))
        .unwrap_or(&value);
    Ok(trimmed.to_string())
}

fn print_table(list: &[Secret]) {
    if list.is_empty() {
        println!("no secrets. Set one with `fazt secret set NAME - --domain api.example.com`");
        return;
    }
    println!(
        "{:<24} {:<16} {:<7} {:<20} {:<32} VALUE",
        "NAME", "APP", "AS", "KEY", "DOMAIN"
    );
    for s in list {
        println!(
            "{:<24} {:<16} {:<7} {:<20} {:<32} {}",
            s.name.as_str(),
            match &s.scope {
                Scope::Global => "(all)".to_string(),
                Scope::App { name, .. } => name.to_string(),
            },
            s.injection.kind(),
            s.injection.key().unwrap_or("-"),
            s.domain.to_string(),
            s.value.masked(),
        );
    }
}
