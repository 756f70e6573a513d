//! Liveness of a connected child (SPEC §2): a heartbeat every second; a
//! child that has not answered for `wedged_after` is wedged (JS stuck in
//! native code, a SIGSTOP) and must be killed.

use std::time::{Duration, Instant};

/// How often a heartbeat is sent.
pub const EVERY: Duration = Duration::from_secs(1);

/// What to do at a heartbeat tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Beat {
    /// Send heartbeat number `seq`.
    Send(u64),
    /// No answer for too long: kill the child.
    Wedged,
}

/// Heartbeats of one incarnation.
#[derive(Debug)]
pub struct Heartbeat {
    wedged_after: Duration,
    last_ack: Instant,
    seq: u64,
}

impl Heartbeat {
    /// Starts counting now; silence for `wedged_after` means wedged.
    pub fn new(wedged_after: Duration) -> Heartbeat {
        Heartbeat {
            wedged_after,
            last_ack: Instant::now(),
            seq: 0,
        }
    }

    /// The child answered.
    pub fn ack(&mut self) {
        self.last_ack = Instant::now();
    }

    /// A tick of the heartbeat interval.
    pub fn tick(&mut self) -> Beat {
        if self.last_ack.elapsed() > self.wedged_after {
            return Beat::Wedged;
        }
        self.seq += 1;
        Beat::Send(self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_means_wedged_and_an_answer_resets_it() {
        let mut h = Heartbeat::new(Duration::from_millis(30));
        assert_eq!(h.tick(), Beat::Send(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(h.tick(), Beat::Wedged);
        h.ack();
        assert_eq!(h.tick(), Beat::Send(2));
    }
}
