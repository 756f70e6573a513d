//! The allowlist as egress holds it: loaded at start, then reloaded when
//! the `net` config revision changes, checked every 500 ms (the spec gives
//! a second). A reload that fails keeps the last good list.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use fazt_shared::net::Allowlist;
use fazt_shared::store::{config_rev, net};
use fazt_shared::{Store, StoreError};
use tokio::sync::watch;

/// How often the revision is checked.
pub const REFRESH_EVERY: Duration = Duration::from_millis(500);

/// The current allowlist and the revision it was read at.
pub struct LiveAllowlist {
    store: Store,
    current: RwLock<(i64, Arc<Allowlist>)>,
}

impl LiveAllowlist {
    /// Loads the allowlist from `store`.
    pub async fn load(store: Store) -> Result<Arc<LiveAllowlist>, StoreError> {
        let (rev, list) = read(store.clone()).await?;
        Ok(Arc::new(LiveAllowlist {
            store,
            current: RwLock::new((rev, Arc::new(list))),
        }))
    }

    /// The allowlist now.
    pub fn get(&self) -> Arc<Allowlist> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// Reloads when the revision moved; whether it did.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let store = self.store.clone();
        let rev =
            tokio::task::spawn_blocking(move || config_rev(&*store.conn()?, net::CONFIG_KIND))
                .await
                .map_err(|_| StoreError::TaskFailed)??;
        let seen = self.current.read().unwrap_or_else(|p| p.into_inner()).0;
        if rev == seen {
            return Ok(false);
        }
        let (rev, list) = read(self.store.clone()).await?;
        let entries = list.entries().len();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (rev, Arc::new(list));
        tracing::info!(rev, entries, "allowlist reloaded");
        Ok(true)
    }

    /// Refreshes every [`REFRESH_EVERY`] until `stop` changes.
    pub async fn keep_fresh(self: Arc<Self>, stop: watch::Receiver<bool>) {
        fazt_shared::periodic::every(REFRESH_EVERY, stop, || {
            let this = self.clone();
            async move {
                if let Err(e) = this.refresh().await {
                    tracing::warn!(error = %e, "allowlist reload failed; keeping the last one");
                }
            }
        })
        .await;
    }
}

/// The revision, then the list: a change between the two reads is picked
/// up at the next check, never missed.
async fn read(store: Store) -> Result<(i64, Allowlist), StoreError> {
    tokio::task::spawn_blocking(move || {
        let conn = store.conn()?;
        let rev = config_rev(&conn, net::CONFIG_KIND)?;
        Ok((rev, net::load(&conn)?))
    })
    .await
    .map_err(|_| StoreError::TaskFailed)?
}
