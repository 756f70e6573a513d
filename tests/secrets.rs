//! Secrets (SPEC §7), tested the way a leak would happen: a secret is set
//! with the CLI or the admin API, egress sends it to a loopback echo
//! upstream, and the value is looked for everywhere else — the whole
//! response JS gets (the echo repeats the request's headers and URL),
//! error messages, fazt's logs, `workers status`, the admin API.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::net::{code, Net};
use support::upstream::Upstream;
use support::{bin, cli, percent_encode, request, tmp};

/// Values long enough that a match is never an accident.
const BEARER: &str = "bearer-0123456789-SECRET-aaaa";
const HEADER: &str = "header-0123456789-SECRET-bbbb";
const QUERY: &str = "query 0123456789&SECRET=cccc";
const OWN: &str = "own-0123456789-SECRET-dddd";

fn set(data: &std::path::Path, args: &[&str]) {
    support::cli_ok(data, &["secret", "set"], args);
}

/// Sets a secret with its value on standard input.
fn set_from_stdin(data: &std::path::Path, value: &str, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(bin())
        .arg("--data-dir")
        .arg(data)
        .args(["secret", "set"])
        .args(args)
        .env("FAZT_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fazt");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(value.as_bytes())
        .expect("write");
    child.wait_with_output().expect("wait")
}

fn no_value_in(what: &str, text: &str) {
    for v in [BEARER, HEADER, QUERY, OWN, &percent_encode(QUERY)] {
        assert!(!text.contains(v), "{what} shows a secret value: {text}");
    }
    for fragment in [
        "0123456789-SECRET",
        "0123456789&SECRET",
        "0123456789%26SECRET",
    ] {
        assert!(
            !text.contains(fragment),
            "{what} shows part of a secret: {text}"
        );
    }
}

#[test]
fn each_kind_is_sent_to_its_domain_and_never_seen() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(
        &[p],
        &[
            &["up.example.com", "--http"],
            &["other.example.org", "--http"],
        ],
        &[],
    );
    set(
        &net.data,
        &["BEARER_K", BEARER, "--domain", "up.example.com"],
    );
    set(
        &net.data,
        &[
            "HEADER_K",
            HEADER,
            "--as",
            "header",
            "--key",
            "X-Api-Key",
            "--domain",
            "*.example.com",
        ],
    );
    let out = set_from_stdin(
        &net.data,
        &format!("{QUERY}\n"),
        &[
            "QUERY_K",
            "-",
            "--as",
            "query",
            "--key",
            "api_key",
            "--domain",
            "up.example.com",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An app's own secret of a name wins over the global one.
    set(
        &net.data,
        &["BEARER_K", OWN, "--domain", "up.example.com", "--app", "b"],
    );
    let echo = format!("http://up.example.com:{p}/echo?b=2&a=%41&z");
    // The secrets reach a running fazt within a second.
    let mut first = Value::Null;
    assert!(
        support::eventually(std::time::Duration::from_secs(3), || {
            first = net.fetch(
                &echo,
                json!({"auth": "BEARER_K", "headers": {"authorization": "Bearer from-js"}}),
            );
            first["status"] == 200
        }),
        "{first}"
    );

    let mut seen_by_js = vec![first.to_string()];
    for (app, auth) in [("a", "HEADER_K"), ("a", "QUERY_K"), ("b", "BEARER_K")] {
        let r = net.fetch_as(app, &echo, json!({"auth": auth}));
        assert_eq!(r["status"], 200, "{auth}: {r}");
        seen_by_js.push(r.to_string());
    }
    let sent = up.requests();
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert_eq!(
        sent[0].header("authorization"),
        [format!("Bearer {BEARER}").as_str()],
        "the secret replaces JS's Authorization"
    );
    assert_eq!(sent[1].header("x-api-key"), [HEADER]);
    assert_eq!(
        sent[2].target,
        format!("/echo?b=2&a=%41&z&api_key={}", percent_encode(QUERY)),
        "the query JS gave is kept byte for byte, the secret appended"
    );
    assert_eq!(
        sent[3].header("authorization"),
        [format!("Bearer {OWN}").as_str()],
        "app b's own secret wins"
    );
    for (i, r) in seen_by_js.iter().enumerate() {
        no_value_in(&format!("response {i} to JS"), r);
        assert!(r.contains("***"), "the echo shows the scrubbed mark: {r}");
        // The length of what JS got, not the upstream's: that would give
        // away the value's length.
        let r: Value = serde_json::from_str(r).expect("json");
        let declared = r["headers"]["content-length"].as_str().unwrap_or_default();
        let body = r["body"].as_str().unwrap_or_default();
        assert_eq!(declared, body.len().to_string(), "response {i}");
    }

    // Refusals: NET_AUTH, and no request sent.
    let other = format!("http://other.example.org:{p}/echo");
    for (app, url, auth, what) in [
        (
            "a",
            other.as_str(),
            "BEARER_K",
            "a secret for another domain",
        ),
        ("a", echo.as_str(), "NOPE", "an unknown name"),
        (
            "a",
            other.as_str(),
            "HEADER_K",
            "a wildcard that does not cover it",
        ),
    ] {
        let r = net.fetch_as(app, url, json!({"auth": auth}));
        assert_eq!(code(&r), "NET_AUTH", "{what}: {r}");
        no_value_in(what, &r.to_string());
    }
    assert_eq!(up.hits(), 4, "refused calls never reached the upstream");

    // A redirect to another origin goes without the secret.
    let away = format!(
        "http://up.example.com:{p}/redirect?to={}",
        percent_encode(&format!("http://other.example.org:{p}/echo"))
    );
    let r = net.fetch(&away, json!({"auth": "BEARER_K"}));
    assert_eq!(r["status"], 200, "{r}");
    let sent = up.requests();
    let last = sent.last().expect("the redirected request");
    assert!(last.header("authorization").is_empty(), "{last:?}");
    assert_eq!(
        sent[sent.len() - 2].header("authorization"),
        [format!("Bearer {BEARER}").as_str()],
        "the first hop had it"
    );

    // Nowhere else either: not in the network log (nor anywhere in the
    // database but the secrets table, where it is looked for by its own
    // bytes only there).
    assert!(support::eventually(
        std::time::Duration::from_secs(5),
        || {
            let out = cli(&net.data, &["net", "logs", "--json"]);
            serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v["data"].as_array().map(Vec::len))
                .unwrap_or(0)
                >= 8
        }
    ));
    let logged = cli(&net.data, &["net", "logs", "--json", "--limit", "100"]);
    no_value_in("the network log", &String::from_utf8_lossy(&logged.stdout));
    no_value_in("fazt's logs", &net.fazt.stderr());
    let status = cli(&net.data, &["workers", "status", "--json"]);
    no_value_in("workers status", &String::from_utf8_lossy(&status.stdout));
    let listed = net.fazt.admin_get("/api/secrets");
    assert_eq!(listed.status, 200);
    no_value_in("GET /api/secrets", &listed.text());
    let listed = cli(&net.data, &["secret", "list", "--json"]);
    no_value_in("fazt secret list", &String::from_utf8_lossy(&listed.stdout));
}

