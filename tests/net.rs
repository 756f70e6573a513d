//! The allowlist from the outside (SPEC §6 CLI, §9 admin API): what is
//! refused (exit 2, nothing written), how entries are added, updated,
//! scoped and removed, and the same through the admin API.

mod support;

use support::{cli, deploy, request, tmp, Fazt};

fn allowlist(data: &std::path::Path) -> serde_json::Value {
    let out = cli(data, &["net", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["data"].clone()
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let dir = tmp();
    let data = dir.path().join("data");
    let refused: &[&[&str]] = &[
        &["net", "allow", "127.0.0.1"],
        &["net", "allow", "0x7f.1"],
        &["net", "allow", "2130706433"],
        &["net", "allow", "[::1]"],
        &["net", "allow", "https://api.example.com"],
        &["net", "allow", "api.example.com:8443"],
        &["net", "allow", "api.example.com/v1"],
        &["net", "allow", "user@api.example.com"],
        &["net", "allow", "a..example.com"],
        &["net", "allow", "localhost"],
        &["net", "allow", "*"],
        &["net", "allow", "*.com"],
        &["net", "allow", "*.co.uk"],
        &["net", "allow", "a*.example.com"],
        &["net", "allow", ""],
        &["net", "allow", "api.example.com", "--rate", "1001"],
        &["net", "allow", "api.example.com", "--rate", "-5"],
        &["net", "allow", "api.example.com", "--timeout", "500"],
        &["net", "allow", "api.example.com", "--max-response", "11MiB"],
        &["net", "allow", "api.example.com", "--burst", "x"],
        &["net", "allow", "api.example.com", "--cache-ttl", "86401"],
        &["net", "allow", "api.example.com", "--app", "nope"],
        &["net", "allow", "api.example.com", "--app", "Not A Name"],
    ];
    for args in refused {
        let out = cli(&data, args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: "),
            "{args:?}"
        );
        assert!(!data.exists(), "{args:?} created the data dir");
    }
    // With a database, still nothing is written.
    deploy(&data, dir.path(), "a", &[("index.html", "x")]);
    for args in refused {
        assert_eq!(cli(&data, args).status.code(), Some(2), "{args:?}");
    }
    assert_eq!(allowlist(&data), serde_json::json!([]));
}

#[test]
fn entries_are_added_updated_scoped_and_removed() {
    let dir = tmp();
    let data = dir.path().join("data");
    deploy(&data, dir.path(), "a", &[("index.html", "x")]);
    // Flags before or after the domain.
    let out = cli(
        &data,
        &["net", "allow", "--timeout", "2000", "API.Example.com."],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "allowed api.example.com for every app"
    );
    let out = cli(
        &data,
        &["net", "allow", "api.example.com", "--http", "--rate", "60"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "updated api.example.com for every app"
    );
    cli(
        &data,
        &[
            "net",
            "allow",
            "--app",
            "a",
            "*.example.org",
            "--max-response",
            "2MiB",
        ],
    );
    let list = allowlist(&data);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    // The update replaced the entry's settings with the new command's.
    assert_eq!(list[0]["domain"], "api.example.com");
    assert_eq!(list[0]["app"], serde_json::Value::Null);
    assert_eq!(list[0]["http"], true);
    assert_eq!(list[0]["rate"], 60);
    assert_eq!(list[0]["timeout_ms"], serde_json::Value::Null);
    assert_eq!(list[1]["domain"], "*.example.org");
    assert_eq!(list[1]["app"], "a");
    assert_eq!(list[1]["max_response"], 2 << 20);
    let only_a = cli(&data, &["net", "list", "--app", "a", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&only_a.stdout).expect("json");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    let table = String::from_utf8_lossy(&cli(&data, &["net", "list"]).stdout).into_owned();
    assert!(
        table.contains("*.example.org") && table.contains("2 MiB"),
        "{table}"
    );
    // The global entry is not the app's.
    let out = cli(&data, &["net", "remove", "api.example.com", "--app", "a"]);
    assert_eq!(out.status.code(), Some(1));
    let out = cli(
        &data,
        &["net", "remove", "--app", "a", "*.example.org", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["data"]["result"], "removed");
    assert!(cli(&data, &["net", "remove", "api.example.com"])
        .status
        .success());
    assert_eq!(allowlist(&data), serde_json::json!([]));
}

#[test]
fn the_admin_api_manages_the_same_allowlist() {
    let dir = tmp();
    let data = dir.path().join("data");
    deploy(&data, dir.path(), "a", &[("index.html", "x")]);
    let fazt = Fazt::start(&data, &[]);
    let call = |method: &str, path: &str, body: &str| fazt.admin(method, path, body.as_bytes());
    let r = call(
        "POST",
        "/api/net/allowlist",
        r#"{"domain": "*.example.com", "app": "a", "timeout_ms": 3000, "max_response": "1MiB"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["result"], "allowed");
    // The CLI sees what the API wrote.
    assert_eq!(allowlist(&data)[0]["domain"], "*.example.com");
    assert_eq!(allowlist(&data)[0]["timeout_ms"], 3000);
    for (body, status) in [
        (r#"{"domain": "*.com"}"#, 400),
        (r#"{"domain": "10.0.0.1"}"#, 400),
        (r#"{"domain": "x.example.com", "rate": 5000}"#, 400),
        (r#"{"domain": "x.example.com", "app": "nope"}"#, 404),
        (r#"{"domain": "x.example.com", "colour": "blue"}"#, 400),
        (r#"{"app": "a"}"#, 400),
        ("not json", 400),
    ] {
        let r = call("POST", "/api/net/allowlist", body);
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.json()["error"]["message"].as_str().is_some(), "{body}");
    }
    let r = call("GET", "/api/net/allowlist?app=a", "");
    assert_eq!(
        r.json()["data"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text()
    );
    let r = call("DELETE", "/api/net/allowlist?domain=*.example.com", "");
    assert_eq!(
        r.status,
        404,
        "the global entry does not exist: {}",
        r.text()
    );
    let r = call(
        "DELETE",
        "/api/net/allowlist?domain=%2A.example.com&app=a",
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(allowlist(&data), serde_json::json!([]));
    // Without the token: 401, no detail.
    let r = request(fazt.addr, "GET", "/api/net/allowlist", &[], b"");
    assert_eq!(r.status, 401);
}

#[test]
fn test_pins_are_shown_loudly_and_bad_ones_stop_the_start() {
    let dir = tmp();
    let data = dir.path().join("data");
    let fazt = Fazt::start(
        &data,
        &[("FAZT_NET_TEST_RESOLVE", "up.example.com:8443=127.0.0.1:9")],
    );
    let egress = fazt.egress();
    assert_eq!(
        egress["note"], "TEST PINS IN EFFECT: up.example.com:8443→127.0.0.1:9",
        "{egress}"
    );
    let table = String::from_utf8_lossy(&cli(&data, &["workers", "status"]).stdout).into_owned();
    assert!(table.contains("TEST PINS IN EFFECT"), "{table}");
    assert!(
        support::eventually(std::time::Duration::from_secs(5), || fazt
            .stderr()
            .contains("TEST PINS IN EFFECT")),
        "not logged: {}",
        fazt.stderr()
    );
    drop(fazt);
    for (var, value) in [
        ("FAZT_NET_TEST_RESOLVE", "up.example.com=127.0.0.1:9"),
        ("FAZT_NET_TEST_RESOLVE", "10.0.0.1:443=127.0.0.1:9"),
        ("FAZT_NET_NAMESERVER", "localhost"),
    ] {
        let out = std::process::Command::new(support::bin())
            .args([
                "--data-dir",
                data.to_str().expect("utf-8"),
                "supervise",
                "--listen",
                "127.0.0.1:0",
            ])
            .env(var, value)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}={value}: {err}");
    }
}
