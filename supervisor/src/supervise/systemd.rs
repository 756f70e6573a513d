//! systemd (SPEC §2, §10): `Type=notify`. `READY=1` once every worker slot
//! has a live worker (the one definition of ready), `STATUS=` with workers
//! ready/total and requests per second, `WATCHDOG=1` when the unit asks for
//! a watchdog and the front door's accept loop has beaten its [`Pulse`]
//! lately (so a stalled loop stops the pings and systemd restarts fazt),
//! `STOPPING=1` at SIGTERM.
//! Without `NOTIFY_SOCKET` every call is a no-op.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::pool::Readiness;
use crate::pulse::Pulse;

/// How often `STATUS=` is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(2);

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "telling systemd failed");
    }
}

/// The status line systemd shows.
pub fn status_line(readiness: Readiness, per_second: f64) -> String {
    format!(
        "workers {}/{} ready, {per_second:.0} req/s",
        readiness.ready, readiness.total
    )
}

/// Every worker is up: `READY=1`.
pub fn ready(readiness: Readiness) {
    let status = status_line(readiness, 0.0);
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// SIGHUP: `RELOADING=1` (with the monotonic time newer systemd wants);
/// [`ready`] follows when done.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// SIGTERM: `STOPPING=1`.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// The unit's watchdog interval (`WATCHDOG_USEC`), when it has one.
pub fn watchdog() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// How often the main loop must beat its [`Pulse`] for `watchdog`.
pub fn pulse_every(watchdog: Option<Duration>) -> Duration {
    watchdog.map_or(Duration::from_secs(1), |w| {
        (w / 8).clamp(Duration::from_millis(10), Duration::from_secs(1))
    })
}

/// Whether the watchdog may be pinged: the main loop beat within half
/// the interval. A stalled loop gets no ping, and systemd restarts fazt.
fn loop_alive(pulse_age: Duration, watchdog: Duration) -> bool {
    pulse_age <= watchdog / 2
}

/// Keeps `STATUS=` current and, when the unit has `WatchdogSec=`, sends
/// `WATCHDOG=1` at half the interval while the main loop's `pulse` is
/// fresh, until `stop` turns true.
pub async fn keep_informed(
    readiness: watch::Receiver<Readiness>,
    requests: Arc<AtomicU64>,
    pulse: Arc<Pulse>,
    stop: watch::Receiver<bool>,
) {
    let watchdog = watchdog();
    if let Some(period) = watchdog {
        tracing::info!(?period, "systemd watchdog on");
    }
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
    let mut last = (Instant::now(), requests.load(Ordering::Relaxed));
    let mut stalled = false;
    fazt_shared::periodic::every(every, stop, move || {
        let now = Instant::now();
        let count = requests.load(Ordering::Relaxed);
        let secs = now.duration_since(last.0).as_secs_f64().max(0.001);
        let rate = count.saturating_sub(last.1) as f64 / secs;
        last = (now, count);
        let status = status_line(*readiness.borrow(), rate);
        match watchdog {
            Some(w) if loop_alive(pulse.age(), w) => {
                stalled = false;
                send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
            }
            Some(_) => {
                if !stalled {
                    tracing::error!(age = ?pulse.age(), "the front door's loop is stalled; not pinging the watchdog");
                }
                stalled = true;
                send(&[NotifyState::Status("stalled")]);
            }
            None => send(&[NotifyState::Status(&status)]),
        }
        std::future::ready(())
    })
    .await;
}

/// The unit file for this executable and data dir (SPEC §10).
pub fn unit(exe: &str, data: &str, user: bool) -> String {
    let mut out = String::new();
    out.push_str(
        "# fazt under systemd: Type=notify (READY=1 once every worker is up),\n\
         # a watchdog the supervisor pings, restart on any exit, and the\n\
         # hardening a small server wants. Written by `fazt service install`.\n\
         [Unit]\n\
         Description=fazt app platform\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n",
    );
    out.push_str(&format!("ExecStart={exe} --data-dir {data} supervise\n"));
    out.push_str(
        "ExecReload=/bin/kill -HUP $MAINPID\n\
         Restart=always\n\
         RestartSec=1\n\
         TimeoutStartSec=90\n\
         TimeoutStopSec=45\n\
         WatchdogSec=30\n\
         # SIGTERM to the supervisor only; it stops its children itself.\n\
         KillMode=mixed\n\
         # One app's runaway worker is the supervisor's to handle, not a\n\
         # reason to stop the whole service.\n\
         OOMPolicy=continue\n\
         LimitNOFILE=65536\n\
         NoNewPrivileges=yes\n\
         ProtectSystem=strict\n\
         ProtectHome=read-only\n\
         PrivateTmp=yes\n\
         PrivateDevices=yes\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectControlGroups=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         RestrictNamespaces=yes\n\
         SystemCallArchitectures=native\n",
    );
    out.push_str(&format!("ReadWritePaths={data}\n"));
    out.push_str("\n[Install]\n");
    out.push_str(if user {
        "WantedBy=default.target\n"
    } else {
        "WantedBy=multi-user.target\n"
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_pinged_only_while_the_loop_beats_often_enough() {
        for w in [400, 30_000].map(Duration::from_millis) {
            let every = pulse_every(Some(w));
            // A loop that beats on time is always alive at a ping...
            assert!(loop_alive(every, w), "{w:?}");
            // ...and one stuck for half the interval is not.
            assert!(!loop_alive(w / 2 + Duration::from_millis(1), w), "{w:?}");
        }
        assert_eq!(pulse_every(None), Duration::from_secs(1));
    }

    /// The unit in `ops/systemd/` is this generator's output for the usual
    /// paths; `FAZT_BLESS=1` rewrites it.
    #[test]
    fn ops_systemd_unit_matches_the_generator() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/systemd/fazt.service");
        let want = unit("/usr/local/bin/fazt", "/var/lib/fazt", false);
        if std::env::var_os("FAZT_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &want).expect("write");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            have, want,
            "ops/systemd/fazt.service is out of date; run with FAZT_BLESS=1"
        );
    }

    #[test]
    fn the_status_line_says_workers_and_rate() {
        let r = Readiness { ready: 1, total: 2 };
        assert_eq!(status_line(r, 12.4), "workers 1/2 ready, 12 req/s");
    }
}
