//! `fazt.net.fetch` end to end (SPEC §6): a JS app calls upstreams on
//! loopback through the real egress process. Upstreams are reached through
//! `FAZT_NET_TEST_RESOLVE` pins, so nothing here leaves 127.0.0.1; the
//! refusals of private addresses by DNS run in a private network
//! namespace (tests/ssrf.rs).

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::net::{code, Net};
use support::tls::TestCa;
use support::upstream::{RawUpstream, Step, Upstream};
use support::{cli, eventually, percent_encode, post_json, tmp};

#[test]
fn get_json_headers_cookies_and_status() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(&[p], &[&["up.example.com", "--http"]], &[]);
    let r = net.fetch(&format!("http://up.example.com:{p}/json"), json!(null));
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["ok"], true);
    assert_eq!(r["json"]["hello"], "world");
    assert_eq!(r["text"], r["body"]);
    assert_eq!(
        r["headers"]["x-multi"], "1, 2",
        "repeated headers are joined"
    );
    assert_eq!(
        r["headers"]["set-cookie"],
        json!(["a=1; Path=/", "b=2; Path=/"]),
        "set-cookie is an array"
    );
    assert_eq!(r["headers"]["content-type"], "application/json");
    let r = net.fetch(
        &format!("http://up.example.com:{p}/status/404"),
        json!(null),
    );
    assert_eq!(
        (r["status"].as_u64(), &r["ok"]),
        (Some(404), &json!(false)),
        "{r}"
    );
    let r = net.fetch(
        &format!("http://up.example.com:{p}/status/503"),
        json!(null),
    );
    assert_eq!(
        r["status"], 503,
        "an upstream's 503 is an answer, not an error"
    );
}

#[test]
fn post_bodies_headers_and_what_egress_sets_itself() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(&[p], &[&["up.example.com", "--http"]], &[]);
    let r = net.fetch(
        &format!("http://up.example.com:{p}/echo?q=1"),
        json!({
            "method": "post",
            "body": {"n": 1},
            "headers": {
                "X-Custom": "yes",
                "Host": "169.254.169.254",
                "Connection": "x-hidden",
                "X-Hidden": "dropped",
                "Accept-Encoding": "gzip",
                "Content-Length": "999"
            }
        }),
    );
    let echo = &r["json"];
    assert_eq!(echo["method"], "POST", "{r}");
    assert_eq!(echo["path"], "/echo?q=1");
    assert_eq!(echo["body"], r#"{"n":1}"#);
    let headers: Vec<(String, String)> =
        serde_json::from_value(echo["headers"].clone()).expect("headers");
    let get = |n: &str| {
        headers
            .iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("host"), [format!("up.example.com:{p}").as_str()]);
    assert_eq!(get("content-type"), ["application/json"]);
    assert_eq!(get("x-custom"), ["yes"]);
    assert_eq!(get("accept-encoding"), ["identity"]);
    assert_eq!(get("content-length"), ["7"]);
    assert!(
        get("x-hidden").is_empty(),
        "a header Connection names is dropped"
    );
    let r = net.fetch(
        &format!("http://up.example.com:{p}/echo"),
        json!({"method": "PUT", "body": "plain text", "headers": {"content-type": "text/plain"}}),
    );
    assert_eq!(r["json"]["body"], "plain text");
    let r = net.fetch(
        &format!("http://up.example.com:{p}/binary"),
        json!({"encoding": "base64"}),
    );
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r["body"].as_str().expect("base64"))
        .expect("decode");
    assert_eq!(bytes, (0..=255u8).collect::<Vec<u8>>());
    for (opts, want) in [
        (
            json!({"headers": {"x-a": "1\r\nHost: evil"}}),
            "NET_BLOCKED",
        ),
        (json!({"method": "CONNECT"}), "NET_BLOCKED"),
        (json!({"method": "TRACE"}), "NET_BLOCKED"),
        (
            json!({"method": "GET\nforged-line app=admin"}),
            "NET_BLOCKED",
        ),
    ] {
        let r = net.fetch(&format!("http://up.example.com:{p}/echo"), opts.clone());
        assert_eq!(code(&r), want, "{opts}: {r}");
    }
    assert!(
        !net.fazt
            .stderr()
            .to_ascii_uppercase()
            .contains("FORGED-LINE"),
        "JS wrote into the log: {}",
        net.fazt.stderr()
    );
}

