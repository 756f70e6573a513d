//! A network log row (SPEC §8): one per fetch, success or failure, made by
//! egress and written by the supervisor's flusher. The path never has its
//! query string (it may hold secrets).

use serde::{Deserialize, Serialize};

use crate::ErrorCode;

/// One fetch, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetLogRow {
    /// The app that made the call.
    pub app_id: i64,
    /// The host of the URL JS gave (`-` when it did not parse).
    pub domain: String,
    /// The method, as parsed (`-` when it was not a method).
    pub method: String,
    /// The path, without its query.
    pub path: String,
    /// The upstream's status, when there was an answer.
    pub status: Option<u16>,
    /// The code JS got, when the call failed.
    pub error_code: Option<ErrorCode>,
    /// Answered from the cache.
    pub cache_hit: bool,
    /// How long the call took.
    pub duration_ms: u64,
    /// Request body bytes.
    pub request_bytes: u64,
    /// Response body bytes JS got.
    pub response_bytes: u64,
    /// When it ended, ms since the epoch.
    pub created_at: i64,
}

impl NetLogRow {
    /// An error row: flushed at once, never dropped for room.
    pub fn is_error(&self) -> bool {
        self.error_code.is_some()
    }
}
