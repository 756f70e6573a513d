//! Lockdown of a new realm (SES-style): every object a request can reach
//! through the realm is frozen, and the global object is sealed with only
//! the host names left settable. `lockdown.js` holds the JS half (the
//! objects only syntax reaches, the override-mistake accessors, the global
//! object); this module walks the object graph and freezes it through
//! QuickJS's C API, which takes about a tenth of the time the same walk
//! takes in JS, and a lane pays it once per app.

use std::collections::HashSet;
use std::mem::MaybeUninit;

use rquickjs::{qjs, Ctx, Function, IntoJs, Object, Value};

const LOCKDOWN: &str = include_str!("lockdown.js");

/// What the walk found.
#[derive(Default)]
struct Walk<'js> {
    /// Every object reached.
    objects: Vec<Value<'js>>,
    /// `[object, key]` of accessors whose setter is not known to be safe.
    shut: Vec<Value<'js>>,
    /// Objects with an own `constructor`.
    prototypes: Vec<Value<'js>>,
}

/// Locks the realm of `ctx` down; `host_names` stay settable on its global.
pub fn run<'js>(ctx: &Ctx<'js>, host_names: &[&str]) -> rquickjs::Result<()> {
    static CODE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let js = Object::from_value(super::bytecode::run_cached(
        ctx,
        &CODE,
        LOCKDOWN,
        "fazt:lockdown",
    )?)?;
    let roots: Function = js.get("roots")?;
    let finish: Function = js.get("finish")?;
    let mut found: Vec<Vec<Value>> = roots.call(())?;
    let safe: HashSet<usize> = found
        .pop()
        .unwrap_or_default()
        .iter()
        .map(identity)
        .collect();
    let hidden = found.pop().unwrap_or_default();
    let mut start = vec![ctx.globals().into_value()];
    start.extend(hidden);
    let walk = walk(ctx, start, &safe)?;
    let made: Vec<Value> = finish.call((walk.shut, walk.prototypes, host_names.to_vec()))?;
    let global = identity(&ctx.globals().into_value());
    for object in walk.objects.iter().chain(made.iter()) {
        if identity(object) != global {
            freeze(ctx, object)?;
        }
    }
    Ok(())
}

/// An object's identity: its address in the heap.
fn identity(v: &Value<'_>) -> usize {
    // SAFETY: reading the pointer out of a live value's bits; nothing is
    // dereferenced.
    unsafe { qjs::JS_VALUE_GET_PTR(v.as_raw()) as usize }
}

fn freeze<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> rquickjs::Result<()> {
    // SAFETY: a live context and a live object of it.
    if unsafe { qjs::JS_FreezeObject(ctx.as_raw().as_ptr(), v.as_raw()) } < 0 {
        return Err(rquickjs::Error::Exception);
    }
    Ok(())
}

/// Frees a property table from `JS_GetOwnPropertyNames` however its loop ends.
struct Names<'a, 'js> {
    ctx: &'a Ctx<'js>,
    tab: *mut qjs::JSPropertyEnum,
    len: u32,
}

impl Drop for Names<'_, '_> {
    fn drop(&mut self) {
        if !self.tab.is_null() {
            // SAFETY: the table and length JS_GetOwnPropertyNames gave.
            unsafe { qjs::JS_FreePropertyEnum(self.ctx.as_raw().as_ptr(), self.tab, self.len) };
        }
    }
}

/// Every object reachable from `start` through prototypes and own
/// properties (values, getters and setters), each once.
fn walk<'js>(
    ctx: &Ctx<'js>,
    start: Vec<Value<'js>>,
    safe: &HashSet<usize>,
) -> rquickjs::Result<Walk<'js>> {
    let raw = ctx.as_raw().as_ptr();
    let own = |v: qjs::JSValue| {
        // SAFETY: every JSValue handed here is a new reference QuickJS gave
        // us; Value takes it over and frees it once.
        unsafe { Value::from_raw(ctx.clone(), v) }
    };
    // A predefined atom: QuickJS answers its fixed number and never frees it.
    // SAFETY: a live context and a NUL-terminated name.
    let constructor = unsafe { qjs::JS_NewAtom(raw, c"constructor".as_ptr()) };
    let mut seen = HashSet::new();
    let mut out = Walk::default();
    let mut stack = start;
    while let Some(v) = stack.pop() {
        // SAFETY: reads the tag of a live value; functions are objects too.
        if !unsafe { qjs::JS_IsObject(v.as_raw()) } {
            continue;
        }
        if !seen.insert(identity(&v)) {
            continue;
        }
        // SAFETY: a live context and a live object; JS_GetPrototype returns
        // a new reference (or an exception).
        let proto = own(unsafe { qjs::JS_GetPrototype(raw, v.as_raw()) });
        if proto.is_exception() {
            return Err(rquickjs::Error::Exception);
        }
        stack.push(proto);
        let mut names = Names {
            ctx,
            tab: std::ptr::null_mut(),
            len: 0,
        };
        let flags = (qjs::JS_GPN_STRING_MASK | qjs::JS_GPN_SYMBOL_MASK) as i32;
        // SAFETY: out-pointers to our own fields; the table is freed by `names`.
        if unsafe {
            qjs::JS_GetOwnPropertyNames(raw, &mut names.tab, &mut names.len, v.as_raw(), flags)
        } < 0
        {
            return Err(rquickjs::Error::Exception);
        }
        // SAFETY: QuickJS gave `len` entries at `tab` (or none).
        let props = if names.tab.is_null() {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(names.tab, names.len as usize) }
        };
        for prop in props {
            let mut desc = MaybeUninit::<qjs::JSPropertyDescriptor>::zeroed();
            // SAFETY: fills `desc` with new references when it answers 1.
            let found =
                unsafe { qjs::JS_GetOwnProperty(raw, desc.as_mut_ptr(), v.as_raw(), prop.atom) };
            if found < 0 {
                return Err(rquickjs::Error::Exception);
            }
            if found == 0 {
                continue;
            }
            // SAFETY: initialised by JS_GetOwnProperty's success.
            let desc = unsafe { desc.assume_init() };
            let (value, getter, setter) = (own(desc.value), own(desc.getter), own(desc.setter));
            if prop.atom == constructor {
                out.prototypes.push(v.clone());
            }
            if desc.flags & qjs::JS_PROP_GETSET as i32 != 0 {
                if setter.is_function() && !safe.contains(&identity(&setter)) {
                    // SAFETY: a new reference to the key, as a JS value.
                    let key = own(unsafe { qjs::JS_AtomToValue(raw, prop.atom) });
                    out.shut.push(vec![v.clone(), key].into_js(ctx)?);
                }
                stack.push(getter);
                stack.push(setter);
            } else {
                stack.push(value);
            }
        }
        out.objects.push(v);
    }
    Ok(out)
}
