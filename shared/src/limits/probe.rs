//! Hardware probe (SPEC §3): how much memory and CPU this process may really use.
//!
//! Inside a container the host's `/proc/meminfo` and core count lie about what
//! the process may use, so the cgroup limits are read first: cgroup v2
//! `memory.max` / `cpu.max`, then cgroup v1 `memory.limit_in_bytes` /
//! `cpu.cfs_quota_us`, then `/proc/meminfo` and the available parallelism.
//! Values are read once at start.

use std::path::{Path, PathBuf};

use crate::units::MIB;

/// RAM assumed when nothing can be read (SPEC §3).
pub const FALLBACK_RAM: u64 = 512 * MIB;

/// cgroup v1 reports "no limit" as a page-aligned `i64::MAX`; anything at or
/// above this is treated as unlimited.
const CGROUP_V1_UNLIMITED: u64 = 1 << 62;

/// What the probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Memory this process may use in total, in bytes.
    pub total_ram: u64,
    /// Memory free for it at start, in bytes.
    pub available_ram: u64,
    /// CPU cores it may use (at least 1).
    pub cpu_cores: u64,
}

impl Probe {
    /// A probe result for tests and documentation: a machine with these facts.
    pub fn fixed(total_ram: u64, cpu_cores: u64) -> Probe {
        Probe {
            total_ram,
            available_ram: total_ram,
            cpu_cores: cpu_cores.max(1),
        }
    }

    /// Probes the machine this process runs on.
    pub fn detect() -> Probe {
        let parallelism = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        Probe::detect_in(Path::new("/"), parallelism)
    }

    /// Probes a filesystem rooted at `root` (tests point it at a fake tree).
    pub fn detect_in(root: &Path, parallelism: u64) -> Probe {
        let fs = Files { root };
        let meminfo = fs.read("proc/meminfo").map(|s| parse_meminfo(&s));
        let mem_total = meminfo.and_then(|m| m.total);
        let cgroup = fs.read("proc/self/cgroup").unwrap_or_default();

        let limit = fs.cgroup_memory_limit(&cgroup);
        let (total_ram, available_ram) = match (limit, mem_total) {
            (Some((limit, usage)), total) => {
                let limit = total.map_or(limit, |t| limit.min(t));
                (limit, limit.saturating_sub(usage.unwrap_or(0)))
            }
            (None, Some(total)) => (total, meminfo.and_then(|m| m.available).unwrap_or(total)),
            (None, None) => (FALLBACK_RAM, FALLBACK_RAM),
        };

        let parallelism = parallelism.max(1);
        let cpu_cores = fs
            .cgroup_cpu_quota(&cgroup)
            .map_or(parallelism, |quota| quota.min(parallelism))
            .max(1);

        Probe {
            total_ram,
            available_ram,
            cpu_cores,
        }
    }
}

/// Reads files under a root, so the probe can run against a fake tree.
struct Files<'a> {
    root: &'a Path,
}

impl Files<'_> {
    fn read(&self, rel: impl AsRef<Path>) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel)).ok()
    }

    /// The first readable file among the process's own cgroup directory and the
    /// mount's root (a container usually sees its own cgroup as the root).
    fn read_cgroup_file(&self, mount: &str, own: Option<&str>, file: &str) -> Option<String> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(own) = own {
            let own = own.trim_start_matches('/');
            if !own.is_empty() && !own.split('/').any(|part| part == "..") {
                candidates.push(Path::new(mount).join(own).join(file));
            }
        }
        candidates.push(Path::new(mount).join(file));
        candidates.iter().find_map(|p| self.read(p))
    }

    /// `(limit, usage)` in bytes when a cgroup memory limit is set.
    fn cgroup_memory_limit(&self, cgroup: &str) -> Option<(u64, Option<u64>)> {
        let v2 = cgroup_path(cgroup, None);
        if let Some(max) = self.read_cgroup_file("sys/fs/cgroup", v2, "memory.max") {
            let usage = self
                .read_cgroup_file("sys/fs/cgroup", v2, "memory.current")
                .and_then(|s| s.trim().parse().ok());
            return parse_cgroup2_memory_max(&max).map(|limit| (limit, usage));
        }
        let v1 = cgroup_path(cgroup, Some("memory"));
        let limit = self.read_cgroup_file("sys/fs/cgroup/memory", v1, "memory.limit_in_bytes")?;
        let usage = self
            .read_cgroup_file("sys/fs/cgroup/memory", v1, "memory.usage_in_bytes")
            .and_then(|s| s.trim().parse().ok());
        parse_cgroup1_memory_limit(&limit).map(|limit| (limit, usage))
    }

    /// Whole cores granted by a cgroup CPU quota, when one is set.
    fn cgroup_cpu_quota(&self, cgroup: &str) -> Option<u64> {
        let v2 = cgroup_path(cgroup, None);
        if let Some(max) = self.read_cgroup_file("sys/fs/cgroup", v2, "cpu.max") {
            return parse_cgroup2_cpu_max(&max);
        }
        let v1 = cgroup_path(cgroup, Some("cpu"));
        let quota = self.read_cgroup_file("sys/fs/cgroup/cpu", v1, "cpu.cfs_quota_us")?;
        let period = self.read_cgroup_file("sys/fs/cgroup/cpu", v1, "cpu.cfs_period_us")?;
        parse_cgroup1_cpu_quota(&quota, &period)
    }
}

