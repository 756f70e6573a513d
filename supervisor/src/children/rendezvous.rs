//! Where a spawned child and the connection it opens back to the supervisor
//! meet, by pid: a fast child can connect before the spawner has even
//! answered, a slow one long after.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Connections parked without a spawn asking for them, at most.
const MAX_PARKED: usize = 64;

enum Side<C> {
    Waiting(oneshot::Sender<C>),
    Arrived(C),
}

/// The meeting point for connections of type `C`.
pub struct Rendezvous<C> {
    by_pid: Mutex<HashMap<u32, Side<C>>>,
}

impl<C> Default for Rendezvous<C> {
    fn default() -> Self {
        Rendezvous {
            by_pid: Mutex::new(HashMap::new()),
        }
    }
}

impl<C> Rendezvous<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Side<C>>> {
        self.by_pid.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection of the child with `pid`, whether it already arrived
    /// or arrives later.
    pub fn expect(&self, pid: u32) -> oneshot::Receiver<C> {
        let (tx, rx) = oneshot::channel();
        let mut meet = self.lock();
        match meet.remove(&pid) {
            Some(Side::Arrived(conn)) => {
                let _ = tx.send(conn);
            }
            _ => {
                meet.insert(pid, Side::Waiting(tx));
            }
        }
        rx
    }

    /// A child connected: hand it over, or park it until asked for.
    pub fn arrived(&self, pid: u32, conn: C) {
        let mut meet = self.lock();
        match meet.remove(&pid) {
            Some(Side::Waiting(tx)) => {
                let _ = tx.send(conn);
            }
            _ => {
                // Only processes of our own user can reach the 0600 socket;
                // still, bound what strangers can park.
                if meet.len() >= MAX_PARKED {
                    meet.retain(|_, side| matches!(side, Side::Waiting(_)));
                }
                meet.insert(pid, Side::Arrived(conn));
            }
        }
    }

    /// Forgets `pid`: a connection arriving after its child was given up on
    /// must not be handed to a later process that gets the same pid.
    pub fn forget(&self, pid: u32) {
        self.lock().remove(&pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn early_and_late_connections_both_meet_their_child() {
        let r: Rendezvous<&'static str> = Rendezvous::default();
        r.arrived(1, "early");
        assert_eq!(r.expect(1).await.ok(), Some("early"));
        let late = r.expect(2);
        r.arrived(2, "late");
        assert_eq!(late.await.ok(), Some("late"));
        let forgotten = r.expect(3);
        r.forget(3);
        r.arrived(3, "stray");
        assert!(forgotten.await.is_err(), "a forgotten pid got a connection");
    }
}