#[test]
fn the_allowlist_decides_and_changes_apply_within_a_second() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(&[p], &[&["up.example.com"]], &[]);
    let url = format!("http://up.example.com:{p}/json");
    // Allowed for https only.
    let r = net.fetch(&url, json!(null));
    assert_eq!(code(&r), "NET_BLOCKED", "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .starts_with("NET_BLOCKED"));
    let other = format!("http://other.example.org:{p}/json");
    assert_eq!(code(&net.fetch(&other, json!(null))), "NET_BLOCKED");
    // An app's own entry, and a change while running.
    cli(
        &net.data,
        &["net", "allow", "other.example.org", "--http", "--app", "b"],
    );
    let changed = Instant::now();
    assert!(
        eventually(Duration::from_secs(3), || net.fetch_as(
            "b",
            &other,
            json!(null)
        )["status"]
            == 200),
        "the new entry was not used"
    );
    assert!(
        changed.elapsed() < Duration::from_millis(1500),
        "{:?}",
        changed.elapsed()
    );
    assert_eq!(
        code(&net.fetch_as("a", &other, json!(null))),
        "NET_BLOCKED",
        "app b's entry is not app a's"
    );
    assert_eq!(up.hits(), 1, "refused calls never reached the upstream");
    cli(
        &net.data,
        &["net", "remove", "other.example.org", "--app", "b"],
    );
    assert!(eventually(Duration::from_secs(3), || code(&net.fetch_as(
        "b",
        &other,
        json!(null)
    )) == "NET_BLOCKED"));
}

#[test]
fn redirects_are_followed_and_rechecked_every_hop() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(
        &[p],
        &[&["up.example.com", "--http"]],
        &[("net.max_redirects", "2")],
    );
    let base = format!("http://up.example.com:{p}");
    let enc = |s: &str| percent_encode(s);
    let r = net.fetch(&format!("{base}/redirect?to=/json"), json!(null));
    assert_eq!(r["json"]["hello"], "world", "a relative redirect: {r}");
    // 303 turns a POST into a GET without a body.
    let r = net.fetch(
        &format!("{base}/redirect?code=303&to=/echo"),
        json!({"method": "POST", "body": "x"}),
    );
    assert_eq!(
        (&r["json"]["method"], &r["json"]["body"]),
        (&json!("GET"), &json!("")),
        "{r}"
    );
    // 307 keeps them.
    let r = net.fetch(
        &format!("{base}/redirect?code=307&to=/echo"),
        json!({"method": "POST", "body": "x"}),
    );
    assert_eq!(
        (&r["json"]["method"], &r["json"]["body"]),
        (&json!("POST"), &json!("x")),
        "{r}"
    );
    // Authorization stays with its origin.
    let to_other = format!("http://other.example.org:{p}/echo");
    cli(&net.data, &["net", "allow", "other.example.org", "--http"]);
    let r = eventually_value(|| {
        net.fetch(
            &format!("{base}/redirect?to={}", enc(&to_other)),
            json!({"headers": {"authorization": "Bearer t", "cookie": "c=1", "x-keep": "1"}}),
        )
    });
    let sent = r["json"]["headers"].to_string();
    assert!(
        !sent.contains("Bearer t") && !sent.contains("c=1"),
        "{sent}"
    );
    assert!(sent.contains("x-keep"), "{sent}");
    for (to, want) in [
        // Loopback only here; redirects to private, metadata and off-list
        // places run in a private network (tests/ssrf.rs).
        ("http://127.0.0.1/", "NET_BLOCKED"),
        ("//[::1]/", "NET_BLOCKED"),
        ("file:///etc/passwd", "NET_BLOCKED"),
    ] {
        let r = net.fetch(&format!("{base}/redirect?to={}", enc(to)), json!(null));
        assert_eq!(code(&r), want, "{to}: {r}");
    }
    // A loop ends at net.max_redirects.
    let r = net.fetch(&format!("{base}/loop"), json!(null));
    assert_eq!(code(&r), "NET_ERROR", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("redirects"),
        "{r}"
    );
}

