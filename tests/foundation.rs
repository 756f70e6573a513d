//! Foundation, black-box: the real binary's CLI, admin API, limits overrides,
//! store checks and shutdown.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{cli, request, tmp, Fazt, Signal};

#[test]
fn admin_api_serves_limits_and_schema_behind_the_token() {
    let dir = tmp();
    let fazt = Fazt::start(&dir.path().join("data"), &[]);

    let limits = fazt.admin_get("/api/system/limits");
    assert_eq!(limits.status, 200, "{}", limits.text());
    assert_eq!(limits.header("content-type"), Some("application/json"));
    let data = &limits.json()["data"];
    for group in ["hardware", "storage", "runtime", "capacity", "net"] {
        assert!(data[group].is_object(), "group {group} in {data}");
    }
    assert_eq!(data["net"]["max_calls"], 5);
    assert!(data["hardware"]["cpu_cores"].as_u64().unwrap_or(0) >= 1);

    let schema = fazt.admin_get("/api/system/limits/schema");
    assert_eq!(schema.status, 200);
    let schema = &schema.json()["data"];
    let leaf = &schema["runtime"]["max_memory"];
    for key in [
        "label",
        "desc",
        "unit",
        "min",
        "max",
        "default",
        "read_only",
    ] {
        assert!(
            !leaf[key].is_null(),
            "runtime.max_memory lacks {key}: {leaf}"
        );
    }
    assert_eq!(schema["hardware"]["total_ram"]["read_only"], true);
    assert!(schema["hardware"]["total_ram"].get("min").is_none());

    let health = fazt.admin_get("/api/system/health");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["data"]["phase"], "ready");
    assert_eq!(health.json()["data"]["database"], "ok");

    // No token, a wrong token, a malformed header: 401 without detail.
    for auth in [
        None,
        Some("Bearer fazt_wrong"),
        Some("Basic abc"),
        Some("Bearer "),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let reply = request(fazt.addr, "GET", "/api/system/limits", &headers, b"");
        assert_eq!(reply.status, 401, "auth {auth:?}");
        assert_eq!(reply.json()["error"]["code"], "UNAUTHORIZED");
        assert!(!reply.text().contains("\"data\""));
    }
    // Unknown endpoints need the token too, so they cannot be probed.
    assert_eq!(
        request(fazt.addr, "GET", "/api/nothing", &[], b"").status,
        401
    );
    let missing = fazt.admin_get("/api/nothing");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "NOT_FOUND");
    let auth = format!("Bearer {}", fazt.token());
    let wrong_method = request(
        fazt.addr,
        "POST",
        "/api/system/limits",
        &[("authorization", &auth)],
        b"{}",
    );
    assert_eq!(wrong_method.status, 405);
    // The admin API on the admin host works for non-loopback peers too; the
    // admin host never serves anything but /api.
    let admin_host = request(
        fazt.addr,
        "GET",
        "/api/system/health",
        &[("host", "admin.localhost"), ("authorization", &auth)],
        b"",
    );
    assert_eq!(admin_host.status, 200);
}

