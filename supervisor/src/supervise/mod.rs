//! `fazt supervise`: the process that owns everything (SPEC §2). It opens the
//! store, resolves the limits, creates the admin token, and serves the front
//! door until told to stop; the phases it goes through are visible to the
//! health endpoint and to tests.

mod admin_token;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use fazt_shared::limits::schema_json;
use fazt_shared::store::overrides;
use fazt_shared::{DataDir, Probe, Store};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use admin_token::TokenHash;

use crate::cli::SuperviseArgs;
use crate::http;

/// Connections to the database the supervisor keeps.
const POOL_SIZE: u32 = 8;

/// Where the supervisor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Opening the store and resolving limits.
    Starting,
    /// Serving; announced only once everything is up.
    Ready,
    /// Not accepting new connections; finishing the ones in flight.
    Draining,
}

/// What the front door needs, fixed at start.
pub struct State {
    /// The database.
    pub store: Store,
    /// `{"data": <limits>}`, rendered once.
    pub limits_body: bytes::Bytes,
    /// `{"data": <schema>}`, rendered once.
    pub schema_body: bytes::Bytes,
    /// The admin token's hash.
    pub token: TokenHash,
    /// Domain apps are served under.
    pub domain: String,
    /// When the supervisor started.
    pub started: Instant,
    /// Current phase.
    pub phase: watch::Receiver<Phase>,
}

/// Entry point of `fazt supervise`: builds the runtime, binds, and runs until
/// SIGTERM or SIGINT.
pub fn main(data: DataDir, args: SuperviseArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        run(data, args.domain, listener, shutdown_signal()).await
    })
}

/// Runs the supervisor on an already bound listener until `shutdown` resolves.
pub async fn run(
    data: DataDir,
    domain: String,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let (phase_tx, phase) = watch::channel(Phase::Starting);
    let probe = Probe::detect();
    let (store, resolved, token) = tokio::task::spawn_blocking({
        let data = data.clone();
        move || -> Result<_> {
            let store = Store::open(&data, POOL_SIZE)
                .with_context(|| format!("opening {}", data.db_path().display()))?;
            let resolved = overrides::resolve(&*store.conn()?, &probe)?;
            let token = admin_token::ensure(&store, &data)?;
            Ok((store, resolved, token))
        }
    })
    .await??;
    for ignored in &resolved.ignored {
        tracing::warn!(%ignored, "stored limit override ignored");
    }
    let limits = Arc::new(resolved.limits);
    let state = Arc::new(State {
        store,
        limits_body: envelope(&*limits)?,
        schema_body: envelope(&schema_json(&probe))?,
        token,
        domain: domain.to_ascii_lowercase(),
        started: Instant::now(),
        phase,
    });

    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        data = %data.path().display(),
        cores = limits.hardware.cpu_cores,
        ram = limits.hardware.total_ram,
        "fazt ready"
    );
    phase_tx.send_replace(Phase::Ready);
    // Tests and scripts wait for this line instead of sleeping.
    println!("fazt ready on http://{addr}");

    let drain = std::time::Duration::from_millis(limits.capacity.timeout_ms);
    http::serve(listener, state, shutdown, drain, || {
        phase_tx.send_replace(Phase::Draining);
    })
    .await;
    tracing::info!("fazt stopped");
    Ok(())
}

fn envelope(data: &impl Serialize) -> Result<bytes::Bytes> {
    Ok(serde_json::to_vec(&serde_json::json!({ "data": data }))?.into())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop fazt with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
