//! The messages, one enum per direction. Every shape here is covered by
//! [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION): change a message, bump it.

use serde::{Deserialize, Serialize};

use fazt_shared::ErrorCode;

/// Identifies one job on one supervisor↔worker connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobId(pub u64);

/// Which app a job runs, and which deploy of it (compiled code is keyed on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRef {
    /// Row id in `apps`.
    pub id: i64,
    /// The app's name.
    pub name: String,
    /// The deploy version; bumped by every deploy.
    pub version: i64,
}

/// An HTTP request as JS sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// Upper-case method.
    pub method: String,
    /// Path inside the app (`/api/users`), without the query.
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    /// Header names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// An HTTP response produced by JS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// One request for a worker to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Connection-local id, echoed in the answer.
    pub id: JobId,
    /// Request id for logs (also sent back to the client as `x-request-id`).
    pub request_id: String,
    /// The app.
    pub app: AppRef,
    /// The request.
    pub request: HttpRequest,
    /// Wall-clock time left for the request when it was sent, in ms
    /// (`capacity.timeout_ms` minus what the request already spent).
    pub timeout_ms: u64,
}

/// Limits a worker runs with; sent once after the handshake so every worker
/// uses the limits the supervisor resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// The worker's slot.
    pub slot: u32,
    /// JS lanes to run (`runtime.lanes`).
    pub lanes: u32,
    /// Heap bound per lane in bytes (`runtime.max_memory`).
    pub max_memory: u64,
    /// JS time per request in ms (`runtime.exec_timeout_ms`).
    pub exec_timeout_ms: u64,
    /// Each app's kv bounds (`storage.kv_*`).
    pub kv: fazt_shared::store::kv::KvQuota,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// JS answered.
    Response(HttpResponse),
    /// JS failed; the front door turns this into the error envelope.
    Error {
        /// Stable code (`JS_TIMEOUT`).
        code: ErrorCode,
        /// Message safe to show a client (no stack, no host path).
        message: String,
    },
}

/// Severity of a forwarded log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogLevel {
    /// `console.log`, `console.info`.
    Info,
    /// `console.warn`.
    Warn,
    /// `console.error`.
    Error,
}

/// A log line from app code, tagged with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Severity.
    pub level: LogLevel,
    /// App name.
    pub app: String,
    /// Request id.
    pub request_id: String,
    /// The text.
    pub message: String,
}

/// Counters a worker reports with each heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Lanes running a job now.
    pub lanes_busy: u32,
    /// Lanes in total.
    pub lanes_total: u32,
    /// Jobs finished since the worker started.
    pub served: u64,
    /// JS heap in use over all lanes, in bytes.
    pub js_heap_bytes: u64,
    /// Median job time over the recent window, in microseconds.
    pub p50_us: u64,
    /// 99th percentile job time over the recent window, in microseconds.
    pub p99_us: u64,
}

/// Supervisor → worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToWorker {
    /// First message after the handshake.
    Configure(WorkerConfig),
    /// Run a job on a free lane.
    Job(Job),
    /// Liveness probe; answered with [`FromWorker::Heartbeat`].
    Heartbeat {
        /// Echoed back.
        seq: u64,
    },
    /// Finish running jobs, then exit.
    Shutdown,
}

/// Worker → supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker's lanes are up.
    Ready {
        /// Lanes it runs.
        lanes: u32,
    },
    /// A lane began running a job; from here a crash answers it with
    /// `WORKER_CRASHED` instead of dispatching it again (SPEC §2).
    Started {
        /// The job.
        job: JobId,
    },
    /// A job finished.
    Done {
        /// The job.
        job: JobId,
        /// Its outcome.
        outcome: Outcome,
    },
    /// A log line from app code.
    Log(LogRecord),
    /// Answer to a heartbeat.
    Heartbeat {
        /// The probe's sequence number.
        seq: u64,
        /// Current counters.
        stats: WorkerStats,
    },
}

/// An outbound HTTP request from JS (`fazt.net.fetch`), for the egress process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetRequest {
    /// Target URL as JS gave it; egress parses and checks it.
    pub url: String,
    /// Upper-case method.
    pub method: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// JS `timeout` option, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Name of the secret to inject (`auth` option).
    pub auth: Option<String>,
}

/// What egress got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetResponse {
    /// Status code.
    pub status: u16,
    /// Header names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body bytes, at most `net.max_response`.
    pub body: Vec<u8>,
}

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
    /// Done.
    Ok,
}
