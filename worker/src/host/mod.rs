//! The globals app JS sees (SPEC §5), one module per namespace, each with an
//! `install`; [`install_realm`] and [`install_request`] list them.
//!
//! Isolation: a realm is reused by one app's requests (`js::realm`).
//! `respond`, `console` and `fazt` are made once per realm, before its
//! lockdown freezes them, and act for the request its [`Current`] names;
//! `request` and `require` are made for each request. Host functions are
//! made in one place, [`function`], which binds each to a [`Current`] and
//! to this realm's own `Function.prototype`: rquickjs caches the prototype
//! of its Rust function class per *runtime*, so a plain `Function::new`
//! could hand a realm another realm's prototype, and state looked up
//! through the runtime, rather than captured, could let a closure of one
//! realm act for another. A host function called when no request runs
//! throws instead of acting.
//!
//! Errors funnel through [`HostError`]: host bodies return it and
//! [`function`] throws it, so every failure becomes a JS error of this realm
//! with its platform code where it has one.

mod app;
mod console;
mod error;
mod net;
mod request;
mod require;
mod respond;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use fazt_ipc::msg::{HttpResponse, Job, LogRecord};
use fazt_shared::Store;
use rquickjs::class::Class;
use rquickjs::function::{Params, RustFunction};
use rquickjs::{Ctx, Function, Object, Value};

use crate::code::{AppCode, CodeCache};
use crate::js::alloc::AllocState;
use crate::js::clock::Clock;
use crate::js::Services;
use crate::net::NetClient;

pub use error::{HostError, HostResult, OrThrow};
pub use require::compile as compile_file;
pub use respond::response_from_value;

/// Where console output goes (the supervisor's log, or a test's buffer).
pub type LogSink = Arc<dyn Fn(LogRecord) + Send + Sync>;

/// Log lines one request may write; more are dropped (and counted in one
/// final line) so a looping app cannot flood the supervisor's log.
pub const MAX_LOG_LINES: u32 = 200;

/// Everything the host functions of one request need. Shared by the
/// request's host functions (each holds an `Rc`), never looked up through
/// the runtime, and dead once [`Scope::end`] ran.
pub struct Scope {
    /// App row id.
    pub app_id: i64,
    /// App name.
    pub app_name: String,
    /// Request id, for log lines.
    pub request_id: String,
    /// The database (kv).
    pub store: Store,
    /// The lane's JS clock; blocking host calls pause it.
    pub clock: Rc<Clock>,
    /// Console output.
    pub log: LogSink,
    /// Log lines left for this request.
    pub logs_left: Cell<u32>,
    /// Set by `respond()`.
    pub response: RefCell<Option<HttpResponse>>,
    /// The app's code, for `require`.
    pub code: Arc<AppCode>,
    /// The worker's bytecode cache.
    pub cache: Arc<CodeCache>,
    /// The app's kv bounds.
    pub kv: fazt_shared::store::kv::KvQuota,
    /// The lane's heap, for host calls that bring data into it.
    pub memory: Rc<AllocState>,
    /// When the whole request must be over (wall clock).
    pub deadline: Instant,
    /// The way to egress, when this worker has one.
    pub net: Option<NetClient>,
    /// The request's execution ticket, for egress; never given to JS.
    pub ticket: fazt_shared::ticket::Ticket,
    /// False once the request is over.
    live: Cell<bool>,
}

impl Scope {
    /// The scope of `job`, about to run with `code` on a lane with `clock`
    /// and `memory`, until `deadline`.
    pub fn new(
        job: &Job,
        code: Arc<AppCode>,
        services: &Services,
        clock: Rc<Clock>,
        memory: Rc<AllocState>,
        deadline: Instant,
    ) -> Rc<Scope> {
        Rc::new(Scope {
            app_id: job.app.id,
            app_name: job.app.name.clone(),
            request_id: job.request_id.clone(),
            store: services.store.clone(),
            clock,
            log: services.log.clone(),
            logs_left: Cell::new(MAX_LOG_LINES),
            response: RefCell::new(None),
            code,
            cache: services.cache.clone(),
            kv: services.kv,
            memory,
            deadline,
            net: services.net.clone(),
            ticket: job.ticket.clone(),
            live: Cell::new(true),
        })
    }

