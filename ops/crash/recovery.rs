//! Crash recovery (SPEC §2, §10), run by the README test command: the real
//! binary under bounded load while its parts are killed, stopped, looped
//! and reloaded. Each test states what must hold. Loads are bounded in
//! count and time; waits poll for a condition, never sleep for one.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::net::Net;
use support::upstream::Upstream;
use support::{
    cli, deploy, eventually, kill9, pid_alive, set_limits, signal, tmp, Fazt, Load, Signal,
};

/// A request that holds its lane ~20 ms, so some are in flight at any time.
const BUSY_20MS: &str = "const end = Date.now() + 20; while (Date.now() < end) {} ({ok: 1})";

fn workers_ready(fazt: &Fazt) -> bool {
    fazt.workers()
        .iter()
        .all(|w| w["state"] == "ready" || w["state"] == "busy")
}

/// kill -9 every worker and wait until each slot has a new one, ready.
fn kill_every_worker(fazt: &Fazt) {
    let before = fazt.worker_pids();
    for pid in &before {
        kill9(*pid);
    }
    assert!(
        eventually(Duration::from_secs(10), || {
            // A slot in back-off has no pid yet.
            let fresh = fazt
                .workers()
                .iter()
                .all(|w| w["pid"].as_u64().is_some_and(|pid| !before.contains(&pid)));
            fresh && workers_ready(fazt)
        }),
        "workers not back"
    );
}

/// kill -9 a worker under load: only requests it was running fail (502
/// WORKER_CRASHED, at most its lanes), the slot is back within 1 s with a
/// new pid, one more restart and LAST EXIT naming SIGKILL; the other slot
/// is untouched.
#[test]
fn kill_9_a_worker_under_load() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "2"), ("runtime.lanes", "2")]);
    deploy(&data, dir.path(), "a", &[("api/main.js", BUSY_20MS)]);
    let fazt = Fazt::start(&data, &[]);
    let before = fazt.worker_pids();
    let load = Load::start(fazt.addr, "/_app/a/api", 4);
    std::thread::sleep(Duration::from_millis(300));
    kill9(before[0]);
    let killed = Instant::now();
    let back = eventually(Duration::from_secs(5), || {
        let w = &fazt.workers()[0];
        w["restarts"] == 1 && w["state"] != "starting" && w["state"] != "backoff"
    });
    let took = killed.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let seen = load.stop();
    assert!(back, "slot 0 not back: {:?}", fazt.workers());
    assert!(took < Duration::from_secs(1), "slot 0 back after {took:?}");
    let rows = fazt.workers();
    assert_ne!(rows[0]["pid"].as_u64(), Some(before[0]));
    assert!(
        rows[0]["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("SIGKILL")),
        "{rows:?}"
    );
    assert_eq!(
        rows[1]["pid"].as_u64(),
        Some(before[1]),
        "the other slot is untouched"
    );
    assert_eq!(rows[1]["restarts"], 0);
    let failed = seen.failed();
    assert!(
        failed.len() <= 2,
        "more failed than the killed worker ran: {failed:?}"
    );
    assert!(failed.iter().all(|s| *s == 502), "{failed:?}");
    assert!(seen.ok() > 20, "the load hardly ran: {}", seen.ok());
}

/// kill -9 the supervisor: no worker outlives it by a second.
#[test]
fn kill_9_the_supervisor() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "2")]);
    deploy(&data, dir.path(), "a", &[("api/main.js", BUSY_20MS)]);
    let mut fazt = Fazt::start(&data, &[]);
    let workers = fazt.worker_pids();
    let load = Load::start(fazt.addr, "/_app/a/api", 2);
    std::thread::sleep(Duration::from_millis(200));
    fazt.signal_and_wait(Signal::SIGKILL, Duration::from_secs(5))
        .expect("the supervisor dies");
    let died = Instant::now();
    let gone = eventually(Duration::from_secs(1), || {
        workers.iter().all(|p| !pid_alive(*p))
    });
    let _ = load.stop();
    assert!(
        gone,
        "workers outlived the supervisor by {:?}: {workers:?}",
        died.elapsed()
    );
}

