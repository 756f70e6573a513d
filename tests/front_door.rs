//! The front door under attack, black-box (SPEC §3, §5): app source and
//! hidden files are never served in any spelling of their path, on both
//! routing forms.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::{deploy, request, tmp, Fazt};

const SOURCE_MARKER: &str = "SOURCE-MARKER-7f3a";
const ENV_MARKER: &str = "ENV-MARKER-91c2";

/// GET `target` with `host`, sent exactly as written (no normalisation by
/// a client library); status and the whole answer.
fn raw_get(addr: SocketAddr, target: &str, host: &str) -> (u16, String) {
    let text = raw(
        addr,
        &format!("GET {target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
    );
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Sends `head` as written and reads the answer to the end.
fn raw(addr: SocketAddr, head: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(head.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes a file straight into the app's stored files, as a deploy through
/// an older rule (or a bug) might have: the static store itself must refuse
/// to serve it.
fn plant_file(data: &std::path::Path, app: &str, path: &str, content: &str) {
    let conn = rusqlite::Connection::open(data.join("fazt.db")).expect("open db");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let n = conn
        .execute(
            "INSERT INTO files(app_id, path, content, size, mime, hash, updated_at)
             SELECT id, ?2, ?3, length(?3), 'text/plain', 'planted', 0 FROM apps WHERE name = ?1",
            rusqlite::params![app, path, content.as_bytes()],
        )
        .expect("plant");
    assert_eq!(n, 1);
}

/// Spellings of `api/main.js`, `.env`, `.git/config` and `api/lib.js`.
const SPELLINGS: &[&str] = &[
    "/api/main.js",
    "//api/main.js",
    "/./api/main.js",
    "/x/../api/main.js",
    "/x/%2e%2e/api/main.js",
    "/%2e/api/main.js",
    "/%61pi/main.js",
    "/%61%70%69/main.js",
    "/ap%69/main.js",
    "/api%2fmain.js",
    "/api%2Fmain.js",
    "/api/%6dain.js",
    "/api/main%2ejs",
    "/api//main.js",
    "/api/./main.js",
    "/api\\main.js",
    "/api%5cmain.js",
    "/api%5Cmain.js",
    "/%5capi/main.js",
    "/api/main.js/",
    "/api/main.js?download=1",
    "/api/main.js%00",
    "/api/main.js%20",
    "/API/main.js",
    "/%41PI/main.js",
    "/.%2e/api/main.js",
    "/%252e/api/main.js",
    "/api/lib.js",
    "/%61pi/lib.js",
    "/.env",
    "//.env",
    "/%2eenv",
    "/%2Eenv",
    "/x/../.env",
    "/.well-known/../.env",
    "/.git/config",
    "/%2egit/config",
    "/.git%2fconfig",
    "/sub/.env",
    "/sub/%2eenv",
];

#[test]
fn app_source_and_hidden_files_are_never_served() {
    let dir = tmp();
    let data = dir.path().join("data");
    let main = format!("// {SOURCE_MARKER}\n({{ran: 'main'}})");
    let lib = format!("// {SOURCE_MARKER}\nexports.x = 1;");
    deploy(
        &data,
        dir.path(),
        "site",
        &[
            ("index.html", "home"),
            ("api/main.js", &main),
            ("api/lib.js", &lib),
            (".well-known/security.txt", "contact: x"),
        ],
    );
    for (path, content) in [
        (".env", ENV_MARKER),
        (".git/config", ENV_MARKER),
        ("sub/.env", ENV_MARKER),
    ] {
        plant_file(&data, "site", path, content);
    }
    let fazt = Fazt::start(&data, &[]);
    let host = "site.localhost".to_string();
    let direct = fazt.addr.to_string();
    for spelling in SPELLINGS {
        for (target, host) in [
            (format!("/_app/site{spelling}"), direct.as_str()),
            (format!("/_app//site{spelling}"), direct.as_str()),
            (format!("/_app/%73ite{spelling}"), direct.as_str()),
            (spelling.to_string(), host.as_str()),
        ] {
            let (status, text) = raw_get(fazt.addr, &target, host);
            assert!(
                !text.contains(SOURCE_MARKER) && !text.contains(ENV_MARKER),
                "{target} (host {host}) served a secret file: {text}"
            );
            assert!(
                matches!(status, 200 | 400 | 404 | 405),
                "{target} (host {host}): unexpected {status}: {text}"
            );
        }
    }
    // What must still work: the API, the page, .well-known.
    let api = fazt.app_get("site", "/api");
    assert_eq!(
        (api.status, api.json()["ran"].as_str()),
        (200, Some("main"))
    );
    assert_eq!(fazt.app_get("site", "/").text(), "home");
    let wk = fazt.app_get("site", "/.well-known/security.txt");
    assert_eq!((wk.status, wk.text().as_str()), (200, "contact: x"));
    // A spelling that decodes to the API path reaches the API, not a file.
    let (status, text) = raw_get(fazt.addr, "/_app/site/%61pi", &direct);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"ran\":\"main\""), "{text}");
    // JS sees the one normalised path.
    let echo = request(fazt.addr, "GET", "/_app/site//api/./x/../", &[], b"");
    assert_eq!(echo.status, 200, "{}", echo.text());
}

// ---------------------------------------------------------------------------
// Slow and abandoned connections.

/// Limits with short front-door timeouts, so the tests take seconds.
fn short_timeouts(data: &std::path::Path, extra: &[(&str, &str)]) {
    let mut pairs = vec![
        ("capacity.header_timeout_ms", "1000"),
        ("capacity.body_timeout_ms", "1000"),
        ("capacity.idle_timeout_ms", "1000"),
        ("capacity.write_timeout_ms", "1000"),
        ("runtime.workers", "1"),
    ];
    pairs.extend_from_slice(extra);
    support::set_limits(data, &pairs);
}

/// Whether the server closes `s` within `within` (EOF or reset), reading
/// and discarding whatever it sends.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = [0u8; 64 * 1024];
    while std::time::Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

fn small_site(data: &std::path::Path, parent: &std::path::Path) {
    deploy(
        data,
        parent,
        "site",
        &[
            ("index.html", "home"),
            (
                "api/main.js",
                "({n: request.body ? request.body.length : 0})",
            ),
        ],
    );
}

#[test]
fn slow_and_idle_connections_are_cut_off() {
    let dir = tmp();
    let data = dir.path().join("data");
    short_timeouts(&data, &[]);
    small_site(&data, dir.path());
    let fazt = Fazt::start(&data, &[]);
    let connect = || TcpStream::connect(fazt.addr).expect("connect");

    // A partial head, never finished.
    let mut partial = connect();
    partial
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .expect("write");
    // One head byte every 300 ms: the head deadline counts from its first byte.
    let mut dribble = connect();
    let dribbler = std::thread::spawn(move || {
        let _ = dribble.write_all(b"GET / HTTP/1.1\r\nx-slow: ");
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(300));
            if dribble.write_all(b"a").is_err() {
                return true;
            }
        }
        closed_within(&mut dribble, Duration::from_millis(100))
    });
    // Kept alive after one answer, then silent.
    let mut idle = connect();
    idle.write_all(b"GET /_app/site/ HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    // A body announced and never sent in full.
    let mut half = connect();
    half.write_all(
        b"POST /_app/site/api HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\nonly-this",
    )
    .expect("write");
    // Silent from the start.
    let mut silent = connect();

    // Meanwhile a normal client is answered at once.
    let started = std::time::Instant::now();
    let r = fazt.app_get("site", "/");
    assert_eq!((r.status, r.text().as_str()), (200, "home"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    for (name, s) in [
        ("partial head", &mut partial),
        ("idle keep-alive", &mut idle),
        ("half body", &mut half),
        ("silent", &mut silent),
    ] {
        assert!(
            closed_within(s, Duration::from_secs(4)),
            "{name} connection still open"
        );
    }
    assert!(
        dribbler.join().expect("dribbler"),
        "a dribbled head kept its connection"
    );
}

#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let dir = tmp();
    let data = dir.path().join("data");
    short_timeouts(&data, &[]);
    let big = "x".repeat(32 << 20);
    deploy(&data, dir.path(), "site", &[("big.txt", &big)]);
    let fazt = Fazt::start(&data, &[]);
    let mut s = TcpStream::connect(fazt.addr).expect("connect");
    s.write_all(b"GET /_app/site/big.txt HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    std::thread::sleep(Duration::from_secs(3));
    // Whatever sits in socket buffers can still be read; the rest never comes.
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(
        got < 32 << 20,
        "the whole response arrived after a 3 s stall ({got} bytes)"
    );
}

#[test]
fn sigterm_does_not_wait_for_a_partial_head() {
    let dir = tmp();
    let data = dir.path().join("data");
    small_site(&data, dir.path());
    let mut fazt = Fazt::start(&data, &[]);
    let mut partial = TcpStream::connect(fazt.addr).expect("connect");
    partial
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .expect("write");
    let mut idle = TcpStream::connect(fazt.addr).expect("connect");
    idle.write_all(b"GET /_app/site/ HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let status = fazt
        .signal_and_wait(support::Signal::SIGTERM, Duration::from_secs(8))
        .expect("fazt did not exit within 8 s");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "SIGTERM waited {:?} for idle connections",
        started.elapsed()
    );
}

#[test]
fn the_connection_cap_holds_and_frees_up() {
    let dir = tmp();
    let data = dir.path().join("data");
    short_timeouts(
        &data,
        &[
            ("capacity.max_connections", "16"),
            ("capacity.idle_timeout_ms", "60000"),
            ("capacity.header_timeout_ms", "60000"),
        ],
    );
    small_site(&data, dir.path());
    let fazt = Fazt::start(&data, &[]);
    let mut held: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(fazt.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The 17th connects (the kernel queues it) but is not served...
    let mut extra = TcpStream::connect(fazt.addr).expect("connect");
    extra
        .write_all(b"GET /_app/site/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .expect("write");
    extra
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    let mut buf = [0u8; 256];
    assert!(
        extra.read(&mut buf).is_err(),
        "a connection over the cap was served"
    );
    // ...until one of the others goes away.
    held.pop();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let n = extra.read(&mut buf).expect("served after a slot freed");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn running_out_of_file_descriptors_is_survived_quietly() {
    let dir = tmp();
    let data = dir.path().join("data");
    short_timeouts(&data, &[]);
    small_site(&data, dir.path());
    let fazt = Fazt::start_with(&data, &[], Some(256));
    let quick =
        |addr: SocketAddr| TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok();
    // More connections than the process may hold files.
    let flood: Vec<TcpStream> = (0..400).filter_map(|_| quick(fazt.addr)).collect();
    std::thread::sleep(Duration::from_millis(500));
    // The idle ones time out; a normal client is then served.
    let started = std::time::Instant::now();
    let mut served = false;
    while !served && started.elapsed() < Duration::from_secs(8) {
        if let Some(mut s) = quick(fazt.addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ =
                s.write_all(b"GET /_app/site/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let mut buf = [0u8; 64];
            served = s
                .read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"HTTP/1.1 200"));
        }
        if !served {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    drop(flood);
    assert!(served, "no normal request was served while flooded");
    let accept_errors = fazt.stderr().matches("accept").count();
    assert!(
        accept_errors < 20,
        "{accept_errors} accept log lines:\n{}",
        fazt.stderr()
    );
}

// ---------------------------------------------------------------------------
// Request bodies.

#[test]
fn an_oversized_body_is_refused_before_it_is_read() {
    let dir = tmp();
    let data = dir.path().join("data");
    short_timeouts(&data, &[("capacity.max_body", "1MiB")]);
    small_site(&data, dir.path());
    let fazt = Fazt::start(&data, &[]);
    for expect in [false, true] {
        let mut s = TcpStream::connect(fazt.addr).expect("connect");
        let head = format!(
            "POST /_app/site/api HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n{}\r\n",
            2 << 20,
            if expect {
                "expect: 100-continue\r\n"
            } else {
                ""
            }
        );
        s.write_all(head.as_bytes()).expect("write");
        // No body byte is sent: the answer must come anyway, at once.
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("an answer without the body");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 413"), "expect={expect}: {text}");
    }
    // Under the cap it works; at the cap + 1 without a length it is 413 too.
    let ok = request(
        fazt.addr,
        "POST",
        "/_app/site/api",
        &[],
        &vec![b'x'; 1 << 20],
    );
    assert_eq!((ok.status, ok.json()["n"].as_u64()), (200, Some(1 << 20)));
    let mut s = TcpStream::connect(fazt.addr).expect("connect");
    s.write_all(b"POST /_app/site/api HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        .expect("write");
    let chunk = vec![b'y'; 64 * 1024];
    for _ in 0..17 {
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || s.write_all(&chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn bodies_beyond_the_buffer_wait_their_turn() {
    let dir = tmp();
    let data = dir.path().join("data");
    short_timeouts(
        &data,
        &[("capacity.body_buffer", "8MiB"), ("runtime.lanes", "2")],
    );
    small_site(&data, dir.path());
    let fazt = Fazt::start(&data, &[]);
    // Six 3 MiB bodies at once: at most two fit the buffer at a time.
    let addr = fazt.addr;
    let uploads: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                request(addr, "POST", "/_app/site/api", &[], &vec![b'z'; 3 << 20])
            })
        })
        .collect();
    for u in uploads {
        let r = u.join().expect("upload");
        assert_eq!(
            (r.status, r.json()["n"].as_u64()),
            (200, Some(3 << 20)),
            "{}",
            r.text()
        );
    }
}

// ---------------------------------------------------------------------------
// Large static files stream.

#[test]
fn large_files_stream_byte_exact_and_head_tells_their_length() {
    let dir = tmp();
    let data = dir.path().join("data");
    let big: String = (0..(3 << 20) + 12345)
        .map(|i: u32| char::from(b'a' + (i % 26) as u8))
        .collect();
    deploy(
        &data,
        dir.path(),
        "site",
        &[("big.txt", &big), ("index.html", "home")],
    );
    let fazt = Fazt::start(&data, &[]);
    let addr = fazt.addr;
    let downloads: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || request(addr, "GET", "/_app/site/big.txt", &[], b"")))
        .collect();
    for d in downloads {
        let r = d.join().expect("download");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-length"),
            Some(big.len().to_string().as_str())
        );
        assert!(
            r.body == big.as_bytes(),
            "a streamed body differs ({} bytes)",
            r.body.len()
        );
    }
    let head = request(addr, "HEAD", "/_app/site/big.txt", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(big.len().to_string().as_str())
    );
    let etag = head.header("etag").expect("etag").to_string();
    let again = request(
        addr,
        "GET",
        "/_app/site/big.txt",
        &[("if-none-match", &etag)],
        b"",
    );
    assert_eq!((again.status, again.body.len()), (304, 0));
}

// ---------------------------------------------------------------------------
// Hosts (RFC 9112 §3.2).

#[test]
fn hosts_are_one_per_request_and_an_absolute_target_wins() {
    let dir = tmp();
    let data = dir.path().join("data");
    deploy(&data, dir.path(), "site", &[("index.html", "site page")]);
    deploy(&data, dir.path(), "other", &[("index.html", "other page")]);
    let fazt = Fazt::start(&data, &[]);
    let a = fazt.addr;
    let missing = raw(a, "GET /_app/site/ HTTP/1.1\r\nconnection: close\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 400"), "{missing}");
    let twice = raw(a, "GET / HTTP/1.1\r\nhost: site.localhost\r\nhost: other.localhost\r\nconnection: close\r\n\r\n");
    assert!(twice.starts_with("HTTP/1.1 400"), "{twice}");
    let absolute = raw(
        a,
        "GET http://site.localhost/ HTTP/1.1\r\nhost: other.localhost\r\nconnection: close\r\n\r\n",
    );
    assert!(
        absolute.starts_with("HTTP/1.1 200") && absolute.ends_with("site page"),
        "{absolute}"
    );
    let old = raw(a, "GET /_app/other/ HTTP/1.0\r\n\r\n");
    assert!(old.ends_with("other page"), "{old}");
}

#[test]
fn a_slow_but_steady_reader_gets_the_whole_response() {
    let dir = tmp();
    let data = dir.path().join("data");
    short_timeouts(&data, &[("capacity.write_timeout_ms", "5000")]);
    // Just over 1 MiB, so the file streams.
    let big = "b".repeat((1 << 20) + 100_000);
    deploy(
        &data,
        dir.path(),
        "site",
        &[
            ("big.txt", &big),
            (
                "api/main.js",
                "respond(200, 'j'.repeat((1 << 20) + 100000))",
            ),
        ],
    );
    let fazt = Fazt::start(&data, &[]);
    // An answer held whole in memory (JS) and one streamed (a large file):
    // both take longer to flush to this reader than the 1 s idle timeout.
    for path in ["/_app/site/api", "/_app/site/big.txt"] {
        let mut s = small_window_connect(fazt.addr);
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .expect("write");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut got = 0usize;
        let mut buf = vec![0u8; 32 * 1024];
        let started = std::time::Instant::now();
        // Small reads with pauses: steady progress, about 2 s in all.
        while got < big.len() && started.elapsed() < Duration::from_secs(20) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            std::thread::sleep(Duration::from_millis(15));
        }
        assert!(
            got >= big.len(),
            "{path}: cut after {got} of {} bytes",
            big.len()
        );
    }
}

/// A connection whose receive buffer (so its TCP window) is small, set
/// before connecting: the server's writes then really wait on this reader.
fn small_window_connect(addr: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = addr else {
        panic!("tests listen on IPv4 loopback");
    };
    // SAFETY: plain socket calls on a descriptor this function owns until
    // it is handed to TcpStream; every pointer passed is to a live value of
    // the size given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let size: libc::c_int = 8 * 1024;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

#[test]
fn http2_prior_knowledge_is_not_spoken() {
    let dir = tmp();
    let data = dir.path().join("data");
    short_timeouts(&data, &[]);
    small_site(&data, dir.path());
    let fazt = Fazt::start(&data, &[]);
    let mut s = TcpStream::connect(fazt.addr).expect("connect");
    // The HTTP/2 connection preface, then a SETTINGS frame.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .expect("write");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    // An HTTP/1 error or a closed connection, never an HTTP/2 SETTINGS frame.
    assert!(
        out.is_empty() || out.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
}

/// Sends `body` chunked (no Content-Length) in 64 KiB pieces, pausing
/// `pause` after the first `pause_after` bytes; the status.
fn post_chunked(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    pause_after: usize,
    pause: Duration,
) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!("POST {path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    if s.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    for (i, piece) in body.chunks(64 * 1024).enumerate() {
        if i * 64 * 1024 == pause_after {
            std::thread::sleep(pause);
        }
        let sent = s
            .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .is_ok()
            && s.write_all(piece).is_ok()
            && s.write_all(b"\r\n").is_ok();
        if !sent {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn chunked_bodies_beyond_the_buffer_wait_instead_of_deadlocking() {
    let dir = tmp();
    let data = dir.path().join("data");
    short_timeouts(
        &data,
        &[
            ("capacity.body_buffer", "8MiB"),
            ("capacity.max_body", "1MiB"),
            ("runtime.lanes", "4"),
        ],
    );
    small_site(&data, dir.path());
    let fazt = Fazt::start(&data, &[]);
    // Twelve bodies that need 12 MiB together, none with a length, each
    // pausing after 704 KiB: had each grown its hold as it went, all twelve
    // would hold part of the 8 MiB and none could finish.
    let addr = fazt.addr;
    let uploads: Vec<_> = (0..12)
        .map(|_| {
            std::thread::spawn(move || {
                let body = vec![b'c'; (1 << 20) - 1024];
                post_chunked(
                    addr,
                    "/_app/site/api",
                    &body,
                    11 * 64 * 1024,
                    Duration::from_millis(500),
                )
            })
        })
        .collect();
    let statuses: Vec<u16> = uploads
        .into_iter()
        .map(|u| u.join().expect("upload"))
        .collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}
