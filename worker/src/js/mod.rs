//! The JS engine of one lane: a cache of locked-down realms, one per app
//! ([`realm`]), and [`Engine::run`], which runs one request in its app's
//! realm and always returns an [`Outcome`], never an error or a panic.
//!
//! Memory: `runtime.max_memory` bounds the running request's realm. Idle
//! realms may hold up to half as much again ([`IDLE_SHARE`]; least recently
//! used dropped first; with the default 50 MiB that is about 60 realms),
//! and a realm that stays well above its size after lockdown is dropped.
//!
//! Limits (SPEC §5): the counting allocator's refusal means `JS_MEMORY`; the
//! clock's interrupt means `JS_TIMEOUT` (JS time) or `REQUEST_TIMEOUT` (wall
//! clock). Either way, and whenever a request leaves promise jobs queued or
//! the realm's global unfit for reuse, the realm is dropped and the app's
//! next request on this lane gets a new one (CRATES.md: a runtime reused
//! after an OOM loses its GC).

pub mod alloc;
pub mod bytecode;
pub mod clock;
mod lockdown;
pub mod realm;

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fazt_ipc::msg::{Job, Outcome};
use fazt_shared::{ErrorCode, Store};
use lru::LruCache;
use rquickjs::{Ctx, Object, Value};

use crate::code::{CodeCache, Kind};
use crate::host::{self, LogSink, OrThrow, Scope};
use clock::{Clock, Stop};
use realm::Realm;

/// Native stack of a lane thread.
pub const LANE_STACK: usize = 8 * 1024 * 1024;

/// Codes a JS error object may carry through to the HTTP answer; any other
/// uncaught error is `JS_ERROR`. Not `INTERNAL`: JS can set any `code`, and
/// an internal error is logged loudly as fazt's own fault.
const KEPT_CODES: &[ErrorCode] = &[
    ErrorCode::DbBusy,
    ErrorCode::KvQuota,
    ErrorCode::NetBlocked,
    ErrorCode::NetTimeout,
    ErrorCode::NetLimit,
    ErrorCode::NetBudget,
    ErrorCode::NetSize,
    ErrorCode::NetError,
    ErrorCode::NetAuth,
    ErrorCode::NetRate,
];

/// Limits of one lane.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Heap bound of the runtime (`runtime.max_memory`).
    pub max_memory: usize,
    /// JS time per request (`runtime.exec_timeout_ms`).
    pub exec_timeout: Duration,
    /// Promise jobs one request may run ([`MAX_JOBS`] outside tests).
    pub max_jobs: usize,
    /// Most realms the lane keeps, one per app, least recently used dropped
    /// first (besides the memory bound).
    pub realms: usize,
}

/// What a lane shares with its worker.
#[derive(Clone)]
pub struct Services {
    /// The database.
    pub store: Store,
    /// Each app's kv bounds.
    pub kv: fazt_shared::store::kv::KvQuota,
    /// Bundles and bytecode.
    pub cache: Arc<CodeCache>,
    /// Where console output goes.
    pub log: LogSink,
    /// The way to egress (`fazt.net.fetch`); `None` where there is none.
    pub net: Option<crate::net::NetClient>,
}

/// Where the last request's time went, for the engine benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// Finding or building the realm, making the request's host objects and
    /// setting them on the global.
    pub setup: Duration,
    /// Running the app's code, its promise jobs and reading the response.
    pub code: Duration,
    /// Clearing the host globals, deciding on reuse, collecting garbage.
    pub teardown: Duration,
}

/// One lane's engine.
pub struct Engine {
    limits: EngineLimits,
    clock: Rc<Clock>,
    realms: LruCache<i64, Realm>,
    heap: Cell<usize>,
    built: Cell<u64>,
    phases: Phases,
}

impl Engine {
    /// An engine; a realm is built for an app on its first request here.
    pub fn new(limits: EngineLimits) -> Engine {
        let keep = NonZeroUsize::new(limits.realms).unwrap_or(NonZeroUsize::MIN);
        Engine {
            limits,
            clock: Rc::new(Clock::default()),
            realms: LruCache::new(keep),
            heap: Cell::new(0),
            built: Cell::new(0),
            phases: Phases::default(),
        }
    }

    /// Where the last request's time went.
    pub fn last_phases(&self) -> Phases {
        self.phases
    }

    /// Bytes the lane's realms hold after the last request.
    pub fn heap_bytes(&self) -> usize {
        self.heap.get()
    }

    /// Realms built so far.
    pub fn realms_built(&self) -> u64 {
        self.built.get()
    }

    /// Whether this lane holds a realm for app `app_id`.
    pub fn holds(&self, app_id: i64) -> bool {
        self.realms.contains(&app_id)
    }

    /// Realms kept now.
    pub fn realms_kept(&self) -> usize {
        self.realms.len()
    }

