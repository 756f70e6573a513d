//! The worker pool, black-box: limits on JS, lanes, load, and status.

mod support;

use std::time::{Duration, Instant};

use support::{cli, deploy, eventually, kill9, pid_alive, set_limits, tmp, Fazt};

#[test]
fn infinite_loops_time_out_and_memory_bombs_fail_without_killing_the_worker() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(
        &data,
        &[
            ("runtime.exec_timeout_ms", "1000"),
            ("runtime.max_memory", "16MiB"),
            ("runtime.workers", "1"),
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
        "hog",
        &[(
            "api/main.js",
            "const a = []; while (true) a.push('x'.repeat(4096) + a.length);",
        )],
    );
    deploy(
        &data,
        dir.path(),
        "fine",
        &[("api/main.js", "({ok: true})")],
    );
    let fazt = Fazt::start(&data, &[]);
    let pids = fazt.worker_pids();
    assert_eq!(pids.len(), 1);

    let started = Instant::now();
    let r = fazt.app_get("spin", "/api");
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["code"], "JS_TIMEOUT");
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} for a 1 s limit"
    );
    assert_eq!(fazt.app_get("fine", "/api").json()["ok"], true);

    let r = fazt.app_get("hog", "/api");
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["code"], "JS_MEMORY");
    assert_eq!(fazt.app_get("fine", "/api").json()["ok"], true);
    assert_eq!(fazt.worker_pids(), pids, "the same worker process survived");
    assert!(pids.iter().all(|p| pid_alive(*p)));
    let row = &fazt.workers()[0];
    assert_eq!(row["restarts"], 0, "{row}");
}

#[test]
fn lanes_keep_fast_requests_fast_while_one_is_busy() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "1")]);
    let busy = "if (request.query.wait) { const end = Date.now() + 2000; while (Date.now() < end) {} } ({slow: !!request.query.wait})";
    deploy(&data, dir.path(), "slow", &[("api/main.js", busy)]);
    deploy(
        &data,
        dir.path(),
        "quick",
        &[("api/main.js", "({fast: true})"), ("index.html", "static")],
    );
    let fazt = Fazt::start(&data, &[]);
    let addr = fazt.addr;
    let slow = std::thread::spawn(move || {
        support::request(addr, "GET", "/_app/slow/api?wait=1", &[], b"")
    });
    // Wait until the slow request is on a lane, by the worker's own count.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fazt.workers()[0]["lanes_busy"] != 1 {
        assert!(Instant::now() < deadline, "the slow request never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Another app, the same app, and a static file.
    for path in ["/_app/quick/api", "/_app/slow/api", "/_app/quick/"] {
        let started = Instant::now();
        let r = support::request(addr, "GET", path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{path} took {:?} while a lane was busy",
            started.elapsed()
        );
    }
    let r = slow.join().expect("slow thread");
    assert_eq!(r.json()["slow"], true);
}

#[test]
fn static_files_are_served_while_every_lane_is_busy() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "1"), ("runtime.lanes", "1")]);
    let busy = "const end = Date.now() + 2000; while (Date.now() < end) {} 1";
    deploy(
        &data,
        dir.path(),
        "site",
        &[("api/main.js", busy), ("index.html", "static")],
    );
    let fazt = Fazt::start(&data, &[]);
    let addr = fazt.addr;
    let slow =
        std::thread::spawn(move || support::request(addr, "GET", "/_app/site/api", &[], b""));
    let deadline = Instant::now() + Duration::from_secs(10);
    while fazt.workers()[0]["lanes_busy"] != 1 {
        assert!(Instant::now() < deadline, "the busy request never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let r = fazt.app_get("site", "/");
    assert_eq!(r.text(), "static");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "static waited for a lane"
    );
    assert_eq!(slow.join().expect("slow").status, 200);
}