/// The cgroup path of this process from `/proc/self/cgroup`: the v2 line
/// (`0::/path`) when `controller` is `None`, else the v1 line naming it.
fn cgroup_path<'a>(cgroup: &'a str, controller: Option<&str>) -> Option<&'a str> {
    cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = match controller {
            None => id == "0" && controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        wanted.then_some(path)
    })
}

/// `memory.max` (cgroup v2): a byte count, or `max` for no limit.
pub fn parse_cgroup2_memory_max(content: &str) -> Option<u64> {
    match content.trim() {
        "max" => None,
        n => n.parse().ok().filter(|&n: &u64| n > 0),
    }
}

/// `memory.limit_in_bytes` (cgroup v1): a byte count; "unlimited" is a huge number.
pub fn parse_cgroup1_memory_limit(content: &str) -> Option<u64> {
    content
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0 && n < CGROUP_V1_UNLIMITED)
}

/// `cpu.max` (cgroup v2): `"<quota> <period>"` or `"max <period>"`; whole cores,
/// rounded up so a 1.5-core quota still gets two workers' worth of threads.
pub fn parse_cgroup2_cpu_max(content: &str) -> Option<u64> {
    let mut parts = content.split_whitespace();
    let quota = parts.next()?;
    let period = parts.next().unwrap_or("100000");
    if quota == "max" {
        return None;
    }
    cores_from_quota(quota.parse().ok()?, period.parse().ok()?)
}

/// `cpu.cfs_quota_us` / `cpu.cfs_period_us` (cgroup v1); a quota of -1 is no limit.
pub fn parse_cgroup1_cpu_quota(quota: &str, period: &str) -> Option<u64> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok()?;
    cores_from_quota(u64::try_from(quota).ok()?, period)
}

fn cores_from_quota(quota: u64, period: u64) -> Option<u64> {
    if quota == 0 || period == 0 {
        return None;
    }
    Some(quota.div_ceil(period).max(1))
}

/// `MemTotal` and `MemAvailable` from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total: Option<u64>,
    /// `MemAvailable`.
    pub available: Option<u64>,
}

