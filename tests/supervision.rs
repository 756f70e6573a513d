//! Supervision, black-box (SPEC §2, §10): what fazt tells systemd, and
//! when. A local datagram socket stands in for systemd's notify socket.

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use support::{deploy, set_limits, tmp, Fazt};

/// Collects notify datagrams until `done` holds or `within` passes.
fn listen(sock: &UnixDatagram, within: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !done(&got) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_string),
            );
        }
    }
    got
}

#[test]
fn systemd_hears_ready_status_and_the_watchdog() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "1")]);
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind");
    let notify = path.to_str().expect("utf-8");
    let fazt = Fazt::start(
        &data,
        &[("NOTIFY_SOCKET", notify), ("WATCHDOG_USEC", "400000")],
    );
    let got = listen(&sock, Duration::from_secs(10), |g| {
        g.iter().any(|l| l == "READY=1") && g.iter().filter(|l| *l == "WATCHDOG=1").count() >= 2
    });
    assert!(got.iter().any(|l| l == "READY=1"), "{got:?}");
    assert!(
        got.iter().any(|l| l == "STATUS=workers 1/1 ready, 0 req/s"),
        "{got:?}"
    );
    assert!(
        got.iter().filter(|l| *l == "WATCHDOG=1").count() >= 2,
        "{got:?}"
    );
    // A reload: RELOADING=1, then READY=1 again once the new worker is up.
    support::signal(u64::from(fazt.pid()), nix::sys::signal::Signal::SIGHUP);
    let reload = listen(&sock, Duration::from_secs(10), |g| {
        g.iter()
            .skip_while(|l| *l != "RELOADING=1")
            .any(|l| l == "READY=1")
    });
    assert!(
        reload
            .iter()
            .skip_while(|l| *l != "RELOADING=1")
            .any(|l| l == "READY=1"),
        "{reload:?}"
    );
}

#[test]
fn systemd_does_not_hear_ready_while_a_worker_is_missing() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.workers", "2")]);
    deploy(&data, dir.path(), "a", &[("api/main.js", "1")]);
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind");
    let notify = path.to_str().expect("utf-8");
    let fazt = Fazt::start_listening(
        &data,
        &[("NOTIFY_SOCKET", notify), ("FAZT_TEST_CRASH", "start:1")],
    );
    let got = listen(&sock, Duration::from_secs(4), |g| {
        g.iter().any(|l| l.contains("1/2"))
    });
    // A reload that ends with the slot still missing is no reason either.
    support::signal(u64::from(fazt.pid()), nix::sys::signal::Signal::SIGHUP);
    let reload = listen(&sock, Duration::from_secs(10), |g| {
        g.iter().any(|l| l == "RELOADING=1")
    });
    assert!(reload.iter().any(|l| l == "RELOADING=1"), "{reload:?}");
    let more = listen(&sock, Duration::from_secs(2), |_| false);
    let all: Vec<&String> = got.iter().chain(&reload).chain(&more).collect();
    assert!(
        all.iter()
            .any(|l| l.starts_with("STATUS=workers 1/2 ready")),
        "{all:?}"
    );
    assert!(
        !all.iter().any(|l| *l == "READY=1"),
        "READY with a worker missing: {all:?}"
    );
}