/// SIGSTOP a worker: it stops answering heartbeats and is killed after
/// `runtime.exec_timeout_ms` + 2 s; requests queued on it are answered by
/// the other worker; none fails.
#[test]
fn sigstop_a_worker() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(
        &data,
        &[
            ("runtime.workers", "2"),
            ("runtime.exec_timeout_ms", "1000"),
        ],
    );
    deploy(&data, dir.path(), "a", &[("api/main.js", "({ok: 1})")]);
    let fazt = Fazt::start(&data, &[]);
    let before = fazt.worker_pids();
    signal(before[0], Signal::SIGSTOP);
    let load = Load::start(fazt.addr, "/_app/a/api", 4);
    let restarted = eventually(Duration::from_secs(10), || {
        fazt.workers()[0]["restarts"] == 1 && workers_ready(&fazt)
    });
    std::thread::sleep(Duration::from_millis(200));
    let seen = load.stop();
    assert!(restarted, "{:?}", fazt.workers());
    assert_eq!(fazt.workers()[0]["last_exit"], "killed: missed heartbeats");
    assert!(!pid_alive(before[0]), "the stopped worker was not killed");
    // Jobs sent to the stopped worker had not started: they were sent
    // again when it died, and answered.
    assert!(seen.failed().is_empty(), "{:?}", seen.failed());
    assert!(seen.ok() > 10, "{}", seen.ok());
}

/// An app that loops for ever under load: other apps keep a p99 under
/// 1 s. (An app may fill every lane while nobody else waits; another app's
/// request then waits at most for one lane's JS time limit, 500 ms here.)
#[test]
fn a_looping_app_under_load() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(
        &data,
        &[
            ("runtime.workers", "1"),
            ("runtime.lanes", "4"),
            ("runtime.exec_timeout_ms", "500"),
        ],
    );
    deploy(
        &data,
        dir.path(),
        "spin",
        &[("api/main.js", "while (true) {}")],
    );
    deploy(
        &data,
        dir.path(),
        "nice",
        &[("api/main.js", "({nice: true})")],
    );
    let fazt = Fazt::start(&data, &[]);
    let spin = Load::start(fazt.addr, "/_app/spin/api", 8);
    std::thread::sleep(Duration::from_millis(500));
    let nice = Load::start(fazt.addr, "/_app/nice/api", 1);
    std::thread::sleep(Duration::from_secs(4));
    let nice = nice.stop();
    let spin = spin.stop();
    assert!(nice.failed().is_empty(), "{:?}", nice.failed());
    assert!(nice.ok() >= 4, "{}", nice.ok());
    assert!(nice.p99() < Duration::from_secs(1), "p99 {:?}", nice.p99());
    assert!(
        spin.statuses.iter().all(|s| *s == 504),
        "the loop was not cut off"
    );
}

/// A crash-looping slot: its restarts come further and further apart,
/// the other slot serves throughout, and an app that crashes workers is
/// quarantined — not an app whose requests merely ran beside it (those
/// requests fail with the worker, 502, and nothing more).
#[test]
fn a_crash_looping_slot() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "2")]);
    deploy(&data, dir.path(), "a", &[("api/main.js", "({ok: 1})")]);
    deploy(&data, dir.path(), "boom", &[("api/main.js", "1")]);
    let fazt = Fazt::start_listening(&data, &[("FAZT_TEST_CRASH", "start:1,app:boom")]);
    let load = Load::start(fazt.addr, "/_app/a/api", 2);
    // Watch slot 1's restarts and when each came.
    let mut seen_at: Vec<(u64, Instant)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline && seen_at.len() < 5 {
        let n = fazt.workers()[1]["restarts"].as_u64().unwrap_or(0);
        if seen_at.last().is_none_or(|(m, _)| *m != n) {
            seen_at.push((n, Instant::now()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let gaps: Vec<Duration> = seen_at.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(gaps.len() >= 3, "too few restarts: {seen_at:?}");
    // The delay doubles (100 ms, 200 ms, 400 ms, …); polling blurs single
    // gaps, so compare the last with the first.
    let (first, last) = (gaps[0], gaps[gaps.len() - 1]);
    assert!(last >= first * 2, "restarts did not slow down: {gaps:?}");
    // The app that crashes workers is quarantined after three crashes'
    // worth of blame (shared with the app running beside it, when it was).
    let mut boom = Vec::new();
    while boom.len() < 12 && boom.last() != Some(&503) {
        boom.push(fazt.app_get("boom", "/api").status);
    }
    assert_eq!(
        boom.last(),
        Some(&503),
        "boom was not quarantined: {boom:?}"
    );
    assert!(boom[..boom.len() - 1].iter().all(|s| *s == 502), "{boom:?}");
    let a = load.stop();
    assert!(a.ok() > 10, "{}", a.ok());
    let failed = a.failed();
    assert!(
        failed.iter().all(|s| *s == 502),
        "the app beside the crasher got more than crashed requests: {failed:?}"
    );
    assert!(failed.len() <= 3 * 8, "{failed:?}");
}

/// SIGHUP (and `fazt workers reload`) under load: every worker replaced,
/// no request failed, no restart counted.
#[test]
fn reload_under_load() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "2"), ("runtime.lanes", "2")]);
    deploy(&data, dir.path(), "a", &[("api/main.js", BUSY_20MS)]);
    let fazt = Fazt::start(&data, &[]);
    for how in ["SIGHUP", "fazt workers reload"] {
        let before = fazt.worker_pids();
        let load = Load::start(fazt.addr, "/_app/a/api", 4);
        std::thread::sleep(Duration::from_millis(300));
        if how == "SIGHUP" {
            signal(u64::from(fazt.pid()), Signal::SIGHUP);
        } else {
            let out = cli(&data, &["workers", "reload"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("replaced 2 worker(s)"));
        }
        let replaced = eventually(Duration::from_secs(30), || {
            fazt.worker_pids().iter().all(|p| !before.contains(p)) && workers_ready(&fazt)
        });
        std::thread::sleep(Duration::from_millis(300));
        let seen = load.stop();
        assert!(replaced, "{how}: not all replaced: {:?}", fazt.workers());
        assert!(
            seen.failed().is_empty(),
            "{how}: failed {:?} of {}",
            seen.failed(),
            seen.statuses.len()
        );
        assert!(seen.ok() > 20, "{how}: the load hardly ran ({})", seen.ok());
        assert!(
            fazt.workers().iter().all(|w| w["restarts"] == 0),
            "{:?}",
            fazt.workers()
        );
    }
    assert!(
        fazt.stderr().contains("retired worker exited"),
        "{}",
        fazt.stderr()
    );
}

