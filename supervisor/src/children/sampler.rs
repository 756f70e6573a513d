//! CPU and memory of the children, sampled once a second for `fazt
//! workers status` (CPU % needs two readings some time apart).

use std::sync::Arc;
use std::time::Duration;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::watch;

/// A child whose process is sampled.
pub trait Sampled: Send + Sync {
    /// The current pid, if running.
    fn pid(&self) -> Option<u32>;
    /// A sample of `pid`.
    fn set_sample(&self, pid: u32, cpu_percent: f32, rss_bytes: u64);
}

const EVERY: Duration = Duration::from_secs(1);

/// Samples `children` until `stop` changes.
pub async fn run(children: Vec<Arc<dyn Sampled>>, stop: watch::Receiver<bool>) {
    let mut system = match System::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "process sampling unavailable; status shows no CPU or RSS");
            return;
        }
    };
    fazt_shared::periodic::every(EVERY, stop, move || {
        sample(&mut system, &children);
        std::future::ready(())
    })
    .await;
}

fn sample(system: &mut System, children: &[Arc<dyn Sampled>]) {
    let pids: Vec<(usize, u32)> = children
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.pid().map(|p| (i, p)))
        .collect();
    let wanted: Vec<Pid> = pids.iter().map(|(_, p)| Pid::from_u32(*p)).collect();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&wanted),
        true,
        ProcessRefreshKind::nothing().with_cpu().with_memory(),
    );
    for (i, pid) in pids {
        if let Some(p) = system.process(Pid::from_u32(pid)) {
            children[i].set_sample(pid, p.cpu_usage(), p.memory());
        }
    }
}
