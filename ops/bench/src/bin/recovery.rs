//! How fast fazt recovers, measured (not asserted), under a load of four
//! clients. `--mode kill`: kill -9 worker 0 once and time until its slot
//! has a new, ready worker; count the requests it cost (run it against a
//! fresh supervisor each time: restarts close together back off on
//! purpose). `--mode reload`: a rolling reload (SIGHUP): requests failed,
//! and the p99 during the reload against the p99 of the same load just
//! before it. Prints one JSON line.
//!
//! usage: recovery ADDR --pid PID --fazt BIN --data DIR --mode kill|reload [--path P]
//! Loopback only; every loop is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

struct Args {
    addr: SocketAddr,
    pid: i32,
    fazt: String,
    data: String,
    mode: String,
    path: String,
}

fn parse_args() -> Result<Args> {
    let usage =
        "usage: recovery ADDR --pid PID --fazt BIN --data DIR --mode kill|reload [--path P]";
    let mut args = std::env::args().skip(1);
    let addr = fazt_bench::loopback_target(&args.next().context(usage)?, "recovery")?;
    let mut a = Args {
        addr,
        pid: 0,
        fazt: String::new(),
        data: String::new(),
        mode: String::new(),
        path: "/_app/bench/api".into(),
    };
    for (flag, value) in fazt_bench::flag_pairs(args)? {
        match flag.as_str() {
            "--pid" => a.pid = value.parse()?,
            "--fazt" => a.fazt = value,
            "--data" => a.data = value,
            "--mode" => a.mode = value,
            "--path" => a.path = value,
            other => bail!("unknown flag {other}; {usage}"),
        }
    }
    if a.pid == 0
        || a.fazt.is_empty()
        || a.data.is_empty()
        || !matches!(a.mode.as_str(), "kill" | "reload")
    {
        bail!("{usage}");
    }
    Ok(a)
}

/// Worker rows: (slot, pid, state).
fn workers(a: &Args) -> Result<Vec<(u64, u64, String)>> {
    let out = Command::new(&a.fazt)
        .args(["--data-dir", &a.data, "workers", "status", "--json"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["data"]["children"]
        .as_array()
        .context("children")?
        .iter()
        .map(|w| {
            (
                w["slot"].as_u64().unwrap_or(0),
                w["pid"].as_u64().unwrap_or(0),
                w["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

/// Statuses and latencies seen by the load, with when each answer came.
#[derive(Default)]
struct Seen {
    answers: Vec<(Instant, u16, Duration)>,
}

fn get(addr: SocketAddr, path: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .is_err()
    {
        return 1;
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

fn p99(mut l: Vec<Duration>) -> f64 {
    if l.is_empty() {
        return 0.0;
    }
    l.sort_unstable();
    l[(l.len() - 1) * 99 / 100].as_secs_f64() * 1000.0
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, seen, path, addr) = (stop.clone(), seen.clone(), a.path.clone(), a.addr);
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(600);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    let t = Instant::now();
                    let status = get(addr, &path);
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .answers
                        .push((Instant::now(), status, t.elapsed()));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));

    let result = if a.mode == "kill" {
        kill_once(&a, &seen)?
    } else {
        reload_once(&a, &seen)?
    };
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = t.join();
    }
    let s = seen.lock().unwrap_or_else(|p| p.into_inner());
    println!("{}", result(&s));
    Ok(())
}

/// What a measurement prints, given all the load saw.
type Report = Box<dyn Fn(&Seen) -> serde_json::Value>;

fn kill_once(a: &Args, seen: &Mutex<Seen>) -> Result<Report> {
    let rows = workers(a)?;
    let (slot, pid, _) = rows.first().cloned().context("no worker")?;
    let killed_at = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let deadline = killed_at + Duration::from_secs(30);
    let ready_ms = loop {
        let rows = workers(a)?;
        if rows
            .iter()
            .any(|(s, p, st)| *s == slot && *p != pid && (st == "ready" || st == "busy"))
        {
            break killed_at.elapsed().as_secs_f64() * 1000.0;
        }
        if Instant::now() > deadline {
            bail!("slot {slot} not back within 30 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    drop(seen.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Box::new(move |s: &Seen| {
        let after: Vec<_> = s
            .answers
            .iter()
            .filter(|(at, _, _)| *at >= killed_at)
            .collect();
        serde_json::json!({
            "mode": "kill",
            "kill_to_ready_ms": ready_ms.round(),
            "failed": after.iter().filter(|(_, st, _)| *st != 200).count(),
            "requests_after_kill": after.len(),
        })
    }))
}

fn reload_once(a: &Args, _seen: &Mutex<Seen>) -> Result<Report> {
    // The same load, 2 s before it, is the baseline.
    std::thread::sleep(Duration::from_secs(2));
    let old: Vec<u64> = workers(a)?.iter().map(|w| w.1).collect();
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a.pid),
        nix::sys::signal::Signal::SIGHUP,
    )?;
    let deadline = started + Duration::from_secs(60);
    loop {
        let rows = workers(a)?;
        if rows
            .iter()
            .all(|(_, p, st)| !old.contains(p) && (st == "ready" || st == "busy"))
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("reload did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    Ok(Box::new(move |s: &Seen| {
        let window = |from: Instant, to: Instant| -> Vec<&(Instant, u16, Duration)> {
            s.answers
                .iter()
                .filter(|(at, _, _)| *at >= from && *at <= to)
                .collect()
        };
        let baseline = window(started - Duration::from_secs(2), started);
        let during = window(started, started + took + Duration::from_millis(500));
        serde_json::json!({
            "mode": "reload",
            "reload_ms": (took.as_secs_f64() * 1000.0).round(),
            "failed": during.iter().filter(|(_, st, _)| *st != 200).count(),
            "requests_during": during.len(),
            "p99_ms_before": p99(baseline.iter().map(|x| x.2).collect()),
            "p99_ms_during": p99(during.iter().map(|x| x.2).collect()),
        })
    }))
}