/// SIGTERM under load: requests in flight complete, the supervisor exits
/// 0, no worker is left.
#[test]
fn sigterm_under_load() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "2")]);
    let slow = "const end = Date.now() + 500; while (Date.now() < end) {} ({finished: true})";
    deploy(&data, dir.path(), "slow", &[("api/main.js", slow)]);
    let mut fazt = Fazt::start(&data, &[]);
    let workers = fazt.worker_pids();
    let load = Load::start(fazt.addr, "/_app/slow/api", 3);
    assert!(eventually(Duration::from_secs(5), || fazt
        .workers()
        .iter()
        .map(|w| w["lanes_busy"].as_u64().unwrap_or(0))
        .sum::<u64>()
        >= 2));
    let status = fazt
        .signal_and_wait(Signal::SIGTERM, Duration::from_secs(15))
        .expect("exits after draining");
    let seen = load.stop();
    assert!(status.success(), "{status:?}");
    // Requests in flight at SIGTERM finished; later ones found no listener.
    assert!(
        seen.ok() >= 2,
        "in-flight requests did not finish: {:?}",
        seen.statuses
    );
    assert!(
        seen.statuses
            .iter()
            .all(|s| *s == 200 || *s == support::NO_CONNECTION),
        "a request in flight was cut: {:?}",
        seen.statuses
    );
    assert!(eventually(Duration::from_secs(1), || workers
        .iter()
        .all(|p| !pid_alive(*p))));
}

/// Reloads faster than a request finishes: the request runs on a worker
/// two reloads have replaced, and its answer still arrives.
#[test]
fn two_reloads_in_a_row_lose_no_running_request() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "1")]);
    let slow = "const end = Date.now() + 1500; while (Date.now() < end) {} ({finished: true})";
    deploy(&data, dir.path(), "slow", &[("api/main.js", slow)]);
    let fazt = Fazt::start(&data, &[]);
    let addr = fazt.addr;
    let request = std::thread::spawn(move || support::try_get(addr, "/_app/slow/api"));
    assert!(eventually(Duration::from_secs(5), || fazt.workers()[0]
        ["lanes_busy"]
        == 1));
    for _ in 0..2 {
        let out = cli(&data, &["workers", "reload"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(request.join().expect("request thread"), 200);
}

/// SIGTERM while a reload waits for a slot that keeps failing to start:
/// the reload gives up and the supervisor still exits 0 within its drain.
#[test]
fn sigterm_during_a_reload() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "2")]);
    let mut fazt = Fazt::start_listening(&data, &[("FAZT_TEST_CRASH", "start:1")]);
    // Slot 1's restarts are a second or more apart by now.
    assert!(eventually(Duration::from_secs(15), || fazt.workers()[1]
        ["restarts"]
        .as_u64()
        .is_some_and(|n| n >= 5)));
    let slot0 = || fazt.workers()[0]["pid"].as_u64();
    let before = slot0();
    signal(u64::from(fazt.pid()), Signal::SIGHUP);
    // Slot 0 is replaced; the reload now waits on slot 1.
    assert!(eventually(Duration::from_secs(10), || slot0() != before));
    let status = fazt
        .signal_and_wait(Signal::SIGTERM, Duration::from_secs(10))
        .expect("exits while a reload was under way");
    assert!(status.success(), "{status:?}");
}

