//! The egress child (SPEC §2, §6): one process, kept alive by
//! `children::keep_alive` like a worker slot, with heartbeats, backoff and
//! a status row. What egress decides lives in the `fazt-egress` crate;
//! this is only its supervision.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fazt_ipc::msg::{
    CacheStats, ChildKind, ChildState, ChildStatus, EgressConfig, EgressStats, FromEgress, ToEgress,
};
use fazt_shared::DataDir;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{oneshot, watch};

use crate::children::sampler::Sampled;
use crate::children::{self, reap, Beat, Exit, Heartbeat, Hub, Launched, Reported, Role, Vitals};
use crate::net_log::NetLog;

/// Silence after which egress counts as wedged. It runs no JS, so a
/// heartbeat left unanswered this long means its runtime is stuck.
const WEDGED_AFTER: Duration = Duration::from_secs(5);

struct State {
    vitals: Vitals,
    stats: EgressStats,
}

/// The egress slot.
pub struct Egress {
    hub: Arc<Hub>,
    data: DataDir,
    config: EgressConfig,
    /// How long egress gets to finish its calls at shutdown.
    drain: Duration,
    state: Mutex<State>,
    stop: watch::Sender<bool>,
    /// Whether an egress process is up.
    live: watch::Sender<bool>,
    drain_deadline: Mutex<Option<tokio::time::Instant>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Whether an egress was configured before: the next one is a restart.
    configured_once: AtomicBool,
    /// Where its log rows go.
    net_log: Arc<NetLog>,
    /// The running egress's inbox, for cache queries.
    inbox: Mutex<Option<UnboundedSender<Arc<ToEgress>>>>,
    /// Cache queries waiting for their answer.
    queries: Mutex<HashMap<u64, oneshot::Sender<CacheStats>>>,
    next_query: AtomicU64,
}

/// How long a cache query waits for egress.
const QUERY_WITHIN: Duration = Duration::from_secs(3);

