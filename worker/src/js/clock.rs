//! The time a request may spend running JS (SPEC §3): `runtime.exec_timeout_ms`
//! counts only time in JS, so the clock pauses while a host call blocks (kv,
//! fetch); the whole request is also bounded by a wall-clock deadline.
//! QuickJS polls [`Clock::should_interrupt`] from its interrupt handler.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Why the interrupt handler stopped JS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// JS used up `runtime.exec_timeout_ms`.
    JsTime,
    /// The request passed its wall-clock deadline (`capacity.timeout_ms`).
    Wall,
}

/// JS time budget of the request running on a lane.
#[derive(Debug, Default)]
pub struct Clock {
    budget: Cell<Duration>,
    running_since: Cell<Option<Instant>>,
    wall: Cell<Option<Instant>>,
    stopped: Cell<Option<Stop>>,
}

impl Clock {
    /// Arms the clock for a request and starts counting.
    pub fn start(&self, budget: Duration, wall_deadline: Instant) {
        self.budget.set(budget);
        self.wall.set(Some(wall_deadline));
        self.stopped.set(None);
        self.running_since.set(Some(Instant::now()));
    }

    /// Disarms the clock between requests, so nothing run outside a request
    /// (compiling, cleanup) is interrupted by a stale deadline.
    pub fn disarm(&self) {
        self.running_since.set(None);
        self.wall.set(None);
    }

    /// Why JS was stopped, if it was.
    pub fn stopped(&self) -> Option<Stop> {
        self.stopped.get()
    }

    /// Stops counting JS time until the guard drops (a blocking host call).
    pub fn pause(&self) -> Paused<'_> {
        if let Some(since) = self.running_since.take() {
            self.budget
                .set(self.budget.get().saturating_sub(since.elapsed()));
        }
        Paused(self)
    }

    /// The interrupt handler's question: stop JS now?
    pub fn should_interrupt(&self) -> bool {
        if self.wall.get().is_none() {
            return false;
        }
        if self.stopped.get().is_some() {
            return true;
        }
        let now = Instant::now();
        let stop = if self.wall.get().is_some_and(|w| now >= w) {
            Some(Stop::Wall)
        } else if self
            .running_since
            .get()
            .is_some_and(|since| now.duration_since(since) >= self.budget.get())
        {
            Some(Stop::JsTime)
        } else {
            None
        };
        self.stopped.set(stop);
        stop.is_some()
    }
}

/// Resumes counting when dropped.
pub struct Paused<'a>(&'a Clock);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if self.0.wall.get().is_some() {
            self.0.running_since.set(Some(Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_time_does_not_count() {
        let clock = Clock::default();
        let far = Instant::now() + Duration::from_secs(60);
        clock.start(Duration::from_millis(30), far);
        {
            let _p = clock.pause();
            std::thread::sleep(Duration::from_millis(60));
            assert!(!clock.should_interrupt(), "paused time counted");
        }
        assert!(!clock.should_interrupt());
        std::thread::sleep(Duration::from_millis(40));
        assert!(clock.should_interrupt());
        assert_eq!(clock.stopped(), Some(Stop::JsTime));
    }

    #[test]
    fn the_wall_deadline_counts_paused_time_too() {
        let clock = Clock::default();
        clock.start(
            Duration::from_secs(60),
            Instant::now() + Duration::from_millis(20),
        );
        let _p = clock.pause();
        std::thread::sleep(Duration::from_millis(30));
        assert!(clock.should_interrupt());
        assert_eq!(clock.stopped(), Some(Stop::Wall));
    }

    #[test]
    fn a_disarmed_clock_never_interrupts() {
        let clock = Clock::default();
        clock.start(Duration::ZERO, Instant::now() + Duration::from_secs(60));
        assert!(clock.should_interrupt());
        clock.disarm();
        assert!(
            !clock.should_interrupt(),
            "a stop does not outlive its request"
        );
        assert_eq!(clock.stopped(), Some(Stop::JsTime), "but is still readable");
        let fresh = Clock::default();
        assert!(!fresh.should_interrupt());
        clock.start(
            Duration::from_secs(1),
            Instant::now() + Duration::from_secs(1),
        );
        assert!(!clock.should_interrupt(), "start clears an earlier stop");
    }
}