#[test]
fn service_install_writes_a_unit_for_this_binary_and_data_dir() {
    let dir = tmp();
    let data = dir.path().join("data");
    let home = dir.path().join("home");
    let out = std::process::Command::new(support::bin())
        .arg("--data-dir")
        .arg(&data)
        .args(["service", "install", "--user"])
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit =
        std::fs::read_to_string(home.join(".config/systemd/user/fazt.service")).expect("unit");
    assert!(unit.contains("Type=notify"), "{unit}");
    assert!(
        unit.contains(&format!(
            "ExecStart={} --data-dir {} supervise",
            support::bin(),
            data.display()
        )),
        "{unit}"
    );
    assert!(
        unit.contains(&format!("ReadWritePaths={}", data.display())),
        "{unit}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("systemctl --user enable --now fazt"));
    // A second install does not overwrite without --force.
    let again = std::process::Command::new(support::bin())
        .arg("--data-dir")
        .arg(&data)
        .args(["service", "install", "--user"])
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("run");
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn a_backup_taken_while_running_restores_apps_and_kv() {
    let dir = tmp();
    let data = dir.path().join("data");
    let counter = "const n = (fazt.app.kv.get('n') || 0) + 1; fazt.app.kv.set('n', n); ({n})";
    deploy(
        &data,
        dir.path(),
        "count",
        &[("api/main.js", counter), ("index.html", "page")],
    );
    let fazt = Fazt::start(&data, &[]);
    for _ in 0..5 {
        assert_eq!(fazt.app_get("count", "/api").status, 200);
    }
    // Taken while writes go on.
    let load = support::Load::start(fazt.addr, "/_app/count/api", 2);
    let copy = dir.path().join("backup.db");
    let out = support::cli(&data, &["backup", copy.to_str().expect("utf-8")]);
    let _ = load.stop();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy)
        .expect("backup")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the backup holds secrets");
    // A second one to the same file needs --force.
    let again = support::cli(&data, &["backup", copy.to_str().expect("utf-8")]);
    assert_eq!(again.status.code(), Some(2));
    // --force onto the live database (or another name for it) is refused.
    let db = data.join("fazt.db");
    let alias = dir.path().join("alias.db");
    std::fs::hard_link(&db, &alias).expect("link");
    let size = std::fs::metadata(&db).expect("stat").len();
    for target in [&db, &alias, &data.join("fazt.db-wal")] {
        let out = support::cli(
            &data,
            &["backup", "--force", target.to_str().expect("utf-8")],
        );
        assert_eq!(out.status.code(), Some(2), "{target:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("fazt's own database"));
    }
    assert_eq!(std::fs::metadata(&db).expect("stat").len(), size);
    // Restore into a fresh data dir and serve from it.
    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&restored).expect("mkdir");
    std::fs::copy(&copy, restored.join("fazt.db")).expect("copy");
    let second = Fazt::start(&restored, &[]);
    assert_eq!(second.app_get("count", "/").text(), "page");
    let n = second.app_get("count", "/api").json()["n"]
        .as_u64()
        .expect("n");
    assert!(n >= 6, "kv lost in the backup: n = {n}");
}

/// `supervise::run` driven in-process: the probe the test hands it sizes the
/// pool, the phase watch it hands it shows starting → ready → draining, and
/// the signal source reloads and stops it.
#[test]
fn run_takes_its_probe_phase_and_signals_from_the_caller() {
    use fazt_shared::{DataDir, Probe};
    use fazt_supervisor::phase::Phase;
    use fazt_supervisor::supervise::{self, Deps, Signal};

    let dir = tmp();
    let data = DataDir::new(dir.path().join("data"));
    // Three cores on a two-core machine: only the probe handed in can say so.
    let probe = Probe::fixed(2 << 30, 3);
    let (phase_tx, phase) = tokio::sync::watch::channel(Phase::Draining);
    let (signals, signals_rx) = tokio::sync::mpsc::channel(4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let supervisor = std::thread::spawn({
        let data = data.clone();
        move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send");
                let deps = Deps {
                    exe: support::bin().into(),
                    probe,
                    phase: phase_tx,
                    signals: signals_rx,
                };
                supervise::run(data, "localhost".into(), listener, deps).await
            })
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("listening");
    assert!(
        support::eventually(Duration::from_secs(30), || *phase.borrow() == Phase::Ready),
        "phase is {:?}",
        *phase.borrow()
    );
    let token = std::fs::read_to_string(data.admin_token_path()).expect("admin.token");
    let auth = format!("Bearer {}", token.trim());
    let workers = || -> Vec<u64> {
        let reply = support::request(
            addr,
            "GET",
            "/api/workers",
            &[("authorization", &auth)],
            b"",
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()["data"]
            .as_array()
            .expect("workers")
            .iter()
            .filter(|w| w["kind"] == "worker")
            .map(|w| w["pid"].as_u64().unwrap_or(0))
            .collect()
    };
    let before = workers();
    assert_eq!(before.len(), 3, "the pool follows the probe handed in");
    let health = support::request(
        addr,
        "GET",
        "/api/system/health",
        &[("authorization", &auth)],
        b"",
    );
    assert_eq!(health.json()["data"]["workers"]["total"], 3);

    signals.blocking_send(Signal::Reload).expect("reload");
    assert!(
        support::eventually(Duration::from_secs(30), || {
            let now = workers();
            now.iter().all(|pid| *pid != 0 && !before.contains(pid))
        }),
        "every worker replaced after a reload: {before:?} -> {:?}",
        workers()
    );

    let after = workers();
    signals.blocking_send(Signal::Stop).expect("stop");
    assert!(
        support::eventually(Duration::from_secs(30), || supervisor.is_finished()),
        "run did not return after a stop"
    );
    let outcome = supervisor.join().expect("supervisor thread");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(*phase.borrow(), Phase::Draining);
    for pid in after {
        assert!(!support::pid_alive(pid), "worker {pid} outlived run");
    }
}