    /// Ends the request: from now on every host function bound to this
    /// scope throws instead of acting.
    pub fn end(&self) {
        self.live.set(false);
    }

    /// Whether the request is still running.
    pub fn is_live(&self) -> bool {
        self.live.get()
    }
}

/// The arguments of a host call; a missing argument reads as `undefined`.
pub struct Args<'js> {
    ctx: Ctx<'js>,
    this: Value<'js>,
    values: Vec<Value<'js>>,
}

impl<'js> Args<'js> {
    /// Argument `i`, or `undefined`.
    pub fn get(&self, i: usize) -> Value<'js> {
        self.values
            .get(i)
            .cloned()
            .unwrap_or_else(|| Value::new_undefined(self.ctx.clone()))
    }

    /// Argument `i` unless it is missing, `undefined` or `null`.
    pub fn given(&self, i: usize) -> Option<Value<'js>> {
        self.values
            .get(i)
            .filter(|v| !v.is_undefined() && !v.is_null())
            .cloned()
    }

    /// Every argument.
    pub fn all(&self) -> &[Value<'js>] {
        &self.values
    }

    /// The `this` of the call (a method's object).
    pub fn this(&self) -> Value<'js> {
        self.this.clone()
    }
}

/// The body of a host function: its request's scope and the call's arguments.
pub type HostFn = for<'js> fn(&Ctx<'js>, &Rc<Scope>, Args<'js>) -> HostResult<Value<'js>>;

/// The request a realm is running, if any: host functions are made once
/// per realm and act for the request named here, and throw between
/// requests. Never looked up through the runtime, only captured.
#[derive(Clone, Default)]
pub struct Current(Rc<RefCell<Option<Rc<Scope>>>>);

impl Current {
    /// Naming `scope` for good, for host functions that belong to one request.
    pub fn of(scope: &Rc<Scope>) -> Current {
        Current(Rc::new(RefCell::new(Some(scope.clone()))))
    }

    /// Names the running request, or none.
    pub fn set(&self, scope: Option<Rc<Scope>>) {
        *self.0.borrow_mut() = scope;
    }

    fn live(&self) -> Option<Rc<Scope>> {
        self.0.borrow().as_ref().filter(|s| s.is_live()).cloned()
    }
}

/// Makes a host function of this realm that acts for the request `current`
/// names. The only way host functions are made (see the module docs for
/// why). They have no `name`: setting one costs about 3% of a hello request.
pub fn function<'js>(
    ctx: &Ctx<'js>,
    current: &Current,
    length: usize,
    body: HostFn,
) -> rquickjs::Result<Function<'js>> {
    let current = current.clone();
    let call = move |params: Params<'_, 'js>| -> rquickjs::Result<Value<'js>> {
        let ctx = params.ctx().clone();
        let Some(scope) = current.live() else {
            return Err(HostError::Ended.throw(&ctx));
        };
        let args = Args {
            values: (0..params.len()).filter_map(|i| params.arg(i)).collect(),
            this: params.this(),
            ctx: ctx.clone(),
        };
        body(&ctx, &scope, args).or_throw(&ctx)
    };
    // `instance_proto` rather than `Function::new`: the prototype is this
    // realm's, never the one rquickjs cached for the runtime.
    let object = Class::instance_proto(
        RustFunction(Box::new(call)),
        Function::prototype(ctx.clone()),
    )?
    .into_inner();
    Function::from_value(object.into_value())?.with_length(length)
}