#[test]
fn sizes_time_calls_and_concurrency_are_bounded() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(
        &[p],
        &[&["up.example.com", "--http", "--max-response", "4KiB"]],
        &[("net.app_concurrency", "1"), ("net.max_req_body", "1KiB")],
    );
    let base = format!("http://up.example.com:{p}");
    assert_eq!(
        net.fetch(&format!("{base}/bytes/4096"), json!(null))["status"],
        200
    );
    let r = net.fetch(&format!("{base}/bytes/4097"), json!(null));
    assert_eq!(code(&r), "NET_SIZE", "{r}");
    let r = net.fetch(&format!("{base}/bytes/4097"), json!({"method": "HEAD"}));
    assert_eq!(r["status"], 200, "a HEAD's length is not a body: {r}");
    // A body over what one call can carry is refused at once, not lost.
    let started = Instant::now();
    let r = net.post(
        "big",
        &json!({"url": format!("{base}/echo"), "size": 17 << 20}),
    );
    assert_eq!(r.json()["error"]["code"], "NET_SIZE", "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let r = net.fetch(
        &format!("{base}/echo"),
        json!({"method": "POST", "body": "x".repeat(1025)}),
    );
    assert_eq!(code(&r), "NET_SIZE", "{r}");
    let started = Instant::now();
    let r = net.fetch(&format!("{base}/slow/5000"), json!({"timeout": 1000}));
    assert_eq!(code(&r), "NET_TIMEOUT", "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // net.max_calls (5): the sixth call of one request, uncaught: 503.
    let body = json!({"url": format!("{base}/json"), "times": 6});
    let r = net.post("loud", &body);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], "NET_LIMIT");
    assert_eq!(r.json()["retryable"], true);
    assert_eq!(r.header("retry-after"), Some("1"));
    let body = json!({"url": format!("{base}/json"), "times": 5});
    let r = net.post("loud", &body);
    assert_eq!(r.status, 200, "five calls are allowed: {}", r.text());
    // net.app_concurrency (1): a second call while one is in flight.
    let addr = net.fazt.addr;
    let slow = format!("{base}/slow/1500");
    let first = std::thread::spawn(move || {
        let body = json!({"url": slow, "opts": null});
        post_json(addr, "/_app/a/api", &body).json()
    });
    // In flight once the upstream has it (egress's busy count could still
    // be the timed-out call above winding down).
    assert!(eventually(Duration::from_secs(5), || up
        .requests()
        .iter()
        .any(|r| r.target == "/slow/1500")));
    let r = net.fetch(&format!("{base}/json"), json!(null));
    assert_eq!(code(&r), "NET_LIMIT", "{r}");
    let other_app = net.fetch_as("b", &format!("{base}/json"), json!(null));
    assert_eq!(
        other_app["status"], 200,
        "another app has its own slots: {other_app}"
    );
    assert_eq!(first.join().expect("first")["status"], 200);
}

