//! The admin web UI (issue 20): its files and headers over HTTP, then the
//! console driven in headless Chromium (Debian's, installed by
//! ops/test.sh) inside a private network namespace, so the browser can
//! reach nothing but fazt on loopback. Screenshots of each page go to
//! `target/ui-screenshots/` for a person to look at.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use support::netns::{inside_private_network, lo_up};
use support::webdriver::Browser;
use support::{eventually, request, tmp, Fazt};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[test]
fn ui_files_are_served_with_strict_headers_and_no_inline_code() {
    let dir = tmp();
    let fazt = Fazt::start(&dir.path().join("data"), &[]);
    let get = |host: &str, path: &str| request(fazt.addr, "GET", path, &[("host", host)], b"");
    for (path, mime) in [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/nothing.txt", "application/json"),
    ] {
        let r = get("admin.localhost", path);
        let want = if path == "/nothing.txt" { 404 } else { 200 };
        assert_eq!(r.status, want, "{path}");
        assert_eq!(r.header("content-type"), Some(mime), "{path}");
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{path}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            r.header("cross-origin-opener-policy"),
            Some("same-origin"),
            "{path}"
        );
    }
    // Never on an origin apps share: not under the loopback address where
    // apps are served as /_app/<app>/.
    for path in ["/_admin/", "/_admin/app.js", "/app.js"] {
        assert_eq!(get("127.0.0.1", path).status, 404, "{path}");
    }
    // The page holds no inline script, handler or style: the policy would
    // block them, and an injection could not use them.
    let html = get("admin.localhost", "/").text();
    for tag in html.split("<script").skip(1) {
        let (open, rest) = tag.split_once('>').unwrap_or((tag, ""));
        assert!(open.contains("src="), "an inline script: <script{open}>");
        let body = rest.split("</script>").next().unwrap_or_default();
        assert!(body.trim().is_empty(), "script content in the page: {body}");
    }
    for bad in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " style=",
        "javascript:",
    ] {
        assert!(!html.contains(bad), "{bad} in the page");
    }
    let js = get("admin.localhost", "/app.js").text();
    for bad in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "eval(",
        "new Function",
        "document.write",
        "localStorage",
    ] {
        assert!(!js.contains(bad), "{bad} in app.js");
    }
}