/// Sets `obj[name]` to a host function acting for `current`'s request.
pub fn set_function<'js>(
    ctx: &Ctx<'js>,
    obj: &Object<'js>,
    current: &Current,
    name: &str,
    length: usize,
    body: HostFn,
) -> rquickjs::Result<()> {
    obj.set(name, function(ctx, current, length, body)?)
}

/// The global names whose values are made anew for each request (SPEC
/// §5): the request's data and its module cache. The realm's global object
/// has them as its only settable properties.
pub const GLOBALS: [&str; 2] = ["request", "require"];

/// Installs the host globals made once per realm, before its lockdown
/// freezes them: `respond`, `console` and `fazt` (with the app's `id` and
/// `name`), acting for whatever request `current` names. Returns the
/// function that makes each request's `require`.
pub fn install_realm<'js>(
    ctx: &Ctx<'js>,
    globals: &Object<'js>,
    current: &Current,
    app_id: i64,
    app_name: &str,
) -> rquickjs::Result<Function<'js>> {
    respond::install(ctx, globals, current)?;
    console::install(ctx, globals, current)?;
    let fazt = Object::new(ctx.clone())?;
    app::install(ctx, &fazt, current, app_id, app_name)?;
    net::install(ctx, &fazt, current)?;
    globals.set("fazt", fazt)?;
    require::new_require(ctx, current)
}

/// Makes the per-request globals ([`GLOBALS`]) as properties of `hosts`:
/// `request` from `request`, and a `require` with an empty module cache
/// from `new_require` (what [`install_realm`] returned).
pub fn install_request<'js>(
    ctx: &Ctx<'js>,
    hosts: &Object<'js>,
    request: &fazt_ipc::msg::HttpRequest,
    new_require: &Function<'js>,
) -> rquickjs::Result<()> {
    request::install(ctx, hosts, request)?;
    let require: Function = new_require.call(())?;
    hosts.set("require", require)
}

/// Length of a JS string in UTF-16 units, read without copying it, so a
/// limit can refuse a huge string before Rust allocates for it. Anything
/// that is not a string counts as `usize::MAX`.
pub fn js_string_len<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> usize {
    if !v.is_string() {
        return usize::MAX;
    }
    // SAFETY: reading `length` of a live string value returns a new owned
    // JSValue, which `Value::from_raw` takes over and frees; strings' length
    // is a plain data property, so nothing runs and nothing throws.
    let len = unsafe {
        Value::from_raw(
            ctx.clone(),
            rquickjs::qjs::JS_GetPropertyStr(ctx.as_raw().as_ptr(), v.as_raw(), c"length".as_ptr()),
        )
    };
    len.as_int()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX)
}

/// Defines `obj[key] = value` as an own data property, the way object
/// literals do: a key such as `__proto__` or `constructor` becomes a plain
/// property instead of reaching `Object.prototype`.
pub fn define<'js, V: rquickjs::IntoJs<'js>>(
    obj: &Object<'js>,
    key: &str,
    value: V,
) -> rquickjs::Result<()> {
    obj.prop(
        key,
        rquickjs::object::Property::from(value)
            .writable()
            .enumerable()
            .configurable(),
    )
}

/// The string in `v`, or a `TypeError` naming the argument.
pub fn arg_string(v: &Value<'_>, what: &str) -> HostResult<String> {
    match v.as_string() {
        Some(s) => Ok(s.to_string()?),
        None => Err(HostError::Type(format!("{what} must be a string"))),
    }
}

