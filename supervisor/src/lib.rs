//! The fazt supervisor and CLI as a library: `main.rs` parses arguments and
//! calls [`commands::run`]; tests drive [`supervise::run`] in-process with
//! their own probe, phase watch and signal source.

mod children;
pub mod cli;
pub mod commands;
mod control;
mod deploy;
mod egress;
mod http;
mod log_text;
mod net_log;
pub mod phase;
mod pool;
mod pulse;
pub mod supervise;
pub mod usage;
