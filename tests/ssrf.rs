//! SSRF, the way an attacker would try it (SPEC §6 step 8): names whose DNS
//! answers are private, loopback, link-local, metadata or a transition
//! form of one; CNAME chains to them; answers mixing public and private;
//! redirects to them; a pinned name on another port.
//!
//! The test runs in a private network namespace (`unshare --net`, only
//! `lo`), so a bug can never reach a real network. The private addresses
//! are put on `lo` with a canary listener each: a bypass shows as a hit,
//! not as a timeout, and the test first proves the canaries can be hit.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::dns::{Dns, Rec};
use support::upstream::Upstream;
use support::{cli, deploy, request, tmp, Fazt};

const INSIDE: &str = "FAZT_TEST_IN_NETNS";

/// Addresses the canaries listen on (added to `lo` first).
const CANARIES: &[&str] = &[
    "10.0.0.1:80",
    "169.254.169.254:80",
    "192.168.1.1:80",
    "172.16.0.1:80",
    "100.64.0.1:80",
    "127.0.0.1:8088",
    "[::1]:8088",
    "[fd00::1]:80",
];

/// Runs `test` inside a fresh network namespace with only `lo` (this test
/// binary again, filtered to the test). Returns false in the outer process.
fn inside_private_network(test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary");
    let status = Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(INSIDE, "1")
        .status()
        .expect("unshare (util-linux) runs the test in a private network namespace");
    assert!(status.success(), "the test failed inside its namespace");
    false
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `lo` up with the canaries' addresses; nothing else may exist.
fn set_up_network() {
    sh(&["ip", "link", "set", "lo", "up"]);
    for a in [
        "10.0.0.1/32",
        "169.254.169.254/32",
        "192.168.1.1/32",
        "172.16.0.1/32",
        "100.64.0.1/32",
    ] {
        sh(&["ip", "addr", "add", a, "dev", "lo"]);
    }
    sh(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd00::1/128",
        "dev",
        "lo",
        "nodad",
    ]);
    let links = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout).into_owned();
    assert_eq!(links.lines().count(), 1, "only lo may exist here: {links}");
    assert!(links.contains(": lo:"), "{links}");
}

