//! Worker ↔ egress: outbound requests from `fazt.net.fetch` and their
//! answers.

use serde::{Deserialize, Serialize};

/// An outbound HTTP request from JS (`fazt.net.fetch`), for the egress process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetRequest {
    /// Target URL as JS gave it; egress parses and checks it.
    pub url: String,
    /// Upper-case method.
    pub method: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// JS `timeout` option, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Name of the secret to inject (`auth` option).
    pub auth: Option<String>,
}

/// What egress got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetResponse {
    /// Status code.
    pub status: u16,
    /// Header names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body bytes, at most `net.max_response`.
    pub body: Vec<u8>,
}
