//! `fazt worker --slot N`: connect to the supervisor, take the limits it
//! sends, start the lanes, then run jobs until told to stop or until the
//! supervisor goes away (EOF on its socket means it died: exit at once).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fazt_ipc::conn::{self, FrameReader};
use fazt_ipc::msg::{FromWorker, Outcome, ToWorker, WorkerConfig};
use fazt_ipc::{IpcError, Role};
use fazt_shared::{DataDir, ErrorCode, Store, StoreError};

use crate::code::CodeCache;
use crate::dispatch::Dispatch;
use crate::js::{EngineLimits, Services, LANE_STACK};
use crate::lane::{self, LaneStats, Queued};

/// Where the worker finds its supervisor.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// The data dir (for the database).
    pub data: DataDir,
    /// Slot number, for logs.
    pub slot: u32,
    /// The supervisor's worker socket.
    pub socket: PathBuf,
}

/// Why a worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Talking to the supervisor failed.
    #[error("supervisor connection: {0}")]
    Ipc(#[from] IpcError),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The supervisor broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A thread or runtime could not be started.
    #[error("start-up: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the worker until shutdown; returns when it is safe to exit.
pub fn run(args: WorkerArgs) -> Result<(), WorkerError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: WorkerArgs) -> Result<(), WorkerError> {
    let Some(((mut reader, writer), first)) =
        conn::join_supervisor::<ToWorker>(&args.socket, Role::Worker).await?
    else {
        return Ok(());
    };
    let ToWorker::Configure(config) = first else {
        return Err(WorkerError::Protocol(format!(
            "expected Configure, got {first:?}"
        )));
    };
    let WorkerConfig {
        slot,
        lanes,
        max_memory,
        exec_timeout_ms,
        kv,
    } = config;
    let faults = Arc::new(crate::faults::Faults::from_env());
    if faults.fails_start(slot) {
        tracing::warn!(slot, "failing at start on purpose ({})", crate::faults::VAR);
        std::process::exit(3);
    }
    let lanes = lanes.max(1) as usize;
    let data = args.data.clone();
    // Opening the store blocks; do it before any job arrives.
    let store = tokio::task::spawn_blocking(move || Store::open(&data, lanes as u32 + 1))
        .await
        .map_err(|e| WorkerError::Protocol(format!("store task: {e}")))??;

    // One task owns the writer: lanes, the log sink and the reader loop hand
    // it messages; it ends when all of them are gone. Encoding happens before
    // any byte is written, so an answer too large to send leaves the stream
    // intact: it is answered with an error instead, or every later answer of
    // this worker would be lost.
    let (events_tx, writer_task) =
        fazt_ipc::conn::spawn_writer_with::<FromWorker, _>(writer, |msg, _| match msg {
            FromWorker::Done { job, .. } => Some(FromWorker::Done {
                job: *job,
                outcome: Outcome::Error {
                    code: ErrorCode::Internal,
                    message: "the response is too large to send".into(),
                },
            }),
            _ => None,
        });
    let log_tx = events_tx.clone();
    let services = Services {
        store,
        kv,
        cache: Arc::new(CodeCache::default()),
        log: Arc::new(move |record| {
            let _ = log_tx.send(Arc::new(FromWorker::Log(record)));
        }),
        net: Some(crate::net::NetClient::start(
            args.data.egress_socket_path(),
            &tokio::runtime::Handle::current(),
        )),
    };
    let limits = EngineLimits {
        max_memory: usize::try_from(max_memory).unwrap_or(usize::MAX),
        exec_timeout: Duration::from_millis(exec_timeout_ms),
        max_jobs: crate::js::MAX_JOBS,
        realms: crate::js::REALMS_PER_LANE,
    };
    let jobs = Arc::new(Dispatch::default());
    let stats = Arc::new(LaneStats::new(lanes));
    let mut threads = Vec::with_capacity(lanes);
    for i in 0..lanes {
        let (services, jobs, events, stats, faults) = (
            services.clone(),
            jobs.clone(),
            events_tx.clone(),
            stats.clone(),
            faults.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .name(format!("lane-{i}"))
                .stack_size(LANE_STACK)
                .spawn(move || lane::run(i, limits, services, jobs, events, stats, &faults))?,
        );
    }
    drop(services);

    let _ = events_tx.send(Arc::new(FromWorker::Ready {
        lanes: lanes as u32,
    }));
    tracing::info!(slot, lanes, pid = std::process::id(), "worker ready");

    let result = read_loop(&mut reader, &jobs, &events_tx, &stats).await;
    jobs.close();
    drop(events_tx);
    match result {
        Ok(Stop::Shutdown) => {
            // Let running jobs finish and their answers go out.
            let _ = tokio::task::spawn_blocking(move || {
                for t in threads {
                    let _ = t.join();
                }
            })
            .await;
            let _ = writer_task.await;
            tracing::info!(slot, "worker stopped");
            Ok(())
        }
        Ok(Stop::SupervisorGone) => {
            // The supervisor died: nobody can use our answers, and JS may be
            // stuck; exit without waiting for the lanes.
            tracing::warn!(slot, "supervisor went away; exiting");
            std::process::exit(0)
        }
        Err(e) => Err(e),
    }
}

/// Why the read loop ended.
enum Stop {
    Shutdown,
    SupervisorGone,
}

async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    jobs: &Dispatch,
    events: &tokio::sync::mpsc::UnboundedSender<Arc<FromWorker>>,
    stats: &LaneStats,
) -> Result<Stop, WorkerError> {
    loop {
        match reader.read::<ToWorker>().await? {
            None => return Ok(Stop::SupervisorGone),
            Some(ToWorker::Job(job)) => {
                let deadline = Instant::now() + Duration::from_millis(job.timeout_ms);
                if !jobs.submit(Queued { job, deadline }) {
                    return Err(WorkerError::Protocol("all lanes are gone".into()));
                }
            }
            Some(ToWorker::Heartbeat { seq }) => {
                let _ = events.send(Arc::new(FromWorker::Heartbeat {
                    seq,
                    stats: stats.snapshot(),
                }));
            }
            Some(ToWorker::Shutdown) => return Ok(Stop::Shutdown),
            Some(ToWorker::Configure(_)) => {
                return Err(WorkerError::Protocol("configured twice".into()))
            }
        }
    }
}
