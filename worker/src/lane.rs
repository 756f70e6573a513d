//! A lane: one thread with one JS engine, taking jobs from the worker's
//! queue one at a time. Several lanes let a worker serve a request while
//! another waits on the network.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fazt_ipc::msg::{FromWorker, Job, Outcome, WorkerStats};
use fazt_shared::ErrorCode;
use tokio::sync::mpsc::UnboundedSender;

use crate::dispatch::Dispatch;
use crate::faults::Faults;
use crate::js::{Engine, EngineLimits, Services};

/// A job with its wall-clock deadline, as queued for the lanes.
pub struct Queued {
    /// The job.
    pub job: Job,
    /// When the request must be over.
    pub deadline: Instant,
}

/// Job times kept for the percentiles.
const WINDOW: usize = 1024;

/// Counters of all lanes of a worker, read for heartbeats.
pub struct LaneStats {
    busy: AtomicU32,
    served: AtomicU64,
    heaps: Vec<AtomicU64>,
    recent_us: Mutex<Vec<u64>>,
    next: AtomicU64,
}

impl LaneStats {
    /// Counters for `lanes` lanes.
    pub fn new(lanes: usize) -> LaneStats {
        LaneStats {
            busy: AtomicU32::new(0),
            served: AtomicU64::new(0),
            heaps: (0..lanes).map(|_| AtomicU64::new(0)).collect(),
            recent_us: Mutex::new(Vec::with_capacity(WINDOW)),
            next: AtomicU64::new(0),
        }
    }

    fn record(&self, us: u64) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % WINDOW;
        let mut recent = self.recent_us.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() < WINDOW {
            recent.push(us);
        } else {
            recent[i] = us;
        }
    }

    /// A snapshot for a heartbeat.
    pub fn snapshot(&self) -> WorkerStats {
        let mut recent = self
            .recent_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        recent.sort_unstable();
        let pct = |p: usize| {
            if recent.is_empty() {
                0
            } else {
                recent[((recent.len() - 1) * p) / 100]
            }
        };
        WorkerStats {
            lanes_busy: self.busy.load(Ordering::Relaxed),
            lanes_total: self.heaps.len() as u32,
            served: self.served.load(Ordering::Relaxed),
            js_heap_bytes: self.heaps.iter().map(|h| h.load(Ordering::Relaxed)).sum(),
            p50_us: pct(50),
            p99_us: pct(99),
        }
    }
}

/// Runs lane `index` until the job queue closes.
pub fn run(
    index: usize,
    limits: EngineLimits,
    services: Services,
    jobs: Arc<Dispatch>,
    events: UnboundedSender<Arc<FromWorker>>,
    stats: Arc<LaneStats>,
    faults: &Faults,
) {
    let mut engine = Engine::new(limits);
    loop {
        let Some(Queued { job, deadline }) = jobs.next(|app| engine.holds(app)) else {
            return;
        };
        stats.busy.fetch_add(1, Ordering::Relaxed);
        let _ = events.send(Arc::new(FromWorker::Started { job: job.id }));
        if faults.crashes(&job.app.name) {
            // Let the Started frame out first, as a crash mid-JS would.
            std::thread::sleep(std::time::Duration::from_millis(50));
            tracing::warn!(app = %job.app.name, "crashing on purpose ({})", crate::faults::VAR);
            std::process::abort();
        }
        let started = Instant::now();
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| {
            engine.run(&job, &services, deadline)
        })) {
            Ok(outcome) => outcome,
            Err(_) => {
                // A bug, not the app's fault: start over with a fresh engine.
                tracing::error!(lane = index, app = %job.app.name, request_id = %job.request_id, "lane panicked; engine rebuilt");
                engine = Engine::new(limits);
                Outcome::Error {
                    code: ErrorCode::Internal,
                    message: "internal error".into(),
                }
            }
        };
        stats.record(started.elapsed().as_micros() as u64);
        stats.served.fetch_add(1, Ordering::Relaxed);
        if let Some(h) = stats.heaps.get(index) {
            h.store(engine.heap_bytes() as u64, Ordering::Relaxed);
        }
        stats.busy.fetch_sub(1, Ordering::Relaxed);
        let _ = events.send(Arc::new(FromWorker::Done {
            job: job.id,
            outcome,
        }));
    }
}
