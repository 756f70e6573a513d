//! `require('./x.js')`: CommonJS modules from the app's `api/` folder only.
//!
//! The module table lives in JS (a small prelude), so every reference between
//! modules stays visible to QuickJS's garbage collector; the host side is two
//! plain functions: `resolve` (path rules) and `load` (compiled wrapper).
//! A module is cached for its request only.

use std::rc::Rc;

use fazt_shared::store::apps::SourceFile;
use rquickjs::{Ctx, Exception, Function, Value};

use super::{arg_string, function, Args, Current, HostError, HostResult, Scope};
use crate::code::Kind;
use crate::js::bytecode;

/// Root every module path must stay under.
const ROOT: &str = "api";

/// The module table, kept in JS so every reference between modules stays
/// visible to QuickJS's garbage collector. Evaluated once per realm
/// ([`new_require`]); each request calls what it returns for a `require`
/// and a module cache of its own. Arrow functions only: they have no `prototype`, so a request's
/// `require` leaves no reference cycle for the collector.
const PRELUDE: &str = r#"((resolve, load) => () => {
  const cache = Object.create(null);
  const make = (dir) => (spec) => {
    const path = resolve(dir, spec);
    const hit = cache[path];
    if (hit) return hit.exports;
    const module = { exports: {} };
    cache[path] = module;
    const slash = path.lastIndexOf('/');
    const here = path.slice(0, slash);
    try {
      load(path).call(module.exports, module.exports, make(here), module, path, here);
    } catch (e) {
      delete cache[path];
      throw e;
    }
    return module.exports;
  };
  return make('api');
})"#;

/// The function that makes a request's `require` (with an empty module
/// cache), built once per realm.
pub fn new_require<'js>(ctx: &Ctx<'js>, current: &Current) -> rquickjs::Result<Function<'js>> {
    static CODE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let prelude = Function::from_value(bytecode::run_cached(ctx, &CODE, PRELUDE, "fazt:require")?)?;
    prelude.call((
        function(ctx, current, 2, resolve)?,
        function(ctx, current, 1, load)?,
    ))
}

/// Compiles a file, turning a syntax error into the pending JS exception.
pub fn compile(ctx: &Ctx<'_>, file: &SourceFile, kind: Kind) -> rquickjs::Result<Vec<u8>> {
    let wrapped;
    let source = match kind {
        Kind::Main => file.source.as_str(),
        Kind::Module => {
            wrapped = format!(
                "(function (exports, require, module, __filename, __dirname) {{{}\n}})",
                file.source
            );
            wrapped.as_str()
        }
    };
    bytecode::compile(ctx, source, &file.path).map_err(|e| match e {
        bytecode::CompileError::Exception => rquickjs::Error::Exception,
        other => Exception::throw_syntax(ctx, &other.to_string()),
    })
}

/// Resolves `spec` relative to `dir` inside `api/`: `./x`, `./x.js` and
/// `./x/index.js` are tried in that order; bare names and escapes are refused.
fn resolve<'js>(ctx: &Ctx<'js>, scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    let dir = arg_string(&args.get(0), "require: the folder")?;
    let spec = arg_string(&args.get(1), "require: the path")?;
    if !(spec.starts_with("./") || spec.starts_with("../")) {
        return Err(HostError::Message(format!(
            "require({spec:?}): only relative paths inside api/ are supported, such as './lib.js'"
        )));
    }
    let Some(joined) = normalize(&dir, &spec) else {
        return Err(HostError::Message(format!(
            "require({spec:?}): the path leaves the app's api/ folder"
        )));
    };
    let found = [
        joined.clone(),
        format!("{joined}.js"),
        format!("{joined}/index.js"),
    ]
    .into_iter()
    .find(|p| scope.code.file(p).is_some())
    .ok_or_else(|| HostError::Message(format!("require({spec:?}): no such file in api/")))?;
    Ok(rquickjs::String::from_str(ctx.clone(), &found)?.into_value())
}

/// Joins and normalises; `None` when the result is not inside `api/`.
fn normalize(dir: &str, spec: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for seg in spec.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    (parts.first() == Some(&ROOT) && parts.len() > 1).then(|| parts.join("/"))
}

/// The CommonJS wrapper function of a resolved module.
fn load<'js>(ctx: &Ctx<'js>, scope: &Rc<Scope>, args: Args<'js>) -> HostResult<Value<'js>> {
    let path = arg_string(&args.get(0), "require: the path")?;
    let file = scope
        .code
        .file(&path)
        .ok_or_else(|| HostError::Message(format!("require: {path} is gone")))?;
    let code = scope
        .cache
        .compiled(file, Kind::Module, || compile(ctx, file, Kind::Module))?;
    Ok(bytecode::run(ctx, &code)?)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn paths_stay_inside_api() {
        assert_eq!(normalize("api", "./x.js").as_deref(), Some("api/x.js"));
        assert_eq!(normalize("api/lib", "../x").as_deref(), Some("api/x"));
        assert_eq!(
            normalize("api/a/b", "./../../c/d.js").as_deref(),
            Some("api/c/d.js")
        );
        assert_eq!(normalize("api", "../main.js"), None);
        assert_eq!(normalize("api", "./../../etc/passwd"), None);
        assert_eq!(normalize("api/lib", "../../x"), None);
        assert_eq!(normalize("api", "./"), None);
    }
}
