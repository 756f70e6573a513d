//! Apps' console output into the supervisor's log (SPEC §3, §5): each line
//! escaped (`log_text`), so a line break or an escape sequence in app output
//! can never forge a log line of its own, and each app bounded to `runtime.log_rate`
//! bytes per second (a token bucket holding one second's worth). Lines
//! beyond are dropped and counted; the count is logged before the app's
//! next line, or within a second when the app falls silent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fazt_ipc::msg::{LogLevel, LogRecord};

/// Apps tracked at most; idle ones are forgotten beyond it.
const MAX_APPS: usize = 10_000;
/// A bucket unused this long is full again and may be forgotten.
const IDLE: Duration = Duration::from_secs(10);

/// The log gate of all apps.
pub struct AppLog {
    rate: f64,
    apps: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    dropped: u64,
}

impl AppLog {
    /// A gate letting each app write `rate` bytes per second.
    pub fn new(rate: u64) -> AppLog {
        AppLog {
            rate: rate.max(1) as f64,
            apps: Mutex::new(HashMap::new()),
        }
    }

    /// Writes one line of worker `slot`, or counts it as dropped.
    pub fn write(&self, slot: u32, r: &LogRecord) {
        match self.admit(&r.app, r.message.len(), Instant::now()) {
            Admit::Drop => {}
            Admit::Write { dropped_before } => {
                if dropped_before > 0 {
                    report_dropped(&r.app, dropped_before);
                }
                let message = crate::log_text::escape(&r.message);
                match r.level {
                    LogLevel::Info => {
                        tracing::info!(app = %r.app, slot, request_id = %r.request_id, "js: {message}")
                    }
                    LogLevel::Warn => {
                        tracing::warn!(app = %r.app, slot, request_id = %r.request_id, "js: {message}")
                    }
                    LogLevel::Error => {
                        tracing::error!(app = %r.app, slot, request_id = %r.request_id, "js: {message}")
                    }
                }
            }
        }
    }

    /// Logs the drop counts of apps that fell silent, and forgets buckets
    /// idle long enough to be full again.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut apps = self.lock();
        for (app, b) in apps.iter_mut() {
            if b.dropped > 0 {
                report_dropped(app, b.dropped);
                b.dropped = 0;
            }
        }
        apps.retain(|_, b| now.duration_since(b.at) < IDLE);
    }

    fn admit(&self, app: &str, bytes: usize, now: Instant) -> Admit {
        let mut apps = self.lock();
        if apps.len() >= MAX_APPS && !apps.contains_key(app) {
            apps.retain(|_, b| now.duration_since(b.at) < IDLE);
        }
        let b = apps.entry(app.to_string()).or_insert(Bucket {
            tokens: self.rate,
            at: now,
            dropped: 0,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.rate);
        b.at = now;
        // A line costs at least a little, so empty lines are bounded too,
        // and at most what the bucket holds, so a long line can pass too.
        let cost = (bytes.max(16) as f64).min(self.rate);
        if b.tokens < cost {
            b.dropped += 1;
            return Admit::Drop;
        }
        b.tokens -= cost;
        Admit::Write {
            dropped_before: std::mem::take(&mut b.dropped),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bucket>> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Write { dropped_before: u64 },
    Drop,
}

fn report_dropped(app: &str, n: u64) {
    tracing::warn!(
        app,
        dropped = n,
        "js: {n} log lines dropped (over runtime.log_rate)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_app_gets_its_rate_and_drops_are_counted() {
        let log = AppLog::new(1000);
        let t0 = Instant::now();
        let mut written = 0;
        for _ in 0..20 {
            if log.admit("noisy", 100, t0) != Admit::Drop {
                written += 1;
            }
        }
        assert_eq!(written, 10, "one second's worth");
        // Another app is not affected.
        assert_eq!(
            log.admit("quiet", 100, t0),
            Admit::Write { dropped_before: 0 }
        );
        // Half a second later, half a second's worth, and the count of drops.
        let later = t0 + Duration::from_millis(500);
        assert_eq!(
            log.admit("noisy", 100, later),
            Admit::Write { dropped_before: 10 }
        );
        assert_eq!(
            log.admit("noisy", 100, later),
            Admit::Write { dropped_before: 0 }
        );
    }
}