#[test]
fn the_console_in_a_real_browser() {
    if !inside_private_network("the_console_in_a_real_browser") {
        return;
    }
    lo_up();
    let dir = tmp();
    let data = dir.path().join("data");
    support::set_limits(&data, &[("runtime.workers", "2")]);
    support::deploy(
        &data,
        dir.path(),
        "hello",
        &[("api/main.js", "({hello: 'world'})")],
    );
    let fazt = Fazt::start(&data, &[]);
    let token = fazt.token();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("..")
        .join("ui-screenshots");
    let b = Browser::start(&dir.path().join("profile"), 1280);
    // admin.localhost: Chromium sends every *.localhost to loopback itself.
    let port = fazt.addr.port();
    let base = format!("http://admin.localhost:{port}/");

    // Log in: a wrong token is refused, the right one opens the overview.
    b.go(&base);
    b.screenshot(&shots.join("login.png"));
    b.type_into(&b.find("#token"), "not-the-token");
    b.click(&b.find("#login-button"));
    let said = b.wait_text("#login-error", |t| t.contains("unauthorized"));
    assert!(said.contains("unauthorized"), "{said}");
    b.type_into(&b.find("#token"), &token);
    let clicked = std::time::Instant::now();
    b.click(&b.find("#login-button"));
    let health = b.wait_text("#health", |t| t == "ok");
    assert_eq!(health, "ok");
    eprintln!(
        "overview rendered {:?} after the login click (measured, not asserted)",
        clicked.elapsed()
    );
    // An app's page is another origin: nothing of the console's is there.
    b.go(&format!("http://hello.localhost:{port}/api"));
    let left = b.eval("return [sessionStorage.length, localStorage.length, document.cookie];");
    assert_eq!(
        left,
        json!([0, 0, ""]),
        "the token is reachable from an app's page"
    );
    // Back at the console, the session is still there (this tab's storage).
    b.go(&base);
    assert_eq!(b.wait_text("#health", |t| t == "ok"), "ok");
    // Some load for the chart: bounded, 4 s at most.
    let addr = fazt.addr;
    let load = std::thread::spawn(move || {
        let until = std::time::Instant::now() + Duration::from_secs(4);
        let mut n = 0;
        while std::time::Instant::now() < until && n < 4000 {
            request(addr, "GET", "/_app/hello/api", &[], b"");
            n += 1;
        }
    });
    assert!(
        eventually(Duration::from_secs(10), || {
            b
            .eval("return [...document.querySelectorAll('#children tr')].filter(r => r.cells[0].textContent === 'worker').length;")
            == json!(2)
        }),
        "both workers on the overview"
    );
    load.join().expect("load");
    std::thread::sleep(Duration::from_millis(2500)); // one more poll after the load
    b.screenshot(&shots.join("overview.png"));
    // Phone width: nothing wider than the screen but the tables' own
    // scrolling boxes.
    b.resize(390, 844);
    let overflow = b.eval("return document.documentElement.scrollWidth - window.innerWidth;");
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "the page scrolls sideways: {overflow}"
    );
    b.screenshot(&shots.join("overview-phone.png"));
    b.resize(1280, 900);

    // Apps: deploy a zip and see it.
    let zip = dir.path().join("site.zip");
    std::fs::write(
        &zip,
        support::zip_of(&[("index.html", b"hello from a zip")]),
    )
    .expect("zip");
    b.go(&format!("{base}#apps"));
    b.type_into(&b.find("#deploy-name"), "zipped");
    b.type_into(&b.find("#deploy-file"), zip.to_str().expect("path"));
    b.click(&b.find("#deploy button[type=submit]"));
    let listed = b.wait_text("#page table", |t| t.contains("zipped"));
    assert!(listed.contains("zipped"), "{listed}");
    assert_eq!(
        request(fazt.addr, "GET", "/_app/zipped/", &[], b"").text(),
        "hello from a zip"
    );
    // And a folder, zipped in the browser.
    let folder = dir.path().join("site-folder");
    std::fs::create_dir_all(folder.join("api")).expect("folder");
    std::fs::write(folder.join("index.html"), "hello from a folder").expect("file");
    std::fs::write(folder.join("api/main.js"), "({from: 'a folder'})").expect("file");
    b.go(&format!("{base}#overview"));
    b.go(&format!("{base}#apps"));
    b.type_into(&b.find("#deploy-name"), "foldered");
    b.type_into(&b.find("#deploy-folder"), folder.to_str().expect("path"));
    b.click(&b.find("#deploy button[type=submit]"));
    let listed = b.wait_text("#page table", |t| t.contains("foldered"));
    assert!(listed.contains("foldered"), "{listed}");
    assert_eq!(
        request(fazt.addr, "GET", "/_app/foldered/", &[], b"").text(),
        "hello from a folder"
    );
    assert_eq!(
        request(fazt.addr, "GET", "/_app/foldered/api", &[], b"").json()["from"],
        "a folder"
    );
    b.screenshot(&shots.join("apps.png"));

    // Limits: a generated form stores net.max_calls; an out-of-range value
    // is flagged as typed and refused with the server's message; reset.
    b.go(&format!("{base}#limits"));
    let field = b.find("#limit-net-max_calls");
    b.clear(&field);
    b.type_into(&field, "7");
    b.click(&b.find("#limit-net-max_calls-save"));
    b.wait_text("#limit-net-max_calls-error", |t| t.contains("saved"));
    let next = fazt.admin_get("/api/system/limits/next").json();
    let row = next["data"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["path"] == "net.max_calls").cloned())
        .expect("row");
    assert_eq!(
        (&row["value"], &row["source"]),
        (&json!(7), &json!("override"))
    );
    b.clear(&field);
    b.type_into(&field, "1000");
    let hint = b.wait_text("#limit-net-max_calls-hint", |t| t.contains("outside"));
    assert!(hint.contains("outside"), "{hint}");
    b.click(&b.find("#limit-net-max_calls-save"));
    let refused = b.wait_text("#limit-net-max_calls-error", |t| {
        t.contains("must be between")
    });
    assert!(
        refused.contains("net.max_calls must be between"),
        "the server's message: {refused}"
    );
    b.screenshot(&shots.join("limits.png"));
    b.click(&b.find("#limit-net-max_calls-reset"));
    b.wait_text("#limit-net-max_calls-error", |t| t.contains("reset"));
    let next = fazt.admin_get("/api/system/limits/next").json();
    assert!(next["data"].as_array().is_some_and(|r| r
        .iter()
        .any(|x| x["path"] == "net.max_calls" && x["source"] == "default")));
    let disabled = b.eval("return document.querySelector('#limit-hardware-cpu_cores').disabled;");
    assert_eq!(disabled, json!(true), "read-only leaves are disabled");

    // Network: add and remove an allowlist entry.
    b.go(&format!("{base}#network"));
    b.type_into(&b.find("#allow-domain"), "api.example.com");
    b.click(&b.find("#allow-form button[type=submit]"));
    let listed = b.wait_text("#page section table", |t| t.contains("api.example.com"));
    assert!(listed.contains("api.example.com"), "{listed}");
    b.screenshot(&shots.join("network.png"));
    b.eval("[...document.querySelectorAll('#page section table button')].find(x => x.closest('tr').textContent.includes('api.example.com')).click(); return null;");
    b.accept_dialog();
    assert!(eventually(Duration::from_secs(5), || fazt
        .admin_get("/api/net/allowlist")
        .json()["data"]
        == json!([])));

    // Secrets: set one; its value appears nowhere in the page.
    const VALUE: &str = "sk_live_browser_0123456789_SECRET";
    b.go(&format!("{base}#secrets"));
    b.type_into(&b.find("#secret-name"), "STRIPE");
    b.type_into(&b.find("#secret-value"), VALUE);
    b.type_into(&b.find("#secret-domain"), "api.stripe.com");
    b.click(&b.find("#secret-form button[type=submit]"));
    let listed = b.wait_text("#page table", |t| t.contains("STRIPE"));
    assert!(listed.contains("sk_***RET"), "masked: {listed}");
    let page = b.eval("return document.documentElement.outerHTML + [...document.querySelectorAll('input')].map(i => i.value).join(' ');");
    assert!(
        !page.to_string().contains("0123456789_SECRET"),
        "the value is in the page"
    );
    let urls = b.resources();
    assert!(
        !urls
            .iter()
            .any(|u| u.contains("0123456789") || u.contains(&token)),
        "a secret or the token in a URL: {urls:?}"
    );
    b.screenshot(&shots.join("secrets.png"));

    // Log out: the token is gone and the API is closed to the page.
    b.click(&b.find("#logout"));
    b.wait_text("#login-error", |t| t.contains("Logged out"));
    let stored = b.eval("return sessionStorage.length + localStorage.length;");
    assert_eq!(stored, json!(0));
    assert!(
        !fazt.stderr().contains(&token),
        "the token reached fazt's log"
    );
}
