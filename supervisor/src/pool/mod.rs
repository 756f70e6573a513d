//! The worker pool (SPEC §2): N worker processes, each with its lanes, and
//! the dispatcher that sends each `/api` request to a free lane.
//!
//! Dispatch prefers the app's "home" worker (a hash of the app name) so its
//! compiled code stays warm, falls back to any free lane, and otherwise waits
//! in a FIFO queue bounded by `capacity.max_requests` and the request's
//! deadline. A request whose worker died before JS started it is sent again;
//! one that had started gets `WORKER_CRASHED`.

mod app_log;
mod quarantine;
mod slot;

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fazt_ipc::msg::{AppRef, ChildStatus, HttpRequest, Job, JobId, Outcome, ToWorker};
use fazt_shared::ticket::{unix_now_ms, TicketKey};
use fazt_shared::{DataDir, ErrorCode, Limits};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};

use crate::children::Hub;
use slot::{JobEvent, Slot};

/// Times a request is sent again after its worker died before starting it.
const MAX_ATTEMPTS: usize = 3;

/// What the pool needs from the limits and the command line.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Data dir, passed on to workers.
    pub data: DataDir,
    /// Worker processes.
    pub workers: u32,
    /// Lanes per worker.
    pub lanes: u32,
    /// Heap per lane, bytes.
    pub max_memory: u64,
    /// JS time per request, ms.
    pub exec_timeout_ms: u64,
    /// Each app's kv bounds.
    pub kv: fazt_shared::store::kv::KvQuota,
    /// Console bytes per second one app may write (`runtime.log_rate`).
    pub log_rate: u64,
    /// Lanes of a worker one app may hold while other apps wait
    /// (`runtime.app_share` of `lanes`, at least one).
    pub app_lanes: u32,
    /// Requests in flight or queued.
    pub max_requests: u32,
    /// How long workers get to finish at shutdown.
    pub drain: Duration,
    /// Signs each job's execution ticket (egress holds the same key).
    pub tickets: TicketKey,
}

impl PoolConfig {
    /// The pool of SPEC §2 for these limits: N = min(cores, `runtime.workers`
    /// when set, what RAM allows), at least 1.
    pub fn from_limits(limits: &Limits, data: DataDir, tickets: TicketKey) -> PoolConfig {
        let per_worker = limits.runtime.lanes.max(1) * limits.runtime.max_memory.max(1);
        let by_ram = limits.hardware.available_ram / per_worker;
        let mut n = limits.hardware.cpu_cores.min(by_ram);
        if limits.runtime.workers > 0 {
            n = n.min(limits.runtime.workers);
        }
        PoolConfig {
            data,
            workers: n.clamp(1, 256) as u32,
            lanes: limits.runtime.lanes.clamp(1, 256) as u32,
            max_memory: limits.runtime.max_memory,
            exec_timeout_ms: limits.runtime.exec_timeout_ms,
            kv: limits.into(),
            log_rate: limits.runtime.log_rate,
            app_lanes: share_of(
                limits.runtime.lanes.clamp(1, 256) as u32,
                limits.runtime.app_share,
            ),
            max_requests: limits.capacity.max_requests as u32,
            drain: Duration::from_millis(limits.capacity.timeout_ms),
            tickets,
        }
    }
}

/// Dispatchers waiting for a free lane, first come first served, except
/// that an app over its share of a worker's lanes lets other apps' waiting
/// requests go first (`runtime.app_share`). Only dispatchers not yet woken
/// are in the queue and its counts.
#[derive(Default)]
pub struct Waiters {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Waiting>,
    /// Queued dispatchers per app id.
    per_app: HashMap<i64, usize>,
    next_id: u64,
}

struct Waiting {
    id: u64,
    app: i64,
    tx: oneshot::Sender<()>,
}

