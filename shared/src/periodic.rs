//! One periodic task: run something every period until told to stop. The
//! first run is one period after the start (not at once), and a stop is
//! noticed while waiting, never in the middle of a run.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Calls `tick` every `period` until `stop` changes (or its sender is gone).
pub async fn every<F, Fut>(period: Duration, mut stop: watch::Receiver<bool>, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn ticks_every_period_until_stopped() {
        let (stop, rx) = watch::channel(false);
        let n = Arc::new(AtomicU32::new(0));
        let counted = n.clone();
        let task = tokio::spawn(every(Duration::from_secs(1), rx, move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(n.load(Ordering::Relaxed), 3);
        stop.send_replace(true);
        task.await.expect("task");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(n.load(Ordering::Relaxed), 3, "ticked after the stop");
    }
}
