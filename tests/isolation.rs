//! JS isolation, black-box and adversarial (SPEC §5): nothing one request or
//! app defines is seen by another, whatever the attacker plants, and an app
//! never runs with another app's code or files.
//!
//! Each test plants from one side and looks from every other side. The
//! breach tests pin the pool to one worker with one lane, so attacker and
//! victim really share a lane; the case table runs on several workers and
//! lanes and probes in concurrent waves so every lane is looked at.

mod support;

use serde_json::{json, Value};
use std::net::SocketAddr;
use support::{cli, deploy, request, set_limits, tmp, Fazt, Reply};

/// One worker with one lane: every request runs on the same lane.
fn one_lane(data: &std::path::Path) {
    set_limits(data, &[("runtime.workers", "1"), ("runtime.lanes", "1")]);
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers, b"")
}

// ---------------------------------------------------------------------------
// Breach 1: host functions must belong to the request's own realm.

const VICTIM: &str = r#"
// Calls a host function through .call, as ordinary code may.
fazt.app.kv.get.call(null, 'k-' + request.headers.authorization);
({victim: true, who: request.body && request.body.who});
"#;

const THIEF: &str = r#"
const F = Object.getPrototypeOf(fazt.app.kv.get);
const g = respond.constructor('return this')();
const report = {
  ownFunctionProto: F === Function.prototype,
  ownRealm: g === globalThis,
  seenRequest: g.request === request ? null : JSON.stringify(g.request || null),
  stolen: F.stolen || null,
};
if (request.query.plant) {
  // Record the arguments of every later call of a host function's `.call`.
  try {
    const real = F.call;
    F.stolen = [];
    const stolen = F.stolen;
    F.call = function (...args) { stolen.push(JSON.stringify(args)); return real.apply(this, args); };
    report.plant = 'took';
  } catch (e) {
    report.plant = e.name;
  }
}
report;
"#;

