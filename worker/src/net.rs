//! The worker's side of egress: lanes hand a call to [`NetClient::call`]
//! and block (their JS clock paused) until egress answers. One task on the
//! worker's runtime owns the connection to `<data>/egress.sock`: it
//! connects on the first call, after a failure again on the next, and
//! answers every call it cannot deliver — egress down, or gone in the
//! middle — with `NET_ERROR` at once, so a lane never hangs on a dead
//! egress.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use fazt_ipc::conn::{self, FrameReader};
use fazt_ipc::msg::{CallId, NetAnswer, NetCall, NetOutcome, NetRequest};
use fazt_ipc::{handshake, Hello, Role};
use fazt_shared::ErrorCode;
use tokio::sync::mpsc as async_mpsc;

/// Time a lane waits beyond the request's own time left before it gives
/// up on an answer (egress bounds every call by the same deadline).
const ANSWER_MARGIN: Duration = Duration::from_secs(2);

/// One call as a lane makes it.
pub struct Outbound {
    /// The app.
    pub app_id: i64,
    /// Its name, for egress's log.
    pub app: String,
    /// The request it runs for.
    pub request_id: String,
    /// Time the request has left.
    pub time_left: Duration,
    /// The request's execution ticket.
    pub ticket: fazt_shared::ticket::Ticket,
    /// The call.
    pub request: NetRequest,
}

struct Queued {
    call: Outbound,
    reply: mpsc::SyncSender<NetOutcome>,
}

/// Hands calls to the connection task.
#[derive(Clone)]
pub struct NetClient {
    tx: async_mpsc::UnboundedSender<Queued>,
}

impl NetClient {
    /// Starts the connection task on `runtime` for egress at `socket`.
    pub fn start(socket: PathBuf, runtime: &tokio::runtime::Handle) -> NetClient {
        let (tx, rx) = async_mpsc::unbounded_channel();
        runtime.spawn(run(socket, rx));
        NetClient { tx }
    }

    /// Sends a call and blocks until its answer (from a lane thread).
    pub fn call(&self, call: Outbound) -> NetOutcome {
        let wait = call.time_left + ANSWER_MARGIN;
        let (reply, answer) = mpsc::sync_channel(1);
        if self.tx.send(Queued { call, reply }).is_err() {
            return unavailable("the worker is stopping");
        }
        answer
            .recv_timeout(wait)
            .unwrap_or_else(|_| unavailable("no answer from egress in time"))
    }
}

/// The most a call's URL, headers and body may add up to: one frame, less
/// room for the rest of the message.
const MAX_CALL: usize = fazt_ipc::frame::MAX_FRAME - 64 * 1024;

/// Bytes a request takes on the wire, near enough to bound it.
fn call_size(r: &NetRequest) -> usize {
    let headers: usize = r.headers.iter().map(|(n, v)| n.len() + v.len() + 16).sum();
    r.url.len() + r.method.len() + headers + r.body.len()
}

fn unavailable(why: &str) -> NetOutcome {
    NetOutcome::Failed {
        code: ErrorCode::NetError,
        message: format!("NET_ERROR: the egress process is not reachable ({why})"),
    }
}

type Pending = Arc<Mutex<HashMap<CallId, mpsc::SyncSender<NetOutcome>>>>;

struct Connected {
    writer: async_mpsc::UnboundedSender<Arc<NetCall>>,
    pending: Pending,
    /// Cleared when the answers stop (egress closed or died).
    alive: Arc<AtomicBool>,
}

impl Connected {
    fn usable(&self) -> bool {
        self.alive.load(Ordering::Acquire) && !self.writer.is_closed()
    }
}

async fn run(socket: PathBuf, mut calls: async_mpsc::UnboundedReceiver<Queued>) {
    let mut link: Option<Connected> = None;
    let mut next_id = 0u64;
    while let Some(Queued { call, reply }) = calls.recv().await {
        // A call over the largest frame could not be sent at all; it is
        // refused here rather than dropped on the way.
        if call_size(&call.request) > MAX_CALL {
            let _ = reply.try_send(NetOutcome::Failed {
                code: ErrorCode::NetSize,
                message: format!(
                    "NET_SIZE: the request is over {} MiB, the most a call can carry",
                    MAX_CALL >> 20
                ),
            });
            continue;
        }
        if !link.as_ref().is_some_and(Connected::usable) {
            link = match connect(&socket).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach egress");
                    let _ = reply.try_send(unavailable("it is not running"));
                    continue;
                }
            };
        }
        let Some(l) = &link else { continue };
        next_id += 1;
        let id = CallId(next_id);
        lock(&l.pending).insert(id, reply);
        let sent = l.writer.send(Arc::new(NetCall {
            id,
            app_id: call.app_id,
            app: call.app,
            request_id: call.request_id,
            time_left_ms: call.time_left.as_millis() as u64,
            ticket: Some(call.ticket),
            request: call.request,
        }));
        // The answers may have stopped while this call was queued: the
        // reader drained the waiting calls before this one was added, so
        // it is failed here instead of waiting out its time.
        if sent.is_err() || !l.alive.load(Ordering::Acquire) {
            if let Some(reply) = lock(&l.pending).remove(&id) {
                let _ = reply.try_send(unavailable("the connection closed"));
            }
            link = None;
        }
    }
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, HashMap<CallId, mpsc::SyncSender<NetOutcome>>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

async fn connect(socket: &std::path::Path) -> Result<Connected, fazt_ipc::IpcError> {
    let stream = conn::connect(socket).await?;
    let (mut reader, mut writer) = conn::split(stream);
    handshake(
        &mut reader,
        &mut writer,
        Hello::me(Role::Worker),
        &[Role::Egress],
    )
    .await?;
    let (tx, _writer_task) = conn::spawn_writer::<NetCall, _>(writer);
    let pending: Pending = Arc::default();
    let alive = Arc::new(AtomicBool::new(true));
    tokio::spawn(read_answers(reader, pending.clone(), alive.clone()));
    Ok(Connected {
        writer: tx,
        pending,
        alive,
    })
}

/// Delivers answers until the connection ends; then every call still
/// waiting fails at once.
async fn read_answers(
    mut reader: FrameReader<conn::ReadHalf>,
    pending: Pending,
    alive: Arc<AtomicBool>,
) {
    while let Ok(Some(answer)) = reader.read::<NetAnswer>().await {
        if let Some(reply) = lock(&pending).remove(&answer.id) {
            let _ = reply.try_send(answer.outcome);
        }
    }
    alive.store(false, Ordering::Release);
    for (_, reply) in lock(&pending).drain() {
        let _ = reply.try_send(NetOutcome::Failed {
            code: ErrorCode::NetError,
            message: "NET_ERROR: egress went away in the middle of the call".into(),
        });
    }
}
