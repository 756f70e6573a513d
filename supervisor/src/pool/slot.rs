//! One worker slot: its state, the jobs it runs, and the loop that keeps a
//! worker process alive in it (SPEC §2 "Supervision").
//!
//! Everything that must change together — which incarnation is live, how
//! many lanes are busy, which jobs are pending and whether they started —
//! sits behind one mutex, never held across an `.await`, so a reservation,
//! a completion and a crash cannot interleave into a lost lane.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fazt_ipc::conn::Split;
use fazt_ipc::msg::{
    ChildKind, ChildState, ChildStatus, FromWorker, JobId, Outcome, ToWorker, WorkerConfig,
    WorkerStats,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::{Pool, Share};

/// First restart delay; doubles per crash.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Running this long counts as healthy and resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// How long a new worker may take to connect and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a worker whose socket broke may take to show it exited.
const EXITED_WITHIN: Duration = Duration::from_millis(500);
/// How often heartbeats are sent.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// What a dispatcher hears about its job.
#[derive(Debug)]
pub enum JobEvent {
    /// The worker answered.
    Done(Outcome),
    /// The worker died; `started` says whether JS had begun running it.
    Lost {
        /// Whether a lane had started it.
        started: bool,
    },
}

struct Pending {
    /// `None` once the dispatcher gave up.
    reply: Option<oneshot::Sender<JobEvent>>,
    started: bool,
    /// The app whose lane this is, for `runtime.app_share`.
    app: i64,
}

/// The live incarnation of a slot.
struct Live {
    tx: mpsc::UnboundedSender<Arc<ToWorker>>,
    lanes: u32,
    busy: u32,
    pending: HashMap<JobId, Pending>,
    /// Busy lanes per app id.
    by_app: HashMap<i64, u32>,
}

struct SlotState {
    state: ChildState,
    pid: Option<u32>,
    ready_since: Option<Instant>,
    restarts: u64,
    last_exit: Option<String>,
    live: Option<Live>,
    stats: WorkerStats,
    cpu_percent: Option<f32>,
    rss_bytes: Option<u64>,
}

/// One worker slot.
pub struct Slot {
    /// Slot number.
    pub index: u32,
    state: Mutex<SlotState>,
}

impl Slot {
    /// An empty slot.
    pub fn new(index: u32) -> Slot {
        Slot {
            index,
            state: Mutex::new(SlotState {
                state: ChildState::Starting,
                pid: None,
                ready_since: None,
                restarts: 0,
                last_exit: None,
                live: None,
                stats: WorkerStats::default(),
                cpu_percent: None,
                rss_bytes: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends the job of `app` when a lane is free and the app's `share`
    /// allows it here: reserves the lane, records the job as pending and
    /// queues the frame, all at once.
    pub fn try_send(
        &self,
        id: JobId,
        msg: &Arc<ToWorker>,
        app: i64,
        share: &Share,
    ) -> Option<oneshot::Receiver<JobEvent>> {
        let mut st = self.lock();
        let live = st.live.as_mut()?;
        if live.busy >= live.lanes || !share.allows(app, &live.by_app) {
            return None;
        }
        live.tx.send(msg.clone()).ok()?;
        live.busy += 1;
        *live.by_app.entry(app).or_default() += 1;
        let (reply, rx) = oneshot::channel();
        live.pending.insert(
            id,
            Pending {
                reply: Some(reply),
                started: false,
                app,
            },
        );
        Some(rx)
    }

    /// The dispatcher gave up waiting; the lane stays busy (and counted for
    /// its app) until the worker answers, so the counts stay true.
    pub fn forget(&self, id: JobId) {
        if let Some(p) = self
            .lock()
            .live
            .as_mut()
            .and_then(|l| l.pending.get_mut(&id))
        {
            p.reply = None;
        }
    }

    /// Busy lanes per app id.
    pub fn lanes_by_app(&self) -> HashMap<i64, u32> {
        self.lock()
            .live
            .as_ref()
            .map(|l| l.by_app.clone())
            .unwrap_or_default()
    }

    /// Stops taking jobs (the worker was told to shut down); answers still count.
    fn stop_accepting(&self) {
        if let Some(live) = self.lock().live.as_mut() {
            live.lanes = 0;
        }
    }

    /// How long the live incarnation has been ready.
    fn ready_for(&self) -> Option<Duration> {
        self.lock().ready_since.map(|t| t.elapsed())
    }

    /// The pid of the live incarnation.
    pub fn pid(&self) -> Option<u32> {
        self.lock().pid
    }

    /// Stores a CPU/RSS sample for the current pid.
    pub fn set_sample(&self, pid: u32, cpu_percent: f32, rss_bytes: u64) {
        let mut st = self.lock();
        if st.pid == Some(pid) {
            st.cpu_percent = Some(cpu_percent);
            st.rss_bytes = Some(rss_bytes);
        }
    }

    /// One status row.
    pub fn status(&self) -> ChildStatus {
        let st = self.lock();
        let (busy, lanes) = st.live.as_ref().map_or((0, 0), |l| (l.busy, l.lanes));
        let state = match st.state {
            ChildState::Ready if lanes > 0 && busy >= lanes => ChildState::Busy,
            s => s,
        };
        ChildStatus {
            kind: ChildKind::Worker,
            slot: self.index,
            pid: st.pid,
            state,
            uptime_ms: st.ready_since.map(|t| t.elapsed().as_millis() as u64),
            restarts: st.restarts,
            last_exit: st.last_exit.clone(),
            cpu_percent: st.cpu_percent,
            rss_bytes: st.rss_bytes,
            js_heap_bytes: st.stats.js_heap_bytes,
            lanes_busy: busy,
            lanes_total: lanes,
            served: st.stats.served,
            p50_us: st.stats.p50_us,
            p99_us: st.stats.p99_us,
        }
    }

    fn set_state(&self, state: ChildState, pid: Option<u32>) {
        let mut st = self.lock();
        st.state = state;
        st.pid = pid;
        if pid.is_none() {
            st.cpu_percent = None;
            st.rss_bytes = None;
        }
    }

    fn go_live(&self, pid: u32, lanes: u32, tx: mpsc::UnboundedSender<Arc<ToWorker>>) {
        let mut st = self.lock();
        st.state = ChildState::Ready;
        st.pid = Some(pid);
        st.ready_since = Some(Instant::now());
        st.stats = WorkerStats::default();
        st.live = Some(Live {
            tx,
            lanes,
            busy: 0,
            pending: HashMap::new(),
            by_app: HashMap::new(),
        });
    }

    /// Ends the live incarnation: jobs not yet started may be dispatched
    /// again, started ones are lost (SPEC §2).
    fn die(&self, exit: String, restarting: bool) -> usize {
        let mut st = self.lock();
        st.state = ChildState::Backoff;
        st.ready_since = None;
        st.last_exit = Some(exit);
        if restarting {
            st.restarts += 1;
        }
        st.cpu_percent = None;
        st.rss_bytes = None;
        let Some(live) = st.live.take() else {
            return 0;
        };
        let n = live.pending.len();
        for (_, p) in live.pending {
            if let Some(reply) = p.reply {
                let _ = reply.send(JobEvent::Lost { started: p.started });
            }
        }
        n
    }

    fn on_started(&self, id: JobId) {
        if let Some(p) = self
            .lock()
            .live
            .as_mut()
            .and_then(|l| l.pending.get_mut(&id))
        {
            p.started = true;
        }
    }

    fn on_done(&self, id: JobId, outcome: Outcome) {
        let mut st = self.lock();
        let Some(live) = st.live.as_mut() else {
            return;
        };
        live.busy = live.busy.saturating_sub(1);
        if let Some(p) = live.pending.remove(&id) {
            if let Some(n) = live.by_app.get_mut(&p.app) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    live.by_app.remove(&p.app);
                }
            }
            if let Some(reply) = p.reply {
                let _ = reply.send(JobEvent::Done(outcome));
            }
        }
    }

    fn on_heartbeat(&self, stats: WorkerStats) {
        self.lock().stats = stats;
    }
}

/// Keeps a worker running in `slot` until `stop` is set.
pub async fn supervise(pool: Arc<Pool>, slot: Arc<Slot>, mut stop: watch::Receiver<bool>) {
    let mut backoff = INITIAL_BACKOFF;
    while !*stop.borrow() {
        let exit = run_once(&pool, &slot, &mut stop).await;
        // Health is time spent ready, not time spent failing to start.
        let healthy = slot.ready_for().is_some_and(|d| d >= HEALTHY_AFTER);
        if *stop.borrow() {
            slot.die(exit, false);
            slot.set_state(ChildState::Stopped, None);
            return;
        }
        let lost = slot.die(exit.clone(), true);
        if healthy {
            backoff = INITIAL_BACKOFF;
        }
        tracing::warn!(slot = slot.index, %exit, lost, ?backoff, "worker exited; restarting");
        pool.waiters.wake_all();
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    slot.set_state(ChildState::Stopped, None);
}

/// Spawns one incarnation and runs it to its end; returns how it ended.
async fn run_once(pool: &Arc<Pool>, slot: &Slot, stop: &mut watch::Receiver<bool>) -> String {
    slot.set_state(ChildState::Starting, None);
    let mut child = match pool.spawner.spawn(pool.worker_args(slot.index)).await {
        Ok(c) => c,
        Err(e) => return format!("spawn failed: {e}"),
    };
    let Some(pid) = child.id() else {
        return "exited at once".into();
    };
    slot.set_state(ChildState::Starting, Some(pid));
    let conn = pool.expect_connection(pid);
    let split = tokio::select! {
        got = tokio::time::timeout(START_TIMEOUT, conn) => match got {
            Ok(Ok(split)) => split,
            _ => {
                pool.forget_connection(pid);
                let _ = child.start_kill();
                let _ = child.wait().await;
                return "did not connect in time".into();
            }
        },
        status = child.wait() => {
            pool.forget_connection(pid);
            return exit_reason(status);
        }
    };
    let reason = serve(pool, slot, pid, split, &mut child, stop).await;
    // Always reap, also after a kill; the status is cached if already waited.
    // A worker that closed its socket but does not exit is killed.
    let status = match tokio::time::timeout(START_TIMEOUT, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    // A connection that arrived too late must not be handed to a later
    // process that happens to get the same pid.
    pool.forget_connection(pid);
    reason.unwrap_or_else(|| exit_reason(status))
}

fn exit_reason(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
                Ok(name) => format!("signal {sig} ({})", name.as_str()),
                Err(_) => format!("signal {sig}"),
            },
            _ => "exited".into(),
        },
        Err(e) => format!("wait failed: {e}"),
    }
}

/// Talks to a connected worker until it dies or the pool stops. Returns a
/// reason when the end was decided here (timeouts), `None` when the child's
/// own exit status should say why.
async fn serve(
    pool: &Arc<Pool>,
    slot: &Slot,
    pid: u32,
    (mut reader, mut writer): Split,
    child: &mut tokio::process::Child,
    stop: &mut watch::Receiver<bool>,
) -> Option<String> {
    let config = ToWorker::Configure(WorkerConfig {
        slot: slot.index,
        lanes: pool.config.lanes,
        max_memory: pool.config.max_memory,
        exec_timeout_ms: pool.config.exec_timeout_ms,
        kv: pool.config.kv,
    });
    if writer.send(&config).await.is_err() {
        return None;
    }
    let lanes = match tokio::time::timeout(START_TIMEOUT, reader.read::<FromWorker>()).await {
        Ok(Ok(Some(FromWorker::Ready { lanes }))) => lanes,
        Ok(_) => return None,
        Err(_) => {
            let _ = child.start_kill();
            return Some("not ready in time".into());
        }
    };

    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<ToWorker>>();
    let writer_task = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if writer.send(&*msg).await.is_err() {
                return;
            }
        }
    });
    slot.go_live(pid, lanes, tx.clone());
    pool.waiters.wake(lanes as usize);
    tracing::info!(slot = slot.index, pid, lanes, "worker ready");

    // A worker that misses heartbeats this long is wedged: kill it.
    let wedged_after = Duration::from_millis(pool.config.exec_timeout_ms) + Duration::from_secs(2);
    let mut last_ack = Instant::now();
    let mut seq = 0u64;
    let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
    // Set once the worker was told to shut down: until then it keeps
    // answering jobs, and those answers are still read.
    let mut drain_until: Option<tokio::time::Instant> = None;
    let reason = loop {
        tokio::select! {
            msg = reader.read::<FromWorker>() => match msg {
                Ok(Some(FromWorker::Started { job })) => slot.on_started(job),
                Ok(Some(FromWorker::Done { job, outcome })) => {
                    slot.on_done(job, outcome);
                    pool.lane_freed(slot);
                }
                Ok(Some(FromWorker::Log(r))) => pool.app_log.write(slot.index, &r),
                Ok(Some(FromWorker::Heartbeat { stats, .. })) => {
                    last_ack = Instant::now();
                    slot.on_heartbeat(stats);
                }
                Ok(Some(FromWorker::Ready { .. })) => {}
                Ok(None) => break None,
                Err(e) => {
                    // A worker killed mid-frame looks like a broken frame
                    // here; its exit status (a signal) is the true reason.
                    if tokio::time::timeout(EXITED_WITHIN, child.wait()).await.is_ok() {
                        break None;
                    }
                    tracing::warn!(slot = slot.index, pid, error = %e, "bad frame from worker; killing it");
                    let _ = child.start_kill();
                    break Some(format!("protocol error: {e}"));
                }
            },
            _ = ticker.tick(), if drain_until.is_none() => {
                if last_ack.elapsed() > wedged_after {
                    tracing::error!(slot = slot.index, pid, "worker missed heartbeats; killing it");
                    let _ = child.start_kill();
                    break Some("killed: missed heartbeats".into());
                }
                seq += 1;
                let _ = tx.send(Arc::new(ToWorker::Heartbeat { seq }));
            }
            _ = stop.changed(), if drain_until.is_none() => {
                slot.stop_accepting();
                let _ = tx.send(Arc::new(ToWorker::Shutdown));
                drain_until = Some(tokio::time::Instant::now() + pool.config.drain);
            }
            () = sleep_until_or_never(drain_until) => {
                let _ = child.start_kill();
                break Some("killed after the drain timeout".into());
            }
        }
    };
    drop(tx);
    writer_task.abort();
    reason
}

async fn sleep_until_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
