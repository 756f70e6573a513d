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

/// Sends `raw` as the request head exactly as written (no normalisation by
/// a client library) and returns status and body.
fn raw_get(addr: SocketAddr, target: &str, host: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
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