    /// Drops least recently used realms until the idle ones hold at most
    /// `budget` bytes; the bytes they hold then.
    fn keep_idle_within(&mut self, budget: usize) -> usize {
        let mut held: usize = self.realms.iter().map(|(_, r)| r.heap_bytes()).sum();
        while held > budget {
            let Some((_, dropped)) = self.realms.pop_lru() else {
                break;
            };
            held = held.saturating_sub(dropped.heap_bytes());
        }
        held
    }

    /// Runs one request to an outcome. `deadline` bounds it in wall-clock time.
    pub fn run(&mut self, job: &Job, services: &Services, deadline: Instant) -> Outcome {
        let code = match services
            .cache
            .bundle(&services.store, job.app.id, job.app.version)
        {
            Ok(Some(code)) => code,
            Ok(None) => {
                self.realms.pop(&job.app.id);
                return error(ErrorCode::NotFound, "the app was removed");
            }
            Err(e) => {
                if e.code() == ErrorCode::Internal {
                    tracing::warn!(app = %job.app.name, error = %e, "loading app code failed");
                }
                return error(e.code(), e.public_message());
            }
        };
        let Some(main) = code.file("api/main.js") else {
            return error(ErrorCode::NotFound, "this app has no api/main.js");
        };
        let limits = self.limits;
        let clock = self.clock.clone();
        let started = Instant::now();
        if started >= deadline {
            // Waited out its time in the queue: answered without running,
            // and without costing the realm the interrupt would.
            return error(ErrorCode::RequestTimeout, REQUEST_TIMEOUT);
        }
        // Taken out while it runs: a realm that must not be reused is simply
        // not put back.
        let realm = match self.realms.pop(&job.app.id) {
            Some(realm) => realm,
            None => match Realm::build(limits.max_memory, &clock, job.app.id, &job.app.name) {
                Ok(realm) => {
                    self.built.set(self.built.get() + 1);
                    realm
                }
                Err(e) => return internal(&e.to_string()),
            },
        };
        realm.alloc().clear_refused();
        let scope = Scope::new(
            job,
            code.clone(),
            services,
            clock.clone(),
            realm.alloc().clone(),
            deadline,
        );
        realm.current().set(Some(scope.clone()));
        clock.start(limits.exec_timeout, deadline);
        let mut marks = Marks::default();
        let (outcome, reusable) = realm
            .context()
            .with(|ctx| run_in(&ctx, &realm, &scope, main, job, limits.max_jobs, &mut marks));
        let stopped = clock.stopped();
        clock.disarm();
        // From here on, a host function of this request that JS kept
        // somewhere throws instead of acting.
        scope.end();
        realm.current().set(None);
        let out_of_memory = realm.alloc().refused();
        let jobs_left = realm.jobs_pending();
        if jobs_left {
            tracing::warn!(app = %job.app.name, request_id = %job.request_id, "promise jobs left after a request; JS realm dropped");
        }
        if reusable && !out_of_memory && !jobs_left && stopped.is_none() && realm.collect_if_grown()
        {
            self.realms.put(job.app.id, realm);
        } else {
            // Context and runtime go together; the next request gets a new one.
            drop(realm);
        }
        // The cache only grows by the put above, so this is the one place
        // it is trimmed.
        let held = self.keep_idle_within(limits.max_memory / IDLE_SHARE);
        self.heap.set(held);
        let ended = Instant::now();
        let code_started = marks.code.unwrap_or(ended);
        let code_ended = marks.done.unwrap_or(code_started).max(code_started);
        self.phases = Phases {
            setup: code_started.saturating_duration_since(started),
            code: code_ended.saturating_duration_since(code_started),
            teardown: ended.saturating_duration_since(code_ended),
        };
        if out_of_memory {
            return error(
                ErrorCode::JsMemory,
                &format!(
                    "the app used more than its memory limit (runtime.max_memory = {})",
                    fazt_shared::units::format_bytes(limits.max_memory as u64)
                ),
            );
        }
        outcome
    }
}

/// What a request past its wall-clock deadline is told.
const REQUEST_TIMEOUT: &str = "the request took longer than capacity.timeout_ms";

/// Most realms a lane keeps (one per app), whatever their size: a lane
/// serves the apps of its recent requests without building a realm (about
/// 1.3 ms and 380 KiB each).
pub const REALMS_PER_LANE: usize = 64;

/// Idle realms of a lane hold at most `runtime.max_memory / IDLE_SHARE`
/// bytes, besides the running request's realm, whose bound does not depend
/// on them (a bound that did would tell an app about its neighbours). Half:
/// on a server with many apps busy at once, a lane that cannot keep a realm
/// for each rebuilds one (1.3 ms) on almost every request.
pub const IDLE_SHARE: usize = 2;

/// Promise jobs one request may run: a backstop behind the JS clock, which
/// bounds them too. Hitting it is an error, never a quiet success.
pub const MAX_JOBS: usize = 1_000_000;

/// When a request's code started and its outcome was known.
#[derive(Default)]
struct Marks {
    code: Option<Instant>,
    done: Option<Instant>,
}