#[test]
fn two_hundred_concurrent_requests_all_succeed() {
    let dir = tmp();
    let data = dir.path().join("data");
    deploy(
        &data,
        dir.path(),
        "a",
        &[("api/main.js", "({n: Number(request.query.n)})")],
    );
    deploy(
        &data,
        dir.path(),
        "b",
        &[("api/main.js", "({n: Number(request.query.n)})")],
    );
    let fazt = Fazt::start(&data, &[]);
    let addr = fazt.addr;
    let threads: Vec<_> = (0..200)
        .map(|i| {
            std::thread::spawn(move || {
                let app = if i % 2 == 0 { "a" } else { "b" };
                let r = support::request(addr, "GET", &format!("/_app/{app}/api?n={i}"), &[], b"");
                (i, r.status, r.json()["n"].as_u64())
            })
        })
        .collect();
    for t in threads {
        let (i, status, n) = t.join().expect("thread");
        assert_eq!(status, 200, "request {i}");
        assert_eq!(n, Some(i), "request {i} got another's answer");
    }
}

#[test]
fn workers_status_lists_live_workers() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "2"), ("runtime.lanes", "3")]);
    let fazt = Fazt::start(&data, &[]);
    let rows = fazt.workers();
    assert_eq!(rows.len(), 2);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["slot"], i);
        assert_eq!(row["kind"], "worker");
        assert_eq!(row["lanes_total"], 3);
        assert!(matches!(row["state"].as_str(), Some("ready")), "{row}");
        let pid = row["pid"].as_u64().expect("pid");
        assert!(pid_alive(pid), "pid {pid} does not exist");
        assert_ne!(pid, u64::from(fazt.pid()));
    }
    use std::os::unix::fs::PermissionsExt;
    for socket in ["control.sock", "children.sock"] {
        let mode = std::fs::metadata(data.join(socket))
            .expect("socket exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{socket}");
    }
    let human = support::cli(&data, &["workers", "status"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("LANES") && text.contains("0/3"), "{text}");
}

#[test]
fn workers_status_without_a_supervisor_says_so() {
    let dir = tmp();
    let out = support::cli(&dir.path().join("data"), &["workers", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no fazt supervisor is running"), "{stderr}");
}

#[test]
fn a_second_supervisor_on_the_same_data_dir_is_refused() {
    let dir = tmp();
    let data = dir.path().join("data");
    let _first = Fazt::start(&data, &[]);
    let out = support::cli(&data, &["supervise", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
}

#[test]
fn one_app_cannot_starve_another() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(
        &data,
        &[
            ("runtime.workers", "1"),
            ("runtime.lanes", "4"),
            ("runtime.exec_timeout_ms", "1000"),
        ],
    );
    deploy(
        &data,
        dir.path(),
        "hog",
        &[("api/main.js", "while (true) {}")],
    );
    deploy(
        &data,
        dir.path(),
        "nice",
        &[("api/main.js", "({nice: true})")],
    );
    let fazt = Fazt::start(&data, &[]);
    let addr = fazt.addr;
    // 16 requests that each hold a lane for a second: in arrival order they
    // would keep every lane busy for four seconds.
    let hogs: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                support::request(addr, "GET", "/_app/hog/api", &[], b"").status
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let nice = fazt.app_get("nice", "/api");
    let waited = started.elapsed();
    assert_eq!(nice.status, 200, "{}", nice.text());
    assert!(
        waited < Duration::from_millis(1800),
        "another app's trivial request waited {waited:?} behind the hog"
    );
    for h in hogs {
        assert_eq!(h.join().expect("hog"), 504);
    }
}

#[test]
fn a_worker_killed_mid_answer_is_reported_by_its_signal() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "1")]);
    // Large answers, so the kill lands while a frame is being read.
    deploy(
        &data,
        dir.path(),
        "big",
        &[("api/main.js", "respond(200, 'x'.repeat(4 << 20))")],
    );
    let fazt = Fazt::start(&data, &[]);
    let pid = fazt.worker_pids()[0];
    let addr = fazt.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 200 {
                    let _ = support::request(addr, "GET", "/_app/big/api", &[], b"");
                    n += 1;
                }
            })
        })
        .collect();
    // The kill lands at a random point of the answers; mid-frame it breaks
    // the frame, and the exit status must still be what is reported.
    let mut pid = pid;
    for round in 1..=1u64 {
        std::thread::sleep(Duration::from_millis(300));
        kill9(pid);
        assert!(
            eventually(Duration::from_secs(10), || {
                let w = &fazt.workers()[0];
                w["restarts"] == round && w["state"] != "starting"
            }),
            "not restarted: {:?}",
            fazt.workers()
        );
        let w = fazt.workers()[0].clone();
        let last_exit = w["last_exit"].clone();
        assert!(
            last_exit.as_str().is_some_and(|e| e.contains("SIGKILL")),
            "round {round}: last exit {last_exit}"
        );
        assert!(
            eventually(Duration::from_secs(10), || fazt.workers()[0]["state"]
                == "ready"
                || fazt.workers()[0]["state"] == "busy"),
            "not ready again"
        );
        pid = fazt.workers()[0]["pid"].as_u64().expect("pid");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        t.join().expect("load");
    }
}

