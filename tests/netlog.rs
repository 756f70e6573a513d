//! The network log and the response cache (SPEC §8) end to end: rows for
//! every kind of outcome, never a query string, error rows before the
//! flush interval, a stop that flushes; cache entries that are an app's
//! own and follow the storage rules; and the admin API's net endpoints.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::net::{code, Net};
use support::upstream::{RawUpstream, Step, Upstream};
use support::{cli, eventually, percent_encode, request, Signal};

fn logs(net: &Net, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["net", "logs", "--json", "--limit", "1000"];
    full.extend_from_slice(args);
    let out = cli(&net.data, &full);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["data"].as_array().cloned().unwrap_or_default()
}

#[test]
fn every_outcome_is_a_row_without_its_query_string() {
    let up = Upstream::start();
    let silent = RawUpstream::start(vec![Step::Pause(Duration::from_secs(10))]);
    let (p, ps) = (up.port(), silent.port());
    let net = Net::start(
        &[p, ps],
        &[&["up.example.com", "--http", "--max-response", "1KiB"]],
        &[],
    );
    let ok = net.fetch(
        &format!("http://up.example.com:{p}/echo?token=sekrit-query"),
        json!({"method": "POST", "body": "12345"}),
    );
    assert_eq!(ok["status"], 200, "{ok}");
    let blocked = net.fetch(
        &format!("http://other.example.org:{p}/x?q=sekrit-query"),
        json!(null),
    );
    assert_eq!(code(&blocked), "NET_BLOCKED");
    let big = net.fetch(
        &format!("http://up.example.com:{p}/bytes/5000"),
        json!(null),
    );
    assert_eq!(code(&big), "NET_SIZE");
    let slow = net.fetch(
        &format!("http://up.example.com:{ps}/slow?x=sekrit-query"),
        json!({"timeout": 1000}),
    );
    assert_eq!(code(&slow), "NET_TIMEOUT");

    let mut rows = Vec::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            rows = logs(&net, &[]);
            rows.len() == 4
        }),
        "{rows:?}"
    );
    // Newest first.
    let want = [
        ("up.example.com", "/slow", None, Some("NET_TIMEOUT")),
        ("up.example.com", "/bytes/5000", None, Some("NET_SIZE")),
        ("other.example.org", "/x", None, Some("NET_BLOCKED")),
        ("up.example.com", "/echo", Some(200u64), None),
    ];
    for (row, (domain, path, status, error)) in rows.iter().zip(want) {
        assert_eq!(row["domain"], domain, "{row}");
        assert_eq!(row["path"], path, "{row}");
        assert_eq!(row["status"].as_u64(), status, "{row}");
        assert_eq!(row["error_code"].as_str(), error, "{row}");
        assert_eq!(row["app"], "a");
    }
    assert_eq!(rows[3]["method"], "POST");
    assert_eq!(rows[3]["request_bytes"], 5);
    assert!(rows[3]["response_bytes"].as_u64().unwrap_or(0) > 0);
    assert!(
        rows[0]["duration_ms"].as_u64().unwrap_or(0) >= 900,
        "{}",
        rows[0]
    );
    // The query string is nowhere in the database.
    let db = std::fs::read(net.data.join("fazt.db")).expect("db");
    let wal = std::fs::read(net.data.join("fazt.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(12).any(|w| w == b"sekrit-query"),
            "a query string was stored"
        );
    }
    assert_eq!(logs(&net, &["--errors"]).len(), 3);
    assert_eq!(logs(&net, &["--domain", "other.example.org"]).len(), 1);
    assert_eq!(logs(&net, &["--app", "b"]).len(), 0);

    let out = cli(&net.data, &["net", "stats", "--json"]);
    let stats: Value = serde_json::from_slice(&out.stdout).expect("json");
    let up_stats = stats["data"]
        .as_array()
        .and_then(|d| d.iter().find(|s| s["domain"] == "up.example.com").cloned())
        .expect("up.example.com");
    assert_eq!(up_stats["calls"], 3);
    assert_eq!(up_stats["errors"], json!({"NET_SIZE": 1, "NET_TIMEOUT": 1}));
    assert_eq!(up_stats["bytes_out"], 5);
    let text = cli(&net.data, &["net", "stats"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("up.example.com") && text.contains("NET_TIMEOUT 1"),
        "{text}"
    );
}

