//! App code in a worker: the source bundle of each app (loaded from SQLite
//! per deploy version) and compiled bytecode (keyed by the file's content
//! hash, so an unchanged file survives a redeploy and a changed one never
//! runs stale). Shared by all lanes of the worker, so each file is compiled
//! once per worker, not once per lane.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use fazt_shared::store::apps::{self, SourceFile};
use fazt_shared::{Store, StoreError};
use lru::LruCache;

/// Apps whose code a worker keeps; beyond it the least recently used is reloaded on demand.
const MAX_APPS: usize = 256;
/// Compiled files a worker keeps.
const MAX_COMPILED: usize = 4096;

/// The server code of one app at one version, by path.
#[derive(Debug)]
pub struct AppCode {
    /// Deploy version the files belong to.
    pub version: i64,
    files: HashMap<String, SourceFile>,
}

impl AppCode {
    /// The code of one deploy.
    pub fn new(version: i64, files: Vec<SourceFile>) -> AppCode {
        AppCode {
            version,
            files: files.into_iter().map(|f| (f.path.clone(), f)).collect(),
        }
    }

    /// A source file by path (`api/main.js`).
    pub fn file(&self, path: &str) -> Option<&SourceFile> {
        self.files.get(path)
    }
}

/// How a source file is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `api/main.js`: a global script whose completion value is the response.
    Main,
    /// A `require`d file, wrapped in a CommonJS function.
    Module,
}

/// Path, content hash and kind of a compiled file.
type CompiledKey = (String, String, Kind);

/// Bundles and bytecode of one worker.
pub struct CodeCache {
    bundles: Mutex<LruCache<i64, Arc<AppCode>>>,
    compiled: Mutex<LruCache<CompiledKey, Arc<[u8]>>>,
}

impl Default for CodeCache {
    fn default() -> Self {
        CodeCache {
            bundles: Mutex::new(LruCache::new(nonzero(MAX_APPS))),
            compiled: Mutex::new(LruCache::new(nonzero(MAX_COMPILED))),
        }
    }
}

fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// A poisoned cache lock only means another lane panicked mid-update of a
/// cache; the cache stays usable (worst case, an entry is recompiled).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CodeCache {
    /// The code of `app_id` at `version`. A cached bundle serves only that
    /// exact deploy; otherwise the app's current code is loaded (a request
    /// routed just before a deploy may run the newer code, never another
    /// app's: app ids are never reused). `None` when the app no longer exists.
    pub fn bundle(
        &self,
        store: &Store,
        app_id: i64,
        version: i64,
    ) -> Result<Option<Arc<AppCode>>, StoreError> {
        if let Some(code) = lock(&self.bundles).get(&app_id) {
            if code.version == version {
                return Ok(Some(code.clone()));
            }
        }
        let Some(bundle) = apps::bundle(&mut *store.conn()?, app_id)? else {
            lock(&self.bundles).pop(&app_id);
            return Ok(None);
        };
        let code = Arc::new(AppCode::new(bundle.version, bundle.files));
        let mut bundles = lock(&self.bundles);
        // Another lane may have loaded a newer version meanwhile; keep the newest.
        match bundles.get(&app_id) {
            Some(existing) if existing.version > code.version => {}
            _ => {
                bundles.put(app_id, code.clone());
            }
        }
        Ok(Some(code))
    }

    /// Compiled bytecode for a file, compiling with `compile` on a miss.
    pub fn compiled<E>(
        &self,
        file: &SourceFile,
        kind: Kind,
        compile: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Arc<[u8]>, E> {
        // The path is part of the key because it is compiled into the bytecode
        // (error positions); the hash makes a changed file a new entry.
        let key = (file.path.clone(), file.hash.clone(), kind);
        if let Some(code) = lock(&self.compiled).get(&key) {
            return Ok(code.clone());
        }
        // Compiled outside the lock: two lanes may compile the same file
        // once each, which is cheaper than serialising every compile.
        let code: Arc<[u8]> = compile()?.into();
        lock(&self.compiled).put(key, code.clone());
        Ok(code)
    }
}
