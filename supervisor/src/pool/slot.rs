//! One worker slot: its state, the jobs it runs, and the worker role that
//! `children::keep_alive` keeps running in it (SPEC §2 "Supervision").
//!
//! Everything that must change together — which incarnation is live, how
//! many lanes are busy, which jobs are pending and whether they started —
//! sits behind one mutex, never held across an `.await`, so a reservation,
//! a completion and a crash cannot interleave into a lost lane.
//!
//! A reload replaces the live incarnation without a gap: the next one is
//! started while the live one serves, takes over once ready, and the old
//! one, now *retiring*, finishes the jobs it has (its answers still count)
//! and exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fazt_ipc::conn::{FrameReader, FrameWriter};
use fazt_ipc::msg::{
    ChildKind, ChildState, ChildStatus, FromWorker, JobId, Outcome, ToWorker, WorkerConfig,
    WorkerStats,
};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot, watch};

use super::{Pool, Share};
use crate::children::sampler::Sampled;
use crate::children::{self, Beat, Exit, Heartbeat, Launched, Role, Vitals};

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

/// One incarnation's jobs and lanes.
struct Live {
    pid: u32,
    tx: mpsc::UnboundedSender<Arc<ToWorker>>,
    lanes: u32,
    busy: u32,
    pending: HashMap<JobId, Pending>,
    /// Busy lanes per app id.
    by_app: HashMap<i64, u32>,
}

impl Live {
    fn new(pid: u32, lanes: u32, tx: mpsc::UnboundedSender<Arc<ToWorker>>) -> Live {
        Live {
            pid,
            tx,
            lanes,
            busy: 0,
            pending: HashMap::new(),
            by_app: HashMap::new(),
        }
    }

    /// A job finished: frees its lane and answers its dispatcher. The
    /// job's app, if the job was this incarnation's.
    fn done(&mut self, id: JobId, outcome: Outcome) -> Option<i64> {
        let p = self.pending.remove(&id)?;
        self.busy = self.busy.saturating_sub(1);
        if let Some(n) = self.by_app.get_mut(&p.app) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_app.remove(&p.app);
            }
        }
        if let Some(reply) = p.reply {
            let _ = reply.send(JobEvent::Done(outcome));
        }
        Some(p.app)
    }

    /// The incarnation is gone: jobs not yet started may be dispatched
    /// again, started ones are lost (SPEC §2). How many went, and the
    /// apps whose started jobs did.
    fn fail_all(self) -> (usize, Vec<(i64, Arc<str>)>) {
        let n = self.pending.len();
        let mut running: Vec<(i64, Arc<str>)> = Vec::new();
        for (_, p) in self.pending {
            if p.started && !running.iter().any(|(id, _)| *id == p.app) {
                running.push((p.app, p.app_name.clone()));
            }
            if let Some(reply) = p.reply {
                let _ = reply.send(JobEvent::Lost { started: p.started });
            }
        }
        (n, running)
    }
}

struct SlotState {
    vitals: Vitals,
    live: Option<Live>,
    /// Incarnations reloads replaced, finishing their jobs (more than one
    /// when reloads come faster than jobs finish).
    retiring: Vec<Live>,
    /// Whoever asked for a reload, told once the new incarnation is live.
    reload_done: Option<oneshot::Sender<Result<(), Exit>>>,
    stats: WorkerStats,
}

impl SlotState {
    /// The incarnations that may still answer jobs: the live one and the
    /// ones reloads are retiring.
    fn answering(&mut self) -> impl Iterator<Item = &mut Live> {
        self.live.iter_mut().chain(self.retiring.iter_mut())
    }
}

/// One worker slot.
pub struct Slot {
    /// Slot number.
    pub index: u32,
    state: Mutex<SlotState>,
    /// Bumped to ask for a reload; an incarnation that went live after the
    /// bump is already the new one.
    reload: watch::Sender<u64>,
}