#[test]
fn network_time_is_budgeted_and_uncaught_codes_answer_as_the_spec_says() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(
        &[p],
        &[&["up.example.com", "--http"]],
        &[("net.budget_ms", "1000")],
    );
    let slow = format!("http://up.example.com:{p}/slow/600");
    // 600 ms, then the 400 ms left of the budget run out, then nothing is left.
    let r = net.post("spender", &json!({"url": slow}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["codes"],
        json!([200, "NET_TIMEOUT", "NET_BUDGET"]),
        "{}",
        r.text()
    );
    // Uncaught, NET_BUDGET is retryable: 503 with Retry-After.
    let r = net.post("spender", &json!({"url": slow, "escape": true}));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], "NET_BUDGET");
    assert_eq!(r.json()["retryable"], true);
    assert_eq!(r.header("retry-after"), Some("1"));
    // Uncaught, other codes are 500 with the code, not retryable.
    for (url, want) in [
        (format!("http://other.example.org:{p}/"), "NET_BLOCKED"),
        (
            format!("http://up.example.com:{p}/slow/3000"),
            "NET_TIMEOUT",
        ),
    ] {
        let r = net.post("loud", &json!({"url": url, "times": 1}));
        assert_eq!(r.status, 500, "{url}: {}", r.text());
        assert_eq!(r.json()["code"], want, "{url}");
        assert_ne!(r.json()["retryable"], true, "{url}");
        assert_eq!(r.header("retry-after"), None, "{url}");
    }
}

#[test]
fn per_entry_rate_limits_and_timeouts_hold() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(
        &[p],
        &[
            &["up.example.com", "--http", "--rate", "60", "--burst", "3"],
            &["other.example.org", "--http", "--timeout", "1000"],
        ],
        &[],
    );
    // The entry's own timeout applies (net.call_timeout_ms is 4 s).
    let started = Instant::now();
    let r = net.fetch(
        &format!("http://other.example.org:{p}/slow/3000"),
        json!(null),
    );
    assert_eq!(code(&r), "NET_TIMEOUT", "{r}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    let url = format!("http://up.example.com:{p}/json");
    let refill = Instant::now();
    assert_eq!(
        net.spend("spender", &url, 4),
        json!([200, 200, 200, "NET_RATE"]),
        "the burst, then the limit"
    );
    assert_eq!(
        net.spend("spender2", &url, 4),
        json!([200, 200, 200, "NET_RATE"]),
        "another app has its own bucket"
    );
    let other = format!("http://other.example.org:{p}/json");
    assert_eq!(
        net.spend("spender", &other, 4),
        json!([200, 200, 200, 200]),
        "another entry, no rate (net.rate_limit is 0: off)"
    );
    // Uncaught, NET_RATE is retryable.
    let r = net.post("spender", &json!({"url": url, "times": 0, "escape": true}));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], "NET_RATE");
    assert_eq!(r.json()["retryable"], true);
    assert_eq!(r.header("retry-after"), Some("1"));
    // One token a second comes back.
    assert!(eventually(Duration::from_secs(3), || net
        .spend("spender", &url, 1)
        == json!([200])));
    assert!(
        refill.elapsed() >= Duration::from_millis(900),
        "{:?}",
        refill.elapsed()
    );
}

