//! `fazt egress`: connect to the supervisor, take the configuration it
//! sends, load the allowlist and keep it fresh, listen for workers on
//! `<data>/egress.sock` and answer their calls ([`crate::fetch`]), answer
//! heartbeats until told to stop — or exit at once when the supervisor
//! goes away.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fazt_ipc::conn::{self, FrameReader};
use fazt_ipc::msg::{
    EgressConfig, EgressStats, FromEgress, NetAnswer, NetCall, NetOutcome, ToEgress,
};
use fazt_ipc::{handshake, Hello, IpcError, Role};
use fazt_shared::{DataDir, Store, StoreError};
use tokio::sync::watch;

use crate::budget::{Budgets, Slots};
use crate::cache::Cache;
use crate::client::Client;
use crate::fetch::Fetcher;
use crate::live::LiveConfig;
use crate::rate::RateLimits;
use crate::resolve::Resolver;

/// Where egress finds its supervisor.
#[derive(Debug, Clone)]
pub struct EgressArgs {
    /// The data dir (for the allowlist).
    pub data: DataDir,
    /// The supervisor's children's socket.
    pub socket: PathBuf,
}

/// Why egress stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// Talking to the supervisor failed.
    #[error("supervisor connection: {0}")]
    Ipc(#[from] IpcError),
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The supervisor broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The runtime could not be started.
    #[error("start-up: {0}")]
    Io(#[from] std::io::Error),
}

/// Counters for the heartbeat.
#[derive(Default)]
pub struct Counters {
    /// Calls being answered.
    pub in_flight: AtomicU32,
    /// Calls answered.
    pub answered: AtomicU64,
    /// Of those, refused or failed.
    pub failed: AtomicU64,
}

/// One call counted in flight while it lives.
struct InFlight(Arc<Counters>);

impl InFlight {
    fn new(counters: Arc<Counters>) -> InFlight {
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(counters)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs egress until shutdown.
pub fn run(args: EgressArgs) -> Result<(), EgressError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: EgressArgs) -> Result<(), EgressError> {
    let Some(((mut reader, writer), first)) =
        conn::join_supervisor::<ToEgress>(&args.socket, Role::Egress).await?
    else {
        return Ok(());
    };
    let ToEgress::Configure(config) = first else {
        return Err(EgressError::Protocol(format!(
            "expected Configure, got {first:?}"
        )));
    };
    announce_test_settings(&config);
    let data = args.data.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data, 2))
        .await
        .map_err(|e| EgressError::Protocol(format!("store task: {e}")))??;
    let live = LiveConfig::load(store).await?;
    let (stop_tx, stop) = watch::channel(false);
    let refresher = tokio::spawn(live.clone().keep_fresh(stop.clone()));
    let counters = Arc::new(Counters::default());
    let (events, writer_task) = conn::spawn_writer::<FromEgress, _>(writer);
    let fetcher = Arc::new(Fetcher {
        resolver: Resolver::new(config.nameserver, config.pins.clone())
            .map_err(|e| EgressError::Protocol(e.to_string()))?,
        client: Client::new().map_err(|e| EgressError::Protocol(e.to_string()))?,
        budgets: Budgets::default(),
        slots: Slots::new(config.net.app_concurrency, config.net.concurrency),
        rates: RateLimits::new(config.restarted, Instant::now()),
        tickets: config.ticket_key.clone(),
        cache: Cache::new(&config.net),
        log: std::sync::Mutex::new(Some(events.clone())),
        limits: config.net.clone(),
        config: live.clone(),
        counters: counters.clone(),
    });
    let listener = conn::listen(&args.data.egress_socket_path())?;
    let accepting = tokio::spawn(accept_workers(fetcher.clone(), listener, stop.clone()));
    let sweeping = tokio::spawn({
        let fetcher = fetcher.clone();
        fazt_shared::periodic::every(SWEEP_EVERY, stop.clone(), move || {
            fetcher.budgets.sweep(Instant::now());
            fetcher.slots.sweep();
            fetcher.rates.sweep(Instant::now());
            std::future::ready(())
        })
    });

    let _ = events.send(Arc::new(FromEgress::Ready));
    tracing::info!(
        pid = std::process::id(),
        entries = live.get().allowlist.entries().len(),
        restarted = config.restarted,
        "egress ready"
    );

    let stats = || EgressStats {
        in_flight: counters.in_flight.load(Ordering::Relaxed),
        answered: counters.answered.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        allowlist_entries: u32::try_from(live.get().allowlist.entries().len()).unwrap_or(u32::MAX),
    };
    match read_loop(&mut reader, &events, stats, &fetcher.cache).await? {
        Stop::Shutdown => {
            // No new connections; calls in flight finish (the supervisor
            // kills egress at its drain deadline otherwise).
            stop_tx.send_replace(true);
            let _ = accepting.await;
            let _ = refresher.await;
            let _ = sweeping.await;
            while counters.in_flight.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = std::fs::remove_file(args.data.egress_socket_path());
            // Every row is queued by now; the writer sends them and ends.
            fetcher.close_log();
            drop(events);
            let _ = writer_task.await;
            tracing::info!("egress stopped");
            Ok(())
        }
        Stop::SupervisorGone => {
            // Nobody can use our answers any more.
            tracing::warn!("supervisor went away; exiting");
            std::process::exit(0)
        }
    }
}

