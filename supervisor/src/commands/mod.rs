//! One module per CLI command; `run` picks the one asked for.

mod app;
mod backup;
mod limits;
mod service;
mod workers;

use anyhow::Result;
use fazt_shared::DataDir;

use crate::cli::{Cli, Command};

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    let data = DataDir::new(cli.data_dir);
    match cli.command {
        Command::Supervise(args) => crate::supervise::main(data, args),
        Command::Limits(cmd) => limits::run(&data, cmd),
        Command::App(cmd) => app::run(&data, cmd),
        Command::Workers(cmd) => workers::run(&data, cmd),
        Command::Service(cmd) => service::run(&data, cmd),
        Command::Backup { file, force, json } => backup::run(&data, &file, force, json),
        Command::Worker(args) => Ok(fazt_worker::run(fazt_worker::WorkerArgs {
            data,
            slot: args.slot,
            socket: args.socket,
        })?),
    }
}