#[test]
fn ready_is_not_announced_while_a_worker_is_missing() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "2")]);
    deploy(&data, dir.path(), "a", &[("api/main.js", "({ok: 1})")]);
    // Slot 1's worker fails at every start.
    let fazt = Fazt::start_listening(&data, &[("FAZT_TEST_CRASH", "start:1")]);
    // The worker that is up serves meanwhile.
    assert!(
        eventually(Duration::from_secs(20), || fazt.app_get("a", "/api").status
            == 200),
        "no request was served"
    );
    let health = fazt.admin_get("/api/system/health").json();
    let h = &health["data"];
    assert_eq!(h["status"], "starting", "{health}");
    assert_eq!(
        (
            h["workers"]["ready"].as_u64(),
            h["workers"]["total"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert!(
        h["problems"].to_string().contains("1 of 2 workers ready"),
        "{health}"
    );
    // The crash loop shows: restarts grow, and the backoff says when it retries.
    assert!(
        eventually(Duration::from_secs(10), || {
            let w = &fazt.workers()[1];
            w["restarts"].as_u64().unwrap_or(0) >= 3
                && w["state"] == "backoff"
                && w["retry_in_ms"].as_u64().is_some()
        }),
        "{:?}",
        fazt.workers()
    );
    assert!(fazt.workers()[1]["last_exit"]
        .as_str()
        .is_some_and(|e| e == "exit 3"));
    assert!(
        !fazt.stdout_ready_seen(),
        "ready was announced with a worker missing"
    );
}

#[test]
fn an_app_that_keeps_crashing_workers_is_quarantined() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "2")]);
    deploy(
        &data,
        dir.path(),
        "boom",
        &[("api/main.js", "({never: 'reached'})")],
    );
    deploy(
        &data,
        dir.path(),
        "nice",
        &[("api/main.js", "({nice: true})")],
    );
    let fazt = Fazt::start(&data, &[("FAZT_TEST_CRASH", "app:boom")]);
    // Three requests, three crashed workers, each answered 502.
    for i in 0..3 {
        let r = fazt.app_get("boom", "/api");
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (502, Some("WORKER_CRASHED")),
            "crash {i}"
        );
    }
    // Then the app is paused, without touching a worker.
    let r = fazt.app_get("boom", "/api");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], "APP_QUARANTINED");
    assert_eq!(r.json()["retryable"], true);
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=11).contains(&retry), "retry-after {retry}");
    // Other apps are served; the pool is whole again.
    assert!(
        eventually(Duration::from_secs(10), || fazt
            .app_get("nice", "/api")
            .status
            == 200
            && fazt.workers().iter().all(|w| w["state"] == "ready")),
        "{:?}",
        fazt.workers()
    );
    // Status and the app list say so.
    let out = cli(&data, &["workers", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["data"]["quarantined"][0]["name"], "boom", "{v}");
    let list = String::from_utf8_lossy(&cli(&data, &["app", "list"]).stdout).into_owned();
    let boom_line = list
        .lines()
        .find(|l| l.starts_with("boom"))
        .unwrap_or_default()
        .to_string();
    assert!(boom_line.contains("quarantined"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("nice") && l.ends_with("ok")),
        "{list}"
    );
}
