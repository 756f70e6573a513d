//! A realm: one QuickJS runtime with one context, built for one app on one
//! lane, locked down once (`lockdown.rs`) and then reused by that app's
//! requests on that lane. Building and freeing a context is most of what a
//! request used to cost; reuse is safe because a locked-down realm has
//! nothing a request can write into that outlives it (SPEC §5):
//! - every intrinsic and everything reachable from the global object is
//!   frozen, and the global object is sealed;
//! - app code is compiled as strict eval code ([`super::bytecode`]), so its
//!   top-level declarations die with the run;
//! - `respond`, `console` and `fazt` are made with the realm and frozen
//!   with it, acting for the request its `Current` names; `request` and
//!   `require` (with its module cache) are made for each request, set on
//!   the global before it runs and cleared after.
//!
//! One runtime per realm, not per lane: two apps never share a heap, a job
//! queue, an atom table or a memory limit, and dropping a realm (after
//! `JS_MEMORY`, a timeout, leftover jobs or a global a request made
//! undefinable) frees exactly one app's state.

use std::rc::Rc;

use rquickjs::context::intrinsic;
use rquickjs::{Context, Ctx, Function, Object, Persistent, Runtime, Value};

use super::alloc::{AllocState, CountingAllocator};
use super::clock::Clock;
use crate::host::{self, Current};

/// The intrinsics a realm gets: the language, without
/// - `Performance` (a timing side channel) and DOM exceptions;
/// - `WeakRef` and `FinalizationRegistry`: a finaliser is JS that the
///   collector runs whenever it collects, which may be during a later
///   request. Request scripts are short; they do not need them.
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

/// QuickJS's own stack bound; lane threads get [`super::LANE_STACK`], well
/// above it, so deep recursion is a catchable `RangeError`, never a native
/// overflow.
const JS_STACK: usize = 1024 * 1024;

/// Garbage a kept realm may hold past its size after lockdown before the
/// engine collects it, between requests (most garbage is freed at once by
/// reference counting; this bounds the cycles left behind, and so the size
/// of an idle realm: about 380 KiB plus this).
const GC_SLACK: usize = 128 * 1024;

/// Growth past its size after lockdown that a realm may keep between
/// requests and still be reused.
const MAX_GROWTH: usize = 2 * 1024 * 1024;

/// A locked-down realm of one app.
pub struct Realm {
    // Field order is drop order: the persistent function before its
    // context, the context before its runtime.
    new_require: Persistent<Function<'static>>,
    current: Current,
    context: Context,
    rt: Runtime,
    alloc: Rc<AllocState>,
    baseline: usize,
}

/// Why a realm could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// QuickJS refused to make the runtime or context.
    #[error("cannot create a JS realm: {0}")]
    Engine(#[from] rquickjs::Error),
    /// `lockdown.js` threw.
    #[error("the JS realm's lockdown failed: {0}")]
    Lockdown(String),
}

impl Realm {
    /// A new realm for app `app_id` named `app_name`, with a heap bound of
    /// `max_memory`, interrupted by `clock`.
    pub fn build(
        max_memory: usize,
        clock: &Rc<Clock>,
        app_id: i64,
        app_name: &str,
    ) -> Result<Realm, BuildError> {
        let alloc = AllocState::new(max_memory);
        let rt = Runtime::new_with_alloc(CountingAllocator(alloc.clone()))?;
        rt.set_max_stack_size(JS_STACK);
        let clock = clock.clone();
        rt.set_interrupt_handler(Some(Box::new(move || clock.should_interrupt())));
        let context = Context::custom::<Intrinsics>(&rt)?;
        let current = Current::default();
        let new_require = context.with(|ctx| {
            let run = || -> rquickjs::Result<Persistent<Function<'static>>> {
                // Made before the lockdown, which freezes them with the
                // intrinsics; `new_require` only the engine holds.
                let new_require =
                    host::install_realm(&ctx, &ctx.globals(), &current, app_id, app_name)?;
                super::lockdown::run(&ctx, &host::GLOBALS)?;
                Ok(Persistent::save(&ctx, new_require))
            };
            run().map_err(|e| {
                let thrown = ctx.catch();
                let shown = thrown
                    .as_exception()
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| e.to_string());
                BuildError::Lockdown(shown)
            })
        })?;
        if rt.is_job_pending() {
            return Err(BuildError::Lockdown("lockdown left promise jobs".into()));
        }
        let baseline = alloc.used();
        Ok(Realm {
            new_require,
            current,
            context,
            rt,
            alloc,
            baseline,
        })
    }

    /// The realm's context, to run a request in.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The realm's allocations.
    pub fn alloc(&self) -> &Rc<AllocState> {
        &self.alloc
    }

    /// Bytes the realm holds now.
    pub fn heap_bytes(&self) -> usize {
        self.alloc.used()
    }

    /// Whether promise jobs wait in the realm's queue.
    pub fn jobs_pending(&self) -> bool {
        self.rt.is_job_pending()
    }

    /// The function that makes a request's `require` (`host::require`).
    pub fn new_require<'js>(&self, ctx: &Ctx<'js>) -> rquickjs::Result<Function<'js>> {
        self.new_require.clone().restore(ctx)
    }

    /// Which request the realm's host functions act for.
    pub fn current(&self) -> &Current {
        &self.current
    }

    /// Sets the host names on the global object to the properties of
    /// `hosts`, or clears them with `None`. An error means a request left
    /// the global unfit for reuse (a name deleted from the sealed global, or
    /// made non-configurable); the caller drops the realm.
    pub fn set_hosts<'js>(
        &self,
        ctx: &Ctx<'js>,
        hosts: Option<&Object<'js>>,
    ) -> rquickjs::Result<()> {
        let globals = ctx.globals();
        for name in host::GLOBALS {
            let value = match hosts {
                Some(h) => h.get::<_, Value>(name)?,
                None => Value::new_undefined(ctx.clone()),
            };
            host::define(&globals, name, value)?;
        }
        Ok(())
    }

    /// Collects the cycles requests left, when they are more than
    /// `GC_SLACK`; called between requests, outside the context. `false`
    /// when the realm stays more than `MAX_GROWTH` above its size after
    /// lockdown (QuickJS's atom and shape tables only grow): such a realm
    /// is not kept, so it cannot push other apps' realms out of the lane or
    /// make every later request collect.
    pub fn collect_if_grown(&self) -> bool {
        if self.alloc.used() > self.baseline + GC_SLACK {
            self.rt.run_gc();
        }
        self.alloc.used() <= self.baseline + MAX_GROWTH
    }
}
