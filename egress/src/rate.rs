//! Step 7's rate limit (SPEC §7): a token bucket per app and allowlist
//! entry. The bucket belongs to the entry that allowed the host, not to
//! the host: an app cannot dodge `*.example.com`'s limit by inventing
//! subdomains, and the number of buckets is bounded by apps × entries.
//!
//! Buckets live in egress, so a worker crash leaves them as they are. An
//! egress that is a restart counts every bucket as drained at its start,
//! so a crash never hands out a fresh burst: a bucket made then holds only
//! what has trickled in since.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use fazt_shared::limits::Net;
use fazt_shared::net::AllowEntry;

use crate::refusal::Reason;

/// A rate in effect: requests per minute and the burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per minute, at least 1.
    pub per_minute: u64,
    /// Tokens a bucket holds at most, at least 1.
    pub burst: u64,
}

impl Rate {
    /// The entry's `--rate/--burst`, else `net.rate_limit/rate_burst`;
    /// `None` when the rate is 0 (off). A burst of 0 means 1.
    pub fn of(entry: &AllowEntry, limits: &Net) -> Option<Rate> {
        let per_minute = entry.settings.rate.unwrap_or(limits.rate_limit);
        if per_minute == 0 {
            return None;
        }
        let burst = entry.settings.burst.unwrap_or(limits.rate_burst).max(1);
        Some(Rate { per_minute, burst })
    }

    fn per_second(self) -> f64 {
        self.per_minute as f64 / 60.0
    }
}

/// Which bucket: the app, and the entry that allowed the call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    app_id: i64,
    entry_scope: Option<i64>,
    entry_pattern: String,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// The rate it last refilled at, to tell when it is full again.
    rate: Rate,
}

impl Bucket {
    /// Tokens now, refilled since `at` and capped at the (maybe changed)
    /// burst.
    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second()).min(rate.burst as f64);
        self.at = now;
        self.rate = rate;
    }

    /// Whether it has refilled to its burst by `now`: then it is what a
    /// new bucket would be, and can go.
    fn full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * self.rate.per_second() >= self.rate.burst as f64
    }
}

/// Every bucket.
pub struct RateLimits {
    buckets: Mutex<HashMap<Key, Bucket>>,
    /// When every bucket counts as empty: this egress's start when it is a
    /// restart, else never.
    drained_at: Option<Instant>,
}

impl RateLimits {
    /// Buckets for an egress started at `now`; `restarted` when an earlier
    /// egress ran before it.
    pub fn new(restarted: bool, now: Instant) -> RateLimits {
        RateLimits {
            buckets: Mutex::new(HashMap::new()),
            drained_at: restarted.then_some(now),
        }
    }

    /// Takes a token for app `app_id` under `entry`, or refuses with
    /// NET_RATE. No rate, no bucket.
    pub fn take(
        &self,
        app_id: i64,
        entry: &AllowEntry,
        limits: &Net,
        now: Instant,
    ) -> Result<(), Reason> {
        let Some(rate) = Rate::of(entry, limits) else {
            return Ok(());
        };
        let key = Key {
            app_id,
            entry_scope: entry.scope.app_id(),
            entry_pattern: entry.pattern.to_string(),
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets
            .entry(key)
            .or_insert_with(|| self.new_bucket(rate, now));
        bucket.refill(rate, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Reason::RateLimited {
                per_minute: rate.per_minute,
            })
        }
    }

    /// A bucket as it would be had it been drained at `drained_at`: full,
    /// or only what has refilled since.
    fn new_bucket(&self, rate: Rate, now: Instant) -> Bucket {
        let tokens = match self.drained_at {
            None => rate.burst as f64,
            Some(at) => {
                let since = now.saturating_duration_since(at).as_secs_f64();
                (since * rate.per_second()).min(rate.burst as f64)
            }
        };
        Bucket {
            tokens,
            at: now,
            rate,
        }
    }

