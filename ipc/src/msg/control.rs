//! CLI ↔ supervisor on the control socket: status rows, reloads, cache
//! invalidation.

use serde::{Deserialize, Serialize};

/// What kind of child a status row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildKind {
    /// `fazt worker`.
    Worker,
    /// `fazt egress`.
    Egress,
}

/// Where a child is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildState {
    /// Spawned, not yet answering.
    Starting,
    /// Answering, with free lanes.
    Ready,
    /// Answering, every lane busy.
    Busy,
    /// Exited; waiting before the restart.
    Backoff,
    /// Stopped for good (shutdown).
    Stopped,
}

/// One row of `fazt workers status` (SPEC §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildStatus {
    /// Worker or egress.
    pub kind: ChildKind,
    /// Slot number.
    pub slot: u32,
    /// Process id of the current incarnation.
    pub pid: Option<u32>,
    /// State.
    pub state: ChildState,
    /// Time since the current incarnation became ready, ms.
    pub uptime_ms: Option<u64>,
    /// Restarts of this slot so far.
    pub restarts: u64,
    /// How the last incarnation ended (`exit 1`, `signal 9`).
    pub last_exit: Option<String>,
    /// While in backoff: milliseconds until the next start.
    pub retry_in_ms: Option<u64>,
    /// CPU use over the last sample, percent of one core.
    pub cpu_percent: Option<f32>,
    /// Resident memory, bytes.
    pub rss_bytes: Option<u64>,
    /// JS heap over all lanes, bytes.
    pub js_heap_bytes: u64,
    /// Lanes running a job.
    pub lanes_busy: u32,
    /// Lanes in total.
    pub lanes_total: u32,
    /// Requests served by the current incarnation.
    pub served: u64,
    /// Median job time, µs.
    pub p50_us: u64,
    /// 99th percentile job time, µs.
    pub p99_us: u64,
    /// What else the operator should know about this child (egress: test
    /// pins in effect).
    pub note: Option<String>,
}

/// CLI → supervisor, on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlRequest {
    /// One row per child.
    WorkersStatus,
    /// Apps were deployed or removed through the database; drop cached lookups.
    AppsChanged,
    /// Replace every worker, one at a time, losing no request.
    Reload,
    /// The response cache's numbers for one app or all, emptied first
    /// when `clear`.
    NetCache {
        /// One app, or all.
        app_id: Option<i64>,
        /// Empty it.
        clear: bool,
    },
}

/// An app whose requests crashed workers too often, answered 503 for now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedApp {
    /// App id.
    pub id: i64,
    /// App name.
    pub name: String,
    /// Milliseconds of quarantine left.
    pub left_ms: u64,
}

/// Supervisor → CLI, on the control socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlResponse {
    /// Answer to `WorkersStatus`.
    Workers {
        /// Supervisor pid.
        supervisor_pid: u32,
        /// Rows.
        children: Vec<ChildStatus>,
        /// Apps in quarantine.
        quarantined: Vec<QuarantinedApp>,
    },
    /// Answer to `Reload`.
    Reloaded {
        /// Workers replaced.
        replaced: u32,
        /// Slots not replaced, and why.
        failed: Vec<String>,
    },
    /// Answer to `NetCache`; `None` when egress is not running.
    NetCache(Option<super::egress::CacheStats>),
    /// Done.
    Ok,
}
