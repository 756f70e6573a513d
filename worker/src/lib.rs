//! The worker role: JS lanes that run app requests (SPEC §2, §5).
//!
//! - [`js`]: one lane's QuickJS engine with its memory and time limits.
//! - [`host`]: the globals app JS sees, one module per namespace.
//! - [`code`]: app code and compiled bytecode shared by a worker's lanes.
//! - [`net`]: the way to egress for `fazt.net.fetch`; lanes block on it.
//! - [`faults`]: crashes on purpose, for crash-recovery tests only.
//! - `lane`: one thread, one engine, jobs one at a time.
//! - `dispatch`: which lane runs a job (the one holding its app's realm).
//! - `process`: the worker process: handshake, configuration, lanes, job loop.

pub mod code;
mod dispatch;
pub mod faults;
pub mod host;
pub mod js;
mod lane;
pub mod net;
mod process;

pub use process::{run, WorkerArgs, WorkerError};
