//! The network log flusher (SPEC §8): egress sends one row per fetch; the
//! flusher holds them and writes batches to SQLite every `net.log_flush_ms`
//! or as soon as `net.log_buffer` rows wait. Error rows are written at
//! once and never dropped for room; they have their own bound (10 ×
//! `net.log_buffer` waiting) so a stalled database cannot exhaust memory.
//! What cannot be kept — success rows past a full buffer, error rows past
//! their bound, batches that failed twice — is counted per app and domain
//! and written too, for `fazt net stats`. Rows beyond
//! `storage.max_log_rows` are pruned oldest first. Rows live in the
//! supervisor, so an egress crash loses none that were handed over; a stop
//! flushes them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fazt_shared::net::NetLogRow;
use fazt_shared::store::net_log::{self, Drops};
use fazt_shared::{Limits, Store, StoreError};
use tokio::sync::{watch, Notify};

/// How many error rows may wait, per row of `net.log_buffer`.
const ERROR_ROOM: usize = 10;

/// Domains counted apart in the drop counts at most; beyond, they are
/// counted as `(other)` (JS chooses domains, even refused ones).
const MAX_DROP_KEYS: usize = 1000;

/// How long a failed batch waits before its one retry.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// What the flusher does with rows.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Success rows that may wait (`net.log_buffer`).
    pub buffer: usize,
    /// How often waiting rows are written (`net.log_flush_ms`).
    pub every: Duration,
    /// Rows kept in the table (`storage.max_log_rows`).
    pub keep: u64,
}

impl Config {
    /// From the limits.
    pub fn from_limits(limits: &Limits) -> Config {
        Config {
            buffer: usize::try_from(limits.net.log_buffer).unwrap_or(usize::MAX),
            every: Duration::from_millis(limits.net.log_flush_ms),
            keep: limits.storage.max_log_rows,
        }
    }
}

#[derive(Default)]
struct Waiting {
    success: Vec<NetLogRow>,
    errors: Vec<NetLogRow>,
    drops: HashMap<(i64, String), Drops>,
}

impl Waiting {
    fn is_empty(&self) -> bool {
        self.success.is_empty() && self.errors.is_empty() && self.drops.is_empty()
    }
}

/// The flusher: rows in, batches out.
pub struct NetLog {
    config: Config,
    store: Store,
    waiting: Mutex<Waiting>,
    wake: Notify,
}

impl NetLog {
    /// The flusher, and its task writing until `stop` turns true (then it
    /// writes what waits and ends).
    pub fn start(
        store: Store,
        config: Config,
        stop: watch::Receiver<bool>,
    ) -> (Arc<NetLog>, tokio::task::JoinHandle<()>) {
        let log = Arc::new(NetLog {
            config,
            store,
            waiting: Mutex::new(Waiting::default()),
            wake: Notify::new(),
        });
        let task = tokio::spawn(log.clone().run(stop));
        (log, task)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one row from egress.
    pub fn accept(&self, row: NetLogRow) {
        let mut w = self.lock();
        let wake = if row.is_error() {
            if w.errors.len() >= self.config.buffer.saturating_mul(ERROR_ROOM) {
                count(&mut w.drops, &row).errors_dropped += 1;
            } else {
                w.errors.push(row);
            }
            true
        } else if w.success.len() >= self.config.buffer {
            count(&mut w.drops, &row).dropped += 1;
            false
        } else {
            w.success.push(row);
            w.success.len() >= self.config.buffer
        };
        drop(w);
        if wake {
            self.wake.notify_one();
        }
    }

    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.config.every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.wake.notified() => {}
                _ = stop.changed() => {
                    self.flush().await;
                    return;
                }
            }
            self.flush().await;
        }
    }

    /// Writes everything waiting now: one batch, retried once, then
    /// counted as lost; then the counts; then the prune.
    pub async fn flush(&self) {
        let mut batch = {
            let mut w = self.lock();
            if w.is_empty() {
                return;
            }
            std::mem::take(&mut *w)
        };
        let mut rows = std::mem::take(&mut batch.errors);
        rows.append(&mut batch.success);
        if !rows.is_empty() {
            // Shared with the writing task, not copied: kept for the retry
            // and for counting what was lost.
            let rows = Arc::new(rows);
            let mut written = self.write(rows.clone()).await;
            if let Err(e) = &written {
                tracing::warn!(error = %e, rows = rows.len(), "net log batch failed; retrying once");
                tokio::time::sleep(RETRY_AFTER).await;
                written = self.write(rows.clone()).await;
            }
            if let Err(e) = written {
                tracing::error!(error = %e, rows = rows.len(), "net log batch lost");
                for row in rows.iter() {
                    count(&mut batch.drops, row).lost += 1;
                }
            }
        }
        if !batch.drops.is_empty() {
            let drops: Vec<(i64, String, Drops)> = batch
                .drops
                .into_iter()
                .map(|((app, domain), d)| (app, domain, d))
                .collect();
            let store = self.store.clone();
            let kept = drops.clone();
            let saved = tokio::task::spawn_blocking(move || {
                net_log::add_drops(&mut *store.conn()?, &drops)
            })
            .await;
            if !matches!(saved, Ok(Ok(()))) {
                // Kept for the next flush: the counts matter most when the
                // database is failing.
                tracing::error!("net log drop counts could not be written; keeping them");
                let mut w = self.lock();
                for (app, domain, d) in kept {
                    let c = w.drops.entry((app, domain)).or_default();
                    c.dropped += d.dropped;
                    c.errors_dropped += d.errors_dropped;
                    c.lost += d.lost;
                }
            }
        }
        let (store, keep) = (self.store.clone(), self.config.keep);
        let _ = tokio::task::spawn_blocking(move || net_log::prune(&*store.conn()?, keep)).await;
    }

    async fn write(&self, rows: Arc<Vec<NetLogRow>>) -> Result<(), StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || net_log::insert(&mut *store.conn()?, &rows))
            .await
            .map_err(|_| StoreError::TaskFailed)?
    }
}

