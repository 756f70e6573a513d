//! `fazt supervise`: the process that owns everything (SPEC §2). It opens the
//! store, resolves the limits, creates the admin token, and serves the front
//! door until told to stop; the phases it goes through are visible to the
//! health endpoint and to tests.

mod lock;
pub mod systemd;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use fazt_shared::store::{kv, overrides};
use fazt_shared::ticket::TicketKey;

use crate::net_log::{self, NetLog};
use fazt_shared::{DataDir, Limits, Probe, Store};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::children::sampler::Sampled;
use crate::children::{Hub, Roster};
use crate::cli::SuperviseArgs;
use crate::egress::Egress;
use crate::http::apps::AppDirectory;
use crate::http::{self, admin_token, FrontDoor};
use crate::phase::Phase;
use crate::pool::{Pool, PoolConfig};
use crate::pulse::Pulse;
use fazt_ipc::msg::EgressConfig;

/// Connections to the database the supervisor keeps.
const POOL_SIZE: u32 = 8;

/// A request from outside to the running supervisor: in production
/// SIGTERM/SIGINT and SIGHUP, in tests whatever the test sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Stop accepting, drain once, stop the children, return.
    Stop,
    /// Replace the workers one at a time.
    Reload,
}

/// What [`run`] takes from its surroundings; `main` passes the real ones.
pub struct Deps {
    /// The fazt executable workers are started from (`fazt worker`).
    pub exe: PathBuf,
    /// The machine the limits are resolved for.
    pub probe: Probe,
    /// Where the supervisor's phase is published.
    pub phase: watch::Sender<Phase>,
    /// Stop and reload requests; the source closing counts as a stop.
    pub signals: mpsc::Receiver<Signal>,
}

/// Entry point of `fazt supervise`: builds the runtime, binds, and runs until
/// SIGTERM or SIGINT.
pub fn main(data: DataDir, args: SuperviseArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // Handlers first: a SIGTERM that arrives while starting must still
        // mean "drain and exit 0", not the default "die at once".
        let signals = os_signals()?;
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let deps = Deps {
            exe: std::env::current_exe().context("locating the fazt executable")?,
            probe: Probe::detect(),
            phase: watch::channel(Phase::Starting).0,
            signals,
        };
        run(data, args.domain, listener, deps).await
    })
}

