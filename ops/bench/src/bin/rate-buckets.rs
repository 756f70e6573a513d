//! Memory of egress's rate buckets: RSS before and after filling
//! `RateLimits` with N (app, entry) pairs, for N = 10 000 and 100 000 (to
//! see that it grows linearly), printed per 10 000 pairs. Measured, not
//! asserted.

use std::time::Instant;

use anyhow::{Context, Result};
use fazt_egress::rate::RateLimits;
use fazt_shared::net::{AllowEntry, DomainPattern, DomainSettings, Scope};
use fazt_shared::{Limits, Probe};

fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")
}

fn main() -> Result<()> {
    let limits = Limits::defaults(&Probe::fixed(1 << 30, 2)).net;
    const ENTRIES: usize = 100;
    let entries: Vec<AllowEntry> = (0..ENTRIES)
        .map(|i| {
            Ok(AllowEntry {
                scope: Scope::Global,
                pattern: DomainPattern::parse(&format!("api{i}.example.com"))?,
                allow_http: false,
                settings: DomainSettings {
                    rate: Some(60),
                    burst: Some(10),
                    ..DomainSettings::default()
                },
                updated_at: 0,
            })
        })
        .collect::<Result<_, fazt_shared::net::DomainError>>()?;
    for pairs in [10_000usize, 100_000] {
        let before = rss_kib()?;
        let started = Instant::now();
        let rates = RateLimits::new(false, started);
        let apps = pairs / ENTRIES;
        for app in 0..apps as i64 {
            for e in &entries {
                // Each take makes the pair's bucket.
                let _ = rates.take(app, e, &limits, started);
            }
        }
        let after = rss_kib()?;
        let per_10k = (after.saturating_sub(before)) as f64 * 10_000.0 / pairs as f64;
        println!(
            "{pairs:>7} buckets: RSS +{} KiB ({per_10k:.0} KiB per 10 000 pairs), made in {:?}",
            after.saturating_sub(before),
            started.elapsed()
        );
        assert_eq!(rates.len(), pairs);
        drop(rates);
    }
    Ok(())
}
