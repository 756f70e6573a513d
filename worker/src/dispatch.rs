//! Which lane runs a job. A lane keeps a realm per app (`js::realm`), and
//! building one costs about a hundred requests' worth of time, so a lane
//! that is free takes the first queued job of an app it already holds a
//! realm for, among the oldest few, unless the oldest has waited long
//! enough that order comes first. Jobs are queued in arrival order; the
//! reader only pushes and wakes one lane, and never waits on a lane beyond
//! the few instructions a lane holds the queue for.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::lane::Queued;

/// Waiting jobs a lane looks through for one of its apps.
const SCAN: usize = 8;

/// A job waiting longer than this is taken before any other.
const MAX_SKIPPED: Duration = Duration::from_millis(5);

struct Waiting {
    job: Queued,
    since: Instant,
}

struct State {
    waiting: VecDeque<Waiting>,
    closed: bool,
}

/// The worker's job queue, shared by its reader and its lanes.
pub struct Dispatch {
    state: Mutex<State>,
    ready: Condvar,
}

impl Default for Dispatch {
    fn default() -> Self {
        Dispatch {
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }
}

impl Dispatch {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update under the lock is a single push or remove, so a lane
        // that panicked while holding it left the queue whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a job and wakes a lane. `false` once closed.
    pub fn submit(&self, job: Queued) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        st.waiting.push_back(Waiting {
            job,
            since: Instant::now(),
        });
        drop(st);
        self.ready.notify_one();
        true
    }

    /// The next job for a lane that holds realms for the apps `holds`
    /// answers true for; blocks until there is one. `None` once closed and
    /// drained.
    pub fn next(&self, holds: impl Fn(i64) -> bool) -> Option<Queued> {
        let mut st = self.lock();
        loop {
            let mine = match st.waiting.front() {
                Some(oldest) if oldest.since.elapsed() < MAX_SKIPPED => st
                    .waiting
                    .iter()
                    .take(SCAN)
                    .position(|w| holds(w.job.job.app.id)),
                _ => None,
            };
            let taken = match mine {
                Some(i) => st.waiting.remove(i),
                None => st.waiting.pop_front(),
            };
            if let Some(w) = taken {
                return Some(w.job);
            }
            if st.closed {
                return None;
            }
            st = self.ready.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// No more jobs: lanes finish what is queued, then `next` answers `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, app: i64) -> Queued {
        Queued {
            job: crate::testing::job(id, app),
            deadline: Instant::now() + Duration::from_secs(1),
        }
    }

    fn id(q: Option<Queued>) -> Option<u64> {
        q.map(|q| q.job.id.0)
    }

    #[test]
    fn a_lane_prefers_its_app_but_not_forever() {
        let d = Dispatch::default();
        assert!(d.submit(job(1, 1)));
        assert!(d.submit(job(2, 2)));
        assert_eq!(id(d.next(|app| app == 2)), Some(2), "its app first");
        assert!(d.submit(job(3, 2)));
        std::thread::sleep(MAX_SKIPPED + Duration::from_millis(5));
        assert_eq!(
            id(d.next(|app| app == 2)),
            Some(1),
            "the oldest, once it waited long enough"
        );
        assert_eq!(id(d.next(|_| false)), Some(3));
    }

    #[test]
    fn a_waiting_lane_is_woken_and_closing_drains_then_stops() {
        let d = Dispatch::default();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| id(d.next(|_| false)));
            std::thread::sleep(Duration::from_millis(20));
            assert!(d.submit(job(1, 1)));
            assert_eq!(waiter.join().ok().flatten(), Some(1));
        });
        assert!(d.submit(job(2, 1)));
        d.close();
        assert!(!d.submit(job(3, 1)), "nothing is taken once closed");
        assert_eq!(id(d.next(|_| false)), Some(2));
        assert_eq!(id(d.next(|_| false)), None);
    }
}
