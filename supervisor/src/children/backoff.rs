//! Restart delays of one child slot (SPEC §2): 100 ms, doubling to 30 s,
//! back to 100 ms once an incarnation ran healthy for 30 s. A crash loop in
//! one slot waits longer and longer; it never stops the others.

use std::time::Duration;

/// First delay.
pub const INITIAL: Duration = Duration::from_millis(100);
/// Longest delay.
pub const MAX: Duration = Duration::from_secs(30);
/// Ready this long counts as healthy and resets the delay.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// The delay before the next restart.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: INITIAL }
    }
}

impl Backoff {
    /// The delay before restarting a child that was ready for `ready_for`
    /// (`None`: it never became ready).
    pub fn next(&mut self, ready_for: Option<Duration>) -> Duration {
        if ready_for.is_some_and(|d| d >= HEALTHY_AFTER) {
            self.next = INITIAL;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets_after_a_healthy_run() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..12).map(|_| b.next(None).as_millis() as u64).collect();
        assert_eq!(&delays[..5], [100, 200, 400, 800, 1600]);
        assert_eq!(*delays.last().expect("delay"), 30_000);
        assert_eq!(
            b.next(Some(Duration::from_secs(5))),
            MAX,
            "a short run does not reset"
        );
        assert_eq!(b.next(Some(HEALTHY_AFTER)), INITIAL);
    }
}