impl Slot {
    /// An empty slot.
    pub fn new(index: u32) -> Slot {
        Slot {
            index,
            state: Mutex::new(SlotState {
                vitals: Vitals::default(),
                live: None,
                retiring: Vec::new(),
                reload_done: None,
                stats: WorkerStats::default(),
            }),
            reload: watch::channel(0).0,
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
        let mut st = self.lock();
        for live in st.answering() {
            if let Some(p) = live.pending.get_mut(&id) {
                p.reply = None;
            }
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
        self.lock().vitals.ready_for()
    }

    /// One status row.
    pub fn status(&self) -> ChildStatus {
        let st = self.lock();
        let (busy, lanes) = st.live.as_ref().map_or((0, 0), |l| (l.busy, l.lanes));
        ChildStatus {
            js_heap_bytes: st.stats.js_heap_bytes,
            lanes_busy: busy,
            lanes_total: lanes,
            served: st.stats.served,
            p50_us: st.stats.p50_us,
            p99_us: st.stats.p99_us,
            ..st.vitals
                .row(ChildKind::Worker, self.index, lanes > 0 && busy >= lanes)
        }
    }

    fn set_state(&self, state: ChildState, pid: Option<u32>) {
        self.lock().vitals.set(state, pid);
    }

    /// A started incarnation takes the slot; the one it replaces, if any,
    /// retires.
    fn go_live(&self, pid: u32, lanes: u32, tx: mpsc::UnboundedSender<Arc<ToWorker>>) {
        let mut st = self.lock();
        st.vitals.live(pid);
        st.stats = WorkerStats::default();
        let old = st.live.replace(Live::new(pid, lanes, tx));
        if let Some(mut old) = old {
            old.lanes = 0;
            st.retiring.push(old);
        }
        if let Some(done) = st.reload_done.take() {
            let _ = done.send(Ok(()));
        }
    }

    /// Ends the live incarnation. Returns how many jobs it took down, and
    /// the apps whose started jobs were among them.
    fn die(&self, exit: &Exit, restarting: bool) -> (usize, Vec<(i64, Arc<str>)>) {
        let mut st = self.lock();
        st.vitals.ended(exit, restarting);
        if let Some(done) = st.reload_done.take() {
            let _ = done.send(Err(exit.clone()));
        }
        st.live.take().map(Live::fail_all).unwrap_or_default()
    }

    /// The retiring incarnation `pid` is gone; jobs it still had go back to
    /// the queue or are lost, as for any exit.
    fn retired(&self, pid: u32) -> usize {
        let mut st = self.lock();
        match st.retiring.iter().position(|r| r.pid == pid) {
            Some(i) => st.retiring.swap_remove(i).fail_all().0,
            None => 0,
        }
    }

    fn on_started(&self, id: JobId) {
        let mut st = self.lock();
        for live in st.answering() {
            if let Some(p) = live.pending.get_mut(&id) {
                p.started = true;
                return;
            }
        }
    }

    /// A job finished on the live or a retiring incarnation; its app.
    fn on_done(&self, id: JobId, outcome: Outcome) -> Option<i64> {
        let mut st = self.lock();
        let app = st
            .answering()
            .find(|l| l.pending.contains_key(&id))?
            .done(id, outcome);
        app
    }

    fn on_heartbeat(&self, pid: u32, stats: WorkerStats) {
        let mut st = self.lock();
        if st.vitals.pid() == Some(pid) {
            st.stats = stats;
        }
    }

    /// Asks the slot to replace its worker; `done` hears when the new one
    /// is live (or why it is not).
    pub fn request_reload(&self, done: oneshot::Sender<Result<(), Exit>>) {
        self.lock().reload_done = Some(done);
        self.reload.send_modify(|generation| *generation += 1);
    }
}

impl Sampled for Slot {
    fn pid(&self) -> Option<u32> {
        self.lock().vitals.pid()
    }

    fn set_sample(&self, pid: u32, cpu_percent: f32, rss_bytes: u64) {
        self.lock().vitals.sample(pid, cpu_percent, rss_bytes);
    }
}

/// The worker role of one slot, for `children::keep_alive`.
pub struct Worker {
    /// The pool it serves.
    pub pool: Arc<Pool>,
    /// Its slot.
    pub slot: Arc<Slot>,
}

/// A worker process that connected, was configured and said it is ready.
pub struct Started {
    child: Child,
    pid: u32,
    reader: FrameReader<fazt_ipc::conn::ReadHalf>,
    writer: FrameWriter<fazt_ipc::conn::WriteHalf>,
    lanes: u32,
}

impl Role for Worker {
    type Started = Started;

    async fn run_once(
        &self,
        adopt: Option<Started>,
        stop: &mut watch::Receiver<bool>,
    ) -> (Exit, Option<Started>) {
        let started = match adopt {
            Some(s) => s,
            None => {
                self.slot.set_state(ChildState::Starting, None);
                // A stop does not wait for a start: the half-started
                // worker is killed as the future is dropped.
                let started = tokio::select! {
                    got = start(&self.pool, &self.slot) => got,
                    _ = stop.wait_for(|s| *s) => Err(Exit::StoppedStarting),
                };
                match started {
                    Ok(s) => s,
                    Err(exit) => return (exit, None),
                }
            }
        };
        serve(&self.pool, &self.slot, started, stop).await
    }

    fn ended(&self, exit: &Exit, restarting: bool) -> usize {
        let (lost, running) = self.slot.die(exit, restarting);
        self.pool.readiness_changed();
        // A worker that died on its own (not stopped, not killed for a
        // missed drain) counts against the apps it was running.
        if restarting && !matches!(exit, Exit::Drain) && !running.is_empty() {
            let suspects: Vec<(i64, &str)> =
                running.iter().map(|(id, name)| (*id, &**name)).collect();
            self.pool.quarantine.crashed(&suspects, Instant::now());
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
        self.slot.lock().vitals.backing_off(delay);
    }

    fn stopped(&self) {
        self.slot.set_state(ChildState::Stopped, None);
    }

    fn describe(&self) -> String {
        format!("worker {}", self.slot.index)
    }
}

/// Spawns a worker for `slot` and brings it to ready: connected,
/// configured, lanes up.
async fn start(pool: &Arc<Pool>, slot: &Slot) -> Result<Started, Exit> {
    let launched = pool
        .hub
        .launch(pool.worker_args(slot.index), |pid| {
            if !slot.is_live() {
                slot.set_state(ChildState::Starting, Some(pid));
            }
        })
        .await?;
    let config = ToWorker::Configure(WorkerConfig {
        slot: slot.index,
        lanes: pool.config.lanes,
        max_memory: pool.config.max_memory,
        exec_timeout_ms: pool.config.exec_timeout_ms,
        kv: pool.config.kv,
    });
    let (launched, lanes) = pool
        .hub
        .configure(launched, &config, |first: FromWorker| match first {
            FromWorker::Ready { lanes } => Some(lanes),
            _ => None,
        })
        .await?;
    let Launched {
        child,
        pid,
        reader,
        writer,
    } = launched;
    Ok(Started {
        child,
        pid,
        reader,
        writer,
        lanes,
    })
}

/// Runs a started worker until it dies, the pool stops (it drains), or a
/// reload replaces it: then the next incarnation is returned, to be served
/// at once, and this one retires in the background.
async fn serve(
    pool: &Arc<Pool>,
    slot: &Slot,
    started: Started,
    stop: &mut watch::Receiver<bool>,
) -> (Exit, Option<Started>) {
    let Started {
        mut child,
        pid,
        mut reader,
        writer,
        lanes,
    } = started;
    let (tx, writer_task) = fazt_ipc::conn::spawn_writer::<ToWorker, _>(writer);
    // A reload asked for before this incarnation went live is this one.
    let mut reload = slot.reload.subscribe();
    reload.mark_unchanged();
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
    let mut next: Option<NextStart<'_>> = None;
    let decided = loop {
        tokio::select! {
            msg = reader.read::<FromWorker>() => match msg {
                Ok(Some(FromWorker::Heartbeat { stats, .. })) => {
                    heartbeat.ack();
                    slot.on_heartbeat(pid, stats);
                }
                Ok(Some(frame)) => handle(pool, slot, frame),
                Ok(None) => break None,
                Err(e) => {
                    let decided = children::broken_connection(&mut child, &e).await;
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
            Ok(()) = reload.changed(), if drain_until.is_none() && next.is_none() => {
                tracing::info!(slot = slot.index, pid, "reload: starting the next worker");
                next = Some(Box::pin(start(pool, slot)));
            }
            got = async { next.as_mut().expect("guarded by next.is_some()").await }, if next.is_some() && drain_until.is_none() => {
                next = None;
                match got {
                    Ok(new) => {
                        // The new one is ready: it takes the slot now, and
                        // this one finishes its jobs in the background. No
                        // job may queue behind the shutdown: a worker told
                        // to stop reads no more.
                        slot.stop_accepting();
                        let _ = tx.send(Arc::new(ToWorker::Shutdown));
                        drop(tx);
                        tokio::spawn(retire(
                            pool.clone(),
                            slot.index,
                            Retiring { child, pid, reader, writer_task },
                        ));
                        return (Exit::Replaced, Some(new));
                    }
                    Err(exit) => {
                        tracing::warn!(slot = slot.index, %exit, "reload: the next worker did not start; keeping this one");
                        if let Some(done) = slot.lock().reload_done.take() {
                            let _ = done.send(Err(exit));
                        }
                    }
                }
            }
            _ = stop.changed(), if drain_until.is_none() => {
                // A reload in progress ends here: the worker it was starting
                // is killed (dropped), and no one waits for it.
                next = None;
                drop(slot.lock().reload_done.take());
                slot.stop_accepting();
                let _ = tx.send(Arc::new(ToWorker::Shutdown));
                drain_until = Some(pool.drain_until());
            }
            () = children::sleep_until_or_never(drain_until) => {
                let _ = child.start_kill();
                break Some(Exit::Drain);
            }
        }
    };
    // Gone or going: no job may be sent to it while it is reaped.
    slot.stop_accepting();
    drop(tx);
    writer_task.abort();
    let exit = children::reap(&mut child).await;
    // A connection that arrived too late must not be handed to a later
    // process that happens to get the same pid.
    pool.hub.forget(pid);
    (decided.unwrap_or(exit), None)
}

/// The next incarnation being started during a reload.
type NextStart<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Started, Exit>> + Send + 'a>>;

/// A frame other than a heartbeat.
fn handle(pool: &Pool, slot: &Slot, frame: FromWorker) {
    match frame {
        FromWorker::Started { job } => slot.on_started(job),
        FromWorker::Done { job, outcome } => {
            if let Some(app) = slot.on_done(job, outcome) {
                pool.quarantine.completed(app);
            }
            pool.lane_freed(slot);
        }
        FromWorker::Log(r) => pool.app_log.write(slot.index, &r),
        FromWorker::Heartbeat { .. } | FromWorker::Ready { .. } => {}
    }
}

/// An incarnation a reload replaced.
struct Retiring {
    child: Child,
    pid: u32,
    reader: FrameReader<fazt_ipc::conn::ReadHalf>,
    writer_task: tokio::task::JoinHandle<()>,
}

/// Reads the retiring worker's last answers until it exits (it was told
/// to shut down), within the drain time; then reaps it.
async fn retire(pool: Arc<Pool>, index: u32, mut old: Retiring) {
    let Some(slot) = pool.slots.get(index as usize).cloned() else {
        return;
    };
    let deadline = tokio::time::Instant::now() + pool.config.drain;
    loop {
        match tokio::time::timeout_at(deadline, old.reader.read::<FromWorker>()).await {
            Ok(Ok(Some(frame))) => handle(&pool, &slot, frame),
            Ok(_) => break,
            Err(_) => {
                tracing::warn!(
                    slot = index,
                    pid = old.pid,
                    "retiring worker did not finish in time; killing it"
                );
                let _ = old.child.start_kill();
                break;
            }
        }
    }
    old.writer_task.abort();
    let exit = children::reap(&mut old.child).await;
    pool.hub.forget(old.pid);
    let lost = slot.retired(old.pid);
    tracing::info!(slot = index, pid = old.pid, %exit, lost, "retired worker exited");
}
