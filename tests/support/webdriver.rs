//! A small W3C WebDriver client over plain HTTP/1.1 to Debian's
//! chromedriver, driving headless Chromium (installed by ops/test.sh).
//! Browser tests run it inside a private network namespace, so the
//! browser can reach nothing but loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// One exchange with chromedriver, which keeps connections open: the
/// answer is read by its Content-Length. Returns status and JSON.
fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).expect("connect to chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut length = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut buf = vec![0u8; length];
    r.read_exact(&mut buf).expect("body");
    (status, serde_json::from_slice(&buf).unwrap_or(Value::Null))
}

/// A running chromedriver and one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile in
    /// `profile`, `width` pixels wide.
    pub fn start(profile: &Path, width: u32) -> Browser {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("addr").port()
        };
        // Its own process group: the browser it starts is stopped with it.
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver (Debian's chromium-driver, installed by ops/test.sh)");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut b = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let up = super::eventually(Duration::from_secs(15), || {
            std::net::TcpStream::connect(addr).is_ok()
        });
        assert!(up, "chromedriver did not listen");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--window-size={width},900"),
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let v = b.call("POST", "/session", caps);
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = if method == "GET" {
            String::new()
        } else {
            body.to_string()
        };
        let (status, v) = request(self.addr, method, path, body.as_bytes());
        if status != 200 {
            panic!("webdriver {method} {path}: {status} {v}");
        }
        v["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Goes to `url`.
    pub fn go(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }));
    }

    /// The first element matching `css`, waited for up to 10 s.
    pub fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, v) = request(
                self.addr,
                "POST",
                &format!("/session/{}/element", self.session),
                json!({"using": "css selector", "value": css})
                    .to_string()
                    .as_bytes(),
            );
            if status == 200 {
                let id = v["value"][ELEMENT_KEY].as_str();
                return Element(
                    id.unwrap_or_else(|| panic!("no element id in {v}"))
                        .to_string(),
                );
            }
            assert!(Instant::now() < deadline, "no element {css} after 10 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types `text` into `el`.
    pub fn type_into(&self, el: &Element, text: &str) {
        self.session_call(
            "POST",
            &format!("/element/{}/value", el.0),
            json!({ "text": text }),
        );
    }

    /// Clears `el`.
    pub fn clear(&self, el: &Element) {
        self.session_call("POST", &format!("/element/{}/clear", el.0), json!({}));
    }

    /// Clicks `el`.
    pub fn click(&self, el: &Element) {
        self.session_call("POST", &format!("/element/{}/click", el.0), json!({}));
    }

    /// `el`'s visible text.
    pub fn text(&self, el: &Element) -> String {
        self.session_call("GET", &format!("/element/{}/text", el.0), Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body) in the page; its return value.
    pub fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Waits up to 10 s for `css`'s text to satisfy `ok`; the last text.
    pub fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self
                .eval(&format!(
                    "const e = document.querySelector({}); return e ? e.textContent : null;",
                    serde_json::to_string(css).expect("css")
                ))
                .as_str()
                .unwrap_or_default()
                .to_string();
            if ok(&text) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Accepts the `confirm()` on screen.
    pub fn accept_dialog(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, _) = request(
                self.addr,
                "POST",
                &format!("/session/{}/alert/accept", self.session),
                b"{}",
            );
            if status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "no dialog to accept");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Resizes the window.
    pub fn resize(&self, width: u32, height: u32) {
        self.session_call(
            "POST",
            "/window/rect",
            json!({ "width": width, "height": height }),
        );
    }

    /// Writes a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let v = self.session_call("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64"))
            .expect("png");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Every resource the page loaded or fetched, with the request
    /// headers the page set (from the Resource Timing API: names only).
    pub fn resources(&self) -> Vec<String> {
        self.eval("return performance.getEntriesByType('resource').map(e => e.name);")
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(|| {
                request(
                    self.addr,
                    "DELETE",
                    &format!("/session/{}", self.session),
                    b"",
                )
            });
        }
        // The driver's whole group, the browser with it.
        let group = Pid::from_raw(-(self.driver.id() as i32));
        let _ = kill(group, Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}
