//! A sign of life from the supervisor's main loop: the front door's accept
//! loop beats it on every turn and at least every [`Pulse::every`], busy
//! or idle; the systemd watchdog pings only while the beat is fresh, so a
//! stalled loop stops the pings and systemd restarts fazt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When the main loop last turned.
#[derive(Debug)]
pub struct Pulse {
    base: Instant,
    /// Milliseconds after `base` of the last beat.
    last_ms: AtomicU64,
    every: Duration,
}

impl Pulse {
    /// A pulse the loop beats at least every `every`.
    pub fn new(every: Duration) -> Pulse {
        Pulse {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            every,
        }
    }

    /// How often the loop must beat even when nothing happens.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// The loop turned.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    fn beat_at(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.base).as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        self.age_at(Instant::now())
    }

    fn age_at(&self, now: Instant) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(self.base)
            .saturating_sub(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_from_the_last_beat() {
        let pulse = Pulse::new(Duration::from_millis(10));
        let at = |ms| pulse.base + Duration::from_millis(ms);
        assert_eq!(pulse.age_at(at(700)), Duration::from_millis(700));
        pulse.beat_at(at(500));
        assert_eq!(pulse.age_at(at(700)), Duration::from_millis(200));
        assert_eq!(pulse.age_at(at(400)), Duration::ZERO, "never negative");
    }
}