#[test]
fn host_functions_belong_to_the_requests_own_realm() {
    let dir = tmp();
    let data = dir.path().join("data");
    one_lane(&data);
    deploy(&data, dir.path(), "victim", &[("api/main.js", VICTIM)]);
    deploy(&data, dir.path(), "thief", &[("api/main.js", THIEF)]);
    let fazt = Fazt::start(&data, &[]);
    let victim = |secret: &str| {
        let auth = format!("Bearer {secret}");
        let r = request(
            fazt.addr,
            "POST",
            "/_app/victim/api",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            format!(r#"{{"who":"{secret}-body"}}"#).as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.json(),
            json!({"victim": true, "who": format!("{secret}-body")})
        );
    };

    // The victim is the lane's first request; then the thief looks and plants.
    victim("first-secret");
    let planted = get(fazt.addr, "/_app/thief/api?plant=1", &[]);
    assert_eq!(planted.status, 200, "{}", planted.text());
    // Function.prototype is shared by the realm's requests, so it is frozen.
    assert_eq!(planted.json()["plant"], "TypeError", "{}", planted.text());
    // The victim runs again, calling kv.get.call with its secret.
    victim("second-secret");
    let looked = get(fazt.addr, "/_app/thief/api", &[]);
    assert_eq!(looked.status, 200, "{}", looked.text());
    for reply in [&planted, &looked] {
        let text = reply.text();
        assert!(
            !text.contains("secret"),
            "the thief saw the victim's request: {text}"
        );
        let v = reply.json();
        assert_eq!(v["ownFunctionProto"], true, "{v}");
        assert_eq!(v["ownRealm"], true, "{v}");
        assert_eq!(v["seenRequest"], Value::Null, "{v}");
        assert_eq!(v["stolen"], Value::Null, "{v}");
    }
}

// ---------------------------------------------------------------------------
// Breach 2: a finished request's JS never runs again.

const FIN: &str = r#"
const has = typeof FinalizationRegistry === 'function';
if (has) {
  const registry = new FinalizationRegistry(() => {
    fazt.app.kv.set('written-by-fin', 1);
    respond(299, 'answered by fin');
  });
  for (let i = 0; i < 300; i++) {
    const a = {}; const b = {a}; a.b = b;
    registry.register(a, i);
  }
}
// A promise that would resume later, and a resolver left on the global.
(async () => {
  await new Promise((resolve) => { globalThis.resumeFin = resolve; });
  fazt.app.kv.set('written-by-fin-async', 1);
  respond(298, 'answered by fin async');
})();
({fin: true, finalizers: has, keys: fazt.app.kv.list('').map((e) => e.key)});
"#;

const OTHER: &str = r#"
// Allocate enough to make the collector run during this request.
let junk = [];
for (let i = 0; i < 20000; i++) junk.push({i, s: 'x' + i});
junk = null;
({other: true, keys: fazt.app.kv.list('').map((e) => e.key)});
"#;

#[test]
fn a_finished_requests_js_never_runs_again() {
    let dir = tmp();
    let data = dir.path().join("data");
    one_lane(&data);
    deploy(&data, dir.path(), "fin", &[("api/main.js", FIN)]);
    deploy(&data, dir.path(), "other", &[("api/main.js", OTHER)]);
    deploy(
        &data,
        dir.path(),
        "peek",
        &[(
            "api/main.js",
            "({keys: fazt.app.kv.list('').map((e) => e.key)})",
        )],
    );
    let fazt = Fazt::start(&data, &[]);
    for round in 0..3 {
        let fin = fazt.app_get("fin", "/api");
        assert_eq!(fin.status, 200, "{}", fin.text());
        assert_eq!(fin.json()["fin"], true);
        for _ in 0..5 {
            let other = fazt.app_get("other", "/api");
            assert_eq!(other.status, 200, "round {round}: {}", other.text());
            assert_eq!(other.json(), json!({"other": true, "keys": []}));
        }
    }
    // Nothing was written by fin's leftovers, in any app.
    for app in ["fin", "other", "peek"] {
        let r = fazt.app_get(app, "/api");
        assert_eq!(r.status, 200, "{}", r.text());
        let keys = &r.json()["keys"];
        assert_eq!(keys, &json!([]), "{app}: {keys}");
    }
    // The environment no longer offers finalizers or weak references.
    let fin = fazt.app_get("fin", "/api").json();
    assert_eq!(fin["finalizers"], false);
}

// ---------------------------------------------------------------------------
// Breach 3: a new app never runs a removed app's code or serves its files.

fn app_files(tag: &str) -> Vec<(String, String)> {
    vec![
        (
            "api/main.js".to_string(),
            format!(
                "const n = (fazt.app.kv.get('n') || 0) + 1; fazt.app.kv.set('n', n); \
                 ({{code: '{tag}', name: fazt.app.name, id: fazt.app.id, n}})"
            ),
        ),
        ("index.html".to_string(), format!("page of {tag}")),
        ("small.txt".to_string(), format!("text of {tag}")),
    ]
}

fn deploy_tagged(fazt: &Fazt, parent: &std::path::Path, name: &str, tag: &str) {
    let files = app_files(tag);
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    deploy(&fazt.data, parent, name, &refs);
}

/// Asks app `name` for its code, page and text; all must be `tag`'s.
fn assert_serves(fazt: &Fazt, name: &str, tag: &str, kv_n: u64) -> i64 {
    let api = fazt.app_get(name, "/api");
    assert_eq!(api.status, 200, "{name}: {}", api.text());
    let v = api.json();
    assert_eq!(v["code"], tag, "{name} ran the wrong code: {v}");
    assert_eq!(v["name"], name, "{v}");
    assert_eq!(v["n"], kv_n, "{name} saw another app's kv: {v}");
    assert_eq!(
        fazt.app_get(name, "/").text(),
        format!("page of {tag}"),
        "{name}"
    );
    assert_eq!(
        fazt.app_get(name, "/small.txt").text(),
        format!("text of {tag}"),
        "{name}"
    );
    // By Host too.
    let host = format!("{name}.localhost");
    let page = get(fazt.addr, "/", &[("host", &host)]);
    assert_eq!(page.text(), format!("page of {tag}"), "{name} by Host");
    v["id"].as_i64().expect("id")
}

#[test]
fn a_new_app_never_runs_a_removed_apps_code() {
    let dir = tmp();
    let data = dir.path().join("data");
    one_lane(&data);
    let fazt = Fazt::start(&data, &[]);
    let remove = |name: &str| {
        let out = cli(&data, &["app", "remove", name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    deploy_tagged(&fazt, dir.path(), "appx", "x1");
    let x1 = assert_serves(&fazt, "appx", "x1", 1);
    assert_serves(&fazt, "appx", "x1", 2);
    remove("appx");
    assert_eq!(fazt.app_get("appx", "/api").status, 404);
    assert_eq!(fazt.app_get("appx", "/").status, 404);

    // A new name takes the freed place: it must run its own code.
    deploy_tagged(&fazt, dir.path(), "appy", "y1");
    let y1 = assert_serves(&fazt, "appy", "y1", 1);
    assert_ne!(x1, y1, "an app id was reused");

    // The old name comes back: new identity, new code, empty kv.
    remove("appy");
    deploy_tagged(&fazt, dir.path(), "appx", "x2");
    let x2 = assert_serves(&fazt, "appx", "x2", 1);
    assert!(x2 != x1 && x2 != y1, "an app id was reused: {x1} {y1} {x2}");

    // Redeploys of the same app are seen at once, by code and by files.
    deploy_tagged(&fazt, dir.path(), "appx", "x3");
    assert_serves(&fazt, "appx", "x3", 2);

    // Several rounds with two apps alive, caches warm on both sides.
    for round in 0..3 {
        let a = format!("a{round}");
        let b = format!("b{round}");
        deploy_tagged(&fazt, dir.path(), "left", &a);
        deploy_tagged(&fazt, dir.path(), "right", &b);
        assert_serves(&fazt, "left", &a, 1);
        assert_serves(&fazt, "right", &b, 1);
        remove("left");
        remove("right");
    }
}

// ---------------------------------------------------------------------------
// The realm walk: everything a request can reach comes from its own realm.

const WALK: &str = r#"
const OP = Object.prototype, FP = Function.prototype;
const roots = [['globalThis', globalThis]];
fazt.app.kv.set('obj', {nested: {deep: [1, {x: 2}]}});
roots.push(['kv.get', fazt.app.kv.get('obj')]);
roots.push(['kv.list', fazt.app.kv.list('')]);
roots.push(['require', require('./lib.js')]);
for (const bad of [() => fazt.app.kv.set(5, 1), () => require('fs'), () => respond(42), () => fazt.app.kv.get()]) {
  try { bad(); } catch (e) { roots.push(['thrown', e]); }
}
const seen = new Set();
const bad = [];
const stack = roots.slice();
while (stack.length) {
  const [path, o] = stack.pop();
  if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) continue;
  seen.add(o);
  let last = o;
  for (let p = Object.getPrototypeOf(o), n = 0; p !== null && n < 64; p = Object.getPrototypeOf(p), n++) last = p;
  // A null-prototype object (Array.prototype[Symbol.unscopables]) ends its own chain.
  if (last !== o && last !== OP) bad.push(path + ': chain ends outside this realm');
  if (typeof o === 'function' && o !== FP) {
    let own = false;
    for (let p = Object.getPrototypeOf(o); p !== null; p = Object.getPrototypeOf(p)) if (p === FP) { own = true; break; }
    if (!own) bad.push(path + ': function of another realm');
  }
  const proto = Object.getPrototypeOf(o);
  if (proto !== null) stack.push([path + '.[[Prototype]]', proto]);
  for (const key of Reflect.ownKeys(o)) {
    const d = Object.getOwnPropertyDescriptor(o, key);
    if (!d) continue;
    const name = path + '.' + String(key);
    if ('value' in d) stack.push([name, d.value]);
    if (d.get) stack.push([name + '[get]', d.get]);
    if (d.set) stack.push([name + '[set]', d.set]);
  }
}
({objects: seen.size, bad: bad.slice(0, 20), app: fazt.app.name});
"#;

#[test]
fn every_object_a_request_reaches_is_of_its_own_realm() {
    let dir = tmp();
    let data = dir.path().join("data");
    one_lane(&data);
    let lib = "module.exports = {helper: () => 1, list: [1, 2], nested: {f() {}}};";
    for name in ["walker-a", "walker-b"] {
        deploy(
            &data,
            dir.path(),
            name,
            &[("api/main.js", WALK), ("api/lib.js", lib)],
        );
    }
    let fazt = Fazt::start(&data, &[]);
    for i in 1..=50 {
        let app = if i % 2 == 0 { "walker-b" } else { "walker-a" };
        let r = fazt.app_get(app, "/api");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        let v = r.json();
        assert_eq!(v["bad"], json!([]), "request {i} ({app}): {v}");
        assert_eq!(v["app"], app);
        assert!(
            v["objects"].as_u64().unwrap_or(0) > 100,
            "the walk saw little: {v}"
        );
    }
}

// ---------------------------------------------------------------------------
// The adversarial case table.

/// What the planting request must report.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plant {
    /// The plant took: its own probe sees it inside the planting request,
    /// which proves the probe can see it at all.
    Took,
    /// The environment refused it quietly (the thing planted on does not
    /// exist, or the plant's own effect never happened).
    Refused,
    /// The realm refused it loudly: the plant threw a `TypeError` or
    /// `ReferenceError` (a frozen intrinsic, the sealed global object, a
    /// strict-mode assignment to an undeclared name), so the request ends
    /// with 500 `JS_ERROR`.
    Frozen,
    /// The request ends with this status (a limit or an error).
    Status(u16),
}

/// A case: a name, JS statements that plant, a JS expression that is true
/// when the plant is visible, and what the planting request reports.
struct Case {
    name: &'static str,
    plant: &'static str,
    probe: &'static str,
    expect: Plant,
}

const fn case(name: &'static str, plant: &'static str, probe: &'static str, expect: Plant) -> Case {
    Case {
        name,
        plant,
        probe,
        expect,
    }
}

use Plant::{Frozen, Refused, Status, Took};

// A realm serves many requests of one app (and never another app's), so
// what a request can write into must die with it: the intrinsics and the
// global object are frozen once per realm and app code runs as strict eval
// code. Plants on shared things (fazt's `respond`, `console` and `fazt`
// included) are therefore refused loudly (`Frozen`); plants on what each
// request gets anew (`request`, `require`, top-level declarations) take
// (`Took`) and must still be invisible to every later request; a request
// that leaves the realm unfit (a host global pinned or deleted, a timeout,
// memory, leftover jobs) gets the realm dropped.
#[rustfmt::skip]
const CASES: &[Case] = &[
    // Globals and top-level declarations.
    case("global property", "globalThis.fazt_leak_g = 1", "typeof fazt_leak_g !== 'undefined'", Frozen),
    case("implicit global", "(function () { fazt_leak_implicit = 1; })()", "typeof fazt_leak_implicit !== 'undefined'", Frozen),
    case("top-level var", "(0, eval)('var fazt_leak_var = 1')", "typeof fazt_leak_var !== 'undefined'", Frozen),
    case("script-level let", "fazt_top_let = 'planted'", "fazt_top_let === 'planted'", Took),
    case("script-level const object", "fazt_top_const.planted = 1", "fazt_top_const.planted !== undefined", Took),
    case("script-level function", "fazt_top_fn.planted = 1", "fazt_top_fn.planted !== undefined", Took),
    case("script-level class", "FaztTopClass.planted = 1", "FaztTopClass.planted !== undefined", Took),
    case("eval'd function declaration", "(0, eval)('function fazt_leak_fn() {}')", "typeof fazt_leak_fn === 'function'", Frozen),
    case("eval'd let", "(0, eval)('let fazt_leak_let = 1; class FaztLeakClass {}')", "typeof fazt_leak_let !== 'undefined' || typeof FaztLeakClass !== 'undefined'", Refused),
    case("sloppy direct eval var", "Function(\"eval('var fazt_leak_dv = 1')\")()", "typeof fazt_leak_dv !== 'undefined'", Refused),
    case("Function body breakout", "try { Function('}); let fazt_leak_fb = 1; (function () {')(); } catch (e) {}", "typeof fazt_leak_fb !== 'undefined'", Refused),
    case("global getter", "Object.defineProperty(globalThis, 'fazt_leak_get', {get() { return 1; }, configurable: true})", "'fazt_leak_get' in globalThis", Frozen),
    case("symbol-keyed global", "globalThis[Symbol.for('fazt.leak')] = 1", "globalThis[Symbol.for('fazt.leak')] !== undefined", Frozen),
    case("global frozen", "Object.freeze(globalThis)", "Object.isFrozen(globalThis)", Took),
    case("builtin deleted", "delete globalThis.Reflect", "typeof Reflect === 'undefined'", Frozen),
    case("builtin replaced", "globalThis.Math = {fazt_leak: 1}", "Math.fazt_leak === 1", Frozen),
    case("eval replaced", "globalThis.eval = marked(eval)", "isMarked(eval)", Frozen),
    // The host globals: `request` and `require` are set for each request;
    // `respond`, `console` and `fazt` are the realm's, frozen with it.
    case("host global pinned", "Object.defineProperty(globalThis, 'request', {value: {fazt_leak: 1}, writable: false, configurable: false})", "request.fazt_leak === 1", Took),
    case("host global deleted", "delete globalThis.require", "typeof require === 'undefined'", Took),
    case("frozen host global replaced", "Object.defineProperty(globalThis, 'console', {value: {fazt_leak: 1}})", "console.fazt_leak === 1", Frozen),
    case("frozen host global deleted", "delete globalThis.fazt", "typeof fazt === 'undefined'", Frozen),
    case("host global getter", "Object.defineProperty(globalThis, 'request', {get() { return {query: {}, fazt_leak: 1}; }, configurable: true})", "request.fazt_leak === 1", Took),
    // Intrinsic prototypes and constructors.
    case("Object.prototype property", "Object.prototype.fazt_leak_op = 1", "({}).fazt_leak_op !== undefined", Frozen),
    case("Object.prototype setter catching data", "Object.defineProperty(Object.prototype, 'authorization', {set(v) { caught.push(v); }, get() { return 'caught'; }, configurable: true})", "Object.getOwnPropertyDescriptor(Object.prototype, 'authorization') !== undefined", Frozen),
    case("Object.prototype.then", "Object.prototype.then = function (r) { r('hijacked'); }", "'then' in {}", Frozen),
    case("Object.prototype.toJSON", "Object.prototype.toJSON = function () { return 'hijacked'; }", "'toJSON' in {}", Frozen),
    case("Object.prototype.toString", "Object.prototype.toString = () => 'hijacked'", "({}).toString() === 'hijacked'", Frozen),
    case("override accessor", "Object.getOwnPropertyDescriptor(Object.prototype, 'toString').get.fazt_leak = 1", "Object.getOwnPropertyDescriptor(Object.prototype, 'toString').get.fazt_leak !== undefined", Frozen),
    case("Object.keys replaced", "Object.keys = marked(Object.keys)", "isMarked(Object.keys)", Frozen),
    case("Array.prototype.push", "Array.prototype.push = marked(Array.prototype.push)", "isMarked([].push)", Frozen),
    case("Array iterator", "Array.prototype[Symbol.iterator] = marked(Array.prototype[Symbol.iterator])", "isMarked([][Symbol.iterator])", Frozen),
    case("Array iterator prototype", "Object.getPrototypeOf([][Symbol.iterator]()).fazt_leak = 1", "[][Symbol.iterator]().fazt_leak !== undefined", Frozen),
    case("Array species", "Object.defineProperty(Array, Symbol.species, {get() { return Object; }, configurable: true})", "Array[Symbol.species] !== Array", Frozen),
    case("Function.prototype.call", "Function.prototype.call = marked(Function.prototype.call)", "isMarked(Function.prototype.call)", Frozen),
    case("Function.prototype property", "Function.prototype.fazt_leak = 1", "(function () {}).fazt_leak !== undefined", Frozen),
    case("Function constructor", "Function.fazt_leak = 1", "Function.fazt_leak !== undefined", Frozen),
    case("generator function prototype", "Object.getPrototypeOf(function* () {}).fazt_leak = 1", "Object.getPrototypeOf(function* () {}).fazt_leak !== undefined", Frozen),
    case("generator prototype", "Object.getPrototypeOf(function* () {}).prototype.next = marked(Object.getPrototypeOf(function* () {}).prototype.next)", "isMarked((function* () {})().next)", Frozen),
    case("async function prototype", "Object.getPrototypeOf(async function () {}).fazt_leak = 1", "Object.getPrototypeOf(async function () {}).fazt_leak !== undefined", Frozen),
    case("%TypedArray%", "Object.getPrototypeOf(Uint8Array).fazt_leak = 1", "Object.getPrototypeOf(Uint8Array).fazt_leak !== undefined", Frozen),
    case("%ThrowTypeError%", "(function () { 'use strict'; Object.getOwnPropertyDescriptor(arguments, 'callee').get.fazt_leak = 1; })()", "(function () { 'use strict'; return Object.getOwnPropertyDescriptor(arguments, 'callee').get.fazt_leak !== undefined; })()", Frozen),
    case("String.prototype", "String.prototype.fazt_leak = 1", "''.fazt_leak !== undefined", Frozen),
    case("Number.prototype", "Number.prototype.fazt_leak = 1", "(0).fazt_leak !== undefined", Frozen),
    case("Boolean.prototype", "Boolean.prototype.fazt_leak = 1", "true.fazt_leak !== undefined", Frozen),
    case("Symbol.prototype", "Symbol.prototype.fazt_leak = 1", "Symbol().fazt_leak !== undefined", Frozen),
    case("RegExp.prototype.exec", "RegExp.prototype.exec = marked(RegExp.prototype.exec)", "isMarked(/x/.exec)", Frozen),
    case("Date.now", "Date.now = marked(Date.now)", "isMarked(Date.now)", Frozen),
    case("Date.prototype", "Date.prototype.fazt_leak = 1", "new Date().fazt_leak !== undefined", Frozen),
    case("Math.random", "Math.random = marked(Math.random)", "isMarked(Math.random)", Frozen),
    case("JSON.parse", "JSON.parse = marked(JSON.parse)", "isMarked(JSON.parse)", Frozen),
    case("JSON.stringify", "JSON.stringify = marked(JSON.stringify)", "isMarked(JSON.stringify)", Frozen),
    case("Promise.prototype.then", "Promise.prototype.then = marked(Promise.prototype.then)", "isMarked(Promise.prototype.then)", Frozen),
    case("Promise constructor", "Promise.fazt_leak = 1", "Promise.fazt_leak !== undefined", Frozen),
    case("Map.prototype.set", "Map.prototype.set = marked(Map.prototype.set)", "isMarked(new Map().set)", Frozen),
    case("Set.prototype.add", "Set.prototype.add = marked(Set.prototype.add)", "isMarked(new Set().add)", Frozen),
    case("WeakMap.prototype.set", "WeakMap.prototype.set = marked(WeakMap.prototype.set)", "isMarked(new WeakMap().set)", Frozen),
    case("Uint8Array.prototype", "Uint8Array.prototype.fazt_leak = 1", "new Uint8Array(1).fazt_leak !== undefined", Frozen),
    case("Error.prototype.message", "Error.prototype.message = 'fazt-leak'", "new Error().message === 'fazt-leak'", Frozen),
    case("Error.prepareStackTrace", "Error.prepareStackTrace = () => 'fazt-leak'", "Error.prepareStackTrace !== undefined", Frozen),
    case("Error.stackTraceLimit", "Error.stackTraceLimit = 0", "Error.stackTraceLimit === 0", Frozen),
    case("TypeError constructor", "TypeError.fazt_leak = 1", "TypeError.fazt_leak !== undefined", Frozen),
    case("Proxy constructor", "Proxy.fazt_leak = 1", "Proxy.fazt_leak !== undefined", Frozen),
    // fazt's own objects: made once per realm and frozen with it, except
    // `request` and `require`, made for each request.
    case("fazt property", "fazt.fazt_leak = 1", "fazt.fazt_leak !== undefined", Frozen),
    case("fazt.app property", "fazt.app.fazt_leak = 1", "fazt.app.fazt_leak !== undefined", Frozen),
    case("kv.get replaced", "fazt.app.kv.get = marked(fazt.app.kv.get)", "isMarked(fazt.app.kv.get)", Frozen),
    case("host function property", "fazt.app.kv.set.fazt_leak = 1", "fazt.app.kv.set.fazt_leak !== undefined", Frozen),
    case("host function prototype", "Object.getPrototypeOf(fazt.app.kv.get).fazt_leak_hp = 1", "Object.getPrototypeOf(fazt.app.kv.get).fazt_leak_hp !== undefined", Frozen),
    case("host function prototype .call", "Object.getPrototypeOf(fazt.app.kv.get).call = marked(Function.prototype.call)", "isMarked(Object.getPrototypeOf(fazt.app.kv.get).call)", Frozen),
    case("host function realm global", "respond.constructor('return this')().fazt_leak_rg = 1", "typeof fazt_leak_rg !== 'undefined'", Frozen),
    case("request object", "request.fazt_leak = 1; request.headers.fazt_leak = 1", "request.fazt_leak !== undefined || request.headers.fazt_leak !== undefined", Took),
    case("request prototype", "Object.getPrototypeOf(request.query).fazt_leak_rp = 1", "({}).fazt_leak_rp !== undefined", Frozen),
    case("console", "console.log = marked(console.log); console.fazt_leak = 1", "isMarked(console.log) || console.fazt_leak !== undefined", Frozen),
    case("console prototype", "Object.getPrototypeOf(console.log).fazt_leak_cp = 1", "Object.getPrototypeOf(console.log).fazt_leak_cp !== undefined", Frozen),
    case("respond", "respond.fazt_leak = 1", "respond.fazt_leak !== undefined", Frozen),
    case("require cache", "require('./lib.js').fazt_leak = 1", "require('./lib.js').fazt_leak !== undefined", Took),
    case("require function", "require.fazt_leak = 1", "require.fazt_leak !== undefined", Took),
    case("module top-level let", "require('./lib.js').bump()", "require('./lib.js').count() > 0", Took),
    case("module wrapper breakout", "require('./breakout.js')", "typeof fazt_leak_mb !== 'undefined'", Refused),
    // Code that would run later.
    case("pending promise", "(async () => { await new Promise((r) => { globalThis.fazt_resume = r; }); fazt.app.kv.set('leak-async', 1); respond(298, 'late'); })()", "typeof fazt_resume === 'function'", Refused),
    case("pending thenable", "(async () => { await {then(r) { globalThis.fazt_then = r; }}; fazt.app.kv.set('leak-then', 1); })()", "typeof fazt_then === 'function'", Refused),
    case("suspended generator", "globalThis.fazt_gen = (function* () { yield 1; fazt.app.kv.set('leak-gen', 1); })(); fazt_gen.next()", "typeof fazt_gen !== 'undefined'", Frozen),
    case("suspended generator kept by a host object", "request.fazt_gen = (function* () { yield 1; fazt.app.kv.set('leak-gen', 1); })(); request.fazt_gen.next()", "request.fazt_gen !== undefined", Took),
    case("endless promise jobs", "let n = 0; (function step() { Promise.resolve().then(() => { n++; step(); }); })()", "false", Status(504)),
    case("finalizers", "if (typeof FinalizationRegistry === 'function') { const fr = new FinalizationRegistry(() => { fazt.app.kv.set('leak-fin', 1); respond(299, 'fin'); }); for (let i = 0; i < 300; i++) { const a = {}; const b = {a}; a.b = b; fr.register(a, i); } }", "typeof FinalizationRegistry === 'function'", Refused),
    case("weak references", "if (typeof WeakRef === 'function') request.fazt_ref = new WeakRef({})", "typeof WeakRef === 'function'", Refused),
    // State left by a request that failed: every plant is tried, then the
    // request fails; the realm is dropped after a timeout or out of memory.
    case("after JS_TIMEOUT", "tryAll(); request.fazt_leak_t = 1; while (true) {}", "typeof fazt_leak_t !== 'undefined' || ({}).fazt_leak_t2 !== undefined", Status(504)),
    case("after JS_MEMORY", "tryAll(); const a = []; while (true) a.push('x'.repeat(65536) + a.length)", "typeof fazt_leak_m !== 'undefined' || [].fazt_leak_m2 !== undefined", Status(500)),
    case("after a thrown error", "tryAll(); throw new Error('planted')", "typeof fazt_leak_e !== 'undefined' || ''.fazt_leak_e2 !== undefined", Status(500)),
    case("after a stack overflow", "tryAll(); (function f() { f(); })()", "typeof fazt_leak_so !== 'undefined'", Status(500)),
];

/// The app both sides run: `?mode=plant&case=N` plants case N and reports
/// whether its probe sees it; any other request probes every case.
fn table_app() -> String {
    // Script-level declarations: planted on by some cases, and declared
    // again by every request, which must not clash with an earlier one.
    let mut js = String::from(
        "let fazt_top_let = 1;\n\
         const fazt_top_const = {};\n\
         function fazt_top_fn() {}\n\
         class FaztTopClass {}\n\
         const caught = [];\n\
         function marked(orig) { const f = function (...a) { return orig.apply(this, a); }; f.fazt_leak = 1; return f; }\n\
         function isMarked(f) { return !!f && f.fazt_leak === 1; }\n\
         // Plants on shared things, each refused, then the request fails.\n\
         function tryAll() {\n\
           for (const f of [() => { globalThis.fazt_leak_t = 1; }, () => { Object.prototype.fazt_leak_t2 = 1; },\n\
               () => { globalThis.fazt_leak_m = 1; }, () => { Array.prototype.fazt_leak_m2 = 1; },\n\
               () => { globalThis.fazt_leak_e = 1; }, () => { String.prototype.fazt_leak_e2 = 1; },\n\
               () => { globalThis.fazt_leak_so = 1; }]) {\n\
             try { f(); } catch (e) {}\n\
           }\n\
         }\n\
         const CASES = [\n",
    );
    for c in CASES {
        js.push_str(&format!(
            "  {{name: {name:?}, plant() {{ {plant}; }}, probe() {{ return !!({probe}); }}}},\n",
            name = c.name,
            plant = c.plant,
            probe = c.probe
        ));
    }
    js.push_str(
        "];\n\
         const q = request.query;\n\
         if (q.mode === 'plant') {\n\
           const c = CASES[Number(q.case)];\n\
           c.plant();\n\
           // Looked at once the plant's own promise jobs ran.\n\
           Promise.resolve().then(() => respond(200, c.probe() ? 'took' : 'refused'));\n\
         } else {\n\
           const end = Date.now() + Number(q.busy || 0);\n\
           while (Date.now() < end) {}\n\
           const seen = [];\n\
           for (let i = 0; i < CASES.length; i++) {\n\
             try { if (CASES[i].probe()) seen[seen.length] = CASES[i].name; }\n\
             catch (e) { seen[seen.length] = CASES[i].name + ' (probe threw ' + e + ')'; }\n\
           }\n\
           const leaks = fazt.app.kv.list('leak-').map((e) => e.key);\n\
           respond(200, {nonce: q.nonce, app: fazt.app.name, seen, leaks});\n\
         }\n",
    );
    js
}

/// Probes from both apps at once, `per_app` requests each, all in flight
/// together; each holds its lane ~10 ms so a wave covers every lane.
fn probe_wave(addr: SocketAddr, per_app: usize, after: &str) {
    let mut threads = Vec::new();
    for app in ["attacker", "bystander"] {
        for i in 0..per_app {
            let nonce = format!("{app}-{i}");
            threads.push(std::thread::spawn(move || {
                let path = format!("/_app/{app}/api?busy=10&nonce={nonce}");
                (app, nonce, request(addr, "GET", &path, &[], b""))
            }));
        }
    }
    for t in threads {
        let (app, nonce, r) = t.join().expect("probe thread");
        assert_eq!(r.status, 200, "after {after}: {app} probe got {}", r.text());
        let v = r.json();
        assert_eq!(
            v,
            json!({"nonce": nonce, "app": app, "seen": [], "leaks": []}),
            "after {after}: {app} saw a plant"
        );
    }
}

#[test]
fn adversarial_isolation_suite() {
    assert!(CASES.len() >= 40, "the suite needs at least 40 cases");
    let dir = tmp();
    let data = dir.path().join("data");
    set_limits(
        &data,
        &[
            ("runtime.workers", "2"),
            ("runtime.lanes", "2"),
            ("runtime.exec_timeout_ms", "1000"),
            ("runtime.max_memory", "16MiB"),
        ],
    );
    let source = table_app();
    // Module-local state lives as long as the module, which is one request.
    let lib = "let count = 0; module.exports = {shared: true, bump() { count++; }, count() { return count; }};";
    // Closes the CommonJS wrapper early to declare at the script's top level.
    let breakout = "}); let fazt_leak_mb = 1; (function () {";
    for app in ["attacker", "bystander"] {
        deploy(
            &data,
            dir.path(),
            app,
            &[
                ("api/main.js", &source),
                ("api/lib.js", lib),
                ("api/breakout.js", breakout),
            ],
        );
    }
    let fazt = Fazt::start(&data, &[]);
    let lanes = 2 * 2;
    // A clean start: nothing visible before anything is planted.
    probe_wave(fazt.addr, lanes, "start");
    let mut wrong = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        let r = fazt.app_get("attacker", &format!("/api?mode=plant&case={i}"));
        let got = (r.status, r.text());
        let fine = match c.expect {
            Took => got == (200, "took".to_string()),
            Refused => got == (200, "refused".to_string()),
            Frozen => {
                got.0 == 500 && (got.1.contains("TypeError") || got.1.contains("ReferenceError"))
            }
            Status(status) => got.0 == status,
        };
        if !fine {
            wrong.push(format!(
                "{:?}: expected {:?}, got {got:?}",
                c.name, c.expect
            ));
        }
        probe_wave(fazt.addr, lanes, c.name);
    }
    assert!(wrong.is_empty(), "plants:\n{}", wrong.join("\n"));
    // Every worker took part.
    for w in fazt.workers() {
        assert!(
            w["served"].as_u64().unwrap_or(0) > CASES.len() as u64,
            "{w}"
        );
    }
}