#[test]
fn hostile_upstreams_get_clear_errors() {
    let lying = RawUpstream::start(vec![Step::Write(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec(),
    )]);
    let negative = RawUpstream::start(vec![Step::Write(
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n".to_vec(),
    )]);
    let conflicting = RawUpstream::start(vec![Step::Write(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
    )]);
    let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
    endless.extend_from_slice(b"");
    let endless_head = RawUpstream::start(vec![
        Step::Write(endless),
        Step::Repeat(
            b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".to_vec(),
            Duration::from_secs(5),
        ),
    ]);
    let many_fields = RawUpstream::start(vec![Step::Write({
        let mut h = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..150 {
            h.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        h.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        h
    })]);
    // No length: the body runs until the connection closes, sent slowly.
    let slow_big = RawUpstream::start(vec![
        Step::Write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec()),
        Step::Repeat(vec![b'y'; 64], Duration::from_secs(3)),
    ]);
    let claims_big = RawUpstream::start(vec![Step::Write(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\nsmall".to_vec(),
    )]);
    let silent = RawUpstream::start(vec![Step::Pause(Duration::from_secs(20))]);
    let ports: Vec<u16> = [
        &lying,
        &negative,
        &conflicting,
        &endless_head,
        &many_fields,
        &slow_big,
        &claims_big,
        &silent,
    ]
    .iter()
    .map(|u| u.port())
    .collect();
    let net = Net::start(
        &ports,
        &[&["up.example.com", "--http", "--max-response", "1KiB"]],
        &[],
    );
    let url = |u: &RawUpstream| format!("http://up.example.com:{}/", u.port());
    for (u, want, what) in [
        (
            &lying,
            "NET_ERROR",
            "a body shorter than its Content-Length",
        ),
        (&negative, "NET_ERROR", "a negative Content-Length"),
        (&conflicting, "NET_ERROR", "two different Content-Lengths"),
        (&endless_head, "NET_SIZE", "a head that never ends"),
        (&many_fields, "NET_SIZE", "150 header fields"),
        (
            &slow_big,
            "NET_SIZE",
            "a body over max_response, sent slowly",
        ),
        (
            &claims_big,
            "NET_SIZE",
            "a Content-Length over max_response",
        ),
    ] {
        let r = net.fetch(&url(u), json!({"timeout": 3000}));
        assert_eq!(code(&r), want, "{what}: {r}");
    }
    let started = Instant::now();
    let r = net.fetch(&url(&silent), json!({"timeout": 1500}));
    assert_eq!(code(&r), "NET_TIMEOUT", "a server that never answers: {r}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_call_in_flight_when_egress_dies_fails_at_once_and_later_calls_work() {
    let up = Upstream::start();
    let p = up.port();
    let net = Net::start(&[p], &[&["up.example.com", "--http"]], &[]);
    let base = format!("http://up.example.com:{p}");
    assert_eq!(
        net.fetch(&format!("{base}/json"), json!(null))["status"],
        200
    );
    let pid = net.fazt.egress()["pid"].as_u64().expect("pid");
    let addr = net.fazt.addr;
    let slow = format!("{base}/slow/8000");
    let in_flight = std::thread::spawn(move || {
        let started = Instant::now();
        let body = json!({"url": slow, "opts": null});
        let r = post_json(addr, "/_app/a/api", &body);
        (r.json(), started.elapsed())
    });
    // In flight once the upstream has it.
    assert!(eventually(Duration::from_secs(5), || up
        .requests()
        .iter()
        .any(|r| r.target == "/slow/8000")));
    support::kill9(pid);
    let (r, took) = in_flight.join().expect("thread");
    assert_eq!(code(&r), "NET_ERROR", "{r}");
    assert!(took < Duration::from_secs(4), "the call hung for {took:?}");
    assert!(
        eventually(Duration::from_secs(10), || net
            .fetch(&format!("{base}/json"), json!(null))["status"]
            == 200),
        "fetch did not work after egress came back"
    );
    assert_eq!(net.fazt.egress()["restarts"], 1);
}

/// 100 MiB offered by each of eight upstreams at once, with no length and
/// chunked: egress reads `max_response` (1 MiB) of each and stops, so its
/// peak memory stays far below what was offered.
#[test]
fn egress_memory_stays_bounded_when_upstreams_send_100_mib() {
    const OFFERED: u64 = 100 << 20;
    let chunk = vec![b'z'; 64 << 10];
    let mut chunked = format!("{:x}\r\n", chunk.len()).into_bytes();
    chunked.extend_from_slice(&chunk);
    chunked.extend_from_slice(b"\r\n");
    let no_length = RawUpstream::start(vec![
        Step::Write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec()),
        Step::Stream(chunk.clone(), OFFERED),
    ]);
    let chunked = RawUpstream::start(vec![
        Step::Write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()),
        Step::Stream(chunked, OFFERED),
    ]);
    let (pn, pc) = (no_length.port(), chunked.port());
    let net = Net::start(
        &[pn, pc],
        &[&["up.example.com", "--http"]],
        &[("net.max_response", "1MiB")],
    );
    let addr = net.fazt.addr;
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let app = if i % 2 == 0 { "a" } else { "b" };
            let port = if i < 4 { pn } else { pc };
            std::thread::spawn(move || {
                let body = json!({
                    "url": format!("http://up.example.com:{port}/"),
                    "opts": {"timeout": 8000},
                });
                post_json(addr, &format!("/_app/{app}/api"), &body).json()
            })
        })
        .collect();
    for call in calls {
        let r = call.join().expect("call");
        assert_eq!(code(&r), "NET_SIZE", "{r}");
    }
    assert_eq!(no_length.connections() + chunked.connections(), 8);
    let pid = net.fazt.egress()["pid"].as_u64().expect("egress pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    eprintln!("egress peak RSS {peak_kib} KiB after 8 x 100 MiB offered");
    assert!(peak_kib < 64 << 10, "egress peaked at {peak_kib} KiB");
}

