//! CPU and memory of the worker processes, sampled once a second for
//! `fazt workers status` (CPU % needs two readings some time apart).

use std::sync::Arc;
use std::time::Duration;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::watch;

use super::Pool;

const EVERY: Duration = Duration::from_secs(1);

/// Samples until `stop` changes.
pub async fn run(pool: Arc<Pool>, stop: watch::Receiver<bool>) {
    let mut system = match System::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "process sampling unavailable; status shows no CPU or RSS");
            return;
        }
    };
    crate::periodic::every(EVERY, stop, move || {
        sample(&mut system, &pool);
        std::future::ready(())
    })
    .await;
}

fn sample(system: &mut System, pool: &Pool) {
    let pids: Vec<(usize, u32)> = pool
        .slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.pid().map(|p| (i, p)))
        .collect();
    let wanted: Vec<Pid> = pids.iter().map(|(_, p)| Pid::from_u32(*p)).collect();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&wanted),
        true,
        ProcessRefreshKind::nothing().with_cpu().with_memory(),
    );
    for (i, pid) in pids {
        if let Some(p) = system.process(Pid::from_u32(pid)) {
            pool.slots[i].set_sample(pid, p.cpu_usage(), p.memory());
        }
    }
}