/// Listeners that count every connection.
struct Canaries {
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Canaries {
    fn start(addrs: &[&str]) -> Canaries {
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = addrs
            .iter()
            .map(|a| {
                let listener = TcpListener::bind(a).unwrap_or_else(|e| panic!("canary {a}: {e}"));
                listener.set_nonblocking(true).expect("nonblocking");
                let (hits, stop, name) = (hits.clone(), stop.clone(), a.to_string());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok(_) => {
                                eprintln!("CANARY HIT on {name}");
                                hits.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                })
            })
            .collect();
        Canaries {
            hits,
            stop,
            threads,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Canaries {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

const FETCHER: &str = r#"
let out;
try {
  const r = fazt.net.fetch(request.body.url, request.body.opts);
  // Not {status, body}: that shape would be taken as the HTTP answer.
  out = { upstream_status: r.status, text: r.body };
} catch (e) {
  out = { error: { code: e.code || null, message: e.message } };
}
out
"#;

fn zone() -> Vec<(&'static str, Rec)> {
    use Rec::{Aaaa, Cname, A};
    let v4 = |s: &str| s.parse().expect("v4");
    let v6 = |s: &str| s.parse().expect("v6");
    vec![
        ("private.ssrf.test", A(v4("10.0.0.1"))),
        ("meta.ssrf.test", A(v4("169.254.169.254"))),
        ("loop.ssrf.test", A(v4("127.0.0.1"))),
        ("cgn.ssrf.test", A(v4("100.64.0.1"))),
        ("corp.ssrf.test", A(v4("172.16.0.1"))),
        ("home.ssrf.test", A(v4("192.168.1.1"))),
        ("zero.ssrf.test", A(v4("0.0.0.0"))),
        ("mixed.ssrf.test", A(v4("93.184.216.34"))),
        ("mixed.ssrf.test", A(v4("10.0.0.1"))),
        ("mixed6.ssrf.test", A(v4("93.184.216.34"))),
        ("mixed6.ssrf.test", Aaaa(v6("fd00::1"))),
        ("ula.ssrf.test", Aaaa(v6("fd00::1"))),
        ("lo6.ssrf.test", Aaaa(v6("::1"))),
        ("mapped.ssrf.test", Aaaa(v6("::ffff:10.0.0.1"))),
        ("compat.ssrf.test", Aaaa(v6("::10.0.0.1"))),
        ("nat64.ssrf.test", Aaaa(v6("64:ff9b::a00:1"))),
        ("sixtofour.ssrf.test", Aaaa(v6("2002:a00:1::1"))),
        (
            "teredo.ssrf.test",
            Aaaa(v6("2001:0:4136:e378:8000:63bf:f5ff:fffe")),
        ),
        ("linklocal6.ssrf.test", Aaaa(v6("fe80::1"))),
        ("cname.ssrf.test", Cname("inner.ssrf.test")),
        ("inner.ssrf.test", A(v4("10.0.0.1"))),
        ("chain.ssrf.test", Cname("cname.ssrf.test")),
        ("away.ssrf.test", Cname("elsewhere.example.net")),
        ("elsewhere.example.net", A(v4("169.254.169.254"))),
        ("up.ssrf.test", A(v4("127.0.0.1"))),
        ("public.ssrf.test", A(v4("93.184.216.34"))),
        ("public6.ssrf.test", Aaaa(v6("2606:4700::1111"))),
    ]
}

#[test]
fn ssrf_refusals_inside_a_private_network() {
    if !inside_private_network("ssrf_refusals_inside_a_private_network") {
        return;
    }
    set_up_network();
    let canaries = Canaries::start(CANARIES);
    // The canaries work: a direct connection is a hit.
    for a in CANARIES {
        let addr: SocketAddr = a.parse().expect("addr");
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("canary reachable");
    }
    assert!(
        support::eventually(Duration::from_secs(2), || canaries.hits() == CANARIES.len()),
        "not every canary counted its hit"
    );
    canaries.hits.store(0, Ordering::Relaxed);

    let dns = Dns::start("127.0.0.1:0", zone());
    let up = Upstream::start();
    let p = up.port();
    let dir = tmp();
    let data = dir.path().join("data");
    deploy(&data, dir.path(), "a", &[("api/main.js", FETCHER)]);
    let out = cli(&data, &["net", "allow", "*.ssrf.test", "--http"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fazt = Fazt::start(
        &data,
        &[
            ("FAZT_NET_NAMESERVER", &dns.addr.to_string()),
            (
                "FAZT_NET_TEST_RESOLVE",
                &format!("up.ssrf.test:{p}=127.0.0.1:{p}"),
            ),
        ],
    );
    let fetch = |url: &str| -> Value {
        let body = json!({ "url": url, "opts": {"timeout": 3000} }).to_string();
        let r = request(
            fazt.addr,
            "POST",
            "/_app/a/api",
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    // The pinned upstream answers: the pipe works end to end.
    let ok = fetch(&format!("http://up.ssrf.test:{p}/json"));
    assert_eq!(ok["upstream_status"], 200, "{ok}");

    let redirect = |to: &str| format!("http://up.ssrf.test:{p}/redirect?to={}", encode(to));
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "http://private.ssrf.test/".into(),
            "NET_BLOCKED",
            "A 10.0.0.1",
        ),
        (
            "http://meta.ssrf.test/latest/meta-data/".into(),
            "NET_BLOCKED",
            "A 169.254.169.254",
        ),
        (
            "http://loop.ssrf.test:8088/".into(),
            "NET_BLOCKED",
            "A 127.0.0.1",
        ),
        (
            "http://cgn.ssrf.test/".into(),
            "NET_BLOCKED",
            "A 100.64.0.1",
        ),
        (
            "http://corp.ssrf.test/".into(),
            "NET_BLOCKED",
            "A 172.16.0.1",
        ),
        (
            "http://home.ssrf.test/".into(),
            "NET_BLOCKED",
            "A 192.168.1.1",
        ),
        ("http://zero.ssrf.test/".into(), "NET_BLOCKED", "A 0.0.0.0"),
        (
            "http://mixed.ssrf.test/".into(),
            "NET_BLOCKED",
            "a public and a private A",
        ),
        (
            "http://mixed6.ssrf.test/".into(),
            "NET_BLOCKED",
            "a public A and a private AAAA",
        ),
        (
            "http://ula.ssrf.test/".into(),
            "NET_BLOCKED",
            "AAAA fd00::1",
        ),
        (
            "http://lo6.ssrf.test:8088/".into(),
            "NET_BLOCKED",
            "AAAA ::1",
        ),
        (
            "http://mapped.ssrf.test/".into(),
            "NET_BLOCKED",
            "AAAA ::ffff:10.0.0.1",
        ),
        (
            "http://compat.ssrf.test/".into(),
            "NET_BLOCKED",
            "AAAA ::10.0.0.1",
        ),
        (
            "http://nat64.ssrf.test/".into(),
            "NET_BLOCKED",
            "AAAA 64:ff9b::10.0.0.1",
        ),
        (
            "http://sixtofour.ssrf.test/".into(),
            "NET_BLOCKED",
            "6to4 of 10.0.0.1",
        ),
        (
            "http://teredo.ssrf.test/".into(),
            "NET_BLOCKED",
            "Teredo of 10.0.0.1",
        ),
        (
            "http://linklocal6.ssrf.test/".into(),
            "NET_BLOCKED",
            "AAAA fe80::1",
        ),
        (
            "http://cname.ssrf.test/".into(),
            "NET_BLOCKED",
            "a CNAME to 10.0.0.1",
        ),
        (
            "http://chain.ssrf.test/".into(),
            "NET_BLOCKED",
            "two CNAMEs to 10.0.0.1",
        ),
        (
            "http://away.ssrf.test/".into(),
            "NET_BLOCKED",
            "a CNAME out of the zone to metadata",
        ),
        // The pin is for that host and port only.
        (
            "http://up.ssrf.test:8088/".into(),
            "NET_BLOCKED",
            "a pinned name on another port",
        ),
        (
            redirect("http://private.ssrf.test/"),
            "NET_BLOCKED",
            "a redirect to a private name",
        ),
        (
            redirect("http://10.0.0.1/"),
            "NET_BLOCKED",
            "a redirect to an IP literal",
        ),
        (
            redirect("http://meta.ssrf.test/"),
            "NET_BLOCKED",
            "a redirect to metadata",
        ),
        (
            redirect("//loop.ssrf.test:8088/"),
            "NET_BLOCKED",
            "a protocol-relative redirect",
        ),
        (
            redirect("http://[::ffff:a00:1]/"),
            "NET_BLOCKED",
            "a redirect to a mapped literal",
        ),
        ("http://nothing.ssrf.test/".into(), "NET_ERROR", "NXDOMAIN"),
        // Public answers pass every check; there is no route to them here.
        (
            "http://public.ssrf.test/".into(),
            "NET_ERROR",
            "A 93.184.216.34",
        ),
        (
            "http://public6.ssrf.test/".into(),
            "NET_ERROR",
            "AAAA 2606:4700::1111",
        ),
    ];
    let mut wrong = Vec::new();
    for (url, want, what) in &cases {
        let r = fetch(url);
        let got = r["error"]["code"].as_str().unwrap_or("(answered)");
        if got != *want {
            wrong.push(format!("{what} ({url}): want {want}, got {r}"));
        }
        // Never the address itself in what JS sees.
        let message = r["error"]["message"].as_str().unwrap_or_default();
        for leaked in ["10.0.0.1", "169.254", "fd00", "127.0.0.1", "::1"] {
            if message.contains(leaked) {
                wrong.push(format!("{what}: the message names {leaked}: {message}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(canaries.hits(), 0, "a private address was reached");
    assert!(dns.questions() > 0, "the DNS server was never asked");
    assert!(
        fazt.stderr().contains("non-public address"),
        "refusals are logged with the address: {}",
        fazt.stderr()
    );
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
