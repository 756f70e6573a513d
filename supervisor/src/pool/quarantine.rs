//! Apps that crash workers (SPEC §2): an app whose running requests were
//! lost to [`STRIKES`] worker crashes within [`WINDOW`] is quarantined. Its
//! requests get 503 `APP_QUARANTINED` (retryable, `Retry-After` the time
//! left) instead of crashing the pool for everyone. The period doubles
//! with each quarantine, from [`FIRST`] to [`LONGEST`], and starts over
//! after [`FORGIVE`] without a crash.
//!
//! A crash is blamed on the apps with a request running on the worker when
//! it died, shared among them (the worker cannot say which one did it): a
//! crash with one app running counts 1 for it, one with two apps ½ for
//! each. A request of an app that is answered clears the app's blame: the
//! worker survived it, so the app is not what kills workers. The crasher
//! never gets an answer and is quarantined; a busy app that happened to
//! run beside every crash is cleared by its answers in between.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fazt_ipc::msg::QuarantinedApp;

/// Crashes within [`WINDOW`] that quarantine an app.
pub const STRIKES: usize = 3;
/// The window crashes are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The first quarantine.
pub const FIRST: Duration = Duration::from_secs(10);
/// The longest quarantine.
pub const LONGEST: Duration = Duration::from_secs(600);
/// Quiet this long, an app's next quarantine is [`FIRST`] again.
pub const FORGIVE: Duration = Duration::from_secs(600);
/// Apps tracked at most; forgiven ones are dropped beyond it.
const MAX_APPS: usize = 10_000;

struct Record {
    name: String,
    last_crash: Instant,
    /// When, and how much of each crash was blamed on this app.
    crashes: VecDeque<(Instant, f64)>,
    until: Option<Instant>,
    next_period: Duration,
}

/// The quarantine of all apps.
#[derive(Default)]
pub struct Quarantine {
    apps: Mutex<HashMap<i64, Record>>,
}

impl Quarantine {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Record>> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker died while running requests of the `suspects`; the apps it
    /// puts in quarantine, with the period.
    pub fn crashed(&self, suspects: &[(i64, &str)], now: Instant) -> Vec<(String, Duration)> {
        let share = 1.0 / suspects.len().max(1) as f64;
        suspects
            .iter()
            .filter_map(|(id, name)| {
                self.blame(*id, name, share, now)
                    .map(|period| (name.to_string(), period))
            })
            .collect()
    }