/// Rate buckets live in egress: kill -9 of every worker leaves them as they
/// were, so a spent burst stays spent.
#[test]
fn kill_9_workers_keeps_rate_state() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(
        &[p],
        &[&["up.example.com", "--http", "--rate", "1", "--burst", "2"]],
        &[("runtime.workers", "2")],
    );
    let url = format!("http://up.example.com:{p}/json");
    assert_eq!(net.spend("spender", &url, 3), json!([200, 200, "NET_RATE"]));
    kill_every_worker(&net.fazt);
    assert_eq!(
        net.spend("spender", &url, 2),
        json!(["NET_RATE", "NET_RATE"]),
        "a worker crash gave the burst back"
    );
}

/// The response cache lives in egress: kill -9 of every worker leaves it
/// as it was, and the next fetch is a hit.
#[test]
fn kill_9_workers_keeps_the_cache() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(
        &[p],
        &[&["up.example.com", "--http", "--cache-ttl", "60"]],
        &[
            ("runtime.workers", "2"),
            ("net.cache_max_items", "10"),
            ("net.cache_max_bytes", "1MiB"),
        ],
    );
    let url = format!("http://up.example.com:{p}/respond");
    assert_eq!(net.fetch(&url, json!(null))["status"], 200);
    assert_eq!(up.hits(), 1);
    kill_every_worker(&net.fazt);
    assert_eq!(net.fetch(&url, json!(null))["status"], 200);
    assert_eq!(up.hits(), 1, "the cached answer survived the workers");
}

/// After kill -9 of egress its buckets start drained: the next burst is
/// not granted in full, only what has trickled in since the restart.
#[test]
fn kill_9_egress_grants_no_fresh_burst() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(
        &[p],
        &[&["up.example.com", "--http", "--rate", "60", "--burst", "5"]],
        &[],
    );
    let url = format!("http://up.example.com:{p}/json");
    assert_eq!(
        net.spend("spender", &url, 5),
        json!([200, 200, 200, 200, 200]),
        "a fresh egress grants the burst"
    );
    let pid = net.fazt.egress()["pid"].as_u64().expect("egress pid");
    kill9(pid);
    let killed = Instant::now();
    assert!(eventually(Duration::from_secs(10), || {
        let e = net.fazt.egress();
        e["restarts"] == 1 && e["state"] == "ready"
    }));
    let codes = net.spend("spender", &url, 5);
    let granted = codes
        .as_array()
        .map_or(0, |c| c.iter().filter(|c| **c == json!(200)).count());
    // One token a second since the restart at most (plus the one in hand).
    let allowed = killed.elapsed().as_secs() as usize + 1;
    assert!(
        granted < 5 && granted <= allowed,
        "{granted} granted {:?} after the kill: {codes}",
        killed.elapsed()
    );
}

/// kill -9 egress: it is back with a new pid, its row says SIGKILL, and
/// the workers (and the requests they serve) are untouched.
#[test]
fn kill_9_egress() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "2")]);
    deploy(&data, dir.path(), "a", &[("api/main.js", BUSY_20MS)]);
    let fazt = Fazt::start(&data, &[]);
    let workers = fazt.worker_pids();
    let before = fazt.egress();
    assert_eq!(before["state"], "ready", "{before}");
    let pid = before["pid"].as_u64().expect("egress pid");
    let load = Load::start(fazt.addr, "/_app/a/api", 2);
    kill9(pid);
    let back = eventually(Duration::from_secs(5), || {
        let e = fazt.egress();
        e["restarts"] == 1 && e["state"] == "ready"
    });
    // Served after the restart too, not only while egress was away.
    std::thread::sleep(Duration::from_millis(500));
    let seen = load.stop();
    let after = fazt.egress();
    assert!(back, "egress not back: {after}");
    assert_ne!(after["pid"].as_u64(), Some(pid));
    assert!(
        after["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("SIGKILL")),
        "{after}"
    );
    assert_eq!(fazt.worker_pids(), workers, "workers are untouched");
    assert!(seen.failed().is_empty(), "{:?}", seen.failed());
    assert!(seen.ok() > 5, "the load hardly ran: {}", seen.ok());
}
