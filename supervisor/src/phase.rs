//! Where the supervisor is in its life: set by `supervise`, read by the
//! health endpoint.

use serde::Serialize;

/// Where the supervisor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Opening the store and resolving limits.
    Starting,
    /// Serving; announced only once everything is up.
    Ready,
    /// Not accepting new connections; finishing the ones in flight.
    Draining,
}
