//! The control socket `<data>/control.sock` (mode 0600, SPEC §2): how CLI
//! commands talk to the running supervisor. One request per connection.

use std::sync::Arc;
use std::time::Duration;

use fazt_ipc::msg::{ControlRequest, ControlResponse};
use fazt_ipc::{conn, handshake, Hello, IpcError, Role};
use fazt_shared::DataDir;
use tokio::sync::watch;

use crate::children::Roster;
use crate::egress::Egress;
use crate::http::apps::AppDirectory;
use crate::pool::Pool;

/// Bound on one CLI exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a reload, which starts every worker anew, one at a time.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// How long an exchange about `req` may take.
fn bound(req: &ControlRequest) -> Duration {
    match req {
        ControlRequest::Reload => RELOAD_TIMEOUT,
        _ => EXCHANGE_TIMEOUT,
    }
}

/// Why the CLI could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No supervisor listens on this data dir.
    #[error("no fazt supervisor is running for data dir {0} (start one with `fazt supervise`)")]
    NotRunning(String),
    /// The exchange failed.
    #[error("control socket: {0}")]
    Ipc(#[from] IpcError),
    /// No answer in time.
    #[error("the supervisor did not answer in time")]
    Timeout,
}

/// What the control socket answers from.
#[derive(Clone)]
pub struct Control {
    /// The workers.
    pub pool: Arc<Pool>,
    /// Every child, for status.
    pub roster: Roster,
    /// App lookups to invalidate.
    pub apps: Arc<AppDirectory>,
    /// Egress, for its cache.
    pub egress: Arc<Egress>,
}

/// Serves the control socket until `stop` changes.
pub async fn serve(
    control: Control,
    listener: interprocess::local_socket::tokio::Listener,
    mut stop: watch::Receiver<bool>,
) {
    while let Some(stream) = conn::accept_until(&listener, &mut stop, "control socket").await {
        let control = control.clone();
        tokio::spawn(async move {
            let exchange = async {
                let (mut r, mut w) = conn::split(stream);
                let req = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
                    handshake(&mut r, &mut w, Hello::me(Role::Supervisor), &[Role::Cli]).await?;
                    r.read::<ControlRequest>().await
                })
                .await
                .map_err(|_| IpcError::HandshakeTimeout)??;
                let Some(req) = req else {
                    return Ok(());
                };
                let within = bound(&req);
                let resp = tokio::time::timeout(within, answer(&control, req))
                    .await
                    .map_err(|_| IpcError::HandshakeTimeout)?;
                w.send(&resp).await
            };
            if let Err(e) = exchange.await {
                tracing::debug!(error = %e, "control exchange failed");
            }
        });
    }
}

async fn answer(control: &Control, req: ControlRequest) -> ControlResponse {
    let Control {
        pool,
        roster,
        apps,
        egress,
    } = control;
    match req {
        ControlRequest::NetCache { app_id, clear } => {
            ControlResponse::NetCache(egress.cache(app_id, clear).await)
        }
        ControlRequest::Reload => {
            let done = pool.reload().await;
            ControlResponse::Reloaded {
                replaced: done.replaced,
                failed: done.failed,
            }
        }
        ControlRequest::WorkersStatus => ControlResponse::Workers {
            supervisor_pid: std::process::id(),
            children: roster.rows(),
            quarantined: pool.quarantine_list(),
        },
        ControlRequest::AppsChanged => {
            apps.invalidate();
            ControlResponse::Ok
        }
    }
}

/// Sends one request to the running supervisor (CLI side).
pub fn request(data: &DataDir, req: ControlRequest) -> Result<ControlResponse, ControlError> {
    let path = data.control_socket_path();
    let not_running = || ControlError::NotRunning(data.path().display().to_string());
    if !path.exists() {
        return Err(not_running());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(IpcError::from)?;
    let within = bound(&req);
    runtime.block_on(async {
        let exchange = async {
            let stream = match conn::connect(&path).await {
                Ok(s) => s,
                Err(IpcError::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                    ) =>
                {
                    return Err(not_running())
                }
                Err(e) => return Err(e.into()),
            };
            let (mut r, mut w) = conn::split(stream);
            handshake(&mut r, &mut w, Hello::me(Role::Cli), &[Role::Supervisor]).await?;
            w.send(&req).await?;
            r.read::<ControlResponse>()
                .await?
                .ok_or(ControlError::Ipc(IpcError::Truncated))
        };
        tokio::time::timeout(within, exchange)
            .await
            .map_err(|_| ControlError::Timeout)?
    })
}