/// Runs the supervisor on an already bound listener until a stop arrives.
pub async fn run(data: DataDir, domain: String, listener: TcpListener, deps: Deps) -> Result<()> {
    let Deps {
        exe,
        probe,
        phase: phase_tx,
        signals,
    } = deps;
    phase_tx.send_replace(Phase::Starting);
    let phase = phase_tx.subscribe();
    let (reload_tx, reload_rx) = mpsc::channel(1);
    let shutdown = dispatch_signals(signals, reload_tx);
    let (store, resolved, token, _lock, db_problems) = tokio::task::spawn_blocking({
        let data = data.clone();
        move || -> Result<_> {
            data.create()?;
            let lock = lock::acquire(&data)?;
            let store = Store::open(&data, POOL_SIZE)
                .with_context(|| format!("opening {}", data.db_path().display()))?;
            let resolved = overrides::resolve(&*store.conn()?, &probe)?;
            let token = admin_token::ensure(&store, &data)?;
            let problems = store.quick_check(10)?;
            Ok((store, resolved, token, lock, problems))
        }
    })
    .await??;
    for problem in &db_problems {
        tracing::error!(%problem, "database integrity check failed; restore a backup");
    }
    for ignored in &resolved.ignored {
        tracing::warn!(%ignored, "stored limit override ignored");
    }
    let limits = Arc::new(resolved.limits);
    // Test settings are read first: a malformed one stops fazt before
    // anything starts.
    let tickets = TicketKey::generate();
    let egress_config = EgressConfig {
        net: limits.net.clone(),
        ticket_key: tickets.clone(),
        restarted: false,
        nameserver: fazt_egress::settings::nameserver(
            std::env::var(fazt_egress::settings::NAMESERVER_VAR)
                .ok()
                .as_deref(),
        )?,
        pins: fazt_egress::settings::pins(
            std::env::var(fazt_egress::settings::TEST_RESOLVE_VAR)
                .ok()
                .as_deref(),
        )?,
    };
    let (stop_tx, stop) = watch::channel(false);
    // Children outlive the front door's drain; their socket closes last.
    let (children_stop, children_stopped) = watch::channel(false);
    let (hub, hub_task) = Hub::start(exe, data.children_socket_path(), children_stopped)
        .context("starting the children's socket")?;
    let pool = Pool::start(
        PoolConfig::from_limits(&limits, data.clone(), tickets),
        hub.clone(),
    );
    // The flusher outlives egress: it stops after egress, so every row
    // egress sent is written.
    let (net_log_stop, net_log_stopped) = watch::channel(false);
    let (net_log, net_log_task) = NetLog::start(
        store.clone(),
        net_log::Config::from_limits(&limits),
        net_log_stopped,
    );
    let egress = Egress::start(
        hub,
        data.clone(),
        egress_config,
        Duration::from_millis(limits.capacity.timeout_ms),
        net_log,
    );
    let roster = Roster::new(vec![pool.clone(), egress.clone()]);
    let apps = Arc::new(AppDirectory::new(store.clone()));
    let door = FrontDoor::new(http::Parts {
        store: store.clone(),
        limits: limits.clone(),
        probe,
        token,
        domain,
        phase,
        pool: pool.clone(),
        roster: roster.clone(),
        egress: egress.clone(),
        apps: apps.clone(),
        db_problems,
        pulse: Arc::new(Pulse::new(systemd::pulse_every(systemd::watchdog()))),
    })?;
    let control = fazt_ipc::conn::listen(&data.control_socket_path())?;
    let background = [
        tokio::spawn(crate::control::serve(
            crate::control::Control {
                pool: pool.clone(),
                roster,
                apps: apps.clone(),
                egress: egress.clone(),
            },
            control,
            stop.clone(),
        )),
        tokio::spawn(apps.watch(stop.clone())),
        tokio::spawn(systemd::keep_informed(
            pool.readiness(),
            door.requests(),
            door.pulse(),
            stop.clone(),
        )),
        tokio::spawn(reload_on_request(
            pool.clone(),
            phase_tx.subscribe(),
            reload_rx,
            stop.clone(),
        )),
        tokio::spawn(purge_expired_kv(store, stop.clone())),
        tokio::spawn(crate::children::sampler::run(
            pool.sampled()
                .into_iter()
                .chain([egress.clone() as Arc<dyn Sampled>])
                .collect(),
            stop,
        )),
    ];

    // Requests are served from here on (by the workers that are up); ready
    // is announced only once every worker slot has a live worker.
    let addr = listener.local_addr()?;
    println!("fazt listening on http://{addr}");
    let phase_tx = Arc::new(phase_tx);
    let announcer = tokio::spawn(announce_ready(
        pool.readiness(),
        egress.liveness(),
        phase_tx.clone(),
        addr,
        Started {
            data: data.path().display().to_string(),
            cores: limits.hardware.cpu_cores,
            lanes: pool.lanes(),
        },
    ));

    let listening = listening(&limits, pool.size());
    // SIGTERM drains once: the workers finish by the same deadline as the
    // front door's connections.
    let drain_deadline = std::sync::Mutex::new(None);
    http::serve(listener, door, listening, shutdown, |deadline| {
        phase_tx.send_replace(Phase::Draining);
        systemd::stopping();
        *drain_deadline.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
    })
    .await;
    announcer.abort();
    stop_tx.send_replace(true);
    let deadline = drain_deadline
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or_else(tokio::time::Instant::now);
    tokio::join!(pool.shutdown(deadline), egress.shutdown(deadline));
    net_log_stop.send_replace(true);
    let _ = net_log_task.await;
    children_stop.send_replace(true);
    let _ = hub_task.await;
    for task in background {
        let _ = task.await;
    }
    let _ = std::fs::remove_file(data.control_socket_path());
    tracing::info!("fazt stopped");
    Ok(())
}

/// What the ready log line tells.
struct Started {
    data: String,
    cores: u64,
    lanes: u32,
}

/// How long start-up may take before the log says which workers are
/// missing (ready is still announced when they come).
const SLOW_START: Duration = Duration::from_secs(60);

/// Announces ready — the phase, the log line and the `fazt ready on` line
/// on stdout that tests and scripts wait for — once every worker slot has a
/// live worker, never before.
async fn announce_ready(
    mut readiness: watch::Receiver<crate::pool::Readiness>,
    mut egress: watch::Receiver<bool>,
    phase: Arc<watch::Sender<Phase>>,
    addr: std::net::SocketAddr,
    started: Started,
) {
    let all_up = async {
        readiness.wait_for(|r| r.all()).await.ok()?;
        egress.wait_for(|live| *live).await.ok()?;
        Some(*readiness.borrow())
    };
    let r = match tokio::time::timeout(SLOW_START, all_up).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(_) => {
            let r = *readiness.borrow();
            tracing::error!(
                ready = r.ready,
                total = r.total,
                egress = *egress.borrow(),
                "not every child is ready after {SLOW_START:?}; fazt is not announced ready until they are"
            );
            if readiness.wait_for(|r| r.all()).await.is_err()
                || egress.wait_for(|live| *live).await.is_err()
            {
                return;
            }
            *readiness.borrow()
        }
    };
    let became_ready = phase.send_if_modified(|p| {
        let starting = *p == Phase::Starting;
        if starting {
            *p = Phase::Ready;
        }
        starting
    });
    if !became_ready {
        return; // draining already
    }
    tracing::info!(%addr, data = %started.data, cores = started.cores, workers = r.total, lanes = started.lanes, "fazt ready");
    systemd::ready(r);
    // Tests and scripts wait for this line instead of sleeping.
    println!("fazt ready on http://{addr}");
}