/// How often finished requests, idle apps and full rate buckets are
/// forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Takes worker connections until `stop`; each runs its calls concurrently.
async fn accept_workers(
    fetcher: Arc<Fetcher>,
    listener: conn::Listener,
    mut stop: watch::Receiver<bool>,
) {
    while let Some(stream) = conn::accept_until(&listener, &mut stop, "egress socket").await {
        let fetcher = fetcher.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_worker(fetcher, stream).await {
                tracing::debug!(error = %e, "worker connection ended");
            }
        });
    }
}

/// One worker's connection: calls in, answers out, in any order.
async fn serve_worker(fetcher: Arc<Fetcher>, stream: conn::Stream) -> Result<(), IpcError> {
    let (mut reader, mut writer) = conn::split(stream);
    handshake(
        &mut reader,
        &mut writer,
        Hello::me(Role::Egress),
        &[Role::Worker],
    )
    .await?;
    let (answers, writer_task) = conn::spawn_writer_with::<NetAnswer, _>(writer, |answer, e| {
        // An answer too large to frame becomes a NET_SIZE error.
        Some(NetAnswer {
            id: answer.id,
            outcome: NetOutcome::Failed {
                code: fazt_shared::ErrorCode::NetSize,
                message: format!("NET_SIZE: the response cannot be passed on ({e})"),
            },
        })
    });
    while let Some(call) = reader.read::<NetCall>().await? {
        let (fetcher, answers) = (fetcher.clone(), answers.clone());
        // Counted from here until its log row is handed over, so a
        // shutdown waiting for none in flight loses no row.
        let in_flight = InFlight::new(fetcher.counters.clone());
        tokio::spawn(async move {
            let outcome = fetcher.fetch(&call).await;
            drop(in_flight);
            let _ = answers.send(Arc::new(NetAnswer {
                id: call.id,
                outcome,
            }));
        });
    }
    drop(answers);
    let _ = writer_task.await;
    Ok(())
}

/// Why the read loop ended.
enum Stop {
    Shutdown,
    SupervisorGone,
}

async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    events: &tokio::sync::mpsc::UnboundedSender<Arc<FromEgress>>,
    stats: impl Fn() -> EgressStats,
    cache: &Cache,
) -> Result<Stop, EgressError> {
    loop {
        match reader.read::<ToEgress>().await? {
            None => return Ok(Stop::SupervisorGone),
            Some(ToEgress::Heartbeat { seq }) => {
                let _ = events.send(Arc::new(FromEgress::Heartbeat {
                    seq,
                    stats: stats(),
                }));
            }
            Some(ToEgress::Cache { id, app_id, clear }) => {
                let stats = cache.stats(app_id, clear);
                if clear {
                    tracing::info!(app_id, cleared = stats.cleared, "response cache cleared");
                }
                let _ = events.send(Arc::new(FromEgress::Cache { id, stats }));
            }
            Some(ToEgress::Shutdown) => return Ok(Stop::Shutdown),
            Some(ToEgress::Configure(_)) => {
                return Err(EgressError::Protocol("configured twice".into()))
            }
        }
    }
}

/// Test settings are legitimate but must never go unnoticed.
fn announce_test_settings(config: &EgressConfig) {
    if let Some(ns) = config.nameserver {
        tracing::warn!(nameserver = %ns, "DNS goes to {} ({})", ns, crate::settings::NAMESERVER_VAR);
    }
    if !config.pins.is_empty() {
        tracing::warn!(
            pins = %crate::settings::describe(&config.pins),
            "TEST PINS IN EFFECT ({}): these host:port pairs bypass the address rules",
            crate::settings::TEST_RESOLVE_VAR
        );
    }
}