impl Queue {
    fn remove_at(&mut self, i: usize) -> Option<Waiting> {
        let w = self.entries.remove(i)?;
        if let Some(n) = self.per_app.get_mut(&w.app) {
            *n -= 1;
            if *n == 0 {
                self.per_app.remove(&w.app);
            }
        }
        Some(w)
    }
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, app: i64) -> Ticket<'_> {
        let (tx, rx) = oneshot::channel();
        let mut q = self.lock();
        let id = q.next_id;
        q.next_id += 1;
        q.entries.push_back(Waiting { id, app, tx });
        *q.per_app.entry(app).or_default() += 1;
        Ticket {
            rx,
            id,
            waiters: self,
            used: false,
        }
    }

    /// Whether any request waits for a lane.
    pub fn any(&self) -> bool {
        !self.lock().entries.is_empty()
    }

    /// The apps other than `app` with requests waiting for a lane.
    pub fn other_apps(&self, app: i64) -> Vec<i64> {
        self.lock()
            .per_app
            .keys()
            .copied()
            .filter(|&a| a != app)
            .collect()
    }

    /// Wakes the longest-waiting dispatcher whose app `fits` (given the
    /// apps waiting), else the longest-waiting one.
    pub fn wake_one_where(&self, fits: impl Fn(i64, &HashMap<i64, usize>) -> bool) {
        let mut q = self.lock();
        let pick = q
            .entries
            .iter()
            .position(|w| fits(w.app, &q.per_app))
            .or((!q.entries.is_empty()).then_some(0));
        if let Some(w) = pick.and_then(|i| q.remove_at(i)) {
            // A queued dispatcher is alive: it leaves the queue when dropped.
            let _ = w.tx.send(());
        }
    }

    /// Wakes the longest-waiting dispatcher.
    pub fn wake_one(&self) {
        self.wake_one_where(|_, _| true);
    }

    /// Wakes up to `n` waiting dispatchers (a worker's lanes came up).
    pub fn wake(&self, n: usize) {
        for _ in 0..n {
            self.wake_one();
        }
    }

    /// Wakes every waiting dispatcher (a worker died: their lanes may be elsewhere).
    pub fn wake_all(&self) {
        let mut q = self.lock();
        while let Some(w) = q.remove_at(0) {
            let _ = w.tx.send(());
        }
    }
}

/// A dispatcher's place in the queue. Dropped while queued (the client went
/// away, the deadline came), it leaves the queue; dropped after a wake-up it
/// did not use, it passes the wake-up on, so a free lane is never left with
/// everyone asleep.
struct Ticket<'a> {
    rx: oneshot::Receiver<()>,
    id: u64,
    waiters: &'a Waiters,
    used: bool,
}

