//! One module per CLI command; `run` picks the one asked for.

mod app;
mod backup;
mod limits;
mod net;
mod secret;
mod service;
mod workers;

use anyhow::{Context, Result};
use fazt_shared::{DataDir, Store};

use crate::cli::{Cli, Command};

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    let data = DataDir::new(cli.data_dir);
    match cli.command {
        Command::Supervise(args) => crate::supervise::main(data, args),
        Command::Limits(cmd) => limits::run(&data, cmd),
        Command::App(cmd) => app::run(&data, cmd),
        Command::Net(cmd) => net::run(&data, cmd),
        Command::Secret(cmd) => secret::run(&data, cmd),
        Command::Workers(cmd) => workers::run(&data, cmd),
        Command::Service(cmd) => service::run(&data, cmd),
        Command::Backup { file, force, json } => backup::run(&data, &file, force, json),
        Command::Egress(args) => Ok(fazt_egress::run(fazt_egress::EgressArgs {
            data,
            socket: args.socket,
        })?),
        Command::Worker(args) => Ok(fazt_worker::run(fazt_worker::WorkerArgs {
            data,
            slot: args.slot,
            socket: args.socket,
        })?),
    }
}

/// Opens the store, creating the data dir when it is new (writing commands).
fn open_store(data: &DataDir) -> Result<Store> {
    Store::open(data, 2).with_context(|| format!("opening {}", data.db_path().display()))
}

/// The store when there is one; reading commands never create it.
fn existing_store(data: &DataDir) -> Result<Option<Store>> {
    Store::open_existing(data, 2).with_context(|| format!("opening {}", data.db_path().display()))
}