    /// Blames `share` of a crash on app `id`; the period of a quarantine
    /// this starts, if it does.
    fn blame(&self, id: i64, name: &str, share: f64, now: Instant) -> Option<Duration> {
        let mut apps = self.lock();
        if apps.len() >= MAX_APPS && !apps.contains_key(&id) {
            apps.retain(|_, r| now.duration_since(r.last_crash) < FORGIVE);
        }
        let r = apps.entry(id).or_insert_with(|| Record {
            name: name.to_string(),
            last_crash: now,
            crashes: VecDeque::new(),
            until: None,
            next_period: FIRST,
        });
        // Quiet time counts from the end of the last quarantine too: an app
        // cannot crash anything while it is in one.
        let quiet_since = r.until.map_or(r.last_crash, |u| u.max(r.last_crash));
        if now.saturating_duration_since(quiet_since) >= FORGIVE {
            r.next_period = FIRST;
        }
        r.last_crash = now;
        r.crashes.push_back((now, share));
        while r
            .crashes
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            r.crashes.pop_front();
        }
        let blamed: f64 = r.crashes.iter().map(|(_, s)| s).sum();
        // A small tolerance: three thirds make a whole crash.
        if blamed + 1e-9 < STRIKES as f64 || r.until.is_some_and(|u| u > now) {
            return None;
        }
        let period = r.next_period;
        r.until = Some(now + period);
        r.next_period = (period * 2).min(LONGEST);
        r.crashes.clear();
        tracing::warn!(app = %r.name, ?period, "app quarantined: its requests crashed workers {STRIKES} times within {WINDOW:?}");
        Some(period)
    }

    /// A request of app `id` was answered: the worker survived it, so the
    /// crashes it was blamed for were not its doing.
    pub fn completed(&self, id: i64) {
        let mut apps = self.lock();
        if let Some(r) = apps.get_mut(&id) {
            r.crashes.clear();
        }
    }

    /// How long app `id` stays quarantined, if it is.
    pub fn left(&self, id: i64, now: Instant) -> Option<Duration> {
        self.lock()
            .get(&id)
            .and_then(|r| r.until)
            .filter(|u| *u > now)
            .map(|u| u - now)
    }

    /// The apps quarantined now.
    pub fn list(&self, now: Instant) -> Vec<QuarantinedApp> {
        let mut out: Vec<QuarantinedApp> = self
            .lock()
            .iter()
            .filter_map(|(id, r)| {
                let left = r.until.filter(|u| *u > now)? - now;
                Some(QuarantinedApp {
                    id: *id,
                    name: r.name.clone(),
                    left_ms: left.as_millis() as u64,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_crashes_in_a_minute_quarantine_and_the_period_doubles() {
        let q = Quarantine::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let alone = |q: &Quarantine, id: i64, name: &str, t| {
            q.crashed(&[(id, name)], t)
                .into_iter()
                .next()
                .map(|(_, p)| p)
        };
        assert_eq!(alone(&q, 1, "boom", at(0)), None);
        assert_eq!(alone(&q, 1, "boom", at(10)), None);
        // Crashes more than a minute apart do not add up.
        assert_eq!(alone(&q, 2, "slow", at(0)), None);
        assert_eq!(alone(&q, 2, "slow", at(61)), None);
        assert_eq!(alone(&q, 2, "slow", at(122)), None);
        assert_eq!(alone(&q, 1, "boom", at(20)), Some(FIRST));
        assert_eq!(q.left(1, at(25)), Some(Duration::from_secs(5)));
        assert_eq!(
            q.list(at(25))
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>(),
            ["boom"]
        );
        assert_eq!(q.left(1, at(31)), None, "over");
        // Three more: twice as long.
        for s in [40, 41] {
            assert_eq!(alone(&q, 1, "boom", at(s)), None);
        }
        assert_eq!(alone(&q, 1, "boom", at(42)), Some(FIRST * 2));
        // After a long quiet spell, back to the first period.
        for s in [2000, 2001] {
            assert_eq!(alone(&q, 1, "boom", at(s)), None);
        }
        assert_eq!(alone(&q, 1, "boom", at(2002)), Some(FIRST));
    }

    #[test]
    fn an_app_running_beside_the_crasher_shares_the_blame_and_stays_out() {
        let q = Quarantine::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Two crashes with both apps running, two with the crasher alone.
        assert!(q.crashed(&[(1, "boom"), (2, "a")], at(0)).is_empty());
        assert!(q.crashed(&[(1, "boom")], at(1)).is_empty());
        assert!(q.crashed(&[(1, "boom")], at(2)).is_empty());
        let put = q.crashed(&[(1, "boom"), (2, "a")], at(3));
        assert_eq!(put, [("boom".to_string(), FIRST)], "only the crasher");
        assert!(q.left(2, at(4)).is_none());
    }

    #[test]
    fn a_persistent_crasher_stays_at_the_longest_period() {
        let q = Quarantine::default();
        let mut t = Instant::now();
        let mut periods = Vec::new();
        // Each time its quarantine ends, it crashes three times at once.
        for _ in 0..9 {
            let mut put = Vec::new();
            for _ in 0..STRIKES {
                put = q.crashed(&[(1, "boom")], t);
            }
            let period = put.first().map(|(_, p)| *p).expect("quarantined");
            periods.push(period.as_secs());
            t += period;
        }
        assert_eq!(periods, [10, 20, 40, 80, 160, 320, 600, 600, 600]);
    }

    #[test]
    fn a_busy_app_beside_every_crash_is_cleared_by_its_answers() {
        let q = Quarantine::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // The crasher never answers; the busy app beside it answers between
        // crashes, and is in every one of them.
        let mut put = Vec::new();
        for s in 0..6 {
            put.extend(q.crashed(&[(1, "boom"), (2, "busy")], at(s)));
            q.completed(2);
        }
        assert_eq!(put, [("boom".to_string(), FIRST)], "only the crasher");
        assert!(q.left(2, at(7)).is_none());
    }
}
