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

/// What the unit tests of several modules build alike.
#[cfg(test)]
mod testing {
    use fazt_ipc::msg::{AppRef, HttpRequest, Job, JobId};

    /// A `GET /api` job `id` of app `app` (named `a`), with a ticket no one checks.
    pub fn job(id: u64, app: i64) -> Job {
        Job {
            id: JobId(id),
            request_id: format!("r{id}"),
            app: AppRef {
                id: app,
                name: "a".into(),
                version: 1,
            },
            request: HttpRequest {
                method: "GET".into(),
                path: "/api".into(),
                query: String::new(),
                headers: vec![],
                body: vec![],
            },
            timeout_ms: 1000,
            ticket: fazt_shared::ticket::TicketKey::generate().issue(app, "r", u64::MAX),
        }
    }
}
