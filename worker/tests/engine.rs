//! The JS engine against a real store: what SPEC §5 promises app code.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fazt_ipc::msg::{AppRef, HttpRequest, HttpResponse, Job, JobId, LogLevel, LogRecord, Outcome};
use fazt_shared::store::apps::{self, NewFile, SizeLimits};
use fazt_shared::store::kv::KvQuota;
use fazt_shared::{AppName, DataDir, ErrorCode, FilePath, Store};
use fazt_worker::code::CodeCache;
use fazt_worker::js::{Engine, EngineLimits, Services};
use serde_json::{json, Value};

const KV: KvQuota = KvQuota {
    max_bytes: 32 << 20,
    max_keys: 50,
    max_value: 1 << 20,
};

const LIMITS: SizeLimits = SizeLimits {
    max_file_size: 1 << 20,
    max_site_size: 1 << 22,
    max_vfs: 1 << 24,
};

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    services: Services,
    logs: Arc<Mutex<Vec<LogRecord>>>,
    engine: Engine,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_limits(EngineLimits {
            max_memory: 16 << 20,
            exec_timeout: Duration::from_millis(300),
            max_jobs: fazt_worker::js::MAX_JOBS,
            realms: fazt_worker::js::REALMS_PER_LANE,
        })
    }

    fn with_limits(limits: EngineLimits) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&DataDir::new(dir.path()), 4).expect("store");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let services = Services {
            store: store.clone(),
            kv: KV,
            cache: Arc::new(CodeCache::default()),
            log: Arc::new(move |r| sink.lock().expect("lock").push(r)),
            net: None,
        };
        Harness {
            _dir: dir,
            store,
            services,
            logs,
            engine: Engine::new(limits),
        }
    }

    fn deploy(&self, name: &str, files: &[(&str, &str)]) -> AppRef {
        let files: Vec<NewFile> = files
            .iter()
            .map(|(p, c)| NewFile {
                path: FilePath::parse(p).expect("path"),
                content: c.as_bytes().to_vec(),
            })
            .collect();
        let name = AppName::parse(name).expect("name");
        let d = apps::deploy(
            &mut self.store.conn().expect("conn"),
            &name,
            &files,
            &LIMITS,
        )
        .expect("deploy");
        AppRef {
            id: d.id,
            name: name.to_string(),
            version: d.version,
        }
    }

    fn run_req(&mut self, app: &AppRef, request: HttpRequest, deadline: Duration) -> Outcome {
        let job = Job {
            id: JobId(1),
            request_id: "req-1".into(),
            app: app.clone(),
            request,
            timeout_ms: deadline.as_millis() as u64,
            // No egress here: the ticket is carried, never checked.
            ticket: fazt_shared::ticket::TicketKey::generate().issue(app.id, "req-1", u64::MAX),
        };
        self.engine
            .run(&job, &self.services, Instant::now() + deadline)
    }

    fn run(&mut self, app: &AppRef) -> Outcome {
        self.run_req(app, get("/api"), Duration::from_secs(10))
    }

    /// Deploys `main` as `api/main.js` of app `t` and runs it once.
    fn eval(&mut self, main: &str) -> Outcome {
        let app = self.deploy("t", &[("api/main.js", main)]);
        self.run(&app)
    }
}

fn get(path: &str) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        path: path.into(),
        query: String::new(),
        headers: vec![],
        body: vec![],
    }
}

fn ok(outcome: Outcome) -> HttpResponse {
    match outcome {
        Outcome::Response(r) => r,
        Outcome::Error { code, message } => panic!("expected a response, got {code}: {message}"),
    }
}

fn err(outcome: Outcome) -> (ErrorCode, String) {
    match outcome {
        Outcome::Error { code, message } => (code, message),
        Outcome::Response(r) => panic!(
            "expected an error, got {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ),
    }
}

fn body_json(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body).expect("json body")
}

