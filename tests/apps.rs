//! Apps, black-box: deploys, routing, static files, `/api` through workers,
//! isolation, and refused deploys.

mod support;

use serde_json::json;
use support::{cli, deploy, request, set_limits, tmp, write_app, Fazt};

const HELLO_MAIN: &str = r#"
const kv = fazt.app.kv;
if (request.path === '/api/echo') {
  ({ method: request.method, path: request.path, query: request.query,
     agent: request.headers['x-agent'], body: request.body, app: fazt.app.name });
} else if (request.path === '/api/count') {
  const n = (kv.get('n') || 0) + 1;
  kv.set('n', n);
  respond(201, { n }, { 'x-count': String(n) });
} else {
  ({ status: 404, body: { error: 'no route' } });
}
"#;

#[test]
fn deploy_then_static_and_api_answer() {
    let dir = tmp();
    let data = dir.path().join("data");
    deploy(
        &data,
        dir.path(),
        "hello",
        &[
            ("index.html", "<h1>hi</h1>"),
            ("docs/index.html", "<p>docs</p>"),
            ("css/site.css", "body{}"),
            ("api/main.js", HELLO_MAIN),
        ],
    );
    let fazt = Fazt::start(&data, &[]);

    // Static: index for the root and for directories, MIME types, ETag/304, HEAD.
    let root = fazt.app_get("hello", "/");
    assert_eq!(root.status, 200);
    assert_eq!(root.text(), "<h1>hi</h1>");
    assert_eq!(
        root.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(fazt.app_get("hello", "/docs/").text(), "<p>docs</p>");
    assert_eq!(fazt.app_get("hello", "/docs").text(), "<p>docs</p>");
    let css = fazt.app_get("hello", "/css/site.css");
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let etag = css.header("etag").expect("etag").to_string();
    let again = request(
        fazt.addr,
        "GET",
        "/_app/hello/css/site.css",
        &[("if-none-match", &etag)],
        b"",
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let head = request(fazt.addr, "HEAD", "/_app/hello/css/site.css", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("6"));
    let missing = fazt.app_get("hello", "/nope.txt");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], "NOT_FOUND");
    assert_eq!(
        request(fazt.addr, "POST", "/_app/hello/index.html", &[], b"x").status,
        405
    );
    // Server code is never served as a static file.
    assert_eq!(fazt.app_get("hello", "/api/main.js").status, 404);

    // /api by Host and by path, with query, headers and a JSON body.
    let echo = request(
        fazt.addr,
        "POST",
        "/api/echo?x=1&y=a%20b",
        &[
            ("host", "hello.localhost"),
            ("x-agent", "test"),
            ("content-type", "application/json"),
        ],
        br#"{"k":[1,2]}"#,
    );
    assert_eq!(echo.status, 200, "{}", echo.text());
    assert_eq!(
        echo.json(),
        json!({"method": "POST", "path": "/api/echo", "query": {"x": "1", "y": "a b"},
               "agent": "test", "body": {"k": [1, 2]}, "app": "hello"})
    );
    assert!(echo.header("x-request-id").is_some());
    let count = request(fazt.addr, "POST", "/_app/hello/api/count", &[], b"");
    assert_eq!(count.status, 201);
    assert_eq!(count.header("x-count"), Some("1"));
    let count = request(fazt.addr, "POST", "/_app/hello/api/count", &[], b"");
    assert_eq!(count.json()["n"], 2);
    let envelope = fazt.app_get("hello", "/api/other");
    assert_eq!(envelope.status, 404);
    assert_eq!(envelope.json()["error"], "no route");

    // Unknown apps and bad names are 404 JSON.
    for path in ["/_app/nope/", "/_app/nope/api", "/_app/Bad_Name/"] {
        let r = request(fazt.addr, "GET", path, &[], b"");
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["code"], "NOT_FOUND");
    }
}

