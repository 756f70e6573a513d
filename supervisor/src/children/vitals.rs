//! What every child's status row shows whatever its role: state, pid,
//! uptime, restarts, the last exit, the time until a retry, CPU and RSS.
//! Each role keeps one `Vitals` per slot behind its own lock and adds its
//! own counters to the row.

use std::time::{Duration, Instant};

use fazt_ipc::msg::{ChildKind, ChildState, ChildStatus};

use super::Exit;

/// One slot's life, as `fazt workers status` shows it.
#[derive(Debug)]
pub struct Vitals {
    state: ChildState,
    pid: Option<u32>,
    ready_since: Option<Instant>,
    restarts: u64,
    last_exit: Option<Exit>,
    /// When the next incarnation starts, while in backoff.
    retry_at: Option<Instant>,
    cpu_percent: Option<f32>,
    rss_bytes: Option<u64>,
}

impl Default for Vitals {
    fn default() -> Vitals {
        Vitals {
            state: ChildState::Starting,
            pid: None,
            ready_since: None,
            restarts: 0,
            last_exit: None,
            retry_at: None,
            cpu_percent: None,
            rss_bytes: None,
        }
    }
}

impl Vitals {
    /// Starting (`pid` once spawned) or stopped for good.
    pub fn set(&mut self, state: ChildState, pid: Option<u32>) {
        self.state = state;
        self.pid = pid;
        self.retry_at = None;
        if pid.is_none() {
            self.cpu_percent = None;
            self.rss_bytes = None;
        }
    }

    /// The incarnation `pid` is ready.
    pub fn live(&mut self, pid: u32) {
        self.state = ChildState::Ready;
        self.pid = Some(pid);
        self.ready_since = Some(Instant::now());
        self.retry_at = None;
        self.cpu_percent = None;
        self.rss_bytes = None;
    }

    /// The incarnation ended; a restart counts unless the supervisor stops.
    pub fn ended(&mut self, exit: &Exit, restarting: bool) {
        self.state = ChildState::Backoff;
        self.ready_since = None;
        self.last_exit = Some(exit.clone());
        if restarting {
            self.restarts += 1;
        }
        self.cpu_percent = None;
        self.rss_bytes = None;
    }

    /// The next incarnation starts after `delay`.
    pub fn backing_off(&mut self, delay: Duration) {
        self.retry_at = Some(Instant::now() + delay);
    }

    /// A CPU/RSS sample, kept when it is of the current pid.
    pub fn sample(&mut self, pid: u32, cpu_percent: f32, rss_bytes: u64) {
        if self.pid == Some(pid) {
            self.cpu_percent = Some(cpu_percent);
            self.rss_bytes = Some(rss_bytes);
        }
    }

    /// The current pid.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// How long the current incarnation has been ready.
    pub fn ready_for(&self) -> Option<Duration> {
        self.ready_since.map(|t| t.elapsed())
    }

    /// The row, with the role's own counters left at zero for it to fill;
    /// `busy` turns a ready state into busy.
    pub fn row(&self, kind: ChildKind, slot: u32, busy: bool) -> ChildStatus {
        let state = match self.state {
            ChildState::Ready if busy => ChildState::Busy,
            s => s,
        };
        ChildStatus {
            kind,
            slot,
            pid: self.pid,
            state,
            uptime_ms: self.ready_since.map(|t| t.elapsed().as_millis() as u64),
            restarts: self.restarts,
            last_exit: self.last_exit.as_ref().map(ToString::to_string),
            retry_in_ms: self
                .retry_at
                .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64),
            cpu_percent: self.cpu_percent,
            rss_bytes: self.rss_bytes,
            js_heap_bytes: 0,
            lanes_busy: 0,
            lanes_total: 0,
            served: 0,
            p50_us: 0,
            p99_us: 0,
            note: None,
        }
    }
}
