//! Child processes, whatever their role (SPEC §2, "Supervision"): workers
//! today, egress next. What every child shares lives here, once:
//!
//! - [`Spawner`]: the same executable re-executed from one long-lived
//!   thread, with `PR_SET_PDEATHSIG` and a parent re-check.
//! - [`Rendezvous`]: where a spawned child and the connection it opens back
//!   to the supervisor meet, by pid.
//! - [`Vitals`]: what every child's status row shows; [`sampler`] adds
//!   CPU and RSS; [`Roster`] lists every role's rows.
//! - [`Hub`]: the spawner, the children's socket and the start sequence
//!   (launch, configure, ready) every role shares.
//! - [`Exit`]: why an incarnation ended, typed; its `Display` is what
//!   `fazt workers status` shows as LAST EXIT.
//! - [`Backoff`]: restart delays, 100 ms doubling to 30 s, reset after 30 s
//!   of healthy running.
//! - [`Heartbeat`]: liveness of a connected child.
//! - [`keep_alive`]: the one restart loop; a role implements [`Role`] to
//!   say how one incarnation runs and what its slot shows.

mod backoff;
mod exit;
pub mod heartbeat;
mod hub;
mod rendezvous;
mod roster;
pub mod sampler;
mod spawn;
mod vitals;

use std::future::Future;
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::watch;

pub use backoff::Backoff;
pub use exit::Exit;
pub use heartbeat::{Beat, Heartbeat};
pub use hub::{Hub, Launched};
pub use rendezvous::Rendezvous;
pub use roster::{Reported, Roster};
pub use spawn::Spawner;
pub use vitals::Vitals;

/// One child role's side of [`keep_alive`].
pub trait Role {
    /// A started, ready incarnation, handed from the one it replaces to
    /// the loop (a reload).
    type Started: Send;

    /// Runs one incarnation to its end: the `adopt`ed one, else a new one.
    /// When a reload replaced it, returns the next incarnation, already
    /// ready, to run at once.
    fn run_once(
        &self,
        adopt: Option<Self::Started>,
        stop: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = (Exit, Option<Self::Started>)> + Send;
    /// The incarnation ended; `restarting` unless the supervisor stops.
    /// Returns how many requests or jobs it took down, for the log line.
    fn ended(&self, exit: &Exit, restarting: bool) -> usize;
    /// How long the incarnation that just ended was ready, if it was.
    fn was_ready_for(&self) -> Option<Duration>;
    /// The next incarnation starts after `delay`.
    fn backing_off(&self, delay: Duration);
    /// No incarnation will follow.
    fn stopped(&self);
    /// Who this is, for log lines (`worker 2`).
    fn describe(&self) -> String;
}

/// Keeps `role` running until `stop` turns true: each incarnation that ends
/// is followed by another after the [`Backoff`] delay; one replaced by a
/// reload is followed by its replacement at once.
pub async fn keep_alive<R: Role>(role: &R, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::default();
    let mut next: Option<R::Started> = None;
    // A replacement that is ready runs even when the stop came meanwhile:
    // it takes the slot and then drains like any other incarnation.
    while next.is_some() || !*stop.borrow() {
        let (exit, replacement) = role.run_once(next.take(), &mut stop).await;
        if replacement.is_some() {
            next = replacement;
            continue;
        }
        // Health is time spent ready, not time spent failing to start.
        let ready_for = role.was_ready_for();
        if *stop.borrow() {
            role.ended(&exit, false);
            break;
        }
        let lost = role.ended(&exit, true);
        let delay = backoff.next(ready_for);
        tracing::warn!(child = %role.describe(), %exit, lost, ?delay, "child exited; restarting");
        role.backing_off(delay);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => {}
        }
    }
    role.stopped();
}

/// How long an exited child may take to be reaped before it is killed.
const REAP_WITHIN: Duration = Duration::from_secs(15);

/// Waits for `child` to exit (killing it when it takes longer than
/// [`REAP_WITHIN`]) and says how it ended. Always reaps: no zombie is left.
pub async fn reap(child: &mut Child) -> Exit {
    let status = match tokio::time::timeout(REAP_WITHIN, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    Exit::from_status(status)
}

/// How long a child whose connection broke may take to show it exited.
const EXITED_WITHIN: Duration = Duration::from_millis(500);

/// A child's connection broke: when the child exited meanwhile, its exit
/// status is the reason (a kill mid-frame looks like a broken frame);
/// otherwise it is killed and the break is the reason.
pub async fn broken_connection(child: &mut Child, error: impl std::fmt::Display) -> Option<Exit> {
    if tokio::time::timeout(EXITED_WITHIN, child.wait())
        .await
        .is_ok()
    {
        return None;
    }
    let _ = child.start_kill();
    Some(Exit::Protocol(error.to_string()))
}

/// Sleeps until `at`, or forever without one: a deadline a `select!` arm
/// waits on only once it is set.
pub async fn sleep_until_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
