//! The allowlist and the secrets as egress holds them: loaded at start,
//! then reloaded together when the `net` config revision changes, checked
//! every 500 ms (the spec gives a second). A reload that fails keeps the
//! last good ones.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use fazt_shared::net::{Allowlist, Secrets};
use fazt_shared::store::{config_rev, net, secrets};
use fazt_shared::{Store, StoreError};
use tokio::sync::watch;

/// How often the revision is checked.
pub const REFRESH_EVERY: Duration = Duration::from_millis(500);

/// What egress reads from the database.
#[derive(Debug, Default)]
pub struct NetConfig {
    /// Who may fetch what.
    pub allowlist: Allowlist,
    /// What egress may send for an app.
    pub secrets: Secrets,
}

/// The current configuration and the revision it was read at.
pub struct LiveConfig {
    store: Store,
    current: RwLock<(i64, Arc<NetConfig>)>,
}

impl LiveConfig {
    /// Loads the configuration from `store`.
    pub async fn load(store: Store) -> Result<Arc<LiveConfig>, StoreError> {
        let (rev, config) = read(store.clone()).await?;
        Ok(Arc::new(LiveConfig {
            store,
            current: RwLock::new((rev, Arc::new(config))),
        }))
    }

    /// The configuration now.
    pub fn get(&self) -> Arc<NetConfig> {
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
        let (rev, config) = read(self.store.clone()).await?;
        let entries = config.allowlist.entries().len();
        let secrets = config.secrets.all().len();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (rev, Arc::new(config));
        tracing::info!(rev, entries, secrets, "allowlist and secrets reloaded");
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

/// The revision, then the tables: a change between the reads is picked
/// up at the next check, never missed.
async fn read(store: Store) -> Result<(i64, NetConfig), StoreError> {
    tokio::task::spawn_blocking(move || {
        let conn = store.conn()?;
        let rev = config_rev(&conn, net::CONFIG_KIND)?;
        Ok((
            rev,
            NetConfig {
                allowlist: net::load(&conn)?,
                secrets: secrets::load(&conn)?,
            },
        ))
    })
    .await
    .map_err(|_| StoreError::TaskFailed)?
}