fn header<'a>(r: &'a HttpResponse, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn responses_from_completion_values_envelopes_and_respond() {
    let mut h = Harness::new();
    // (script, status, content-type, body)
    let cases: &[(&str, u16, &str, &str)] = &[
        (
            "({hello: 'world'})",
            200,
            "application/json",
            r#"{"hello":"world"}"#,
        ),
        ("[1, 2]", 200, "application/json", "[1,2]"),
        ("'text'", 200, "application/json", r#""text""#),
        ("42", 200, "application/json", "42"),
        ("var x = 1;", 200, "application/json", "null"),
        (
            "({status: 201, body: {id: 7}})",
            201,
            "application/json",
            r#"{"id":7}"#,
        ),
        (
            "({status: 404, body: 'nope', headers: {'X-A': 'b'}})",
            404,
            "text/plain; charset=utf-8",
            "nope",
        ),
        // Not an envelope: an extra key makes it plain JSON.
        (
            "({status: 201, body: 1, extra: true})",
            200,
            "application/json",
            r#"{"status":201,"body":1,"extra":true}"#,
        ),
        (
            "respond(202, {a: 1}); 'ignored'",
            202,
            "application/json",
            r#"{"a":1}"#,
        ),
        ("respond('hi')", 200, "text/plain; charset=utf-8", "hi"),
        (
            "respond(200, '<b>x</b>', {'content-type': 'text/html'})",
            200,
            "text/html",
            "<b>x</b>",
        ),
        ("respond(204)", 204, "", ""),
        (
            "respond(200, new Uint8Array([104, 105]))",
            200,
            "application/octet-stream",
            "hi",
        ),
    ];
    for (script, status, ctype, body) in cases {
        let r = ok(h.eval(script));
        assert_eq!(r.status, *status, "{script}");
        assert_eq!(header(&r, "content-type").unwrap_or(""), *ctype, "{script}");
        assert_eq!(String::from_utf8_lossy(&r.body), *body, "{script}");
    }
    let r = ok(h.eval("respond(200, 'x', {'X-Custom': 5})"));
    assert_eq!(header(&r, "x-custom"), Some("5"));
}

#[test]
fn bad_responses_are_js_errors() {
    let mut h = Harness::new();
    for script in [
        "respond(99, 'x')",
        "respond(100)",
        "respond(103, 'early hints')",
        "({status: 101, body: 'upgrade'})",
        "respond(200, 'x', {'x-a': 'a\\u0001b'})",
        "respond(200, 'x', {'x-a': 'del\\u007f'})",
        "respond(200.5)",
        "respond(200, 'x', {'bad name': 'v'})",
        "respond(200, 'x', {'x-a': 'a\\r\\nset-cookie: evil'})",
        "respond(200, 'x', 'headers')",
        "respond(1); respond(2)",
    ] {
        let (code, message) = err(h.eval(script));
        assert_eq!(code, ErrorCode::JsError, "{script}: {message}");
    }
}

#[test]
fn request_global_has_the_spec_shape() {
    let mut h = Harness::new();
    let app = h.deploy(
        "t",
        &[("api/main.js", "({method: request.method, path: request.path, query: request.query, headers: request.headers, body: request.body})")],
    );
    let req = HttpRequest {
        method: "POST".into(),
        path: "/api/users".into(),
        query: "a=1&b=x%20y&a=2&empty=".into(),
        headers: vec![
            (
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("x-multi".into(), "1".into()),
            ("x-multi".into(), "2".into()),
        ],
        body: br#"{"name":"ada","n":[1,2]}"#.to_vec(),
    };
    let r = ok(h.run_req(&app, req, Duration::from_secs(5)));
    let v = body_json(&r);
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/api/users");
    assert_eq!(
        v["query"],
        json!({"a": ["1", "2"], "b": "x y", "empty": ""})
    );
    assert_eq!(v["headers"]["x-multi"], "1, 2");
    assert_eq!(v["body"], json!({"name": "ada", "n": [1, 2]}));

    let text = |ctype: &str, body: &[u8]| HttpRequest {
        method: "POST".into(),
        path: "/api".into(),
        query: String::new(),
        headers: vec![("content-type".into(), ctype.into())],
        body: body.to_vec(),
    };
    let r = ok(h.run_req(&app, text("text/plain", b"hello"), Duration::from_secs(5)));
    assert_eq!(body_json(&r)["body"], "hello");
    let r = ok(h.run_req(
        &app,
        text("application/json", b"{bad"),
        Duration::from_secs(5),
    ));
    assert_eq!(
        body_json(&r)["body"],
        "{bad",
        "invalid JSON arrives as text"
    );
    let r = ok(h.run_req(&app, get("/api"), Duration::from_secs(5)));
    assert_eq!(body_json(&r)["body"], Value::Null);
}

#[test]
fn uncaught_errors_keep_only_platform_codes() {
    let mut h = Harness::new();
    let cases: &[(&str, ErrorCode, &str)] = &[
        ("throw new Error('boom')", ErrorCode::JsError, "boom"),
        ("null.x", ErrorCode::JsError, "TypeError: "),
        ("throw 'plain'", ErrorCode::JsError, "plain"),
        ("let = ;", ErrorCode::JsError, "SyntaxError"),
        (
            "throw Object.assign(new Error('slow'), {code: 'NET_RATE'})",
            ErrorCode::NetRate,
            "slow",
        ),
        // JS cannot claim a code the platform owns for its own limits.
        (
            "throw Object.assign(new Error('fake'), {code: 'JS_MEMORY'})",
            ErrorCode::JsError,
            "fake",
        ),
        // Nor pass for fazt's own failure, which is logged loudly.
        (
            "throw Object.assign(new Error('mine'), {code: 'INTERNAL'})",
            ErrorCode::JsError,
            "mine",
        ),
        // A hand-made "out of memory" is not a memory error.
        (
            "throw new InternalError('out of memory')",
            ErrorCode::JsError,
            "out of memory",
        ),
        ("function f() { f() } f()", ErrorCode::JsError, "RangeError"),
    ];
    for (script, code, needle) in cases {
        let (got, message) = err(h.eval(script));
        assert_eq!(got, *code, "{script}: {message}");
        assert!(message.contains(needle), "{script}: {message}");
        assert!(
            !message.contains("/work/") && !message.contains(" at "),
            "{message}"
        );
    }
}

#[test]
fn an_infinite_loop_times_out_and_the_lane_lives_on() {
    let mut h = Harness::new();
    let started = Instant::now();
    let (code, _) = err(h.eval("try { while (true) {} } finally { 'swallowed?' }"));
    assert_eq!(code, ErrorCode::JsTimeout);
    assert!(started.elapsed() < Duration::from_secs(5));
    let r = ok(h.eval("({after: 'timeout'})"));
    assert_eq!(body_json(&r)["after"], "timeout");
    assert_eq!(
        h.engine.realms_built(),
        2,
        "an interrupted realm is not reused"
    );
}

#[test]
fn the_wall_deadline_bounds_the_request() {
    let mut h = Harness::new();
    let app = h.deploy("t", &[("api/main.js", "while (true) {}")]);
    let (code, _) = err(h.run_req(&app, get("/api"), Duration::from_millis(50)));
    assert_eq!(code, ErrorCode::RequestTimeout);
}

#[test]
fn running_out_of_memory_rebuilds_the_runtime() {
    let mut h = Harness::new();
    for script in [
        "let a = []; while (true) a.push('x'.repeat(1024) + a.length);",
        // Catching the error does not turn it into a success.
        "try { let a = []; while (true) a.push(new Array(1000).fill(a.length)); } catch (e) { 'caught' }",
        "'x'.repeat(64 * 1024 * 1024)",
    ] {
        let (code, message) = err(h.eval(script));
        assert_eq!(code, ErrorCode::JsMemory, "{script}: {message}");
        let r = ok(h.eval("({after: 'oom'})"));
        assert_eq!(body_json(&r)["after"], "oom");
    }
    assert_eq!(h.engine.realms_built(), 4, "one rebuild per OOM");
}

#[test]
fn nothing_leaks_between_requests_or_apps() {
    let mut h = Harness::new();
    let a = h.deploy(
        "a",
        // Each plant is refused (the realm is frozen), and refused loudly.
        &[(
            "api/main.js",
            "var seen = typeof leaked; const refused = []; \
            try { globalThis.leaked = 1; } catch (e) { refused.push(e.name); } \
            try { Object.prototype.polluted = 1; } catch (e) { refused.push(e.name); } \
            fazt.app.kv.set('secret', 'a-only'); ({seen, refused})",
        )],
    );
    let b = h.deploy(
        "b",
        &[("api/main.js", "({leaked: typeof leaked, polluted: ({}).polluted === undefined ? 'no' : 'yes', kv: fazt.app.kv.get('secret') === undefined ? 'none' : 'visible', name: fazt.app.name})")],
    );
    let first = body_json(&ok(h.run(&a)));
    assert_eq!(first["seen"], "undefined");
    assert_eq!(first["refused"], json!(["TypeError", "TypeError"]));
    assert_eq!(
        body_json(&ok(h.run(&a)))["seen"],
        "undefined",
        "next request of A"
    );
    let v = body_json(&ok(h.run(&b)));
    assert_eq!(
        v,
        json!({"leaked": "undefined", "polluted": "no", "kv": "none", "name": "b"})
    );
}

#[test]
fn kv_round_trips_values_with_ttl_and_prefix_listing() {
    let mut h = Harness::new();
    let r = ok(h.eval(
        r#"
        const kv = fazt.app.kv;
        kv.set('user:1', {name: 'ada'});
        kv.set('user:2', [1, 2], 60000);
        kv.set('other', 3);
        kv.set('gone', 1, 0.5);
        const before = kv.get('user:1');
        const listed = kv.list('user:').map(e => [e.key, e.value, e.expiresAt === null]);
        const deleted = kv.delete('other');
        ({before, listed, deleted, again: kv.delete('other'), missing: kv.get('nope') === undefined, id: fazt.app.id})
        "#,
    ));
    let v = body_json(&r);
    assert_eq!(v["before"], json!({"name": "ada"}));
    assert_eq!(
        v["listed"],
        json!([["user:1", {"name": "ada"}, true], ["user:2", [1, 2], false]])
    );
    assert_eq!(
        (v["deleted"].clone(), v["again"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(v["missing"], true);
    assert!(v["id"].as_i64().unwrap_or(0) > 0);
    for bad in [
        "fazt.app.kv.set('k', undefined)",
        "fazt.app.kv.set('', 1)",
        "fazt.app.kv.set(5, 1)",
        "fazt.app.kv.set('k', 1, -5)",
        "fazt.app.kv.set('k', 'x'.repeat(2 * 1024 * 1024))",
    ] {
        let (code, message) = err(h.eval(bad));
        assert_eq!(code, ErrorCode::JsError, "{bad}: {message}");
    }
}

#[test]
fn require_loads_commonjs_modules_inside_api_only() {
    let mut h = Harness::new();
    let app = h.deploy(
        "t",
        &[
            (
                "api/main.js",
                "const m = require('./lib/math'); const again = require('./lib/math.js'); ({sum: m.add(2, 3), same: m === again, a: require('./lib/a.js').fromB, name: require('./lib').name})",
            ),
            ("api/lib/math.js", "exports.add = (a, b) => a + b;"),
            ("api/lib/a.js", "exports.early = 'a'; const b = require('./b.js'); exports.fromB = b.sawA;"),
            ("api/lib/b.js", "exports.sawA = require('./a.js').early;"),
            ("api/lib/index.js", "module.exports = {name: 'index'};"),
            ("secret.js", "exports.x = 1"),
        ],
    );
    let v = body_json(&ok(h.run(&app)));
    assert_eq!(
        v,
        json!({"sum": 5, "same": true, "a": "a", "name": "index"})
    );
    for (spec, needle) in [
        ("fs", "only relative paths"),
        ("/etc/passwd", "only relative paths"),
        ("../secret.js", "leaves the app's api/ folder"),
        ("./../../etc/passwd", "leaves the app's api/ folder"),
        ("./missing.js", "no such file"),
    ] {
        let (code, message) = err(h.eval(&format!("require({spec:?})")));
        assert_eq!(code, ErrorCode::JsError);
        assert!(message.contains(needle), "{spec}: {message}");
    }
    let app = h.deploy(
        "t",
        &[
            ("api/main.js", "require('./bad.js')"),
            ("api/bad.js", "let = ;"),
        ],
    );
    let (code, message) = err(h.run(&app));
    assert_eq!(code, ErrorCode::JsError);
    assert!(message.contains("SyntaxError"), "{message}");
}

#[test]
fn a_redeploy_is_seen_by_the_next_request() {
    let mut h = Harness::new();
    let v1 = h.deploy("t", &[("api/main.js", "({v: 1})"), ("api/x.js", "1")]);
    assert_eq!(body_json(&ok(h.run(&v1)))["v"], 1);
    let v2 = h.deploy("t", &[("api/main.js", "({v: 2})")]);
    assert_eq!(body_json(&ok(h.run(&v2)))["v"], 2);
    let missing = h.deploy("t", &[("index.html", "static only")]);
    let (code, _) = err(h.run(&missing));
    assert_eq!(code, ErrorCode::NotFound);
}

#[test]
fn console_goes_to_the_log_sink_tagged_and_bounded() {
    let mut h = Harness::new();
    ok(h.eval("console.log('hi', {a: 1}, 2, undefined); console.warn('w'); console.error(new TypeError('t')); 1"));
    {
        let logs = h.logs.lock().expect("lock");
        let lines: Vec<(LogLevel, &str)> =
            logs.iter().map(|l| (l.level, l.message.as_str())).collect();
        assert_eq!(
            lines,
            [
                (LogLevel::Info, r#"hi {"a":1} 2 undefined"#),
                (LogLevel::Warn, "w"),
                (LogLevel::Error, "TypeError: t"),
            ]
        );
        assert!(logs.iter().all(|l| l.app == "t" && l.request_id == "req-1"));
    }
    h.logs.lock().expect("lock").clear();
    ok(h.eval("for (let i = 0; i < 1000; i++) console.log(i); 1"));
    let logs = h.logs.lock().expect("lock");
    assert_eq!(logs.len(), 200);
    assert!(logs[199].message.contains("log limit"));
}

#[test]
fn hostile_header_and_query_names_are_plain_properties() {
    let mut h = Harness::new();
    let app = h.deploy(
        "t",
        &[("api/main.js", "({h: request.headers, q: request.query, proto: Object.getPrototypeOf(request.query) === Object.prototype})")],
    );
    let req = HttpRequest {
        method: "GET".into(),
        path: "/api".into(),
        query: "constructor=x&__proto__=1&toString=y&toString=z".into(),
        headers: vec![
            ("constructor".into(), "c".into()),
            ("__proto__".into(), "p".into()),
            ("hasownproperty".into(), "h".into()),
        ],
        body: vec![],
    };
    let v = body_json(&ok(h.run_req(&app, req, Duration::from_secs(5))));
    assert_eq!(
        v["h"],
        json!({"constructor": "c", "__proto__": "p", "hasownproperty": "h"})
    );
    assert_eq!(
        v["q"],
        json!({"constructor": "x", "__proto__": "1", "toString": ["y", "z"]})
    );
    assert_eq!(v["proto"], true, "the query object keeps its prototype");
}

#[test]
fn promise_jobs_run_within_the_request() {
    let mut h = Harness::new();
    let r = ok(h.eval("Promise.resolve(2).then(v => respond(201, {v}))"));
    assert_eq!((r.status, body_json(&r)), (201, json!({"v": 2})));
    let r =
        ok(h.eval("(async () => { const x = await Promise.resolve(40); return {x: x + 2}; })()"));
    assert_eq!(body_json(&r), json!({"x": 42}));
    let (code, message) = err(h.eval("Promise.reject(new Error('refused'))"));
    assert_eq!((code, message.as_str()), (ErrorCode::JsError, "refused"));
    let (code, message) = err(h.eval("new Promise(() => {})"));
    assert_eq!(code, ErrorCode::JsError);
    assert!(message.contains("never settled"), "{message}");
    // An endless chain of jobs is JS time like any other loop.
    let (code, _) = err(h.eval("function f() { Promise.resolve().then(f) } f(); 1"));
    assert_eq!(code, ErrorCode::JsTimeout);
    // Nothing left behind runs in the next request.
    let r = ok(h.eval("({fresh: true})"));
    assert_eq!(body_json(&r), json!({"fresh": true}));
}

#[test]
fn huge_values_are_refused_before_they_leave_the_js_heap() {
    // A heap large enough that the size limits, not the memory limit, decide.
    let mut h = Harness::with_limits(EngineLimits {
        max_memory: 128 << 20,
        exec_timeout: Duration::from_secs(5),
        max_jobs: fazt_worker::js::MAX_JOBS,
        realms: fazt_worker::js::REALMS_PER_LANE,
    });
    // 2000 references to one 4 MB string: 8 GB if each were copied out.
    let started = Instant::now();
    ok(h.eval("const s = 'x'.repeat(4e6); console.log.apply(null, Array(2000).fill(s)); 1"));
    assert!(started.elapsed() < Duration::from_secs(5));
    {
        let logs = h.logs.lock().expect("lock");
        assert!(
            logs.iter().all(|l| l.message.len() <= 8 * 1024 + 4),
            "a line over the cap"
        );
    }
    for script in [
        "const s = 'x'.repeat(4e6); [s, s, s]",
        "const s = 'x'.repeat(4e6); respond(200, [s, s, s])",
        "respond(200, 'x', {a: 'v'.repeat(1e6)})",
        "const hs = {}; for (let i = 0; i < 101; i++) hs['x-' + i] = '1'; respond(200, 'x', hs)",
    ] {
        let (code, message) = err(h.eval(script));
        assert_eq!(code, ErrorCode::JsError, "{script}: {message}");
        assert!(message.contains("RangeError"), "{script}: {message}");
    }
    let r = ok(h.eval("const hs = {}; for (let i = 0; i < 100; i++) hs['x-' + i] = String(i); respond(200, 'ok', hs)"));
    assert_eq!(r.headers.len(), 101, "100 headers and the content type");
}

#[test]
fn a_full_kv_is_a_kv_quota_error_js_can_catch() {
    let mut h = Harness::new();
    let r = ok(h.eval(
        r#"
        let stored = 0, code = null;
        try { for (let i = 0; i < 60; i++) { fazt.app.kv.set('k' + i, i); stored++; } }
        catch (e) { code = e.code; }
        ({stored, code})
        "#,
    ));
    assert_eq!(body_json(&r), json!({"stored": 50, "code": "KV_QUOTA"}));
    let (code, message) = err(h.eval("fazt.app.kv.set('one-more', 1)"));
    assert_eq!(code, ErrorCode::KvQuota, "{message}");
    assert!(message.contains("storage.kv_max_keys"), "{message}");
    // Overwriting a key that exists needs no new room.
    ok(h.eval("fazt.app.kv.set('k1', 'changed'); 1"));
}

#[test]
fn a_kv_listing_counts_against_the_lanes_memory() {
    let mut h = Harness::with_limits(EngineLimits {
        max_memory: 16 << 20,
        exec_timeout: Duration::from_secs(5),
        max_jobs: fazt_worker::js::MAX_JOBS,
        realms: fazt_worker::js::REALMS_PER_LANE,
    });
    let app = h.deploy("t", &[("api/main.js", "if (request.path === '/api/fill') { for (let i = 0; i < 6; i++) fazt.app.kv.set(request.query.r + '-' + i, 'x'.repeat(900000)); 1 } else { fazt.app.kv.list('').length }")]);
    for round in 0..4 {
        let req = HttpRequest {
            query: format!("r=r{round}"),
            ..get("/api/fill")
        };
        ok(h.run_req(&app, req, Duration::from_secs(10)));
    }
    // 24 values of 900 kB: 21 MB, more than the lane's 16 MiB.
    let (code, message) = err(h.run(&app));
    assert_eq!(code, ErrorCode::JsMemory, "{message}");
    let r = ok(h.eval("({after: 'list'})"));
    assert_eq!(body_json(&r)["after"], "list");
}

#[test]
fn more_promise_jobs_than_the_cap_is_an_error_not_a_success() {
    let mut h = Harness::with_limits(EngineLimits {
        max_memory: 16 << 20,
        exec_timeout: Duration::from_secs(60),
        max_jobs: 10_000,
        realms: fazt_worker::js::REALMS_PER_LANE,
    });
    let (code, message) = err(h.eval(
        "let n = 0; (function step() { if (++n < 20000) Promise.resolve().then(step); })(); ({n})",
    ));
    assert_eq!(code, ErrorCode::JsError, "{message}");
    assert!(message.contains("promise jobs"), "{message}");
    let r = ok(h.eval("({after: 'jobs'})"));
    assert_eq!(body_json(&r)["after"], "jobs");
}

// ---------------------------------------------------------------------------
// A realm is reused and locked down (frozen intrinsics, sealed global,
// strict eval code); ordinary app code must not notice.

/// App-compatibility table: each script's completion value, a JSON string,
/// must be what the same script gives in a fresh, unfrozen QuickJS context.
#[rustfmt::skip]
const COMPAT: &[(&str, &str)] = &[
    ("classes and inheritance", "class A { constructor(x) { this.x = x; } get double() { return this.x * 2; } static make() { return new this(2); } } class B extends A { constructor() { super(3); } toString() { return 'B' + this.x; } } const b = new B(); JSON.stringify([b.x, b.double, String(b), b instanceof A, A.make().x, Object.getPrototypeOf(B) === A, B.name])"),
    ("overriding toString by assignment", "const o = {}; o.toString = function () { return 'mine'; }; function F() {} F.prototype.toString = () => 'F'; const n = {valueOf() { return 41; }}; n.valueOf = () => 42; JSON.stringify([String(o), `${new F()}`, n + 0, Object.keys(o), o.valueOf === Object.prototype.valueOf])"),
    ("subclassing Error, setting e.message", "class MyErr extends Error { constructor(m) { super(m); this.name = 'MyErr'; this.code = 7; } } const e = new MyErr('boom'); const f = new Error(); f.message = 'set later'; f.name = 'Custom'; function Old(m) { this.message = m; } Old.prototype = Object.create(Error.prototype); Old.prototype.constructor = Old; Old.prototype.name = 'Old'; let caught; try { throw e; } catch (x) { caught = x; } JSON.stringify([e.message, e.name, String(e), f.message, String(f), caught instanceof MyErr, caught instanceof Error, e.code, Object.keys(f), String(new Old('o')), new Old('p').constructor === Old])"),
    ("getters and setters", "const o = {_v: 1, get v() { return this._v; }, set v(x) { this._v = x * 2; }}; o.v = 5; class C { #p = 1; get p() { return this.#p; } set p(v) { this.#p = v; } } const c = new C(); c.p = 9; Object.defineProperty(o, 'w', {get() { return 'w'; }}); JSON.stringify([o.v, c.p, o.w, Object.keys(o)])"),
    ("Symbol.iterator on user objects", "const r = {from: 1, to: 4, [Symbol.iterator]() { let c = this.from; const t = this.to; return {next: () => c <= t ? {value: c++, done: false} : {value: undefined, done: true}}; }}; function* g() { yield* [1, 2]; yield 3; } const [first, ...others] = r; JSON.stringify([[...r], Array.from(g()), [...new Map([[1, 2]]).entries()], first, others])"),
    ("JSON", "JSON.stringify([JSON.parse('{\"a\":[1,2,{\"b\":null}]}'), JSON.stringify({d: new Date(0), u: undefined, n: NaN}), JSON.parse('[1,2]', (k, v) => typeof v === 'number' ? v * 10 : v), JSON.stringify({toJSON() { return 'custom'; }}), JSON.stringify({a: [1, {b: 2}]}, null, 2)])"),
    ("Date", "const d = new Date(Date.UTC(2020, 1, 29, 12, 0, 0)); JSON.stringify([d.toISOString(), d.getUTCDay(), new Date('2020-03-01T00:00:00Z') - d, d.toJSON(), typeof Date.now(), new Date(NaN).getTime()])"),
    ("RegExp", "const re = /(\\d+)-(\\d+)/g; const s = '1-2 33-44'; JSON.stringify([s.replace(re, '$2:$1'), [...s.matchAll(re)].map((m) => m[0]), /a/y.sticky, 'a,b;c'.split(/[,;]/), re.lastIndex, /(?<y>\\d{4})/.exec('in 2024').groups.y, /x/gi.flags])"),
    ("Map, Set, WeakMap", "const m = new Map([['a', 1]]); m.set({}, 2); const s = new Set([1, 1, 2]); const wm = new WeakMap(); const k = {}; wm.set(k, 'v'); JSON.stringify([m.size, [...s], wm.get(k), m.has('a'), [...m.keys()].length, new Set([1, 2]).has(2)])"),
    ("typed arrays", "const b = new Uint8Array([1, 2, 3]); const f = new Float64Array(2); f[0] = 1.5; const dv = new DataView(new ArrayBuffer(4)); dv.setUint16(0, 513); JSON.stringify([Array.from(b.map((x) => x * 2)), f[0], dv.getUint8(0), b.subarray(1).length, Array.from(new Uint8Array(b.buffer.slice(1)))])"),
    ("closures", "function counter() { let n = 0; return {inc: () => ++n, get: () => n}; } const c1 = counter(), c2 = counter(); c1.inc(); c1.inc(); c2.inc(); const fns = []; for (let i = 0; i < 3; i++) fns.push(() => i); JSON.stringify([c1.get(), c2.get(), fns.map((f) => f())])"),
    ("arrays and species", "class MyArray extends Array {} const ma = MyArray.from([1, 2, 3]).map((x) => x * 2); JSON.stringify([[3, 1, 2].sort(), [1, 2, 3].map((x) => x * 2).filter((x) => x > 2), [[1, [2]], 3].flat(Infinity), Array.from({length: 3}, (_, i) => i), ma instanceof MyArray, String([1, [2, 3]]), Object.entries({a: 1})])"),
    ("objects: spread, assign, own names that shadow built-ins", "const a = {x: 1}; const b = {...a, y: 2}; const {x, ...rest} = b; const f = Object.freeze({z: 1}); const o = {}; o.hasOwnProperty = 1; o.constructor = 'c'; JSON.stringify([b, x, rest, Object.isFrozen(f), Object.assign({}, a, {toString: 1, valueOf: 2}), o.hasOwnProperty, o.constructor])"),
    ("prototype chains built by hand", "function P() {} P.prototype.hi = function () { return 'hi'; }; function Q() { P.call(this); } Q.prototype = Object.create(P.prototype); Q.prototype.constructor = Q; const q = new Q(); const proto = {greet() { return 'g'; }}; const child = Object.create(proto); child.greet = () => 'own'; JSON.stringify([q.hi(), q instanceof P, q.constructor === Q, child.greet(), proto.greet()])"),
    ("error stacks", "function E(m) { this.message = m; this.stack = 'custom'; } E.prototype = Object.create(Error.prototype); const o = new E('a'); const e = new Error('x'); e.stack = 'set'; JSON.stringify([typeof new Error('x').stack, o.stack, e.stack, o instanceof Error])"),
    ("top-level declarations and this", "var v = 1; let l = 2; const c = 3; function fn() { return v + l + c; } class K {} JSON.stringify([fn(), typeof K, this === globalThis])"),
];

#[test]
fn app_code_works_as_in_a_fresh_context() {
    let rt = rquickjs::Runtime::new().expect("runtime");
    let mut h = Harness::new();
    let mut wrong = Vec::new();
    for (i, (name, script)) in COMPAT.iter().enumerate() {
        let fresh: String = rquickjs::Context::full(&rt)
            .expect("context")
            .with(|ctx| ctx.eval(*script))
            .unwrap_or_else(|e| panic!("{name}: the reference context failed: {e}"));
        // The same app three times: the first builds the realm, the others reuse it.
        // A string completion value is answered as JSON.
        let want = serde_json::to_string(&fresh).expect("json");
        let app = h.deploy(&format!("compat{i}"), &[("api/main.js", script)]);
        for round in 0..3 {
            match h.run(&app) {
                Outcome::Response(r) if String::from_utf8_lossy(&r.body) == want => {}
                other => wrong.push(format!("{name} (run {round}): {other:?}\n  fresh: {fresh}")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The one visible difference from a classic script (documented in
/// docs/apps.md): app code is strict eval code, so its top-level names are
/// its own, not properties of the global object, and an assignment to an
/// undeclared name throws.
#[test]
fn top_level_names_are_the_runs_own() {
    let mut h = Harness::new();
    let r = ok(h.eval("var v = 1; function f() {} ({v: typeof globalThis.v, f: 'f' in globalThis, mine: typeof v})"));
    assert_eq!(
        body_json(&r),
        json!({"v": "undefined", "f": false, "mine": "number"})
    );
    let (code, message) = err(h.eval("undeclared = 1"));
    assert_eq!(code, ErrorCode::JsError);
    assert!(message.starts_with("ReferenceError"), "{message}");
}

#[test]
fn modules_keep_their_state_for_one_request() {
    let mut h = Harness::new();
    let app = h.deploy(
        "m",
        &[
            ("api/main.js", "const a = require('./counter.js'); a.inc(); a.inc(); const b = require('./counter.js'); ({n: b.get(), same: a === b})"),
            ("api/counter.js", "let n = 0; module.exports = {inc() { n++; }, get() { return n; }};"),
        ],
    );
    for round in 0..3 {
        let r = ok(h.run(&app));
        assert_eq!(body_json(&r), json!({"n": 2, "same": true}), "run {round}");
    }
}

#[test]
fn a_realm_is_reused_by_its_app_and_never_by_another() {
    let mut h = Harness::new();
    let probe = "({frozen: Object.isFrozen(Array.prototype), sealed: !Object.isExtensible(globalThis), app: fazt.app.name})";
    let a = h.deploy("a", &[("api/main.js", probe)]);
    let b = h.deploy("b", &[("api/main.js", probe)]);
    for _ in 0..3 {
        assert_eq!(
            body_json(&ok(h.run(&a))),
            json!({"frozen": true, "sealed": true, "app": "a"})
        );
        assert_eq!(
            body_json(&ok(h.run(&b))),
            json!({"frozen": true, "sealed": true, "app": "b"})
        );
    }
    assert_eq!(h.engine.realms_built(), 2, "one realm per app, then reuse");
    assert_eq!(h.engine.realms_kept(), 2);
    // A realm a request left unfit is dropped, and the next request of that
    // app gets a new one: a host global pinned, promise jobs left, a timeout.
    let pin = h.deploy(
        "pin",
        &[("api/main.js", "const pin = request.query.pin; if (pin) Object.defineProperty(globalThis, 'request', {value: 1, configurable: false}); ({request: typeof request})")],
    );
    ok(h.run(&pin));
    let built = h.engine.realms_built();
    let pinning = HttpRequest {
        query: "pin=1".into(),
        ..get("/api")
    };
    let r = ok(h.run_req(&pin, pinning, Duration::from_secs(5)));
    assert_eq!(body_json(&r), json!({"request": "number"}));
    assert_eq!(body_json(&ok(h.run(&pin))), json!({"request": "object"}));
    assert_eq!(
        h.engine.realms_built(),
        built + 1,
        "the pinned realm was dropped"
    );
    let (code, _) = err(h.eval("while (true) {}"));
    assert_eq!(code, ErrorCode::JsTimeout);
    let built = h.engine.realms_built();
    ok(h.eval("1"));
    assert_eq!(
        h.engine.realms_built(),
        built + 1,
        "the timed-out realm was dropped"
    );
}

/// Everything a request reaches through the realm (not its own host
/// objects) is frozen, and no accessor but the known safe ones has a setter.
#[test]
fn everything_shared_in_a_realm_is_frozen() {
    let mut h = Harness::new();
    let walk = r#"
const hostNames = ['request', 'respond', 'console', 'fazt', 'require'];
const P = Object.getPrototypeOf;
const thrower = (function () { 'use strict'; return Object.getOwnPropertyDescriptor(arguments, 'callee').get; })();
// The realm's objects, and those only syntax reaches, through fresh
// instances whose prototypes are the realm's.
const roots = [globalThis, P(function* () {}), P(async function () {}), P(async function* () {}),
  P(P((function* () {})())), P(P((async function* () {})())), P([][Symbol.iterator]()), P(new Map().entries()),
  P(new Set().values()), P(''[Symbol.iterator]()), P(/x/[Symbol.matchAll]('')), P([].values().map((x) => x)), thrower];
const proto = Object.getOwnPropertyDescriptor(Object.prototype, '__proto__').set;
const seen = new Set(), open = [], setters = [];
const stack = roots.map((o, i) => [i === 0 ? 'globalThis' : 'hidden' + i, o]);
while (stack.length) {
  const [path, o] = stack.pop();
  if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) continue;
  seen.add(o);
  if (o !== globalThis && !Object.isFrozen(o)) open.push(path);
  stack.push([path + '.__proto__', Object.getPrototypeOf(o)]);
  for (const key of Reflect.ownKeys(o)) {
    if (o === globalThis && hostNames.includes(key)) continue;
    const d = Object.getOwnPropertyDescriptor(o, key);
    const name = path + '.' + String(key);
    if ('value' in d) stack.push([name, d.value]);
    else {
      stack.push([name + '[get]', d.get], [name + '[set]', d.set]);
      // Known: __proto__, %ThrowTypeError%, lockdown's own (named `set`),
      // Iterator.prototype's two and Error.prototype.stack, which act on
      // their receiver only.
      const iter = o === Iterator.prototype && (key === 'constructor' || key === Symbol.toStringTag);
      const errorStack = o === Error.prototype && key === 'stack';
      if (d.set && d.set !== proto && d.set !== thrower && d.set.name !== 'set' && !iter && !errorStack) setters.push(name);
    }
  }
}
({objects: seen.size, open: open.slice(0, 20), setters, sealed: !Object.isExtensible(globalThis)})
"#;
    for round in 0..2 {
        let v = body_json(&ok(h.eval(walk)));
        assert!(v["objects"].as_u64().unwrap_or(0) > 500, "{v}");
        assert_eq!(v["open"], json!([]), "run {round}: {v}");
        assert_eq!(v["setters"], json!([]), "run {round}: {v}");
        assert_eq!(v["sealed"], true);
    }
}

#[test]
fn idle_realms_are_bounded_by_half_the_lane_memory() {
    // 16 MiB lane: idle realms may hold 8 MiB, about twenty realms.
    let mut h = Harness::new();
    for i in 0..60 {
        let app = h.deploy(&format!("many{i}"), &[("api/main.js", "({ok: true})")]);
        ok(h.run(&app));
        assert!(
            h.engine.heap_bytes() <= (16 << 20) / fazt_worker::js::IDLE_SHARE,
            "after {i}: {} bytes idle",
            h.engine.heap_bytes()
        );
    }
    let kept = h.engine.realms_kept();
    assert!((5..60).contains(&kept), "{kept} realms kept");
    // The most recent apps are the ones kept: running one again builds nothing.
    let built = h.engine.realms_built();
    let recent = h.deploy("many59", &[("api/main.js", "({ok: true})")]);
    ok(h.run(&recent));
    assert_eq!(h.engine.realms_built(), built);
}

#[test]
fn a_realm_that_grew_for_good_is_not_kept_and_a_late_job_costs_none() {
    let mut h = Harness::with_limits(EngineLimits {
        max_memory: 128 << 20,
        exec_timeout: Duration::from_secs(30),
        max_jobs: fazt_worker::js::MAX_JOBS,
        realms: fazt_worker::js::REALMS_PER_LANE,
    });
    // QuickJS's atom table only grows: 300 000 property names leave the
    // realm megabytes above its size after lockdown.
    let app = h.deploy(
        "big",
        &[("api/main.js", "if (request.query.grow) { const o = {}; for (let i = 0; i < 300000; i++) o['k' + i] = i; } ({ok: true})")],
    );
    ok(h.run(&app));
    let built = h.engine.realms_built();
    let growing = HttpRequest {
        query: "grow=1".into(),
        ..get("/api")
    };
    ok(h.run_req(&app, growing, Duration::from_secs(30)));
    ok(h.run(&app));
    assert_eq!(
        h.engine.realms_built(),
        built + 1,
        "the grown realm was dropped"
    );
    // A job whose deadline passed while it waited is answered without
    // running, and its app's realm is kept.
    let built = h.engine.realms_built();
    let (code, _) = err(h.run_req(&app, get("/api"), Duration::ZERO));
    assert_eq!(code, ErrorCode::RequestTimeout);
    ok(h.run(&app));
    assert_eq!(h.engine.realms_built(), built);
}
