//! A fazt for egress tests: apps that call `fazt.net.fetch` and report
//! what they got, upstream names pinned to loopback ports.

use serde_json::{json, Value};

use super::{deploy, net_allow, post_json, set_limits, tmp, Fazt, Reply};

/// Calls `fazt.net.fetch(body.url, body.opts)` and answers what it got:
/// the response's parts, or the error's code and message.
pub const FETCHER: &str = r#"
let out;
try {
  const r = fazt.net.fetch(request.body.url, request.body.opts);
  let parsed = null;
  try { parsed = r.json(); } catch (e) { parsed = null; }
  out = { status: r.status, ok: r.ok, headers: r.headers, body: r.body, text: r.text(), json: parsed };
} catch (e) {
  out = { error: { code: e.code || null, message: e.message } };
}
out
"#;

/// Fetches `times` times and lets an error escape.
pub const UNCAUGHT: &str = r#"
for (let i = 0; i < request.body.times; i++) fazt.net.fetch(request.body.url);
({ done: true })
"#;

/// Makes `times` calls (3 unless given), catching each error, then (if
/// asked) one more that may escape; answers the codes (200 for a success).
pub const SPENDER: &str = r#"
const codes = [];
for (let i = 0; i < (request.body.times || 3); i++) {
  try { fazt.net.fetch(request.body.url); codes.push(200); } catch (e) { codes.push(e.code); }
}
if (request.body.escape) fazt.net.fetch(request.body.url);
({ codes })
"#;

/// Sends a body of `size` bytes made in JS.
pub const BIG_BODY: &str = r#"
let out;
try {
  const r = fazt.net.fetch(request.body.url, { method: "POST", body: "x".repeat(request.body.size) });
  out = { upstream_status: r.status };
} catch (e) {
  out = { error: { code: e.code || null, message: e.message } };
}
out
"#;

/// fazt with apps that fetch, upstream names pinned to loopback.
pub struct Net {
    _dir: tempfile::TempDir,
    /// The data dir.
    pub data: std::path::PathBuf,
    /// The running fazt.
    pub fazt: Fazt,
}

impl Net {
    /// fazt with the fetcher apps, `up.example.com:<port>` pinned to each
    /// upstream port given, and `allow` entries added before the start.
    pub fn start(ports: &[u16], allow: &[&[&str]], limits: &[(&str, &str)]) -> Net {
        Net::start_with_env(ports, allow, limits, &[])
    }

    /// As [`Net::start`], with more environment for fazt.
    pub fn start_with_env(
        ports: &[u16],
        allow: &[&[&str]],
        limits: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Net {
        let dir = tmp();
        let data = dir.path().join("data");
        deploy(&data, dir.path(), "a", &[("api/main.js", FETCHER)]);
        deploy(&data, dir.path(), "b", &[("api/main.js", FETCHER)]);
        deploy(&data, dir.path(), "loud", &[("api/main.js", UNCAUGHT)]);
        deploy(&data, dir.path(), "spender", &[("api/main.js", SPENDER)]);
        deploy(&data, dir.path(), "spender2", &[("api/main.js", SPENDER)]);
        deploy(&data, dir.path(), "big", &[("api/main.js", BIG_BODY)]);
        if !limits.is_empty() {
            set_limits(&data, limits);
        }
        net_allow(&data, allow);
        let pins: Vec<String> = ports
            .iter()
            .flat_map(|p| {
                [
                    format!("up.example.com:{p}=127.0.0.1:{p}"),
                    format!("other.example.org:{p}=127.0.0.1:{p}"),
                ]
            })
            .collect();
        let pins = pins.join(",");
        let mut env = env.to_vec();
        env.push(("FAZT_NET_TEST_RESOLVE", &pins));
        let fazt = Fazt::start(&data, &env);
        Net {
            _dir: dir,
            data,
            fazt,
        }
    }

    /// POSTs `body` to `app`'s `/api`.
    pub fn post(&self, app: &str, body: &Value) -> Reply {
        post_json(self.fazt.addr, &format!("/_app/{app}/api"), body)
    }

    /// App `app` fetches `url` with `opts`; its answer.
    pub fn fetch_as(&self, app: &str, url: &str, opts: Value) -> Value {
        let body = json!({ "url": url, "opts": opts });
        let r = self.post(app, &body);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// App `app` (`spender` or `spender2`) makes `times` calls to `url`;
    /// the codes it got.
    pub fn spend(&self, app: &str, url: &str, times: u32) -> Value {
        let r = self.post(app, &json!({"url": url, "times": times}));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["codes"].clone()
    }

    /// App `a` fetches `url` with `opts`; its answer.
    pub fn fetch(&self, url: &str, opts: Value) -> Value {
        self.fetch_as("a", url, opts)
    }
}

/// The error code of a fetcher answer.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("(no error)")
}