/// Parses `/proc/meminfo` (values in kB).
pub fn parse_meminfo(content: &str) -> MemInfo {
    let mut info = MemInfo::default();
    for line in content.lines() {
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(kb) = value.parse::<u64>() else {
            continue;
        };
        let bytes = kb.saturating_mul(1024);
        match key {
            "MemTotal:" => info.total = Some(bytes),
            "MemAvailable:" => info.available = Some(bytes),
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::GIB;

    const MEMINFO: &str = "MemTotal:       24684084 kB\nMemFree:        22000000 kB\nMemAvailable:   24133940 kB\nBuffers:           12345 kB\n";

    #[test]
    fn parses_cgroup2_memory_max() {
        assert_eq!(parse_cgroup2_memory_max("max\n"), None);
        assert_eq!(parse_cgroup2_memory_max("536870912\n"), Some(512 * MIB));
        assert_eq!(parse_cgroup2_memory_max("0\n"), None);
        assert_eq!(parse_cgroup2_memory_max("garbage"), None);
        assert_eq!(parse_cgroup2_memory_max(""), None);
    }

    #[test]
    fn parses_cgroup1_memory_limit() {
        // The value a real unlimited v1 cgroup reports (seen on this machine kind).
        assert_eq!(parse_cgroup1_memory_limit("9223372036854771712\n"), None);
        assert_eq!(parse_cgroup1_memory_limit("2147483648\n"), Some(2 * GIB));
        assert_eq!(parse_cgroup1_memory_limit("-1"), None);
    }

    #[test]
    fn parses_cpu_quotas() {
        assert_eq!(parse_cgroup2_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cgroup2_cpu_max("200000 100000\n"), Some(2));
        assert_eq!(parse_cgroup2_cpu_max("150000 100000\n"), Some(2));
        assert_eq!(parse_cgroup2_cpu_max("50000 100000\n"), Some(1));
        assert_eq!(parse_cgroup2_cpu_max(""), None);
        assert_eq!(parse_cgroup1_cpu_quota("-1\n", "100000\n"), None);
        assert_eq!(parse_cgroup1_cpu_quota("400000\n", "100000\n"), Some(4));
        assert_eq!(parse_cgroup1_cpu_quota("100000", "0"), None);
    }

    #[test]
    fn parses_meminfo() {
        let info = parse_meminfo(MEMINFO);
        assert_eq!(info.total, Some(24_684_084 * 1024));
        assert_eq!(info.available, Some(24_133_940 * 1024));
        assert_eq!(parse_meminfo("nonsense\n"), MemInfo::default());
    }

    /// Writes a fake root with the given files.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, content) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, content).expect("write");
        }
        dir
    }

    #[test]
    fn cgroup2_limit_wins_over_meminfo() {
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/self/cgroup", "0::/system.slice/fazt.service\n"),
            (
                "sys/fs/cgroup/system.slice/fazt.service/memory.max",
                "1073741824\n",
            ),
            (
                "sys/fs/cgroup/system.slice/fazt.service/memory.current",
                "268435456\n",
            ),
            (
                "sys/fs/cgroup/system.slice/fazt.service/cpu.max",
                "200000 100000\n",
            ),
        ]);
        let p = Probe::detect_in(root.path(), 8);
        assert_eq!(p.total_ram, GIB);
        assert_eq!(p.available_ram, GIB - 256 * MIB);
        assert_eq!(p.cpu_cores, 2);
    }

    #[test]
    fn cgroup2_max_falls_back_to_meminfo_and_parallelism() {
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/self/cgroup", "0::/\n"),
            ("sys/fs/cgroup/memory.max", "max\n"),
            ("sys/fs/cgroup/cpu.max", "max 100000\n"),
        ]);
        let p = Probe::detect_in(root.path(), 6);
        assert_eq!(p.total_ram, 24_684_084 * 1024);
        assert_eq!(p.available_ram, 24_133_940 * 1024);
        assert_eq!(p.cpu_cores, 6);
    }

    #[test]
    fn cgroup1_limits_are_read() {
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            (
                "proc/self/cgroup",
                "4:memory:/box\n1:cpu,cpuacct:/box\n0::/\n",
            ),
            (
                "sys/fs/cgroup/memory/box/memory.limit_in_bytes",
                "2147483648\n",
            ),
            (
                "sys/fs/cgroup/memory/box/memory.usage_in_bytes",
                "1073741824\n",
            ),
            ("sys/fs/cgroup/cpu/box/cpu.cfs_quota_us", "300000\n"),
            ("sys/fs/cgroup/cpu/box/cpu.cfs_period_us", "100000\n"),
        ]);
        let p = Probe::detect_in(root.path(), 8);
        assert_eq!(
            (p.total_ram, p.available_ram, p.cpu_cores),
            (2 * GIB, GIB, 3)
        );
    }

    #[test]
    fn unlimited_cgroup1_uses_meminfo() {
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/self/cgroup", "4:memory:/process_api/abc\n"),
            (
                "sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n"),
            ("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n"),
        ]);
        let p = Probe::detect_in(root.path(), 2);
        assert_eq!(p.total_ram, 24_684_084 * 1024);
        assert_eq!(p.cpu_cores, 2);
    }

    #[test]
    fn cgroup_limit_above_physical_is_capped() {
        let root = tree(&[
            (
                "proc/meminfo",
                "MemTotal: 1048576 kB\nMemAvailable: 524288 kB\n",
            ),
            ("proc/self/cgroup", "0::/\n"),
            ("sys/fs/cgroup/memory.max", "68719476736\n"),
        ]);
        assert_eq!(Probe::detect_in(root.path(), 1).total_ram, GIB);
    }

    #[test]
    fn quota_above_parallelism_is_capped() {
        let root = tree(&[
            ("proc/self/cgroup", "0::/\n"),
            ("sys/fs/cgroup/cpu.max", "800000 100000\n"),
        ]);
        assert_eq!(Probe::detect_in(root.path(), 2).cpu_cores, 2);
    }

    #[test]
    fn nothing_readable_gives_the_fallback() {
        let root = tree(&[]);
        let p = Probe::detect_in(root.path(), 0);
        assert_eq!(p, Probe::fixed(FALLBACK_RAM, 1));
    }

    #[test]
    fn detects_this_machine() {
        let p = Probe::detect();
        assert!(p.cpu_cores >= 1);
        assert!(p.total_ram >= p.available_ram);
        assert!(p.total_ram > 0);
    }
}