#[test]
fn the_cli_masks_validates_and_writes_nothing_on_bad_input() {
    let dir = tmp();
    let data = dir.path().join("data");
    support::deploy(&data, dir.path(), "a", &[("index.html", "x")]);
    for value in [
        "a",
        "abcdef",
        "abcdefg",
        "sk_live_0123456789abcdefghijklmnopqrstuv",
    ] {
        set(
            &data,
            &[
                &format!("LEN{}", value.len()),
                value,
                "--domain",
                "api.example.com",
            ],
        );
    }
    let listed = cli(&data, &["secret", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    let masks: Vec<(String, String)> = listed["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        masks,
        [
            ("LEN1".to_string(), "***".to_string()),
            ("LEN40".into(), "sk_***tuv".into()),
            ("LEN6".into(), "***".into()),
            ("LEN7".into(), "***".into()),
        ]
    );
    let text = cli(&data, &["secret", "list"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("sk_***tuv") && !text.contains("0123456789"),
        "{text}"
    );

    let before =
        String::from_utf8_lossy(&cli(&data, &["secret", "list", "--json"]).stdout).into_owned();
    for (args, what) in [
        (
            vec!["1BAD", "v", "--domain", "a.example.com"],
            "a name starting with a digit",
        ),
        (vec!["K", "v"], "no --domain"),
        (
            vec!["K", "v", "--domain", "*.com"],
            "a wildcard over a public suffix",
        ),
        (vec!["K", "v", "--domain", "10.0.0.1"], "an IP address"),
        (
            vec!["K", "v", "--domain", "a.example.com", "--key", "k"],
            "--key with bearer",
        ),
        (
            vec!["K", "v", "--domain", "a.example.com", "--as", "header"],
            "header without --key",
        ),
        (
            vec![
                "K",
                "v",
                "--domain",
                "a.example.com",
                "--as",
                "header",
                "--key",
                "Host",
            ],
            "a header egress owns",
        ),
        (
            vec![
                "K",
                "v",
                "--domain",
                "a.example.com",
                "--as",
                "query",
                "--key",
                "a&b",
            ],
            "a bad query key",
        ),
        (
            vec!["K", "v", "--domain", "a.example.com", "--as", "basic"],
            "an unknown kind",
        ),
        (vec!["K", "", "--domain", "a.example.com"], "an empty value"),
        (
            vec!["K", "v", "--domain", "a.example.com", "--app", "nope"],
            "an app that does not exist",
        ),
    ] {
        let mut full = vec!["secret", "set"];
        full.extend_from_slice(&args);
        let out = cli(&data, &full);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{what}: no message");
    }
    let out = set_from_stdin(
        &data,
        "line one\nline two",
        &[
            "K",
            "-",
            "--domain",
            "a.example.com",
            "--as",
            "header",
            "--key",
            "x-k",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "a newline inside the value");
    no_value_in("an error", &String::from_utf8_lossy(&out.stderr));
    let after =
        String::from_utf8_lossy(&cli(&data, &["secret", "list", "--json"]).stdout).into_owned();
    assert_eq!(before, after, "bad input wrote nothing");

    // Replace, per app, remove.
    set(
        &data,
        &["LEN1", "replaced-value-xyz", "--domain", "b.example.com"],
    );
    set(
        &data,
        &[
            "LEN1",
            "app-value-123456",
            "--domain",
            "b.example.com",
            "--app",
            "a",
        ],
    );
    let only_a = cli(&data, &["secret", "list", "--app", "a", "--json"]);
    let only_a: Value = serde_json::from_slice(&only_a.stdout).expect("json");
    assert_eq!(only_a["data"].as_array().map(Vec::len), Some(1), "{only_a}");
    assert_eq!(only_a["data"][0]["app"], "a");
    assert_eq!(only_a["data"][0]["as"]["kind"], "bearer");
    let out = cli(&data, &["secret", "remove", "LEN1", "--app", "a"]);
    assert!(out.status.success());
    let out = cli(&data, &["secret", "remove", "LEN1", "--app", "a"]);
    assert_eq!(out.status.code(), Some(1), "nothing to remove");
    let listed = cli(&data, &["secret", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    let len1 = listed["data"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["name"] == "LEN1").cloned())
        .expect("global LEN1");
    assert_eq!(len1["domain"], "b.example.com", "replaced: {len1}");
    assert_eq!(len1["value"], "rep***xyz");
}

#[test]
fn the_admin_api_sets_lists_and_removes_without_ever_answering_a_value() {
    let dir = tmp();
    let data = dir.path().join("data");
    support::deploy(&data, dir.path(), "a", &[("index.html", "x")]);
    let fazt = support::Fazt::start(&data, &[]);
    let call = |method: &str, path: &str, body: &str| fazt.admin(method, path, body.as_bytes());
    let r = request(fazt.addr, "GET", "/api/secrets", &[], b"");
    assert_eq!(r.status, 401);
    let r = request(
        fazt.addr,
        "POST",
        "/api/secrets",
        &[("content-type", "application/json")],
        json!({"name": "K", "value": BEARER, "domain": "api.example.com"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 401, "no token, nothing set");
    let r = call(
        "POST",
        "/api/secrets",
        &json!({"name": "K", "value": BEARER, "domain": "api.example.com", "app": "a"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["result"], "set");
    no_value_in("the POST's answer", &r.text());
    let r = call("GET", "/api/secrets", "");
    assert_eq!(r.json()["data"][0]["value"], "bea***aaa");
    no_value_in("GET", &r.text());
    for (body, what) in [
        (json!({"name": "K", "value": BEARER}), "no domain"),
        (
            json!({"name": "K", "value": BEARER, "domain": "*.co.uk"}),
            "a public suffix",
        ),
        (
            json!({"name": "K", "value": format!("{BEARER}\r\nX: y"), "domain": "a.example.com"}),
            "CR LF in the value",
        ),
        (
            json!({"name": "K", "value": BEARER, "domain": "a.example.com", "extra": 1}),
            "an unknown field",
        ),
        (
            json!({"name": "K", "value": 12345, "domain": "a.example.com"}),
            "a number as value",
        ),
    ] {
        let r = call("POST", "/api/secrets", &body.to_string());
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        no_value_in(what, &r.text());
    }
    let r = call(
        "POST",
        "/api/secrets",
        &json!({"name": "K", "value": BEARER, "domain": "a.example.com", "app": "nope"})
            .to_string(),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = call("DELETE", "/api/secrets?name=K&app=a", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call("DELETE", "/api/secrets?name=K&app=a", "");
    assert_eq!(r.status, 404);
    assert_eq!(call("GET", "/api/secrets", "").json()["data"], json!([]));
    no_value_in("fazt's logs", &fazt.stderr());
}