fn count<'a>(drops: &'a mut HashMap<(i64, String), Drops>, row: &NetLogRow) -> &'a mut Drops {
    let key = (row.app_id, row.domain.clone());
    let key = if drops.len() >= MAX_DROP_KEYS && !drops.contains_key(&key) {
        (row.app_id, "(other)".to_string())
    } else {
        key
    };
    drops.entry(key).or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fazt_shared::store::net_log::Filter;
    use fazt_shared::{DataDir, ErrorCode};

    fn row(domain: &str, code: Option<ErrorCode>) -> NetLogRow {
        NetLogRow {
            app_id: 1,
            domain: domain.into(),
            method: "GET".into(),
            path: "/".into(),
            status: code.is_none().then_some(200),
            error_code: code,
            cache_hit: false,
            duration_ms: 1,
            request_bytes: 0,
            response_bytes: 0,
            created_at: 0,
        }
    }

    fn rows(store: &Store, errors: bool) -> usize {
        net_log::logs(
            &store.conn().expect("conn"),
            &Filter {
                errors,
                limit: 1_000_000,
                ..Filter::default()
            },
        )
        .expect("logs")
        .len()
    }

    #[tokio::test]
    async fn errors_go_at_once_a_full_buffer_drops_and_counts_and_a_stop_flushes() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&DataDir::new(dir.path()), 2).expect("store");
        let (stop_tx, stop) = watch::channel(false);
        let config = Config {
            buffer: 100,
            every: Duration::from_secs(3600),
            keep: 1_000_000,
        };
        let (log, task) = NetLog::start(store.clone(), config, stop);
        for _ in 0..50 {
            log.accept(row("a.example.com", None));
        }
        log.accept(row("a.example.com", Some(ErrorCode::NetBlocked)));
        let written = async {
            while rows(&store, true) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), written)
            .await
            .expect("the error row was written at once, long before the interval");
        // The 50 success rows went with it; now overfill the buffer.
        for _ in 0..250 {
            log.accept(row("a.example.com", None));
        }
        for _ in 0..20 {
            log.accept(row("a.example.com", Some(ErrorCode::NetTimeout)));
        }
        stop_tx.send_replace(true);
        task.await.expect("task");
        let errors = rows(&store, true);
        assert_eq!(errors, 21, "every error row is kept");
        let all = rows(&store, false);
        let stats = net_log::stats(&store.conn().expect("conn"), None).expect("stats");
        let dropped = stats[0].dropped.dropped;
        assert_eq!(
            all as u64 + dropped,
            50 + 250 + 21,
            "every row is written or counted"
        );
        assert!(dropped > 0, "the buffer overflowed");
    }

    #[tokio::test]
    async fn error_rows_have_their_own_bound() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&DataDir::new(dir.path()), 2).expect("store");
        let (_stop_tx, stop) = watch::channel(false);
        let log = NetLog {
            config: Config {
                buffer: 2,
                every: Duration::from_secs(3600),
                keep: 1_000_000,
            },
            store,
            waiting: Mutex::new(Waiting::default()),
            wake: Notify::new(),
        };
        drop(stop);
        for _ in 0..25 {
            log.accept(row("a.example.com", Some(ErrorCode::NetError)));
        }
        let w = log.lock();
        assert_eq!(w.errors.len(), 20, "10 x the buffer wait");
        assert_eq!(
            w.drops
                .get(&(1, "a.example.com".to_string()))
                .map(|d| d.errors_dropped),
            Some(5)
        );
    }
}
