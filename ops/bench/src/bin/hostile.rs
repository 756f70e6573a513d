//! Hostile clients against a running fazt, bounded in count and time, with
//! the supervisor's RSS sampled throughout. Prints one JSON line.
//!
//! usage: hostile ADDR --pid PID --scenario uploads|downloads|slowloris
//!                [--app NAME] [--clients N] [--hold-seconds S]
//!
//! - uploads: N clients POST an 8 MiB body to the app's /api, 64 KiB at a
//!   time with a pause between chunks.
//! - downloads: N clients GET `/big.bin` of the app, read 1 KiB, then stop
//!   reading for the hold time.
//! - slowloris: N clients send a partial request head and then one byte now
//!   and then for the hold time.
//!
//! In every scenario a normal client fetches `/hello.json` of the app every
//! 200 ms; its slowest answer (or failure) is reported. Loopback only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const UPLOAD_BYTES: usize = 8 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

struct Args {
    addr: SocketAddr,
    pid: u32,
    scenario: String,
    app: String,
    clients: usize,
    hold: Duration,
}

fn parse_args() -> Result<Args> {
    let usage = "usage: hostile ADDR --pid PID --scenario uploads|downloads|slowloris [--app NAME] [--clients N] [--hold-seconds S]";
    let mut args = std::env::args().skip(1);
    let addr = fazt_bench::loopback_target(&args.next().context(usage)?, "hostile")?;
    let mut a = Args {
        addr,
        pid: 0,
        scenario: String::new(),
        app: "bench".into(),
        clients: 0,
        hold: Duration::from_secs(5),
    };
    for (flag, value) in fazt_bench::flag_pairs(args)? {
        match flag.as_str() {
            "--pid" => a.pid = value.parse()?,
            "--scenario" => a.scenario = value,
            "--app" => a.app = value,
            "--clients" => a.clients = value.parse()?,
            "--hold-seconds" => a.hold = Duration::from_secs(value.parse()?),
            other => bail!("unknown flag {other}; {usage}"),
        }
    }
    if a.pid == 0 {
        bail!("--pid is required; {usage}");
    }
    if a.clients == 0 {
        a.clients = match a.scenario.as_str() {
            "uploads" => 100,
            "downloads" => 50,
            _ => 150,
        };
    }
    if a.clients > 1000 || a.hold > Duration::from_secs(60) {
        bail!("at most 1000 clients and 60 s of hold");
    }
    Ok(a)
}

/// Resident set size of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Samples RSS every 50 ms until stopped; keeps the peak.
struct Sampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Sampler { peak, stop, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.peak.load(Ordering::Relaxed)
    }
}

/// A normal client: one GET every 200 ms until stopped; the slowest answer
/// in ms, and how many failed or took over 5 s.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64, u64)>,
}

impl Prober {
    fn start(addr: SocketAddr, path: String) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut worst, mut failed, mut count) = (0u64, 0u64, 0u64);
            while !s.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = simple_get(addr, &path, Duration::from_secs(5)).is_ok_and(|st| st == 200);
                let ms = started.elapsed().as_millis() as u64;
                worst = worst.max(ms);
                count += 1;
                if !ok {
                    failed += 1;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            (worst, failed, count)
        });
        Prober { stop, thread }
    }

    fn finish(self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((u64::MAX, u64::MAX, 0))
    }
}

/// GET with `Connection: close`; the status code.
fn simple_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    status_of(&out)
}

fn status_of(raw: &[u8]) -> Result<u16> {
    let line = raw.split(|b| *b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status line")
}

fn upload(addr: SocketAddr, app: &str) -> String {
    let run = || -> Result<u16> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "POST /_app/{app}/api HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/octet-stream\r\ncontent-length: {UPLOAD_BYTES}\r\nconnection: close\r\n\r\n"
        )?;
        let chunk = vec![b'x'; CHUNK];
        for _ in 0..UPLOAD_BYTES / CHUNK {
            if s.write_all(&chunk).is_err() {
                break; // answered early and closed
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        status_of(&out)
    };
    match run() {
        Ok(status) => status.to_string(),
        Err(_) => "error".into(),
    }
}

fn download(addr: SocketAddr, app: &str, hold: Duration) -> String {
    let run = || -> Result<u16> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "GET /_app/{app}/big.bin HTTP/1.1\r\nhost: {addr}\r\n\r\n"
        )?;
        let mut first = [0u8; 1024];
        let n = s.read(&mut first)?;
        std::thread::sleep(hold);
        status_of(&first[..n])
    };
    match run() {
        Ok(status) => status.to_string(),
        Err(_) => "error".into(),
    }
}

/// Sends a partial head, then a byte every 2 s; "closed" when the server
/// hung up before the hold time was over, else "open".
fn slowloris(addr: SocketAddr, hold: Duration) -> String {
    let run = || -> Result<&'static str> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_millis(10)))?;
        write!(s, "GET / HTTP/1.1\r\nhost: {addr}\r\nx-slow: ")?;
        let end = Instant::now() + hold;
        while Instant::now() < end {
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(0) => return Ok("closed"),
                Ok(_) => return Ok("answered"),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return Ok("closed"),
            }
            if s.write_all(b"a").is_err() {
                return Ok("closed");
            }
            std::thread::sleep(
                Duration::from_secs(2).min(end.saturating_duration_since(Instant::now())),
            );
        }
        Ok("open")
    };
    run().unwrap_or("error").to_string()
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let before = rss_kib(a.pid);
    let sampler = Sampler::start(a.pid);
    let prober = Prober::start(a.addr, format!("/_app/{}/hello.json", a.app));
    let started = Instant::now();
    let mut threads = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        let (addr, app, hold) = (a.addr, a.app.clone(), a.hold);
        let scenario = a.scenario.clone();
        threads.push(std::thread::spawn(move || match scenario.as_str() {
            "uploads" => upload(addr, &app),
            "downloads" => download(addr, &app, hold),
            _ => slowloris(addr, hold),
        }));
    }
    if !matches!(a.scenario.as_str(), "uploads" | "downloads" | "slowloris") {
        bail!("unknown scenario {:?}", a.scenario);
    }
    let mut outcomes: std::collections::BTreeMap<String, u64> = Default::default();
    for t in threads {
        let outcome = t.join().unwrap_or_else(|_| "panic".into());
        *outcomes.entry(outcome).or_default() += 1;
    }
    let elapsed = started.elapsed();
    let (worst_ms, failed, probes) = prober.finish();
    let peak = sampler.finish();
    // Settle, then look again: memory that stays high after the load is gone.
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kib(a.pid);
    println!(
        "{}",
        serde_json::json!({
            "scenario": a.scenario,
            "clients": a.clients,
            "seconds": elapsed.as_secs_f64(),
            "rss_before_mib": before / 1024,
            "rss_peak_mib": peak / 1024,
            "rss_after_mib": after / 1024,
            "outcomes": outcomes,
            "normal_requests": probes,
            "normal_failed": failed,
            "normal_worst_ms": worst_ms,
        })
    );
    Ok(())
}