#[test]
fn https_verifies_certificates_and_never_downgrades() {
    let dir = tmp();
    let ca = TestCa::new("fazt test CA");
    let ca_file = dir.path().join("ca.pem");
    ca.write_pem(&ca_file);
    let tls = Upstream::start_tls(ca.issue(&["up.example.com"]).acceptor());
    let rogue = Upstream::start_tls(
        TestCa::new("not trusted")
            .issue(&["up.example.com"])
            .acceptor(),
    );
    let plain = Upstream::start();
    // Anything that honoured the proxy variables would connect here.
    let proxy = RawUpstream::start(vec![Step::Pause(Duration::from_secs(5))]);
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port());
    let (pt, pr, pp) = (tls.port(), rogue.port(), plain.port());
    let net = Net::start_with_env(
        &[pt, pr, pp],
        &[&["up.example.com"], &["other.example.org", "--http"]],
        &[],
        &[
            ("SSL_CERT_FILE", ca_file.to_str().expect("path")),
            ("HTTPS_PROXY", &proxy_url),
            ("https_proxy", &proxy_url),
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("ALL_PROXY", &proxy_url),
        ],
    );
    let r = net.fetch(&format!("https://up.example.com:{pt}/json"), json!(null));
    assert_eq!(
        r["json"]["hello"], "world",
        "a certificate from the trusted CA: {r}"
    );
    let r = net.fetch(
        &format!("https://up.example.com:{pt}/redirect?to=/echo"),
        json!(null),
    );
    assert_eq!(
        r["json"]["path"], "/echo",
        "an https redirect on https: {r}"
    );
    let served = tls.hits();
    assert_eq!(served, 3);

    for (url, want, what) in [
        (
            format!("https://other.example.org:{pt}/json"),
            "NET_ERROR",
            "a certificate for another name",
        ),
        (
            format!("https://up.example.com:{pr}/json"),
            "NET_ERROR",
            "a certificate from an untrusted CA",
        ),
        (
            format!("http://up.example.com:{pp}/json"),
            "NET_BLOCKED",
            "http to an https-only entry",
        ),
        (
            format!(
                "https://up.example.com:{pt}/redirect?to={}",
                percent_encode(&format!("http://other.example.org:{pp}/json"))
            ),
            "NET_BLOCKED",
            "a redirect from https to http, even to an http entry",
        ),
    ] {
        let r = net.fetch(&url, json!(null));
        assert_eq!(code(&r), want, "{what}: {r}");
    }
    let message = net.fetch(&format!("https://up.example.com:{pr}/json"), json!(null));
    assert!(
        message["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("TLS"),
        "{message}"
    );
    assert_eq!(
        tls.hits(),
        served + 1,
        "only the redirect itself was served"
    );
    assert_eq!(
        rogue.hits(),
        0,
        "no request went over an untrusted connection"
    );
    assert_eq!(plain.hits(), 0, "the downgrade was never followed");
    assert_eq!(proxy.connections(), 0, "the proxy variables were used");
    // The same upstream over http works once the entry allows it.
    cli(&net.data, &["net", "allow", "up.example.com", "--http"]);
    assert_eq!(
        eventually_value(|| net.fetch(&format!("http://up.example.com:{pp}/json"), json!(null)))
            ["status"],
        200
    );
}

fn eventually_value(mut f: impl FnMut() -> Value) -> Value {
    let mut last = Value::Null;
    eventually(Duration::from_secs(3), || {
        last = f();
        last["status"] == 200
    });
    last
}