#[test]
fn admin_api_sets_and_resets_limit_overrides_with_the_clis_rules() {
    let dir = tmp();
    let data = dir.path().join("data");
    let fazt = Fazt::start(&data, &[]);
    let call = |method: &str, path: &str, body: &str| fazt.admin(method, path, body.as_bytes());
    let next = |path: &str| {
        let r = call("GET", "/api/system/limits/next", "");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["data"]
            .as_array()
            .and_then(|rows| rows.iter().find(|row| row["path"] == path).cloned())
            .expect("the limit")
    };
    assert_eq!(next("net.max_calls")["source"], "default");
    let r = call("PUT", "/api/system/limits/net/max_calls", r#"{"value": 7}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["applies"], "at the next start");
    let row = next("net.max_calls");
    assert_eq!(
        (&row["value"], &row["source"]),
        (&json!(7), &json!("override"))
    );
    assert_eq!(
        fazt.admin_get("/api/system/limits").json()["data"]["net"]["max_calls"],
        5,
        "what runs now is unchanged"
    );
    let r = call(
        "PUT",
        "/api/system/limits/runtime/max_memory",
        r#"{"value": "48MiB"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(next("runtime.max_memory")["value"], 48 << 20);
    // The CLI sees the same overrides.
    let shown = cli(&data, &["limits", "show", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert!(shown["data"].as_array().is_some_and(|rows| rows
        .iter()
        .any(|r| r["path"] == "net.max_calls" && r["value"] == 7)));

    for (path, body, what) in [
        ("net/max_calls", r#"{"value": 1000}"#, "out of range"),
        ("net/max_calls", r#"{"value": -1}"#, "negative"),
        ("net/max_calls", r#"{"value": "lots"}"#, "not a number"),
        ("net/max_calls", r#"{"valu": 3}"#, "no value"),
        ("net/max_calls", "not json", "not JSON"),
        ("net/nothing", r#"{"value": 3}"#, "an unknown limit"),
        ("hardware/cpu_cores", r#"{"value": 3}"#, "a read-only limit"),
    ] {
        let r = call("PUT", &format!("/api/system/limits/{path}"), body);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        let message = r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!message.is_empty(), "{what}");
    }
    assert_eq!(
        next("net.max_calls")["value"],
        7,
        "refused input wrote nothing"
    );
    let r = call(
        "PUT",
        "/api/system/limits/net/max_calls",
        r#"{"value": 1000}"#,
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1000"),
        "{}",
        r.text()
    );

    let r = call("DELETE", "/api/system/limits/net/max_calls", "");
    assert_eq!(r.json()["data"]["result"], "reset", "{}", r.text());
    assert_eq!(next("net.max_calls")["source"], "default");
    let r = call("DELETE", "/api/system/limits/net/max_calls", "");
    assert_eq!(r.json()["data"]["result"], "no override");
    let r = call("DELETE", "/api/system/limits/hardware/cpu_cores", "");
    assert_eq!(r.status, 400, "{}", r.text());
    // Paths are read as routing read them: decoded and normalised once.
    for path in ["/api//workers", "/%61pi/workers", "/api/./workers"] {
        let r = call("GET", path, "");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let r = call("GET", "/api/system/limits/net/max_calls", "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("PUT, DELETE"));
    let r = request(
        fazt.addr,
        "PUT",
        "/api/system/limits/net/max_calls",
        &[],
        br#"{"value": 9}"#,
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        next("net.max_calls")["source"],
        "default",
        "nothing set without the token"
    );
}

#[test]
fn token_file_is_private_and_stable_across_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp();
    let data = dir.path().join("data");
    let token = {
        let fazt = Fazt::start(&data, &[]);
        fazt.token()
    };
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&data.join("admin.token")), 0o600);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("fazt.db")), 0o600);
    let fazt = Fazt::start(&data, &[]);
    assert_eq!(fazt.token(), token);
    assert_eq!(fazt.admin_get("/api/system/health").status, 200);
}

#[test]
fn limits_cli_validates_persists_and_applies_at_next_start() {
    let dir = tmp();
    let data = dir.path().join("data");

    let refused = [
        (vec!["net.max_calls", "0"], "between 1 and 20"),
        (vec!["hardware.cpu_cores", "3"], "read-only"),
        (vec!["net.max_call", "3"], "unknown limit"),
        (vec!["runtime.max_memory", "lots"], "expects a size"),
        (vec!["runtime.max_memory", "-5"], "expects a size"),
        (
            vec!["runtime.max_memory", "512MiB"],
            "between 1 MiB and 256 MiB",
        ),
    ];
    for (args, want) in refused {
        let mut full = vec!["limits", "set"];
        full.extend(args.iter().copied());
        let out = cli(&data, &full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    // Nothing was written by the refusals.
    let show = cli(&data, &["limits", "show", "--json"]);
    assert!(show.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let rows = rows["data"].as_array().expect("rows").clone();
    assert!(
        rows.iter().all(|r| r["source"] != "override"),
        "refused sets left an override"
    );
    assert!(rows
        .iter()
        .any(|r| r["path"] == "hardware.cpu_cores" && r["source"] == "probe"));

    let out = cli(&data, &["limits", "set", "net.max_calls", "10"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&data, &["limits", "set", "runtime.max_memory", "64MiB"]);
    assert!(out.status.success());

    let show = cli(&data, &["limits", "show", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let row = |path: &str| {
        rows["data"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["path"] == path).cloned())
            .expect("row")
    };
    assert_eq!(row("net.max_calls")["value"], 10);
    assert_eq!(row("net.max_calls")["source"], "override");
    assert_eq!(row("runtime.max_memory")["value"], 64 * 1024 * 1024);
    assert_eq!(row("runtime.max_memory")["display"], "64 MiB");
    assert_eq!(row("net.budget_ms")["source"], "default");

    let human = cli(&data, &["limits", "show"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("net.max_calls") && l.contains("override")),
        "{text}"
    );

    {
        let fazt = Fazt::start(&data, &[]);
        let limits = fazt.admin_get("/api/system/limits").json();
        assert_eq!(limits["data"]["net"]["max_calls"], 10);
        assert_eq!(limits["data"]["runtime"]["max_memory"], 64 * 1024 * 1024);
    }

    let out = cli(&data, &["limits", "reset", "net.max_calls"]);
    assert!(out.status.success());
    let out = cli(&data, &["limits", "reset", "hardware.total_ram"]);
    assert_eq!(out.status.code(), Some(2));
    let fazt = Fazt::start(&data, &[]);
    assert_eq!(
        fazt.admin_get("/api/system/limits").json()["data"]["net"]["max_calls"],
        5
    );
}

#[test]
fn a_database_from_a_newer_fazt_is_refused_with_exit_1() {
    let dir = tmp();
    let data = dir.path().join("data");
    assert!(cli(&data, &["limits", "set", "runtime.lanes", "4"])
        .status
        .success());
    let conn = rusqlite::Connection::open(data.join("fazt.db")).expect("open");
    conn.pragma_update(None, "user_version", 999).expect("bump");
    drop(conn);
    let out = cli(&data, &["limits", "show"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("newer than this fazt"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let dir = tmp();
    let data = dir.path();
    assert_eq!(cli(data, &["--version"]).status.code(), Some(0));
    let help = cli(data, &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("supervise"));
    assert_eq!(cli(data, &["no-such-command"]).status.code(), Some(2));
    assert_eq!(
        cli(data, &["limits", "set", "net.max_calls"]).status.code(),
        Some(2)
    );
    let out = cli(data, &["supervise", "--listen", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sigterm_exits_cleanly() {
    let dir = tmp();
    let mut fazt = Fazt::start(&dir.path().join("data"), &[]);
    let status = fazt
        .signal_and_wait(Signal::SIGTERM, Duration::from_secs(15))
        .expect("fazt exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    let mut fazt = Fazt::start(&dir.path().join("data"), &[]);
    let status = fazt
        .signal_and_wait(Signal::SIGINT, Duration::from_secs(15))
        .expect("fazt exits after SIGINT");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_busy_port_is_a_runtime_error() {
    let dir = tmp();
    let fazt = Fazt::start(&dir.path().join("a"), &[]);
    let addr = fazt.addr.to_string();
    let out = cli(&dir.path().join("b"), &["supervise", "--listen", &addr]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&addr));
}

#[test]
fn reading_commands_create_nothing_and_failed_commands_write_nothing() {
    let dir = tmp();
    let data = dir.path().join("data");
    for args in [
        &["app", "list"][..],
        &["app", "list", "--json"],
        &["limits", "show"],
        &["limits", "show", "--json"],
        &["workers", "status"],
    ] {
        let _ = cli(&data, args);
        assert!(
            !data.exists(),
            "`fazt {}` created the data dir",
            args.join(" ")
        );
    }
    let fifo_app = dir.path().join("fifo-app");
    std::fs::create_dir_all(&fifo_app).expect("mkdir");
    std::fs::write(fifo_app.join("index.html"), "x").expect("write");
    nix::unistd::mkfifo(&fifo_app.join("pipe"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let fifo = fifo_app.to_str().expect("utf-8");
    for (args, code) in [
        (vec!["app", "remove", "nope"], 1),
        (vec!["app", "deploy", "/nonexistent-folder"], 2),
        (vec!["app", "deploy", fifo], 2),
        (vec!["limits", "set", "runtime.lanes", "0"], 2),
        (vec!["limits", "set", "no.such", "1"], 2),
    ] {
        let out = cli(&data, &args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !data.exists(),
            "`fazt {}` failed but created the data dir",
            args.join(" ")
        );
    }
}

#[test]
fn an_os_error_is_printed_once() {
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello");
    let out = cli(
        std::path::Path::new("/proc/no-such-dir/data"),
        &["app", "deploy", hello],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let dir = tmp();
    let data = dir.path().join("data");
    let fazt = Fazt::start(&data, &[]);
    let token = fazt.token();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} {token}");
        let r = request(
            fazt.addr,
            "GET",
            "/api/system/health",
            &[("authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 200, "{scheme}");
    }
    let r = request(
        fazt.addr,
        "GET",
        "/api/system/health",
        &[("authorization", &format!("Basic {token}"))],
        b"",
    );
    assert_eq!(r.status, 401);
}

#[test]
fn health_says_degraded_when_the_database_answers_errors() {
    let dir = tmp();
    let data = dir.path().join("data");
    let fazt = Fazt::start(&data, &[]);
    let health = fazt.admin_get("/api/system/health").json();
    assert_eq!(health["data"]["status"], "ok", "{health}");
    assert_eq!(health["data"]["database"], "ok", "{health}");
    // Someone breaks the database under the running supervisor.
    let conn = rusqlite::Connection::open(data.join("fazt.db")).expect("open");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy");
    conn.execute_batch("DROP TABLE config_rev").expect("drop");
    drop(conn);
    let health = fazt.admin_get("/api/system/health").json();
    assert_eq!(health["data"]["status"], "degraded", "{health}");
    assert_eq!(health["data"]["database"], "error", "{health}");
}

#[test]
fn a_damaged_database_is_reported_at_start_and_in_health() {
    let dir = tmp();
    let data = dir.path().join("data");
    // Enough rows that the tables span many pages.
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).expect("mkdir");
    for i in 0..200 {
        std::fs::write(site.join(format!("f{i}.txt")), "x".repeat(3000)).expect("write");
    }
    let out = cli(&data, &["app", "deploy", site.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Scribble over the middle of the file (not the first page, which holds
    // the schema): pages of the files table.
    let db = data.join("fazt.db");
    let mut bytes = std::fs::read(&db).expect("read db");
    let page = 4096;
    let mid = (bytes.len() / page / 2) * page;
    for b in &mut bytes[mid..mid + 3 * page] {
        *b = 0x5a;
    }
    std::fs::write(&db, &bytes).expect("write db");
    let fazt = Fazt::start(&data, &[]);
    let health = fazt.admin_get("/api/system/health").json();
    assert_eq!(health["data"]["status"], "degraded", "{health}");
    assert_eq!(health["data"]["database"], "corrupt", "{health}");
    assert!(
        fazt.stderr().contains("integrity check failed"),
        "{}",
        fazt.stderr()
    );
}
