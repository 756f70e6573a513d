//! The JS engine of one lane: a QuickJS runtime with a memory limit and an
//! interrupt handler, and [`Engine::run`], which runs one request in a fresh
//! context and always returns an [`Outcome`], never an error or a panic.
//!
//! Limits (SPEC §5): the counting allocator's refusal means `JS_MEMORY` and
//! the runtime is rebuilt (CRATES.md: a runtime reused after an OOM loses its
//! GC and may abort the process on drop); the clock's interrupt means
//! `JS_TIMEOUT` (JS time) or `REQUEST_TIMEOUT` (wall clock) and the runtime
//! lives on.

pub mod alloc;
pub mod bytecode;
pub mod clock;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fazt_ipc::msg::{Job, Outcome};
use fazt_shared::{ErrorCode, Store};
use rquickjs::context::intrinsic;
use rquickjs::{Context, Ctx, Runtime, Value};

use crate::code::{CodeCache, Kind};
use crate::host::{self, LogSink, OrThrow, Scope};
use alloc::{AllocState, CountingAllocator};
use clock::{Clock, Stop};

/// The intrinsics a request realm gets: the language, without
/// - `Performance` (a timing side channel) and DOM exceptions;
/// - `WeakRef` and `FinalizationRegistry`: a finaliser is JS that the
///   collector runs whenever it collects, which may be during a later
///   request of another app. Request scripts are short; they do not need them.
type Intrinsics = (
    intrinsic::Date,
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::Proxy,
    intrinsic::MapSet,
    intrinsic::TypedArrays,
    intrinsic::Promise,
);

/// QuickJS's own stack bound; lane threads get [`LANE_STACK`], well above it,
/// so deep recursion is a catchable `RangeError`, never a native overflow.
const JS_STACK: usize = 1024 * 1024;
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

struct LaneRuntime {
    rt: Runtime,
    alloc: Rc<AllocState>,
}

/// One lane's engine.
pub struct Engine {
    limits: EngineLimits,
    clock: Rc<Clock>,
    runtime: Option<LaneRuntime>,
    heap: Cell<usize>,
    rebuilt: Cell<u64>,
}

impl Engine {
    /// An engine; its runtime is built on first use and after every OOM.
    pub fn new(limits: EngineLimits) -> Engine {
        Engine {
            limits,
            clock: Rc::new(Clock::default()),
            runtime: None,
            heap: Cell::new(0),
            rebuilt: Cell::new(0),
        }
    }

    /// Bytes the runtime holds after the last request.
    pub fn heap_bytes(&self) -> usize {
        self.heap.get()
    }

    /// Runtimes built so far (one, plus one per out-of-memory).
    pub fn runtimes_built(&self) -> u64 {
        self.rebuilt.get()
    }

    fn runtime(&mut self) -> Result<&LaneRuntime, Outcome> {
        if self
            .runtime
            .as_ref()
            .is_some_and(|lane| lane.rt.is_job_pending())
        {
            // Never happens by design (nothing can queue a job between
            // requests); if it did, the job would run inside this request.
            tracing::error!("JS jobs queued between requests; JS runtime rebuilt");
            self.runtime = None;
        }
        if self.runtime.is_none() {
            let alloc = AllocState::new(self.limits.max_memory);
            let rt = Runtime::new_with_alloc(CountingAllocator(alloc.clone()))
                .map_err(|e| internal(&format!("cannot create a JS runtime: {e}")))?;
            rt.set_max_stack_size(JS_STACK);
            let clock = self.clock.clone();
            rt.set_interrupt_handler(Some(Box::new(move || clock.should_interrupt())));
            self.rebuilt.set(self.rebuilt.get() + 1);
            self.runtime = Some(LaneRuntime { rt, alloc });
        }
        self.runtime
            .as_ref()
            .ok_or_else(|| internal("JS runtime missing"))
    }

    /// Runs one request to an outcome. `deadline` bounds it in wall-clock time.
    pub fn run(&mut self, job: &Job, services: &Services, deadline: Instant) -> Outcome {
        let code = match services
            .cache
            .bundle(&services.store, job.app.id, job.app.version)
        {
            Ok(Some(code)) => code,
            Ok(None) => return error(ErrorCode::NotFound, "the app was removed"),
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
        let (outcome, out_of_memory, jobs_left) = {
            let lane = match self.runtime() {
                Ok(lane) => lane,
                Err(outcome) => return outcome,
            };
            lane.alloc.clear_refused();
            let scope = Scope::new(
                job,
                code.clone(),
                services,
                clock.clone(),
                lane.alloc.clone(),
                deadline,
            );
            let outcome = match Context::custom::<Intrinsics>(&lane.rt) {
                Ok(context) => {
                    clock.start(limits.exec_timeout, deadline);
                    let outcome =
                        context.with(|ctx| run_in(&ctx, &scope, main, job, limits.max_jobs));
                    clock.disarm();
                    // From here on, a host function of this request that JS
                    // kept somewhere throws instead of acting.
                    scope.end();
                    drop(context);
                    outcome
                }
                Err(e) => internal(&format!("cannot create a JS context: {e}")),
            };
            (outcome, lane.alloc.refused(), lane.rt.is_job_pending())
        };
        if jobs_left {
            // A runtime still holding jobs would run them in a later request.
            tracing::warn!(app = %job.app.name, "promise jobs left after a request; JS runtime rebuilt");
            self.runtime = None;
        }
        if out_of_memory {
            // Drop context and runtime together; the next request gets a new one.
            self.runtime = None;
            self.heap.set(0);
            return error(
                ErrorCode::JsMemory,
                &format!(
                    "the app used more than its memory limit (runtime.max_memory = {})",
                    fazt_shared::units::format_bytes(limits.max_memory as u64)
                ),
            );
        }
        if let Some(lane) = &self.runtime {
            self.heap.set(lane.alloc.used());
        }
        outcome
    }
}

/// Promise jobs one request may run: a backstop behind the JS clock, which
/// bounds them too. Hitting it is an error, never a quiet success.
pub const MAX_JOBS: usize = 1_000_000;

/// Everything that happens inside the request's realm.
fn run_in<'js>(
    ctx: &Ctx<'js>,
    scope: &Rc<Scope>,
    main: &fazt_shared::store::apps::SourceFile,
    job: &Job,
    max_jobs: usize,
) -> Outcome {
    let clock = scope.clock.clone();
    let result = (|| -> rquickjs::Result<Outcome> {
        host::install_all(ctx, scope, &job.request)?;
        let code = scope.cache.compiled(main, Kind::Main, || {
            host::compile_file(ctx, main, Kind::Main)
        })?;
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
    // Jobs left by a failed request must not run in the next one (any left
    // past the cap make the engine rebuild the runtime); neither may an
    // exception it left pending.
    let _ = drain_jobs(ctx, max_jobs);
    let _ = ctx.catch();
    outcome
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
        Some(Stop::Wall) => {
            return error(
                ErrorCode::RequestTimeout,
                "the request took longer than capacity.timeout_ms",
            )
        }
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