/// File descriptors the supervisor keeps for itself beyond client
/// connections: the database pool (each connection holds the database, its
/// WAL and shared-memory files), listeners, logs, and two per worker.
const RESERVED_FDS: u64 = 128;

/// The front door's connection settings. The connection cap stays below
/// what the open-files limit allows, so `accept` never runs out of file
/// descriptors: past the cap, connections wait in the listen queue.
fn listening(limits: &Limits, workers: usize) -> http::Listening {
    let c = &limits.capacity;
    let files = raise_open_files_limit();
    let room = files
        .saturating_sub(RESERVED_FDS + 2 * workers as u64)
        .max(16);
    let max_connections = c.max_connections.min(room);
    if max_connections < c.max_connections {
        tracing::warn!(
            capacity.max_connections = c.max_connections,
            open_files_limit = files,
            used = max_connections,
            "the open-files limit allows fewer connections than capacity.max_connections; raise LimitNOFILE"
        );
    }
    http::Listening {
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        timeouts: http::Timeouts {
            header: Duration::from_millis(c.header_timeout_ms),
            idle: Duration::from_millis(c.idle_timeout_ms),
            write: Duration::from_millis(c.write_timeout_ms),
        },
        drain: Duration::from_millis(c.timeout_ms),
    }
}

/// Raises the soft open-files limit to the hard one (the soft default of
/// 1024 is a relic of `select()`, which fazt does not use) and returns it.
fn raise_open_files_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    // rlim_t is u64 here but not on every target.
    #[allow(clippy::unnecessary_cast)]
    let files = lim.rlim_cur as u64;
    files
}

/// Passes reloads on to `reloads` (coalescing those that arrive while one
/// is pending) until the first stop.
async fn dispatch_signals(mut signals: mpsc::Receiver<Signal>, reloads: mpsc::Sender<()>) {
    loop {
        match signals.recv().await {
            Some(Signal::Reload) => {
                // Full means a reload is already waiting; one is enough.
                let _ = reloads.try_send(());
            }
            Some(Signal::Stop) | None => return,
        }
    }
}

/// Replaces the workers one at a time (`Pool::reload`) on each request,
/// telling systemd it reloads meanwhile and ready again when every worker
/// is up — never before, and never while still starting (the first ready
/// is [`announce_ready`]'s) or stopping.
async fn reload_on_request(
    pool: Arc<Pool>,
    phase: watch::Receiver<Phase>,
    mut requests: mpsc::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut readiness = pool.readiness();
    // Set after a reload while READY=1 is owed; a slot that stays missing
    // must not hold up the next reload, so this waits beside it.
    let mut owe_ready = false;
    loop {
        tokio::select! {
            got = requests.recv() => if got.is_none() { return },
            _ = stop.changed() => return,
            all = readiness.wait_for(|r| r.all()), if owe_ready => {
                owe_ready = false;
                if let (Ok(all), Phase::Ready) = (all.map(|r| *r), *phase.borrow()) {
                    systemd::ready(all);
                }
                continue;
            }
        }
        tracing::info!("reload: replacing the workers one at a time");
        systemd::reloading();
        let done = pool.reload().await;
        for failed in &done.failed {
            tracing::warn!(%failed, "reload: a worker was not replaced");
        }
        owe_ready = *phase.borrow() == Phase::Ready;
    }
}

/// Deletes expired kv entries once a minute; reads skip them anyway, this
/// only returns their space.
async fn purge_expired_kv(store: Store, stop: watch::Receiver<bool>) {
    fazt_shared::periodic::every(Duration::from_secs(60), stop, || {
        let store = store.clone();
        async move {
            let purged =
                tokio::task::spawn_blocking(move || kv::purge_expired(&*store.conn()?)).await;
            match purged {
                Ok(Ok(n)) if n > 0 => tracing::debug!(n, "expired kv entries purged"),
                Ok(Err(e)) => tracing::warn!(error = %e, "purging expired kv entries failed"),
                _ => {}
            }
        }
    })
    .await;
}

/// Installs the SIGTERM, SIGINT and SIGHUP handlers now and returns their
/// signals as a source for [`run`].
fn os_signals() -> Result<mpsc::Receiver<Signal>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let signal = tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: shutting down");
                    Signal::Stop
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: shutting down");
                    Signal::Stop
                }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    Signal::Reload
                }
            };
            if tx.send(signal).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}