impl Ticket<'_> {
    /// Waits to be woken; `false` when the deadline came first.
    async fn wait_until(mut self, deadline: Instant) -> bool {
        match tokio::time::timeout_at(deadline.into(), &mut self.rx).await {
            Ok(woken) => {
                self.used = woken.is_ok();
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.used {
            return;
        }
        // Woken (the wake-up removed us from the queue) but not used.
        if self.rx.try_recv().is_ok() {
            self.waiters.wake_one();
            return;
        }
        let mut q = self.waiters.lock();
        if let Some(i) = q.entries.iter().position(|w| w.id == self.id) {
            q.remove_at(i);
        }
    }
}

/// `runtime.app_share` at one moment: lanes of a worker an app may hold
/// while other apps wait, and which other apps wait.
pub struct Share {
    lanes: u32,
    others: Vec<i64>,
}

impl Share {
    /// Whether an app holding `held` lanes of a worker may take another
    /// there: under its share, or no waiting app (`others`) is under its
    /// own share there (`held_by` lanes each), so the lane would idle.
    fn admits(
        share: u32,
        held: u32,
        mut others: impl Iterator<Item = i64>,
        held_by: &HashMap<i64, u32>,
    ) -> bool {
        held < share || !others.any(|o| held_by.get(&o).copied().unwrap_or(0) < share)
    }

    /// [`Share::admits`] for `app` with the lanes a worker's apps hold.
    pub fn allows(&self, app: i64, held_by: &HashMap<i64, u32>) -> bool {
        let held = held_by.get(&app).copied().unwrap_or(0);
        Share::admits(self.lanes, held, self.others.iter().copied(), held_by)
    }
}

/// A request's place among `capacity.max_requests`; given back when dropped.
pub struct Admission(#[allow(dead_code)] OwnedSemaphorePermit);

/// The pool.
pub struct Pool {
    config: PoolConfig,
    slots: Vec<Arc<Slot>>,
    waiters: Waiters,
    inflight: Arc<Semaphore>,
    app_log: app_log::AppLog,
    quarantine: quarantine::Quarantine,
    next_job: AtomicU64,
    /// Where workers are spawned and connect back.
    hub: Arc<Hub>,
    stop: watch::Sender<bool>,
    ready: watch::Sender<Readiness>,
    /// When workers told to stop must be done.
    drain_deadline: Mutex<Option<tokio::time::Instant>>,
    /// Held while a reload runs.
    reloading: tokio::sync::Mutex<()>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// How long one slot's reload may take: starting the next worker.
const RELOAD_SLOT_WITHIN: Duration = Duration::from_secs(40);

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Workers replaced.
    pub replaced: u32,
    /// Slots whose worker was not replaced, and why.
    pub failed: Vec<String>,
}

/// How many worker slots have a live, configured worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Slots with a live worker.
    pub ready: usize,
    /// All slots.
    pub total: usize,
}

impl Readiness {
    /// Every slot has a live worker.
    pub fn all(&self) -> bool {
        self.ready == self.total
    }
}

impl Pool {
    /// Starts every slot, its workers spawned through `hub`.
    pub fn start(config: PoolConfig, hub: Arc<Hub>) -> Arc<Pool> {
        let (stop, _) = watch::channel(false);
        let pool = Arc::new(Pool {
            slots: (0..config.workers)
                .map(|i| Arc::new(Slot::new(i)))
                .collect(),
            waiters: Waiters::default(),
            inflight: Arc::new(Semaphore::new(config.max_requests as usize)),
            app_log: app_log::AppLog::new(config.log_rate),
            quarantine: quarantine::Quarantine::default(),
            next_job: AtomicU64::new(1),
            hub,
            stop,
            ready: watch::channel(Readiness {
                ready: 0,
                total: config.workers as usize,
            })
            .0,
            drain_deadline: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
            tasks: Mutex::new(Vec::new()),
            config,
        });
        let mut tasks = Vec::new();
        let logs = pool.clone();
        tasks.push(tokio::spawn(fazt_shared::periodic::every(
            Duration::from_secs(1),
            pool.stop.subscribe(),
            move || {
                logs.app_log.sweep();
                std::future::ready(())
            },
        )));
        for slot in &pool.slots {
            let worker = slot::Worker {
                pool: pool.clone(),
                slot: slot.clone(),
            };
            let stop = pool.stop.subscribe();
            tasks.push(tokio::spawn(async move {
                crate::children::keep_alive(&worker, stop).await;
            }));
        }
        *pool.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        pool
    }

    /// The worker slots, for the process sampler.
    pub fn sampled(&self) -> Vec<Arc<dyn crate::children::sampler::Sampled>> {
        self.slots
            .iter()
            .map(|s| s.clone() as Arc<dyn crate::children::sampler::Sampled>)
            .collect()
    }

    /// Number of worker slots.
    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// When workers told to stop must be done: the shutdown's deadline,
    /// else `drain` from now.
    fn drain_until(&self) -> tokio::time::Instant {
        self.drain_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(|| tokio::time::Instant::now() + self.config.drain)
    }

    /// Lanes per worker.
    pub fn lanes(&self) -> u32 {
        self.config.lanes
    }

    /// Whether every worker slot has a live, configured worker: the one
    /// definition of ready (SPEC §2), watched by the ready line, health and
    /// systemd.
    pub fn readiness(&self) -> watch::Receiver<Readiness> {
        self.ready.subscribe()
    }

    /// A slot's worker came up or went away.
    fn readiness_changed(&self) {
        let ready = self.slots.iter().filter(|s| s.is_live()).count();
        self.ready.send_if_modified(|r| {
            let changed = r.ready != ready;
            r.ready = ready;
            changed
        });
    }

    /// Replaces every worker, one slot at a time (SIGHUP, `fazt workers
    /// reload`): a slot's next worker is ready before the one it replaces
    /// stops taking jobs, which then finishes the ones it has. One reload
    /// runs at a time; a second caller waits for it and then runs its own.
    pub async fn reload(&self) -> Reloaded {
        let _one_at_a_time = self.reloading.lock().await;
        let mut report = Reloaded::default();
        let mut stop = self.stop.subscribe();
        for slot in &self.slots {
            let answer = if *stop.borrow_and_update() {
                None
            } else {
                let (done, answer) = oneshot::channel();
                slot.request_reload(done);
                tokio::select! {
                    got = tokio::time::timeout(RELOAD_SLOT_WITHIN, answer) => Some(got),
                    _ = stop.changed() => None,
                }
            };
            let failure = match answer {
                Some(Ok(Ok(Ok(())))) => {
                    report.replaced += 1;
                    continue;
                }
                Some(Ok(Ok(Err(exit)))) => exit.to_string(),
                _ if *stop.borrow() => "not replaced: fazt is stopping".to_string(),
                _ => "no answer in time".to_string(),
            };
            report
                .failed
                .push(format!("worker {}: {failure}", slot.index));
        }
        tracing::info!(
            replaced = report.replaced,
            failed = report.failed.len(),
            "reload done"
        );
        report
    }

    /// How long app `id` stays quarantined, if it is.
    pub fn quarantined(&self, id: i64) -> Option<Duration> {
        self.quarantine.left(id, std::time::Instant::now())
    }

    /// The apps in quarantine now.
    pub fn quarantine_list(&self) -> Vec<fazt_ipc::msg::QuarantinedApp> {
        self.quarantine.list(std::time::Instant::now())
    }

    /// One status row per worker.
    pub fn status(&self) -> Vec<ChildStatus> {
        self.slots.iter().map(|s| s.status()).collect()
    }

    fn worker_args(&self, slot: u32) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.config.data.path().display().to_string(),
            "worker".into(),
            "--slot".into(),
            slot.to_string(),
            "--socket".into(),
            self.hub.socket().display().to_string(),
        ]
    }

    /// Takes one of the `capacity.max_requests` places for a request, before
    /// its body is read, so a flood of bodies cannot outrun the bound;
    /// `None` when all are taken.
    pub fn admit(&self) -> Option<Admission> {
        self.inflight
            .clone()
            .try_acquire_owned()
            .ok()
            .map(Admission)
    }

    /// Runs one admitted request on a lane and returns its outcome;
    /// refusals (overload, crash, timeout) are outcomes too.
    pub async fn dispatch(
        &self,
        _admission: Admission,
        app: AppRef,
        request: HttpRequest,
        request_id: String,
        deadline: Instant,
    ) -> Outcome {
        let id = JobId(self.next_job.fetch_add(1, Ordering::Relaxed));
        let home = home_slot(&app.name, self.slots.len());
        let app_key: (i64, Arc<str>) = (app.id, Arc::from(app.name.as_str()));
        let timeout_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        let ticket = self.config.tickets.issue(
            app.id,
            &request_id,
            unix_now_ms().saturating_add(timeout_ms),
        );
        let mut msg = Arc::new(ToWorker::Job(Job {
            id,
            request_id,
            app,
            request,
            timeout_ms,
            ticket,
        }));
        for _ in 0..MAX_ATTEMPTS {
            let Some((slot, rx)) = self.reserve(home, &app_key, id, &mut msg, deadline).await
            else {
                return refusal(
                    ErrorCode::Overloaded,
                    "no worker lane came free in time; try again",
                );
            };
            match tokio::time::timeout_at(deadline.into(), rx).await {
                Ok(Ok(JobEvent::Done(outcome))) => return outcome,
                Ok(Ok(JobEvent::Lost { started: true })) => {
                    return refusal(ErrorCode::WorkerCrashed, "worker crashed")
                }
                // Lost before JS started it: safe to run it elsewhere.
                Ok(Ok(JobEvent::Lost { started: false })) | Ok(Err(_)) => continue,
                Err(_) => {
                    slot.forget(id);
                    return refusal(
                        ErrorCode::RequestTimeout,
                        "the request took longer than capacity.timeout_ms",
                    );
                }
            }
        }
        refusal(ErrorCode::WorkerCrashed, "worker crashed")
    }

    /// Reserves a lane and sends the job: home first, then any other worker,
    /// else waits for a lane to free up until the deadline.
    async fn reserve(
        &self,
        home: usize,
        app: &(i64, Arc<str>),
        id: JobId,
        msg: &mut Arc<ToWorker>,
        deadline: Instant,
    ) -> Option<(Arc<Slot>, oneshot::Receiver<JobEvent>)> {
        loop {
            // The worker's deadline is what is left now, not at arrival:
            // time spent queued is gone. The Arc is unshared until sent.
            if let Some(ToWorker::Job(job)) = Arc::get_mut(msg) {
                job.timeout_ms = deadline
                    .saturating_duration_since(Instant::now())
                    .as_millis() as u64;
            }
            if let Some(found) = self.try_any(home, app, id, msg) {
                return Some(found);
            }
            let ticket = self.waiters.push(app.0);
            // A lane may have freed between the try and joining the queue.
            if let Some(found) = self.try_any(home, app, id, msg) {
                return Some(found);
            }
            if !ticket.wait_until(deadline).await {
                return None;
            }
            // Woken for a lane; should another dispatcher get there first,
            // the loop queues this one again.
        }
    }

    /// A free lane anywhere, home first; on a worker where `app` holds its
    /// share of the lanes already, only when no other waiting app is under
    /// its share there (so a lane never idles while someone waits).
    fn try_any(
        &self,
        home: usize,
        app: &(i64, Arc<str>),
        id: JobId,
        msg: &Arc<ToWorker>,
    ) -> Option<(Arc<Slot>, oneshot::Receiver<JobEvent>)> {
        let n = self.slots.len();
        let share = Share {
            lanes: self.config.app_lanes,
            others: self.waiters.other_apps(app.0),
        };
        (0..n).find_map(|k| {
            let slot = &self.slots[(home + k) % n];
            slot.try_send(id, msg, (app.0, &app.1), &share)
                .map(|rx| (slot.clone(), rx))
        })
    }

    /// A lane of `slot` came free: wake the longest-waiting request that
    /// may take it, an app under its share there before one over it.
    fn lane_freed(&self, slot: &Slot) {
        if !self.waiters.any() {
            return;
        }
        let held = slot.lanes_by_app();
        let share = self.config.app_lanes;
        self.waiters.wake_one_where(|app, waiting| {
            let lanes_held = held.get(&app).copied().unwrap_or(0);
            let others = waiting.keys().copied().filter(|&o| o != app);
            Share::admits(share, lanes_held, others, &held)
        });
    }

    /// Asks every worker to finish its jobs by `deadline` and stop; waits
    /// for them (a worker still busy at the deadline is killed).
    pub async fn shutdown(&self, deadline: tokio::time::Instant) {
        *self
            .drain_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(deadline);
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl crate::children::Reported for Pool {
    fn rows(&self) -> Vec<ChildStatus> {
        self.status()
    }
}

fn refusal(code: ErrorCode, message: &str) -> Outcome {
    Outcome::Error {
        code,
        message: message.into(),
    }
}

/// `percent` of `lanes`, rounded up, at least one.
fn share_of(lanes: u32, percent: u64) -> u32 {
    let share = (u64::from(lanes) * percent.min(100)).div_ceil(100);
    (share as u32).max(1)
}

/// The app's home worker.
fn home_slot(app: &str, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    app.hash(&mut h);
    (h.finish() as usize) % n.max(1)
}

/// Accepts worker connections and hands each to the slot that spawned it.
#[cfg(test)]
mod tests {
    use super::*;
    use fazt_shared::units::{GIB, MIB};
    use fazt_shared::Probe;

    fn workers(ram: u64, cores: u64, overrides: impl FnOnce(&mut Limits)) -> u32 {
        let mut limits = Limits::defaults(&Probe::fixed(ram, cores));
        overrides(&mut limits);
        PoolConfig::from_limits(&limits, DataDir::new("/tmp/x"), TicketKey::generate()).workers
    }

    #[test]
    fn worker_count_follows_cores_setting_and_ram() {
        assert_eq!(workers(16 * GIB, 4, |_| {}), 4);
        assert_eq!(workers(16 * GIB, 4, |l| l.runtime.workers = 2), 2);
        assert_eq!(workers(16 * GIB, 4, |l| l.runtime.workers = 8), 4);
        // 8 lanes × 50 MiB = 400 MiB per worker; 1 GiB allows 2.
        assert_eq!(workers(GIB, 8, |_| {}), 2);
        assert_eq!(workers(64 * MIB, 8, |_| {}), 1, "at least one");
    }

    #[test]
    fn home_slot_is_stable_and_in_range() {
        for n in 1..8 {
            let h = home_slot("hello", n);
            assert!(h < n);
            assert_eq!(h, home_slot("hello", n));
        }
    }

    #[tokio::test]
    async fn waiters_are_woken_in_order_and_skip_the_departed() {
        let w = Waiters::default();
        let first = w.push(1);
        let gone = w.push(1);
        let third = w.push(1);
        drop(gone);
        w.wake_one();
        w.wake_one();
        let far = Instant::now() + Duration::from_secs(5);
        assert!(first.wait_until(far).await);
        assert!(third.wait_until(far).await);
    }

    #[test]
    fn an_apps_share_is_rounded_up_and_never_zero() {
        assert_eq!(share_of(8, 50), 4);
        assert_eq!(share_of(3, 50), 2);
        assert_eq!(share_of(1, 10), 1);
        assert_eq!(share_of(4, 100), 4);
    }

    #[tokio::test]
    async fn a_lane_goes_to_another_app_before_one_over_its_share() {
        let w = Waiters::default();
        let hog = w.push(1);
        let hog2 = w.push(1);
        let nice = w.push(2);
        assert_eq!(w.other_apps(1), [2]);
        // App 1 holds 3 lanes of a worker, app 2 none; the share is 2.
        let held: HashMap<i64, u32> = [(1, 3)].into_iter().collect();
        let fits = |app: i64, waiting: &HashMap<i64, usize>| {
            let h = held.get(&app).copied().unwrap_or(0);
            Share::admits(2, h, waiting.keys().copied().filter(|&o| o != app), &held)
        };
        w.wake_one_where(fits);
        let soon = Instant::now() + Duration::from_millis(100);
        assert!(nice.wait_until(soon).await, "the other app was not woken");
        // Woken, it no longer counts as waiting: app 1 is alone and fits.
        assert!(w.other_apps(1).is_empty());
        w.wake_one_where(fits);
        assert!(
            hog.wait_until(Instant::now() + Duration::from_millis(100))
                .await
        );
        drop(hog2);
        assert!(!w.any(), "a dropped ticket left the queue");
    }

    #[test]
    fn a_share_never_leaves_a_lane_idle() {
        // Share 2: A and B hold 2 each, C holds 4 and is not waiting.
        let held: HashMap<i64, u32> = [(1, 2), (2, 2), (3, 4)].into_iter().collect();
        let share = |others: Vec<i64>| Share { lanes: 2, others };
        // A at its share, B waiting and at its share too: A may take the lane.
        assert!(share(vec![2]).allows(1, &held));
        // D waiting with no lanes here: A at its share must let D go first.
        assert!(!share(vec![2, 4]).allows(1, &held));
        // Nobody else waiting: no share applies.
        assert!(share(vec![]).allows(3, &held));
    }

    #[tokio::test]
    async fn a_wake_up_to_a_dropped_dispatcher_is_passed_on() {
        let w = Waiters::default();
        let woken_then_dropped = w.push(1);
        let next = w.push(1);
        w.wake_one();
        // The first dispatcher's future is dropped before it ran (client gone).
        drop(woken_then_dropped);
        let soon = Instant::now() + Duration::from_millis(200);
        assert!(next.wait_until(soon).await, "the wake-up was lost");
    }
}