#[test]
fn error_rows_go_at_once_and_a_stop_flushes_the_rest() {
    let up = Upstream::start();
    let p = up.port();
    let mut net = Net::start(
        &[p],
        &[&["up.example.com", "--http"]],
        &[("net.log_flush_ms", "10000")],
    );
    let ok = format!("http://up.example.com:{p}/status/200");
    assert_eq!(net.fetch(&ok, json!(null))["status"], 200);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        logs(&net, &[]).is_empty(),
        "a success row waits for the interval"
    );
    let started = Instant::now();
    let r = net.fetch(&format!("http://other.example.org:{p}/"), json!(null));
    assert_eq!(code(&r), "NET_BLOCKED");
    assert!(
        eventually(Duration::from_secs(3), || logs(&net, &["--errors"]).len()
            == 1),
        "the error row was not written at once"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Successes waiting when fazt stops are written before it exits.
    for _ in 0..3 {
        assert_eq!(net.fetch(&ok, json!(null))["status"], 200);
    }
    let before = logs(&net, &[]).len();
    let stopping = Instant::now();
    let status = net
        .fazt
        .signal_and_wait(Signal::SIGTERM, Duration::from_secs(20))
        .expect("fazt stopped");
    assert!(status.success(), "{status:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "the stop waited {:?}",
        stopping.elapsed()
    );
    assert_eq!(logs(&net, &[]).len(), 5, "before the stop: {before}");
}

#[test]
fn the_cache_serves_an_app_its_own_entries_by_the_rules() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(
        &[p],
        &[
            &["up.example.com", "--http", "--cache-ttl", "60"],
            &["other.example.org", "--http"],
        ],
        &[
            ("net.cache_max_items", "100"),
            ("net.cache_max_bytes", "1MiB"),
        ],
    );
    let url = |q: &str| format!("http://up.example.com:{p}/respond{q}");
    let hits_before = |f: &dyn Fn()| {
        let before = up.hits();
        f();
        up.hits() - before
    };
    // A cached answer, the app's own.
    let plain = url("?h=content-type:text/plain");
    assert_eq!(
        hits_before(&|| {
            net.fetch(&plain, json!(null));
        }),
        1
    );
    let again = net.fetch(&plain, json!(null));
    assert_eq!(again["status"], 200);
    assert_eq!(again["text"], "lang=- path=/respond", "{again}");
    assert_eq!(
        hits_before(&|| {
            net.fetch(&plain, json!(null));
        }),
        0,
        "a hit"
    );
    assert_eq!(
        hits_before(&|| {
            net.fetch_as("b", &plain, json!(null));
        }),
        1,
        "app a's entry is never served to app b"
    );
    // What may not be stored never is.
    for (q, what) in [
        ("?h=cache-control:no-store", "no-store"),
        ("?h=cache-control:private", "private"),
        ("?h=set-cookie:a=1", "Set-Cookie"),
        ("?h=vary:*", "Vary: *"),
    ] {
        net.fetch(&url(q), json!(null));
        assert_eq!(
            hits_before(&|| {
                net.fetch(&url(q), json!(null));
            }),
            1,
            "{what} was cached"
        );
    }
    // Vary keys on the request header it names.
    let vary = url(&format!("?h={}", percent_encode("vary:Accept-Language")));
    let lang = |l: &str| json!({"headers": {"accept-language": l}});
    assert_eq!(
        net.fetch(&vary, lang("en"))["text"],
        "lang=en path=/respond"
    );
    assert_eq!(
        net.fetch(&vary, lang("de"))["text"],
        "lang=de path=/respond"
    );
    assert_eq!(
        hits_before(&|| {
            assert_eq!(
                net.fetch(&vary, lang("en"))["text"],
                "lang=en path=/respond"
            );
            assert_eq!(
                net.fetch(&vary, lang("de"))["text"],
                "lang=de path=/respond"
            );
        }),
        0,
        "each language from its own entry"
    );
    // A response to credentials JS sent itself is never shared.
    let creds = json!({"headers": {"authorization": "Bearer user-1"}});
    net.fetch(&plain, creds.clone());
    assert_eq!(
        hits_before(&|| {
            net.fetch(&plain, creds.clone());
        }),
        1,
        "an answer to JS's own Authorization was cached"
    );
    // POST is never a hit; an entry without a TTL is never stored.
    assert_eq!(
        hits_before(&|| {
            net.fetch(&plain, json!({"method": "POST"}));
        }),
        1
    );
    let other = format!("http://other.example.org:{p}/respond");
    net.fetch(&other, json!(null));
    assert_eq!(
        hits_before(&|| {
            net.fetch(&other, json!(null));
        }),
        1
    );
    // A hit is logged as one.
    assert!(eventually(Duration::from_secs(5), || logs(&net, &[])
        .iter()
        .any(|r| r["cache_hit"] == true)));
    // The CLI sees it, and clears one app's part.
    let shown = cli(&net.data, &["net", "cache", "--json"]);
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert!(shown["data"]["items"].as_u64().unwrap_or(0) >= 3, "{shown}");
    assert!(shown["data"]["hits"].as_u64().unwrap_or(0) >= 3, "{shown}");
    let cleared = cli(
        &net.data,
        &["net", "cache", "clear", "--app", "a", "--json"],
    );
    let cleared: Value = serde_json::from_slice(&cleared.stdout).expect("json");
    assert!(
        cleared["data"]["cleared"].as_u64().unwrap_or(0) >= 2,
        "{cleared}"
    );
    assert_eq!(
        hits_before(&|| {
            net.fetch(&plain, json!(null));
        }),
        1,
        "cleared"
    );
    assert_eq!(
        hits_before(&|| {
            net.fetch_as("b", &plain, json!(null));
        }),
        0,
        "app b's entry was not cleared"
    );
}