/// `undefined`, the result of host functions that return nothing.
pub fn undefined<'js>(ctx: &Ctx<'js>) -> Value<'js> {
    Value::new_undefined(ctx.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fazt_shared::DataDir;
    use rquickjs::{Context, Runtime};

    struct Fixture {
        _dir: tempfile::TempDir,
        services: Services,
        job: Job,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&DataDir::new(dir.path()), 2).expect("store");
        let deployed = fazt_shared::store::apps::deploy(
            &mut store.conn().expect("conn"),
            &fazt_shared::AppName::parse("a").expect("name"),
            &[fazt_shared::store::apps::NewFile {
                path: fazt_shared::FilePath::parse("index.html").expect("path"),
                content: b"x".to_vec(),
            }],
            &fazt_shared::store::apps::SizeLimits {
                max_file_size: 1 << 20,
                max_site_size: 1 << 20,
                max_vfs: 1 << 20,
            },
        )
        .expect("deploy");
        let job = crate::testing::job(1, deployed.id);
        Fixture {
            _dir: dir,
            services: Services {
                store,
                kv: fazt_shared::store::kv::KvQuota {
                    max_bytes: 1 << 20,
                    max_keys: 100,
                    max_value: 1 << 16,
                },
                cache: Arc::new(CodeCache::default()),
                log: Arc::new(|_| {}),
                net: None,
            },
            job,
        }
    }

    fn scope(f: &Fixture) -> Rc<Scope> {
        Scope::new(
            &f.job,
            Arc::new(AppCode::new(1, vec![])),
            &f.services,
            Rc::new(Clock::default()),
            AllocState::new(1 << 30),
            Instant::now() + std::time::Duration::from_secs(10),
        )
    }

    /// Every host global, acting for `scope` until it ends.
    fn install<'js>(ctx: &Ctx<'js>, scope: &Rc<Scope>, f: &Fixture) {
        let current = Current::default();
        current.set(Some(scope.clone()));
        let globals = ctx.globals();
        let new_require = install_realm(ctx, &globals, &current, f.job.app.id, "a").expect("realm");
        install_request(ctx, &globals, &f.job.request, &new_require).expect("request");
    }

    #[test]
    fn a_host_function_kept_past_its_request_throws_instead_of_acting() {
        let f = fixture();
        let rt = Runtime::new().expect("runtime");
        let context = Context::full(&rt).expect("context");
        context.with(|ctx| {
            let scope = scope(&f);
            install(&ctx, &scope, &f);
            // Kept where a leftover job or finaliser could find them.
            ctx.eval::<(), _>("globalThis.kept = [fazt.app.kv.set, respond, console.log, require]; kept[0]('k', 1);")
                .expect("live call");
            scope.end();
            for (i, call) in ["kept[0]('k', 2)", "kept[1](299)", "kept[2]('x')", "kept[3]('./x.js')"]
                .iter()
                .enumerate()
            {
                let result = ctx.eval::<(), _>(*call);
                assert!(result.is_err(), "call {i} acted after the request ended");
                let thrown = ctx.catch();
                let message = thrown
                    .as_exception()
                    .and_then(|e| e.message())
                    .unwrap_or_default();
                assert!(message.contains("after its request ended"), "{call}: {message}");
            }
            assert!(scope.response.borrow().is_none(), "respond acted");
        });
        let conn = f.services.store.conn().expect("conn");
        let value = fazt_shared::store::kv::get(&conn, f.job.app.id, "k").expect("kv");
        assert_eq!(
            value.as_deref(),
            Some("1"),
            "kv.set acted after the request ended"
        );
    }

    #[test]
    fn host_functions_take_the_prototypes_of_their_own_realm() {
        let f = fixture();
        let rt = Runtime::new().expect("runtime");
        // The first realm primes whatever rquickjs caches per runtime.
        for round in 0..3 {
            let context = Context::full(&rt).expect("context");
            context.with(|ctx| {
                install(&ctx, &scope(&f), &f);
                let own: bool = ctx
                    .eval(
                        "[fazt.app.kv.get, respond, console.log, require].every((fn) => \
                         Object.getPrototypeOf(fn) === Function.prototype && \
                         fn.constructor('return this')() === globalThis)",
                    )
                    .expect("eval");
                assert!(own, "realm {round}: a host function of another realm");
            });
        }
    }
}
