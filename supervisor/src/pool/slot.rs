//! One worker slot: its state, the jobs it runs, and the worker role that
//! `children::keep_alive` keeps running in it (SPEC §2 "Supervision").
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
use crate::children::{self, Beat, Exit, Heartbeat, Role};

/// How long a new worker may take to connect and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(15);

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
    /// Its name, for the quarantine.
    app_name: Arc<str>,
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
    last_exit: Option<Exit>,
    /// When the next incarnation starts, while in backoff.
    retry_at: Option<Instant>,
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
                retry_at: None,
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
        (app, app_name): (i64, &Arc<str>),
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
                app_name: app_name.clone(),
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

    /// Whether a configured worker is live in the slot.
    pub fn is_live(&self) -> bool {
        self.lock().live.is_some()
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
            last_exit: st.last_exit.as_ref().map(ToString::to_string),
            retry_in_ms: st
                .retry_at
                .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64),
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
        st.retry_at = None;
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
    /// again, started ones are lost (SPEC §2). Returns how many were lost,
    /// and the apps whose started jobs were.
    fn die(&self, exit: &Exit, restarting: bool) -> (usize, Vec<(i64, Arc<str>)>) {
        let mut st = self.lock();
        st.state = ChildState::Backoff;
        st.ready_since = None;
        st.last_exit = Some(exit.clone());
        if restarting {
            st.restarts += 1;
        }
        st.cpu_percent = None;
        st.rss_bytes = None;
        let Some(live) = st.live.take() else {
            return (0, Vec::new());
        };
        let n = live.pending.len();
        let mut running: Vec<(i64, Arc<str>)> = Vec::new();
        for (_, p) in live.pending {
            if p.started && !running.iter().any(|(id, _)| *id == p.app) {
                running.push((p.app, p.app_name.clone()));
            }
            if let Some(reply) = p.reply {
                let _ = reply.send(JobEvent::Lost { started: p.started });
            }
        }
        (n, running)
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

/// The worker role of one slot, for `children::keep_alive`.
pub struct Worker {
    /// The pool it serves.
    pub pool: Arc<Pool>,
    /// Its slot.
    pub slot: Arc<Slot>,
}

impl Role for Worker {
    async fn run_once(&self, stop: &mut watch::Receiver<bool>) -> Exit {
        run_once(&self.pool, &self.slot, stop).await
    }

    fn ended(&self, exit: &Exit, restarting: bool) -> usize {
        let (lost, running) = self.slot.die(exit, restarting);
        self.pool.readiness_changed();
        // A worker that died on its own (not stopped, not killed for a
        // missed drain) counts against the apps it was running.
        if restarting && !matches!(exit, Exit::Drain) {
            let now = Instant::now();
            for (id, name) in running {
                self.pool.quarantine.crashed(id, &name, now);
            }
        }
        if restarting {
            // Requests waiting for a lane may find one on another worker.
            self.pool.waiters.wake_all();
        }
        lost
    }

    fn was_ready_for(&self) -> Option<Duration> {
        self.slot.ready_for()
    }

    fn backing_off(&self, delay: Duration) {
        self.slot.lock().retry_at = Some(Instant::now() + delay);
    }

    fn stopped(&self) {
        self.slot.set_state(ChildState::Stopped, None);
    }

    fn describe(&self) -> String {
        format!("worker {}", self.slot.index)
    }
}

/// Spawns one incarnation and runs it to its end; returns how it ended.
async fn run_once(pool: &Arc<Pool>, slot: &Slot, stop: &mut watch::Receiver<bool>) -> Exit {
    slot.set_state(ChildState::Starting, None);
    let mut child = match pool.spawner.spawn(pool.worker_args(slot.index)).await {
        Ok(c) => c,
        Err(e) => return Exit::SpawnFailed(e.to_string()),
    };
    let Some(pid) = child.id() else {
        return children::reap(&mut child).await;
    };
    slot.set_state(ChildState::Starting, Some(pid));
    let conn = pool.rendezvous.expect(pid);
    let split = tokio::select! {
        got = tokio::time::timeout(START_TIMEOUT, conn) => match got {
            Ok(Ok(split)) => split,
            _ => {
                pool.rendezvous.forget(pid);
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Exit::NotReady;
            }
        },
        status = child.wait() => {
            pool.rendezvous.forget(pid);
            return Exit::from_status(status);
        }
    };
    let decided = serve(pool, slot, pid, split, &mut child, stop).await;
    let exit = children::reap(&mut child).await;
    // A connection that arrived too late must not be handed to a later
    // process that happens to get the same pid.
    pool.rendezvous.forget(pid);
    decided.unwrap_or(exit)
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
) -> Option<Exit> {
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
            return Some(Exit::NotReady);
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
    pool.readiness_changed();
    pool.waiters.wake(lanes as usize);
    tracing::info!(slot = slot.index, pid, lanes, "worker ready");

    // A worker that misses heartbeats this long is wedged: kill it.
    let mut heartbeat =
        Heartbeat::new(Duration::from_millis(pool.config.exec_timeout_ms) + Duration::from_secs(2));
    let mut ticker = tokio::time::interval(children::heartbeat::EVERY);
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
                    heartbeat.ack();
                    slot.on_heartbeat(stats);
                }
                Ok(Some(FromWorker::Ready { .. })) => {}
                Ok(None) => break None,
                Err(e) => {
                    let decided = children::broken_connection(child, &e).await;
                    if decided.is_some() {
                        tracing::warn!(slot = slot.index, pid, error = %e, "bad frame from worker; killed it");
                    }
                    break decided;
                }
            },
            _ = ticker.tick(), if drain_until.is_none() => match heartbeat.tick() {
                Beat::Send(seq) => {
                    let _ = tx.send(Arc::new(ToWorker::Heartbeat { seq }));
                }
                Beat::Wedged => {
                    tracing::error!(slot = slot.index, pid, "worker missed heartbeats; killing it");
                    let _ = child.start_kill();
                    break Some(Exit::Heartbeat);
                }
            },
            _ = stop.changed(), if drain_until.is_none() => {
                slot.stop_accepting();
                let _ = tx.send(Arc::new(ToWorker::Shutdown));
                drain_until = Some(pool.drain_until());
            }
            () = sleep_until_or_never(drain_until) => {
                let _ = child.start_kill();
                break Some(Exit::Drain);
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