#[test]
fn the_admin_api_answers_every_endpoint_with_a_token_and_none_without() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(&[p], &[&["up.example.com", "--http"]], &[]);
    net.fetch(
        &format!("http://up.example.com:{p}/status/200"),
        json!(null),
    );
    let auth = format!("Bearer {}", net.fazt.token());
    let call = |method: &str, path: &str, body: &[u8], token: bool| {
        let mut headers = vec![("content-type", "application/json")];
        if token {
            headers.push(("authorization", auth.as_str()));
        }
        request(net.fazt.addr, method, path, &headers, body)
    };
    let zip = support::zip_of(&[("index.html", b"zipped")]);
    let allow = json!({"domain": "api.example.com"}).to_string();
    let secret =
        json!({"name": "K", "value": "v-0123456789-abc", "domain": "api.example.com"}).to_string();
    for (method, path, body) in [
        ("GET", "/api/system/health", b"".as_slice()),
        ("GET", "/api/system/limits", b""),
        ("GET", "/api/system/limits/schema", b""),
        ("GET", "/api/workers", b""),
        ("GET", "/api/apps", b"".as_slice()),
        ("POST", "/api/apps/zipped", zip.as_slice()),
        ("DELETE", "/api/apps/zipped", b""),
        ("POST", "/api/net/allowlist", allow.as_bytes()),
        ("GET", "/api/net/allowlist", b""),
        ("DELETE", "/api/net/allowlist?domain=api.example.com", b""),
        ("GET", "/api/net/logs?limit=5", b""),
        ("GET", "/api/net/logs?errors=true&app=a", b""),
        ("GET", "/api/net/stats", b""),
        ("GET", "/api/net/stats?app=a", b""),
        ("GET", "/api/net/cache", b""),
        ("DELETE", "/api/net/cache?app=a", b""),
        ("POST", "/api/secrets", secret.as_bytes()),
        ("GET", "/api/secrets", b""),
        ("DELETE", "/api/secrets?name=K", b""),
    ] {
        let r = call(method, path, body, false);
        assert_eq!(
            r.status,
            401,
            "{method} {path} without a token: {}",
            r.text()
        );
        assert_eq!(r.json()["error"]["code"], "UNAUTHORIZED");
        let r = call(method, path, body, true);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        assert!(
            r.json().get("data").is_some(),
            "{method} {path}: {}",
            r.text()
        );
    }
    let logs = call("GET", "/api/net/logs", b"", true).json();
    assert!(
        eventually(Duration::from_secs(5), || call(
            "GET",
            "/api/net/logs",
            b"",
            true
        )
        .json()["data"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty())),
        "{logs}"
    );
    for (method, path, want) in [
        ("GET", "/api/net/logs?limit=0", 400),
        ("GET", "/api/net/logs?errors=maybe", 400),
        ("GET", "/api/net/logs?domain=10.0.0.1", 400),
        ("GET", "/api/net/stats?app=nope", 404),
        ("GET", "/api/net/nothing", 404),
        ("POST", "/api/net/cache", 405),
    ] {
        let r = call(method, path, b"", true);
        assert_eq!(r.status, want, "{method} {path}: {}", r.text());
        assert!(r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}
