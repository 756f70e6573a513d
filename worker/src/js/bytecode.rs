//! Compile-once, run-many: app code compiled to QuickJS bytecode, and
//! bytecode run in a lane's realm.
//!
//! App code is compiled as *strict eval code* (QuickJS's indirect-eval
//! type): its top-level `var`, `let`, `const`, `function` and `class` live
//! in the run's own frame and die with it, instead of landing on the global
//! object or in the realm's global lexical scope, where the next request in
//! the same realm would meet them (or, for `let`, fail to declare them
//! again); and the run still returns the completion value SPEC §5 uses as
//! the response. rquickjs exposes bytecode only for ES modules, whose
//! completion value is lost, so this module calls the four QuickJS
//! functions it needs directly. `JS_Eval` accepts the indirect-eval type
//! only with QuickJS's debug assertions off (the workspace enables
//! rquickjs's `disable-assertions`, as QuickJS-ng's own release builds are
//! built with `NDEBUG`); `tests` below fail if that changes. The bytecode
//! never leaves the worker process that wrote it.

use std::ffi::CString;

use rquickjs::{qjs, Ctx, Value};

/// Why compiling failed before QuickJS saw the source.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// C strings cannot carry a NUL byte.
    #[error("{0} contains a NUL byte")]
    Nul(String),
    /// QuickJS raised an exception (a syntax error); it is pending on the context.
    #[error("exception")]
    Exception,
}

/// Compiles `source` as strict eval code called `name` and returns its bytecode.
pub fn compile(ctx: &Ctx<'_>, source: &str, name: &str) -> Result<Vec<u8>, CompileError> {
    let src = CString::new(source).map_err(|_| CompileError::Nul(name.to_string()))?;
    let file = CString::new(name).map_err(|_| CompileError::Nul(name.to_string()))?;
    let raw = ctx.as_raw().as_ptr();
    let flags = (qjs::JS_EVAL_TYPE_INDIRECT
        | qjs::JS_EVAL_FLAG_STRICT
        | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32;
    // SAFETY: raw is a live context (we are inside `ctx.with`); src is
    // NUL-terminated as JS_Eval requires; every JSValue we own is freed once.
    unsafe {
        let func = qjs::JS_Eval(raw, src.as_ptr(), source.len() as _, file.as_ptr(), flags);
        if qjs::JS_IsException(func) {
            return Err(CompileError::Exception);
        }
        let mut size: qjs::size_t = 0;
        let buf = qjs::JS_WriteObject(raw, &mut size, func, qjs::JS_WRITE_OBJ_BYTECODE as i32);
        qjs::JS_FreeValue(raw, func);
        if buf.is_null() {
            return Err(CompileError::Exception);
        }
        let bytes = std::slice::from_raw_parts(buf, size as usize).to_vec();
        qjs::js_free(raw, buf.cast());
        Ok(bytes)
    }
}

/// Runs bytecode from [`compile`] and returns the script's completion value.
/// `Err(rquickjs::Error::Exception)` leaves the exception pending for `ctx.catch()`.
pub fn run<'js>(ctx: &Ctx<'js>, bytecode: &[u8]) -> rquickjs::Result<Value<'js>> {
    let raw = ctx.as_raw().as_ptr();
    // SAFETY: the bytes were produced by `compile` in this process (the only
    // producer), so they are valid bytecode for this QuickJS build.
    // JS_EvalFunction takes ownership of the function object; the returned
    // value is owned and handed to `Value::from_raw`.
    unsafe {
        let func = qjs::JS_ReadObject(
            raw,
            bytecode.as_ptr(),
            bytecode.len() as _,
            qjs::JS_READ_OBJ_BYTECODE as i32,
        );
        if qjs::JS_IsException(func) {
            return Err(rquickjs::Error::Exception);
        }
        let ret = qjs::JS_EvalFunction(raw, func);
        if qjs::JS_IsException(ret) {
            return Err(rquickjs::Error::Exception);
        }
        Ok(Value::from_raw(ctx.clone(), ret))
    }
}

/// Runs fazt's own `source` (compiled once per process into `cache`) and
/// returns its completion value: for the scripts every realm runs when it
/// is built, whose parsing would otherwise be paid again by each realm.
pub fn run_cached<'js>(
    ctx: &Ctx<'js>,
    cache: &std::sync::OnceLock<Vec<u8>>,
    source: &str,
    name: &str,
) -> rquickjs::Result<Value<'js>> {
    if let Some(code) = cache.get() {
        return run(ctx, code);
    }
    let code = compile(ctx, source, name).map_err(|e| match e {
        CompileError::Exception => rquickjs::Error::Exception,
        other => rquickjs::Exception::throw_internal(ctx, &other.to_string()),
    })?;
    let value = run(ctx, &code)?;
    let _ = cache.set(code);
    Ok(value)
}
