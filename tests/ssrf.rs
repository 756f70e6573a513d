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
use support::netns::{inside_private_network, sh};
use support::upstream::Upstream;
use support::{deploy, net_allow, percent_encode, post_json, tmp, Fazt};

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

/// `lo` up with the canaries' addresses; nothing else may exist.
fn set_up_network() {
    support::netns::lo_up();
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
    armed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Canaries {
    fn start(addrs: &[&str]) -> Canaries {
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicBool::new(false));
        let threads = addrs
            .iter()
            .map(|a| {
                let listener = TcpListener::bind(a).unwrap_or_else(|e| panic!("canary {a}: {e}"));
                listener.set_nonblocking(true).expect("nonblocking");
                let (hits, stop, armed, name) =
                    (hits.clone(), stop.clone(), armed.clone(), a.to_string());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok(_) => {
                                hits.fetch_add(1, Ordering::Relaxed);
                                // Hits before arming are the self-check.
                                if armed.load(Ordering::Relaxed) {
                                    eprintln!("CANARY HIT on {name}");
                                }
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                })
            })
            .collect();
        Canaries {
            hits,
            armed,
            stop,
            threads,
        }
    }

    /// After the self-check: count from zero, and say every hit.
    fn arm(&self) {
        self.hits.store(0, Ordering::Relaxed);
        self.armed.store(true, Ordering::Relaxed);
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

/// A private network with canaries, the zone's DNS server, a pinned
/// upstream and fazt with the fetcher app and `allow` entries.
struct Lab {
    canaries: Canaries,
    dns: Dns,
    up: Upstream,
    fazt: Fazt,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// Must run inside the namespace. `pins` are names pinned to the
    /// upstream's port on 127.0.0.1.
    fn start(allow: &[&[&str]], pins: &[&str]) -> Lab {
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
        canaries.arm();

        let dns = Dns::start("127.0.0.1:0", zone());
        let up = Upstream::start();
        let p = up.port();
        let dir = tmp();
        let data = dir.path().join("data");
        deploy(&data, dir.path(), "a", &[("api/main.js", FETCHER)]);
        net_allow(&data, allow);
        let pins: Vec<String> = pins
            .iter()
            .map(|name| format!("{name}:{p}=127.0.0.1:{p}"))
            .collect();
        let fazt = Fazt::start(
            &data,
            &[
                ("FAZT_NET_NAMESERVER", &dns.addr.to_string()),
                ("FAZT_NET_TEST_RESOLVE", &pins.join(",")),
            ],
        );
        Lab {
            canaries,
            dns,
            up,
            fazt,
            _dir: dir,
        }
    }

    fn fetch(&self, url: &str) -> Value {
        let body = json!({ "url": url, "opts": {"timeout": 3000} });
        let r = post_json(self.fazt.addr, "/_app/a/api", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// Runs a case table; returns what went wrong. An answer is written
    /// as its status (`"200"`), a refusal as its code.
    fn check(&self, cases: &[(String, &str, &str)]) -> Vec<String> {
        let mut wrong = Vec::new();
        for (url, want, what) in cases {
            let r = self.fetch(url);
            let got = match (r["error"]["code"].as_str(), r["upstream_status"].as_u64()) {
                (Some(code), _) => code.to_string(),
                (None, Some(status)) => status.to_string(),
                _ => format!("{r}"),
            };
            if got != *want {
                wrong.push(format!("{what} ({url:?}): want {want}, got {r}"));
            }
            // Never the address itself in what JS sees.
            let message = r["error"]["message"].as_str().unwrap_or_default();
            for leaked in ["10.0.0.1", "169.254", "fd00", "127.0.0.1", "::1"] {
                if message.contains(leaked) {
                    wrong.push(format!("{what}: the message names {leaked}: {message}"));
                }
            }
        }
        wrong
    }
}

#[test]
fn ssrf_refusals_inside_a_private_network() {
    if !inside_private_network("ssrf_refusals_inside_a_private_network") {
        return;
    }
    let lab = Lab::start(&[&["*.ssrf.test", "--http"]], &["up.ssrf.test"]);
    let p = lab.up.port();
    // The pinned upstream answers: the pipe works end to end.
    let ok = lab.fetch(&format!("http://up.ssrf.test:{p}/json"));
    assert_eq!(ok["upstream_status"], 200, "{ok}");

    let redirect = |to: &str| format!("http://up.ssrf.test:{p}/redirect?to={}", percent_encode(to));
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
            redirect("http://169.254.169.254/latest/meta-data/"),
            "NET_BLOCKED",
            "a redirect to the metadata address",
        ),
        (
            redirect("http://evil.example.net/"),
            "NET_BLOCKED",
            "a redirect off the allowlist",
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
    let wrong = lab.check(&cases);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(lab.canaries.hits(), 0, "a private address was reached");
    assert!(lab.dns.questions() > 0, "the DNS server was never asked");
    assert!(
        lab.fazt.stderr().contains("non-public address"),
        "refusals are logged with the address: {}",
        lab.fazt.stderr()
    );
}

/// URL spellings as an attacker writes them, each with the exact answer:
/// IP literals in every form the WHATWG parser takes (aimed at the
/// canaries, so a bypass is a hit), userinfo and backslash tricks, other
/// schemes, look-alike and off-list names, wildcard edges, trailing dots,
/// case and IDNA forms, bad ports.
#[test]
fn url_spellings_get_exact_codes_inside_a_private_network() {
    if !inside_private_network("url_spellings_get_exact_codes_inside_a_private_network") {
        return;
    }
    let lab = Lab::start(
        &[
            &["*.ssrf.test", "--http"],
            &["exact.example.com", "--http"],
            &["*.wild.example.com", "--http"],
            &["tls.example.com"],
        ],
        &[
            "up.ssrf.test",
            "xn--bcher-kva.ssrf.test",
            "exact.example.com",
            "a.wild.example.com",
            "tls.example.com",
        ],
    );
    let p = lab.up.port();
    let b = "NET_BLOCKED";
    let rows: Vec<(String, &str, &str)> = vec![
        // Allowed spellings of allowed names reach the pinned upstream.
        (format!("http://up.ssrf.test:{p}/json"), "200", "plain"),
        (format!("http://UP.SSRF.TEST:{p}/json"), "200", "upper case"),
        (
            format!("HTTP://up.ssrf.test:{p}/json"),
            "200",
            "upper-case scheme",
        ),
        (
            format!("http://up.ssrf.test.:{p}/json"),
            "200",
            "a trailing dot",
        ),
        (
            format!("http://up.ssrf.test:{p}/json?x=1#f"),
            "200",
            "query and fragment",
        ),
        (
            format!("http://up%2Essrf.test:{p}/json"),
            "200",
            "a percent-encoded dot",
        ),
        (
            format!("http://up。ssrf.test:{p}/json"),
            "200",
            "an ideographic full stop",
        ),
        (
            format!("http://bücher.ssrf.test:{p}/json"),
            "200",
            "IDNA, Unicode",
        ),
        (
            format!("http://BÜCHER.ssrf.test:{p}/json"),
            "200",
            "IDNA, Unicode upper case",
        ),
        (
            format!("http://xn--bcher-kva.ssrf.test:{p}/json"),
            "200",
            "IDNA, punycode",
        ),
        (
            format!("http://exact.example.com:{p}/json"),
            "200",
            "an exact entry",
        ),
        (
            format!("http://Exact.Example.Com.:{p}/json"),
            "200",
            "an exact entry, case and dot",
        ),
        (
            format!("http://a.wild.example.com:{p}/json"),
            "200",
            "a wildcard's subdomain",
        ),
        (
            format!("http://up.ssrf.test:{p}\\json"),
            "200",
            "a backslash is a slash",
        ),
        (
            format!("http://@up.ssrf.test:{p}/json"),
            "200",
            "an empty userinfo carries nothing",
        ),
        (
            format!("http://up.ssrf.test:{p}\\@10.0.0.1/"),
            "404",
            "backslash before @: the host is up.ssrf.test",
        ),
        // IP literals, aimed at the canaries.
        ("http://10.0.0.1/".into(), b, "dotted"),
        ("http://167772161/".into(), b, "decimal"),
        ("http://0xa000001/".into(), b, "hex"),
        ("http://0x0a.0.0.1/".into(), b, "hex octet"),
        ("http://012.0.0.1/".into(), b, "octal octet"),
        ("http://10.1/".into(), b, "two-part short form"),
        ("http://10.0.1/".into(), b, "three-part short form"),
        ("http://１０.０.０.１/".into(), b, "full-width digits"),
        ("http://10.0.0.1./".into(), b, "dotted, trailing dot"),
        ("http://127.0.0.1:8088/".into(), b, "loopback"),
        ("http://127.1:8088/".into(), b, "loopback short"),
        ("http://2130706433:8088/".into(), b, "loopback decimal"),
        ("http://0177.0.0.1:8088/".into(), b, "loopback octal"),
        ("http://0x7f000001:8088/".into(), b, "loopback hex"),
        ("http://0x7f.1:8088/".into(), b, "loopback hex short"),
        ("http://0:8088/".into(), b, "zero"),
        ("http://0.0.0.0:8088/".into(), b, "zero dotted"),
        ("http://169.254.169.254/".into(), b, "metadata"),
        ("http://2852039166/".into(), b, "metadata decimal"),
        ("http://0xA9FEA9FE/".into(), b, "metadata hex"),
        ("http://0251.0376.0251.0376/".into(), b, "metadata octal"),
        ("http://169.254.43518/".into(), b, "metadata short"),
        ("http://192.168.1.1/".into(), b, "192.168/16"),
        ("http://172.16.0.1/".into(), b, "172.16/12"),
        ("http://100.64.0.1/".into(), b, "100.64/10"),
        ("http://[::1]:8088/".into(), b, "IPv6 loopback"),
        (
            "http://[0:0:0:0:0:0:0:1]:8088/".into(),
            b,
            "IPv6 loopback, long",
        ),
        (
            "http://[::ffff:127.0.0.1]:8088/".into(),
            b,
            "mapped, dotted",
        ),
        ("http://[::ffff:7f00:1]:8088/".into(), b, "mapped, hex"),
        ("http://[::127.0.0.1]:8088/".into(), b, "compatible"),
        ("http://[::ffff:a9fe:a9fe]/".into(), b, "mapped metadata"),
        ("http://[64:ff9b::a00:1]/".into(), b, "NAT64"),
        ("http://[fd00::1]/".into(), b, "unique local"),
        ("http://[fe80::1%25lo]/".into(), b, "a zone id"),
        (
            "http://[2606:4700::1111]/".into(),
            b,
            "a public IPv6 literal",
        ),
        ("http://93.184.216.34/".into(), b, "a public IPv4 literal"),
        // Userinfo, fragments and backslashes that move the host.
        (
            format!("http://user:pass@up.ssrf.test:{p}/json"),
            b,
            "userinfo",
        ),
        (
            format!("http://user@up.ssrf.test:{p}/json"),
            b,
            "a user name",
        ),
        (
            format!("http://up.ssrf.test:{p}@10.0.0.1/"),
            b,
            "an allowed name as userinfo",
        ),
        (
            format!("http://10.0.0.1#@up.ssrf.test:{p}/"),
            b,
            "a fragment before @",
        ),
        (
            format!("http://10.0.0.1\\@up.ssrf.test:{p}/"),
            b,
            "a backslash after the IP",
        ),
        ("http:\\\\10.0.0.1\\".into(), b, "backslashes for slashes"),
        ("http:/10.0.0.1/".into(), b, "one slash"),
        ("http:10.0.0.1".into(), b, "no slash"),
        ("  http://10.0.0.1/  ".into(), b, "spaces around"),
        ("http://10.0.\t0.1/".into(), b, "a tab inside"),
        // Other schemes.
        ("file:///etc/passwd".into(), b, "file"),
        (format!("ftp://up.ssrf.test:{p}/"), b, "ftp"),
        (format!("gopher://up.ssrf.test:{p}/_x"), b, "gopher"),
        (format!("ws://up.ssrf.test:{p}/"), b, "ws"),
        (format!("dict://up.ssrf.test:{p}/"), b, "dict"),
        ("data:text/plain,hi".into(), b, "data"),
        ("javascript:alert(1)".into(), b, "javascript"),
        (format!("blob:http://up.ssrf.test:{p}/x"), b, "blob"),
        (format!("up.ssrf.test:{p}/json"), b, "no scheme"),
        ("/json".into(), b, "relative"),
        ("".into(), b, "empty"),
        // Off the allowlist, look-alikes and wildcard edges.
        ("http://localhost:8088/".into(), b, "localhost"),
        ("http://ssrf.test/".into(), b, "a wildcard's own apex"),
        (
            "http://wild.example.com/".into(),
            b,
            "a wildcard's own apex, again",
        ),
        (
            "http://xwild.example.com/".into(),
            b,
            "a suffix that is not a label",
        ),
        (
            "http://sub.exact.example.com/".into(),
            b,
            "below an exact entry",
        ),
        (
            "http://exact.example.com.evil.test/".into(),
            b,
            "an allowed name as a prefix",
        ),
        (
            "http://evil-exact.example.com/".into(),
            b,
            "an allowed name as a suffix",
        ),
        (
            "http://еxact.example.com/".into(),
            b,
            "a Cyrillic look-alike",
        ),
        ("http://exact.example.co/".into(), b, "another TLD"),
        (
            format!("http://tls.example.com:{p}/json"),
            b,
            "https only, asked over http",
        ),
        // Names that do not parse.
        (format!("http://up..ssrf.test:{p}/"), b, "an empty label"),
        (format!("http://.up.ssrf.test:{p}/"), b, "a leading dot"),
        (
            format!("http://up.ssrf.test..:{p}/"),
            b,
            "two trailing dots",
        ),
        ("http://xn--zz.ssrf.test/".into(), b, "bad punycode"),
        ("http://up%00.ssrf.test/".into(), b, "a NUL"),
        ("http://up ssrf.test/".into(), b, "a space"),
        // A wildcard's deep subdomain is allowed: it is asked of DNS,
        // which does not know it.
        (
            "http://a.b.wild.example.com/".into(),
            "NET_ERROR",
            "a deep subdomain, unknown",
        ),
        // Bad ports of an allowed name never connect.
        ("http://up.ssrf.test:25/".into(), b, "port 25"),
        ("http://up.ssrf.test:22/".into(), b, "port 22"),
        ("http://up.ssrf.test:21/".into(), b, "port 21"),
        ("http://up.ssrf.test:6000/".into(), b, "port 6000"),
        ("http://up.ssrf.test:6667/".into(), b, "port 6667"),
        ("http://up.ssrf.test:10080/".into(), b, "port 10080"),
        ("http://up.ssrf.test:0/".into(), b, "port 0"),
        ("http://up.ssrf.test:65536/".into(), b, "port 65536"),
        ("http://up.ssrf.test:-1/".into(), b, "port -1"),
    ];
    assert!(
        rows.len() >= 80,
        "the issue asks for 80 cases at least: {}",
        rows.len()
    );
    let wrong = lab.check(&rows);
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(lab.canaries.hits(), 0, "a private address was reached");
}