#[test]
fn a_redeploy_while_running_serves_the_new_version_next() {
    let dir = tmp();
    let data = dir.path().join("data");
    deploy(
        &data,
        dir.path(),
        "site",
        &[("api/main.js", "({v: 1})"), ("index.html", "v1")],
    );
    let fazt = Fazt::start(&data, &[]);
    assert_eq!(fazt.app_get("site", "/api").json()["v"], 1);
    assert_eq!(fazt.app_get("site", "/").text(), "v1");
    deploy(
        &data,
        dir.path(),
        "site",
        &[("api/main.js", "({v: 2})"), ("index.html", "v2")],
    );
    assert_eq!(fazt.app_get("site", "/api").json()["v"], 2);
    assert_eq!(fazt.app_get("site", "/").text(), "v2");
    // Removal takes effect at once too.
    let out = cli(&data, &["app", "remove", "site"]);
    assert!(out.status.success());
    assert_eq!(fazt.app_get("site", "/api").status, 404);
    let out = cli(&data, &["app", "remove", "site"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn apps_are_isolated_from_each_other_and_between_requests() {
    let dir = tmp();
    let data = dir.path().join("data");
    deploy(
        &data,
        dir.path(),
        "a",
        &[("api/main.js", "const seen = typeof leaked; let planted = 'took'; try { globalThis.leaked = 'a'; } catch (e) { planted = e.name; } fazt.app.kv.set('secret', 'a-data'); ({seen, planted, mine: fazt.app.kv.get('secret')})")],
    );
    deploy(
        &data,
        dir.path(),
        "b",
        &[("api/main.js", "({seen: typeof leaked, secret: fazt.app.kv.get('secret') === undefined ? 'hidden' : 'visible', all: fazt.app.kv.list('').length})")],
    );
    let fazt = Fazt::start(&data, &[]);
    for _ in 0..3 {
        let a = fazt.app_get("a", "/api").json();
        // The realm's global is sealed: the plant is refused, not hidden.
        assert_eq!(
            a,
            json!({"seen": "undefined", "planted": "TypeError", "mine": "a-data"})
        );
    }
    let b = fazt.app_get("b", "/api").json();
    assert_eq!(
        b,
        json!({"seen": "undefined", "secret": "hidden", "all": 0})
    );
    // `fazt app list` shows what each app keeps in kv.
    let out = cli(&data, &["app", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let usage: Vec<(String, i64, i64)> = v["data"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or_default().to_string(),
                a["kv_keys"].as_i64().unwrap_or(-1),
                a["kv_bytes"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        usage,
        [("a".to_string(), 1, 6 + 8), ("b".to_string(), 0, 0)],
        "key 'secret' and value '\"a-data\"'"
    );
    let text = String::from_utf8_lossy(&cli(&data, &["app", "list"]).stdout).into_owned();
    assert!(text.contains("KV KEYS") && text.contains("14 B"), "{text}");
}

#[test]
fn admin_api_deploys_lists_and_removes_zips() {
    let dir = tmp();
    let data = dir.path().join("data");
    let fazt = Fazt::start(&data, &[]);
    let auth = format!("Bearer {}", fazt.token());
    let h = [("authorization", auth.as_str())];
    let z = support::zip_of(&[("index.html", b"zipped"), ("api/main.js", b"({zip: true})")]);
    let r = request(fazt.addr, "POST", "/api/apps/zipped", &h, &z);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["version"], 1);
    assert_eq!(fazt.app_get("zipped", "/").text(), "zipped");
    assert_eq!(fazt.app_get("zipped", "/api").json()["zip"], true);
    let list = request(fazt.addr, "GET", "/api/apps", &h, b"").json();
    assert_eq!(list["data"][0]["name"], "zipped");
    assert_eq!(list["data"][0]["has_api"], true);
    let workers = request(fazt.addr, "GET", "/api/workers", &h, b"").json();
    assert!(!workers["data"].as_array().expect("rows").is_empty());

    // Refused uploads write nothing: zip slip, absolute paths, bad names, junk.
    let refused = [
        (
            "/api/apps/evil",
            support::zip_of(&[("../../etc/cron.d/x", b"x")]),
            400,
        ),
        (
            "/api/apps/evil",
            support::zip_of(&[("/etc/passwd", b"x")]),
            400,
        ),
        ("/api/apps/evil", b"not a zip".to_vec(), 400),
        (
            "/api/apps/Bad_Name",
            support::zip_of(&[("index.html", b"x")]),
            400,
        ),
        (
            "/api/apps/api",
            support::zip_of(&[("index.html", b"x")]),
            400,
        ),
    ];
    for (path, body, status) in refused {
        let r = request(fazt.addr, "POST", path, &h, &body);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let list = request(fazt.addr, "GET", "/api/apps", &h, b"").json();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");

    let r = request(fazt.addr, "DELETE", "/api/apps/zipped", &h, b"");
    assert_eq!(r.status, 200);
    assert_eq!(fazt.app_get("zipped", "/").status, 404);
    let r = request(fazt.addr, "DELETE", "/api/apps/zipped", &h, b"");
    assert_eq!(r.status, 404);
    assert_eq!(
        request(fazt.addr, "POST", "/api/apps/x", &[], &z).status,
        401
    );
}

#[test]
fn bad_deploys_are_refused_with_clear_errors_and_write_nothing() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("storage.max_file_size", "1MiB")]);
    let good = write_app(dir.path(), "good", &[("index.html", "ok")]);
    let big = "x".repeat(1024 * 1024 + 1);
    let too_big = write_app(
        dir.path(),
        "big",
        &[("index.html", "ok"), ("huge.bin", &big)],
    );
    let linked = write_app(dir.path(), "linked", &[("index.html", "ok")]);
    std::os::unix::fs::symlink("/etc/passwd", linked.join("passwd")).expect("symlink");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");

    let s = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![s(&good), "--name".into(), "Bad_Name".into()],
            "invalid app name",
        ),
        (vec![s(&good), "--name".into(), "admin".into()], "reserved"),
        (vec![s(&good), "--name=-x".into()], "invalid app name"),
        (vec![s(&too_big)], "max_file_size"),
        (vec![s(&linked)], "symbolic link"),
        (vec![s(&empty)], "nothing to deploy"),
        (vec![s(&dir.path().join("missing"))], "not a folder"),
    ];
    for (args, want) in cases {
        let mut full = vec!["app".to_string(), "deploy".to_string()];
        full.extend(args.iter().cloned());
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let out = cli(&data, &refs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    let list = cli(&data, &["app", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(v["data"], json!([]), "nothing was written");
    let out = cli(&data, &["app", "deploy", &s(&good)]);
    assert!(out.status.success());
}

#[test]
fn app_logs_cannot_forge_lines_and_are_bounded_per_app() {
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(&data, &[("runtime.log_rate", "4KiB")]);
    deploy(
        &data,
        dir.path(),
        "noisy",
        &[(
            "api/main.js",
            "console.log('first\\nINFO forged supervisor line\\r\\n\\u001b[31m'); \
             for (let i = 0; i < 150; i++) console.log('x'.repeat(1000)); 1",
        )],
    );
    deploy(
        &data,
        dir.path(),
        "calm",
        &[("api/main.js", "console.log('calm says hi'); 1")],
    );
    let fazt = Fazt::start(&data, &[]);
    for _ in 0..5 {
        assert_eq!(fazt.app_get("noisy", "/api").status, 200);
    }
    assert_eq!(fazt.app_get("calm", "/api").status, 200);
    // The drop count is reported within a second or so; the calm app's
    // line is on its way through the pipe the test reads.
    support::eventually(std::time::Duration::from_secs(5), || {
        let seen = fazt.stderr();
        seen.contains("log lines dropped") && seen.contains("calm says hi")
    });
    let stderr = fazt.stderr();
    assert!(stderr.contains("log lines dropped"), "{stderr}");
    assert!(
        stderr
            .lines()
            .all(|l| !l.starts_with("INFO forged") && !l.contains('\u{1b}')),
        "an app wrote a raw line: {stderr}"
    );
    assert!(
        stderr.contains("first\\nINFO forged supervisor line\\r\\n\\u{001b}[31m"),
        "{stderr}"
    );
    let noisy_bytes: usize = stderr
        .lines()
        .filter(|l| l.contains("app=noisy") && l.contains("js: x"))
        .map(str::len)
        .sum();
    assert!(
        noisy_bytes < 24 * 1024,
        "{noisy_bytes} bytes of log from one app at 4 KiB/s"
    );
    assert!(
        stderr.contains("calm says hi"),
        "another app's line was dropped"
    );
}

/// Apps served as /_app/<app>/ share one origin: no app may widen a
/// service worker's scope over the others.
#[test]
fn an_app_cannot_widen_a_service_workers_scope() {
    let dir = tmp();
    let data = dir.path().join("data");
    support::deploy(
        &data,
        dir.path(),
        "sw",
        &[(
            "api/main.js",
            r#"respond(200, "self.onfetch = () => {}", {"content-type": "text/javascript", "service-worker-allowed": "/", "x-kept": "1"})"#,
        )],
    );
    let fazt = Fazt::start(&data, &[]);
    let r = request(fazt.addr, "GET", "/_app/sw/api", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-kept"), Some("1"), "other headers pass");
    assert_eq!(r.header("service-worker-allowed"), None);
}