impl Egress {
    /// Starts keeping egress alive.
    pub fn start(
        hub: Arc<Hub>,
        data: DataDir,
        config: EgressConfig,
        drain: Duration,
        net_log: Arc<NetLog>,
    ) -> Arc<Egress> {
        let egress = Arc::new(Egress {
            hub,
            data,
            config,
            drain,
            state: Mutex::new(State {
                vitals: Vitals::default(),
                stats: EgressStats::default(),
            }),
            stop: watch::channel(false).0,
            live: watch::channel(false).0,
            drain_deadline: Mutex::new(None),
            task: Mutex::new(None),
            configured_once: AtomicBool::new(false),
            net_log,
            inbox: Mutex::new(None),
            queries: Mutex::new(HashMap::new()),
            next_query: AtomicU64::new(1),
        });
        let role = EgressRole(egress.clone());
        let stop = egress.stop.subscribe();
        let task = tokio::spawn(async move { children::keep_alive(&role, stop).await });
        *egress.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        egress
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an egress process is up.
    pub fn is_live(&self) -> bool {
        *self.live.borrow()
    }

    /// Watches whether an egress process is up (part of "ready").
    pub fn liveness(&self) -> watch::Receiver<bool> {
        self.live.subscribe()
    }

    /// Its status row.
    pub fn status(&self) -> ChildStatus {
        let st = self.lock();
        let total = u32::try_from(self.config.net.concurrency).unwrap_or(u32::MAX);
        let busy = st.stats.in_flight;
        let pins = fazt_egress::settings::describe(&self.config.pins);
        ChildStatus {
            lanes_busy: busy,
            lanes_total: total,
            served: st.stats.answered,
            note: (!pins.is_empty()).then(|| format!("TEST PINS IN EFFECT: {pins}")),
            ..st.vitals.row(ChildKind::Egress, 0, busy >= total)
        }
    }

    /// The response cache's numbers for `app_id` (or all), emptied first
    /// when `clear`; `None` when egress is not running or did not answer.
    pub async fn cache(&self, app_id: Option<i64>, clear: bool) -> Option<CacheStats> {
        let inbox = self
            .inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let id = self.next_query.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let answer = match inbox.send(Arc::new(ToEgress::Cache { id, app_id, clear })) {
            Ok(()) => tokio::time::timeout(QUERY_WITHIN, rx)
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        self.queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        answer
    }

    /// Stops egress: it finishes its calls until `deadline`, then is killed.
    pub async fn shutdown(&self, deadline: tokio::time::Instant) {
        *self
            .drain_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(deadline);
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn drain_until(&self) -> tokio::time::Instant {
        self.drain_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(|| tokio::time::Instant::now() + self.drain)
    }
}

impl Sampled for Egress {
    fn pid(&self) -> Option<u32> {
        self.lock().vitals.pid()
    }

    fn set_sample(&self, pid: u32, cpu_percent: f32, rss_bytes: u64) {
        self.lock().vitals.sample(pid, cpu_percent, rss_bytes);
    }
}

impl Reported for Egress {
    fn rows(&self) -> Vec<ChildStatus> {
        vec![self.status()]
    }

    fn problems(&self) -> Vec<String> {
        if self.is_live() {
            Vec::new()
        } else {
            vec!["egress is not running: fazt.net.fetch calls fail".into()]
        }
    }
}

struct EgressRole(Arc<Egress>);

impl Role for EgressRole {
    /// A started, ready egress is just its launch: nothing more is learnt
    /// from its first message.
    type Started = Launched;

    async fn run_once(
        &self,
        adopt: Option<Launched>,
        stop: &mut watch::Receiver<bool>,
    ) -> (Exit, Option<Launched>) {
        let started = match adopt {
            Some(s) => s,
            None => {
                let egress = &self.0;
                egress.lock().vitals.set(ChildState::Starting, None);
                let started = tokio::select! {
                    got = start(egress) => got,
                    _ = stop.wait_for(|s| *s) => Err(Exit::StoppedStarting),
                };
                match started {
                    Ok(s) => s,
                    Err(exit) => return (exit, None),
                }
            }
        };
        (serve(&self.0, started, stop).await, None)
    }

    fn ended(&self, exit: &Exit, restarting: bool) -> usize {
        self.0.live.send_replace(false);
        let mut st = self.0.lock();
        st.vitals.ended(exit, restarting);
        // Calls in flight fail on the workers' side with the connection.
        std::mem::take(&mut st.stats).in_flight as usize
    }

    fn was_ready_for(&self) -> Option<Duration> {
        self.0.lock().vitals.ready_for()
    }

    fn backing_off(&self, delay: Duration) {
        self.0.lock().vitals.backing_off(delay);
    }

    fn stopped(&self) {
        self.0.lock().vitals.set(ChildState::Stopped, None);
    }

    fn describe(&self) -> String {
        "egress".into()
    }
}

async fn start(egress: &Egress) -> Result<Launched, Exit> {
    let args = vec![
        "--data-dir".into(),
        egress.data.path().display().to_string(),
        "egress".into(),
        "--socket".into(),
        egress.hub.socket().display().to_string(),
    ];
    let launched = egress
        .hub
        .launch(args, |pid| {
            egress.lock().vitals.set(ChildState::Starting, Some(pid))
        })
        .await?;
    let config = ToEgress::Configure(EgressConfig {
        restarted: egress.configured_once.swap(true, Ordering::SeqCst),
        ..egress.config.clone()
    });
    let (launched, ()) = egress
        .hub
        .configure(launched, &config, |first: FromEgress| match first {
            FromEgress::Ready => Some(()),
            _ => None,
        })
        .await?;
    Ok(launched)
}

/// Runs a started egress until it dies or the supervisor stops.
async fn serve(egress: &Egress, started: Launched, stop: &mut watch::Receiver<bool>) -> Exit {
    let Launched {
        mut child,
        pid,
        mut reader,
        writer,
    } = started;
    let (tx, writer_task) = fazt_ipc::conn::spawn_writer::<ToEgress, _>(writer);
    *egress.inbox.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx.clone());
    egress.lock().vitals.live(pid);
    egress.live.send_replace(true);
    tracing::info!(pid, "egress ready");
    let mut heartbeat = Heartbeat::new(WEDGED_AFTER);
    let mut ticker = tokio::time::interval(children::heartbeat::EVERY);
    let mut drain_until: Option<tokio::time::Instant> = None;
    let decided = loop {
        tokio::select! {
            msg = reader.read::<FromEgress>() => match msg {
                Ok(Some(FromEgress::Heartbeat { stats, .. })) => {
                    heartbeat.ack();
                    egress.lock().stats = stats;
                }
                Ok(Some(FromEgress::Ready)) => {}
                Ok(Some(FromEgress::Log(row))) => egress.net_log.accept(row),
                Ok(Some(FromEgress::Cache { id, stats })) => {
                    let waiting = egress
                        .queries
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                    if let Some(waiting) = waiting {
                        let _ = waiting.send(stats);
                    }
                }
                Ok(None) => break None,
                Err(e) => {
                    let decided = children::broken_connection(&mut child, &e).await;
                    if decided.is_some() {
                        tracing::warn!(pid, error = %e, "bad frame from egress; killed it");
                    }
                    break decided;
                }
            },
            _ = ticker.tick(), if drain_until.is_none() => match heartbeat.tick() {
                Beat::Send(seq) => {
                    let _ = tx.send(Arc::new(ToEgress::Heartbeat { seq }));
                }
                Beat::Wedged => {
                    tracing::error!(pid, "egress missed heartbeats; killing it");
                    let _ = child.start_kill();
                    break Some(Exit::Heartbeat);
                }
            },
            _ = stop.changed(), if drain_until.is_none() => {
                let _ = tx.send(Arc::new(ToEgress::Shutdown));
                drain_until = Some(egress.drain_until());
            }
            () = children::sleep_until_or_never(drain_until) => {
                let _ = child.start_kill();
                break Some(Exit::Drain);
            }
        }
    };
    *egress.inbox.lock().unwrap_or_else(|p| p.into_inner()) = None;
    drop(tx);
    writer_task.abort();
    let exit = reap(&mut child).await;
    egress.hub.forget(pid);
    decided.unwrap_or(exit)
}
