//! What the front door keeps: built once from what the supervisor hands it,
//! read by every request.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use fazt_shared::limits::schema_json;
use fazt_shared::{Limits, Probe, Store};
use serde::Serialize;
use tokio::sync::watch;

use super::admin_token::TokenHash;
use super::apps::AppDirectory;
use super::request_body::BodyBudget;
use super::static_files::StaticFiles;
use crate::children::Roster;
use crate::egress::Egress;
use crate::phase::Phase;
use crate::pool::Pool;
use crate::pulse::Pulse;

/// The parts of the supervisor the front door is given.
pub struct Parts {
    /// The database.
    pub store: Store,
    /// Limits in effect.
    pub limits: Arc<Limits>,
    /// The hardware the limits' schema describes.
    pub probe: Probe,
    /// The admin token's hash.
    pub token: TokenHash,
    /// Domain apps are served under.
    pub domain: String,
    /// The supervisor's phase, for the health endpoint.
    pub phase: watch::Receiver<Phase>,
    /// The worker pool.
    pub pool: Arc<Pool>,
    /// Every child, for status and health.
    pub roster: Roster,
    /// Egress, for its response cache.
    pub egress: Arc<Egress>,
    /// App lookups.
    pub apps: Arc<AppDirectory>,
    /// What the integrity check at start found wrong with the database.
    pub db_problems: Vec<String>,
    /// Beaten by the accept loop, for the systemd watchdog.
    pub pulse: Arc<Pulse>,
}

/// The front door's state, fixed at start.
pub struct FrontDoor {
    pub(super) store: Store,
    pub(super) limits: Arc<Limits>,
    /// `{"data": <limits>}`, rendered once.
    pub(super) limits_body: bytes::Bytes,
    /// `{"data": <schema>}`, rendered once.
    pub(super) schema_body: bytes::Bytes,
    pub(super) token: TokenHash,
    /// The hardware, for limits as they will be at the next start.
    pub(super) probe: Probe,
    /// Lowercase, as hosts are compared.
    pub(super) domain: String,
    pub(super) started: Instant,
    pub(super) phase: watch::Receiver<Phase>,
    pub(super) pool: Arc<Pool>,
    pub(super) roster: Roster,
    pub(super) egress: Arc<Egress>,
    pub(super) apps: Arc<AppDirectory>,
    pub(super) static_files: StaticFiles,
    /// Room for request bodies being read (`capacity.body_buffer`).
    pub(super) bodies: BodyBudget,
    pub(super) db_problems: Vec<String>,
    pub(super) requests: Arc<AtomicU64>,
    pub(super) pulse: Arc<Pulse>,
}

impl FrontDoor {
    /// Builds the front door's state from the supervisor's parts.
    pub fn new(parts: Parts) -> Result<Arc<FrontDoor>, serde_json::Error> {
        let Parts {
            store,
            limits,
            probe,
            token,
            domain,
            phase,
            pool,
            roster,
            egress,
            apps,
            db_problems,
            pulse,
        } = parts;
        Ok(Arc::new(FrontDoor {
            limits_body: envelope(&*limits)?,
            schema_body: envelope(&schema_json(&probe))?,
            bodies: BodyBudget::new(limits.capacity.body_buffer),
            static_files: StaticFiles::new(store.clone()),
            limits,
            token,
            probe,
            domain: domain.to_ascii_lowercase(),
            started: Instant::now(),
            phase,
            pool,
            roster,
            egress,
            apps,
            db_problems,
            requests: Arc::new(AtomicU64::new(0)),
            pulse,
            store,
        }))
    }

    /// The accept loop's pulse (for the systemd watchdog).
    pub fn pulse(&self) -> Arc<Pulse> {
        self.pulse.clone()
    }

    /// Requests received so far (for the rate systemd shows).
    pub fn requests(&self) -> Arc<AtomicU64> {
        self.requests.clone()
    }
}

fn envelope(data: &impl Serialize) -> Result<bytes::Bytes, serde_json::Error> {
    Ok(serde_json::to_vec(&serde_json::json!({ "data": data }))?.into())
}