/// Everything that happens inside the request's realm; also says whether
/// the realm is fit for the next request.
fn run_in<'js>(
    ctx: &Ctx<'js>,
    realm: &Realm,
    scope: &Rc<Scope>,
    main: &fazt_shared::store::apps::SourceFile,
    job: &Job,
    max_jobs: usize,
    marks: &mut Marks,
) -> (Outcome, bool) {
    let clock = scope.clock.clone();
    let result = (|| -> rquickjs::Result<Outcome> {
        let hosts = Object::new(ctx.clone())?;
        host::install_request(ctx, &hosts, &job.request, &realm.new_require(ctx)?)?;
        realm.set_hosts(ctx, Some(&hosts))?;
        let code = scope.cache.compiled(main, Kind::Main, || {
            host::compile_file(ctx, main, Kind::Main)
        })?;
        marks.code = Some(Instant::now());
        let value: Value = bytecode::run(ctx, &code)?;
        // Promise callbacks (`.then`, `await`) run now, as part of the
        // request, while the clock still counts.
        let drained = drain_jobs(ctx, max_jobs);
        if clock.stopped().is_some() {
            // A job ran out of time; its exception was consumed by the queue.
            return Err(rquickjs::Error::Exception);
        }
        if !drained {
            return Err(host::HostError::Message(format!(
                "the script queued more than {max_jobs} promise jobs"
            ))
            .throw(ctx));
        }
        let value = settle(ctx, value)?;
        let responded = scope.response.borrow_mut().take();
        let response = match responded {
            Some(r) => r,
            None => host::response_from_value(ctx, value).or_throw(ctx)?,
        };
        Ok(Outcome::Response(response))
    })();
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => classify(ctx, e, clock.stopped()),
    };
    marks.done = Some(Instant::now());
    // Jobs left by a failed request must not run in the next one (any left
    // past the cap make the engine drop the realm); neither may an
    // exception it left pending.
    let _ = drain_jobs(ctx, max_jobs);
    let _ = ctx.catch();
    // The host objects go with the request; a global the request made
    // impossible to clear means the realm is not reused.
    let cleared = realm.set_hosts(ctx, None).is_ok();
    let _ = ctx.catch();
    (outcome, cleared)
}

/// Runs queued promise jobs; `false` when `max` ran and more wait.
fn drain_jobs(ctx: &Ctx<'_>, max: usize) -> bool {
    let mut ran = 0;
    while ctx.execute_pending_job() {
        ran += 1;
        if ran >= max {
            return false;
        }
    }
    true
}

/// A promise completion value stands for its result once the jobs ran.
fn settle<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> rquickjs::Result<Value<'js>> {
    let Some(promise) = value.as_promise() else {
        return Ok(value);
    };
    match promise.result::<Value>() {
        Some(result) => result,
        None => Err(host::HostError::Message(
            "the script's promise never settled (fazt runs promise jobs until none is left)".into(),
        )
        .throw(ctx)),
    }
}

/// Turns a failed run into the error the client sees (SPEC §5). Memory is
/// decided by the caller from the allocator; here: the clock, then the
/// exception's own `code`, else `JS_ERROR`. No stack, no host path.
fn classify(ctx: &Ctx<'_>, err: rquickjs::Error, stop: Option<Stop>) -> Outcome {
    match stop {
        Some(Stop::JsTime) => {
            return error(
                ErrorCode::JsTimeout,
                "the app ran longer than its JS time limit (runtime.exec_timeout_ms)",
            )
        }
        Some(Stop::Wall) => return error(ErrorCode::RequestTimeout, REQUEST_TIMEOUT),
        None => {}
    }
    if !matches!(err, rquickjs::Error::Exception) {
        return error(ErrorCode::JsError, &err.to_string());
    }
    let thrown = ctx.catch();
    if let Some(exception) = thrown.as_exception() {
        let message = exception.message().unwrap_or_default();
        let name: String = exception.get("name").unwrap_or_else(|_| "Error".into());
        let code = exception
            .get::<_, Option<String>>("code")
            .ok()
            .flatten()
            .and_then(|c| KEPT_CODES.iter().copied().find(|k| k.as_str() == c));
        return match code {
            Some(code) => error(code, &message),
            None if name == "Error" || name.is_empty() => error(ErrorCode::JsError, &message),
            None => error(ErrorCode::JsError, &format!("{name}: {message}")),
        };
    }
    // `throw "text"` or another non-Error value.
    let shown = rquickjs::convert::Coerced::<String>::from_js(ctx, thrown)
        .map(|c| c.0)
        .unwrap_or_else(|_| "uncaught exception".into());
    let _ = ctx.catch();
    error(ErrorCode::JsError, &shown)
}

use rquickjs::FromJs;

fn error(code: ErrorCode, message: &str) -> Outcome {
    Outcome::Error {
        code,
        message: message.to_string(),
    }
}

fn internal(message: &str) -> Outcome {
    error(ErrorCode::Internal, message)
}