    /// Drops the buckets that have refilled to their burst. A full bucket
    /// is what a new one would be (a bucket never holds more than has
    /// refilled since the drain), so this changes nothing but memory; run
    /// periodically, it keeps only the buckets in use.
    pub fn sweep(&self, now: Instant) {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, b| !b.full(now));
    }

    /// Buckets kept.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use fazt_shared::net::{DomainPattern, DomainSettings, Scope};
    use fazt_shared::{Limits, Probe};

    fn limits() -> Net {
        Limits::defaults(&Probe::fixed(1 << 30, 2)).net
    }

    fn entry(pattern: &str, rate: Option<u64>, burst: Option<u64>) -> AllowEntry {
        AllowEntry {
            scope: Scope::Global,
            pattern: DomainPattern::parse(pattern).expect("pattern"),
            allow_http: false,
            settings: DomainSettings {
                rate,
                burst,
                ..DomainSettings::default()
            },
            updated_at: 0,
        }
    }

    fn takes(r: &RateLimits, app: i64, e: &AllowEntry, n: usize, now: Instant) -> usize {
        (0..n)
            .filter(|_| r.take(app, e, &limits(), now).is_ok())
            .count()
    }

    #[test]
    fn a_burst_then_one_token_per_interval() {
        let t0 = Instant::now();
        let r = RateLimits::new(false, t0);
        let e = entry("api.example.com", Some(60), Some(3));
        assert_eq!(takes(&r, 1, &e, 10, t0), 3, "the burst");
        assert_eq!(
            r.take(1, &e, &limits(), t0),
            Err(Reason::RateLimited { per_minute: 60 })
        );
        assert_eq!(takes(&r, 1, &e, 10, t0 + Duration::from_millis(999)), 0);
        assert_eq!(takes(&r, 1, &e, 10, t0 + Duration::from_millis(1000)), 1);
        assert_eq!(
            takes(&r, 1, &e, 10, t0 + Duration::from_secs(60)),
            3,
            "never more than the burst, however long the wait"
        );
        assert_eq!(
            takes(&r, 2, &e, 10, t0),
            3,
            "another app has its own bucket"
        );
    }

    #[test]
    fn off_inherit_and_burst_zero() {
        let t0 = Instant::now();
        let r = RateLimits::new(false, t0);
        let off = entry("a.example.com", None, None);
        assert_eq!(
            takes(&r, 1, &off, 1000, t0),
            1000,
            "net.rate_limit 0 is off"
        );
        assert!(r.is_empty(), "no rate, no bucket");
        let mut defaults = limits();
        defaults.rate_limit = 30;
        defaults.rate_burst = 0;
        assert_eq!(
            Rate::of(&off, &defaults),
            Some(Rate {
                per_minute: 30,
                burst: 1
            }),
            "burst 0 with a rate is 1"
        );
        let own = entry("a.example.com", Some(120), Some(5));
        assert_eq!(
            Rate::of(&own, &defaults),
            Some(Rate {
                per_minute: 120,
                burst: 5
            }),
            "the entry's own rate wins"
        );
    }

    #[test]
    fn a_wildcard_is_one_bucket_whatever_the_subdomain() {
        let t0 = Instant::now();
        let r = RateLimits::new(false, t0);
        let e = entry("*.example.com", Some(60), Some(2));
        // The bucket is the entry's: different hosts under it share it.
        assert_eq!(takes(&r, 1, &e, 5, t0), 2);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_changed_rate_applies_to_the_bucket_at_once() {
        let t0 = Instant::now();
        let r = RateLimits::new(false, t0);
        let fast = entry("api.example.com", Some(600), Some(10));
        assert_eq!(takes(&r, 1, &fast, 5, t0), 5);
        let slow = entry("api.example.com", Some(60), Some(2));
        assert_eq!(
            takes(&r, 1, &slow, 10, t0),
            2,
            "the 5 tokens left are capped at the new burst"
        );
    }

    #[test]
    fn after_a_restart_buckets_start_drained() {
        let t0 = Instant::now();
        let r = RateLimits::new(true, t0);
        let e = entry("api.example.com", Some(60), Some(5));
        assert_eq!(takes(&r, 1, &e, 10, t0), 0, "no fresh burst at the restart");
        let r = RateLimits::new(true, t0);
        assert_eq!(
            takes(&r, 1, &e, 10, t0 + Duration::from_millis(2500)),
            2,
            "only what trickled in since"
        );
        let r = RateLimits::new(true, t0);
        assert_eq!(takes(&r, 1, &e, 10, t0 + Duration::from_secs(60)), 5);
    }

    #[test]
    fn full_buckets_are_swept_and_owed_ones_kept() {
        let t0 = Instant::now();
        let r = RateLimits::new(false, t0);
        let e = entry("api.example.com", Some(60), Some(2));
        for app in 0..1000 {
            assert!(r.take(app, &e, &limits(), t0).is_ok());
        }
        assert!(r.take(0, &e, &limits(), t0).is_ok());
        r.sweep(t0 + Duration::from_millis(500));
        assert_eq!(r.len(), 1000, "all are owed time");
        r.sweep(t0 + Duration::from_secs(1));
        assert_eq!(r.len(), 1, "only app 0's, two tokens short, is kept");
        r.sweep(t0 + Duration::from_secs(2));
        assert!(r.is_empty());
    }
}
