//! Supervisor ↔ worker: jobs, their outcomes, logs and heartbeats.

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
    // Raw bytes on the wire, not a sequence of numbers: large bodies
    // encode at memory speed.
    #[serde(with = "serde_bytes")]
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
    // Raw bytes on the wire, not a sequence of numbers: large bodies
    // encode at memory speed.
    #[serde(with = "serde_bytes")]
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
    /// The request's execution ticket, which its net calls carry to egress.
    pub ticket: fazt_shared::ticket::Ticket,
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
