//! App lookups for routing, cached: name → (id, version). A deploy through
//! the admin API invalidates at once; one through the CLI tells the running
//! supervisor over the control socket; and a once-a-second check of the
//! `apps` config revision catches anything else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fazt_shared::store::apps::{self, AppRow, CONFIG_KIND};
use fazt_shared::store::config_rev;
use fazt_shared::{AppName, Store, StoreError};
use tokio::sync::watch;

/// Cached lookups, misses included, so random names cost one query each at most.
const MAX_ENTRIES: usize = 10_000;

/// The cache.
pub struct AppDirectory {
    store: Store,
    entries: Mutex<HashMap<AppName, Option<AppRow>>>,
    rev: AtomicI64,
}

impl AppDirectory {
    /// An empty cache over `store`.
    pub fn new(store: Store) -> AppDirectory {
        AppDirectory {
            store,
            entries: Mutex::new(HashMap::new()),
            rev: AtomicI64::new(-1),
        }
    }

    /// The app's id and version, if it exists.
    pub async fn lookup(&self, name: &AppName) -> Result<Option<AppRow>, StoreError> {
        if let Some(hit) = self.lock().get(name) {
            return Ok(*hit);
        }
        let store = self.store.clone();
        let key = name.clone();
        let row = tokio::task::spawn_blocking(move || apps::lookup(&*store.conn()?, &key))
            .await
            .map_err(|_| StoreError::TaskFailed)??;
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(name.clone(), row);
        Ok(row)
    }

    /// Forgets every cached lookup.
    pub fn invalidate(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AppName, Option<AppRow>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the apps revision every second until `stop` changes.
    pub async fn watch(self: Arc<Self>, stop: watch::Receiver<bool>) {
        fazt_shared::periodic::every(Duration::from_secs(1), stop, || {
            let dir = self.clone();
            async move {
                let store = dir.store.clone();
                let rev =
                    tokio::task::spawn_blocking(move || config_rev(&*store.conn()?, CONFIG_KIND))
                        .await;
                if let Ok(Ok(rev)) = rev {
                    if dir.rev.swap(rev, Ordering::Relaxed) != rev {
                        dir.invalidate();
                    }
                }
            }
        })
        .await;
    }
}
