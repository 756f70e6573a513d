//! Steps 5 and 7 of SPEC §6 as state: what each request has spent (calls,
//! network time), kept until its deadline passes, and the concurrency
//! slots — per app and in total — taken with `try_acquire`, so a full
//! limit refuses at once and two calls can never both take the last slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::decide::Spent;
use crate::refusal::Reason;

/// Requests tracked at most; beyond it the ones past their deadline go,
/// then the oldest.
const MAX_REQUESTS: usize = 100_000;

/// One request's key: the app and its request id.
type Key = (i64, String);

/// What every request in flight has spent.
#[derive(Default)]
pub struct Budgets {
    spent: Mutex<HashMap<Key, Spent>>,
}

impl Budgets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Spent>> {
        self.spent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `check` on what the request spent so far and, when it passes,
    /// counts one more call — under one lock, so concurrent calls of one
    /// request cannot both pass on the last call left.
    pub fn begin<T>(
        &self,
        app_id: i64,
        request_id: &str,
        deadline: Instant,
        check: impl FnOnce(&Spent) -> Result<T, Reason>,
    ) -> Result<T, Reason> {
        let mut map = self.lock();
        if map.len() >= MAX_REQUESTS {
            let now = Instant::now();
            map.retain(|_, s| s.deadline > now);
            if map.len() >= MAX_REQUESTS {
                // Every request is live: the one due first goes (its
                // calls are then counted afresh, a bound on memory kept
                // over a bound on its budget).
                if let Some(first) = map
                    .iter()
                    .min_by_key(|(_, s)| s.deadline)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&first);
                }
            }
        }
        let spent = map
            .entry((app_id, request_id.to_string()))
            .or_insert(Spent {
                calls: 0,
                network: Duration::ZERO,
                deadline,
            });
        let passed = check(spent)?;
        spent.calls += 1;
        Ok(passed)
    }

    /// Adds network time a call of the request used.
    pub fn used(&self, app_id: i64, request_id: &str, took: Duration) {
        if let Some(s) = self.lock().get_mut(&(app_id, request_id.to_string())) {
            s.network += took;
        }
    }

    /// Forgets requests whose deadline passed.
    pub fn sweep(&self, now: Instant) {
        self.lock().retain(|_, s| s.deadline > now);
    }

    /// Requests tracked.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The concurrency limits.
pub struct Slots {
    total: Arc<Semaphore>,
    per_app: usize,
    apps: Mutex<HashMap<i64, Arc<Semaphore>>>,
}

/// The two slots one call holds until it ends.
pub struct Held {
    _app: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

impl Slots {
    /// `per_app` calls per app, `total` in all.
    pub fn new(per_app: u64, total: u64) -> Slots {
        let size = |n: u64| {
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(Semaphore::MAX_PERMITS)
        };
        Slots {
            total: Arc::new(Semaphore::new(size(total))),
            per_app: size(per_app),
            apps: Mutex::new(HashMap::new()),
        }
    }

    /// Both slots for a call of `app_id`, or which limit is full.
    pub fn take(&self, app_id: i64) -> Result<Held, Reason> {
        // The permit is taken under the lock `sweep` takes, so a sweep can
        // never drop a semaphore between its lookup and the permit (which
        // would let the next call start a fresh, full one).
        let app = {
            let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            apps.entry(app_id)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_app)))
                .clone()
                .try_acquire_owned()
                .map_err(|_| Reason::Busy { app: true })?
        };
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Reason::Busy { app: false })?;
        Ok(Held {
            _app: app,
            _total: total,
        })
    }

    /// Calls in flight.
    pub fn in_flight(&self, total: u64) -> u32 {
        let free = self.total.available_permits() as u64;
        u32::try_from(total.saturating_sub(free)).unwrap_or(u32::MAX)
    }

    /// Forgets apps with no call in flight.
    pub fn sweep(&self) {
        let per_app = self.per_app;
        self.apps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| s.available_permits() < per_app);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_limit_refuses_at_once_and_frees_with_the_call() {
        let slots = Slots::new(2, 3);
        let a1 = slots.take(1).expect("a1");
        let _a2 = slots.take(1).expect("a2");
        assert_eq!(slots.take(1).err(), Some(Reason::Busy { app: true }));
        let _b1 = slots.take(2).expect("b1");
        assert_eq!(slots.take(3).err(), Some(Reason::Busy { app: false }));
        assert_eq!(slots.in_flight(3), 3);
        drop(a1);
        assert!(slots.take(3).is_ok(), "a freed slot is taken again");
        slots.sweep();
    }

    #[test]
    fn calls_are_counted_only_when_they_pass() {
        let budgets = Budgets::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        let max = |s: &Spent| {
            if s.calls >= 2 {
                Err(Reason::TooManyCalls { max: 2 })
            } else {
                Ok(())
            }
        };
        assert_eq!(
            budgets.begin(1, "r", deadline, |_| Err::<(), _>(Reason::BadUrl)),
            Err(Reason::BadUrl)
        );
        assert_eq!(budgets.begin(1, "r", deadline, max), Ok(()));
        assert_eq!(budgets.begin(1, "r", deadline, max), Ok(()));
        assert_eq!(
            budgets.begin(1, "r", deadline, max),
            Err(Reason::TooManyCalls { max: 2 })
        );
        assert_eq!(
            budgets.begin(1, "other", deadline, max),
            Ok(()),
            "per request"
        );
        assert_eq!(budgets.begin(2, "r", deadline, max), Ok(()), "per app");
        budgets.used(1, "r", Duration::from_millis(700));
        let seen = budgets.begin(1, "other", deadline, |s| Ok::<_, Reason>(s.network));
        assert_eq!(seen, Ok(Duration::ZERO), "time is per request too");
        budgets.used(1, "other", Duration::from_millis(700));
        let seen = budgets.begin(1, "other", deadline, |s| Ok::<_, Reason>(s.network));
        assert_eq!(seen, Ok(Duration::from_millis(700)));
        budgets.sweep(deadline + Duration::from_secs(1));
        assert!(budgets.is_empty());
    }
}
