//! `fazt egress`: connect to the supervisor, take the configuration it
//! sends, load the allowlist and keep it fresh, then answer heartbeats
//! until told to stop — or exit at once when the supervisor goes away.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fazt_ipc::conn::{self, FrameReader};
use fazt_ipc::msg::{EgressConfig, EgressStats, FromEgress, ToEgress};
use fazt_ipc::{handshake, Hello, IpcError, Role};
use fazt_shared::{DataDir, Store, StoreError};
use tokio::sync::watch;

use crate::allowlist::LiveAllowlist;

/// How long the supervisor may take to send the configuration.
const CONFIGURE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Runs egress until shutdown.
pub fn run(args: EgressArgs) -> Result<(), EgressError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: EgressArgs) -> Result<(), EgressError> {
    let stream = conn::connect(&args.socket).await?;
    let (mut reader, writer) = conn::split(stream);
    let mut writer = writer;
    handshake(
        &mut reader,
        &mut writer,
        Hello::me(Role::Egress),
        &[Role::Supervisor],
    )
    .await?;
    let config = match tokio::time::timeout(CONFIGURE_TIMEOUT, reader.read::<ToEgress>()).await {
        Ok(Ok(Some(ToEgress::Configure(c)))) => c,
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(other))) => {
            return Err(EgressError::Protocol(format!(
                "expected Configure, got {other:?}"
            )))
        }
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(EgressError::Protocol("no configuration in time".into())),
    };
    announce_test_settings(&config);
    let data = args.data.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data, 2))
        .await
        .map_err(|e| EgressError::Protocol(format!("store task: {e}")))??;
    let allowlist = LiveAllowlist::load(store).await?;
    let (stop_tx, stop) = watch::channel(false);
    let refresher = tokio::spawn(allowlist.clone().keep_fresh(stop.clone()));
    let counters = Arc::new(Counters::default());

    let (events, writer_task) = conn::spawn_writer::<FromEgress, _>(writer);
    let _ = events.send(Arc::new(FromEgress::Ready));
    tracing::info!(
        pid = std::process::id(),
        entries = allowlist.get().entries().len(),
        "egress ready"
    );

    let stats = || EgressStats {
        in_flight: counters.in_flight.load(Ordering::Relaxed),
        answered: counters.answered.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        allowlist_entries: u32::try_from(allowlist.get().entries().len()).unwrap_or(u32::MAX),
    };
    match read_loop(&mut reader, &events, stats).await? {
        Stop::Shutdown => {
            stop_tx.send_replace(true);
            let _ = refresher.await;
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

/// Why the read loop ended.
enum Stop {
    Shutdown,
    SupervisorGone,
}

async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    events: &tokio::sync::mpsc::UnboundedSender<Arc<FromEgress>>,
    stats: impl Fn() -> EgressStats,
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
