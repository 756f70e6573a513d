//! The user-visible error codes: one enum whose strings never change. The
//! admin API, JS errors, logs and status output all use these names.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, $status:literal, $retryable:literal; )*) => {
        /// A stable, user-visible error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $variant, )*
        }

        impl ErrorCode {
            /// Every code, for tests and docs.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The stable name (`JS_TIMEOUT`).
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            /// The HTTP status this code is answered with.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// Whether a client should try again (503 with `Retry-After: 1`).
            pub fn retryable(self) -> bool {
                match self { $(ErrorCode::$variant => $retryable,)* }
            }
        }
    };
}

error_codes! {
    /// An uncaught error in app JS.
    JsError = "JS_ERROR", 500, false;
    /// App JS ran longer than `runtime.exec_timeout_ms`.
    JsTimeout = "JS_TIMEOUT", 504, false;
    /// App JS went over `runtime.max_memory`.
    JsMemory = "JS_MEMORY", 500, false;
    /// The worker running the request died.
    WorkerCrashed = "WORKER_CRASHED", 502, false;
    /// The app crashed workers repeatedly and is paused.
    AppQuarantined = "APP_QUARANTINED", 503, true;
    /// Too many requests in flight (`capacity.max_requests`).
    Overloaded = "OVERLOADED", 503, true;
    /// The whole request ran past `capacity.timeout_ms`.
    RequestTimeout = "REQUEST_TIMEOUT", 504, false;
    /// The database is busy; try again.
    DbBusy = "DB_BUSY", 503, true;
    /// The app's kv is full (`storage.kv_max_bytes`, `storage.kv_max_keys`).
    KvQuota = "KV_QUOTA", 507, false;
    /// Egress refused the target (scheme, IP literal, allowlist, private address).
    NetBlocked = "NET_BLOCKED", 500, false;
    /// A fetch ran out of time.
    NetTimeout = "NET_TIMEOUT", 500, false;
    /// Too many fetch calls, or no concurrency slot free.
    NetLimit = "NET_LIMIT", 503, true;
    /// The request's network time budget is spent.
    NetBudget = "NET_BUDGET", 503, true;
    /// A fetch body or header block was too large.
    NetSize = "NET_SIZE", 500, false;
    /// A fetch failed on the network or the upstream misbehaved.
    NetError = "NET_ERROR", 500, false;
    /// The named secret does not exist or does not apply to this domain.
    NetAuth = "NET_AUTH", 500, false;
    /// The per-domain rate limit is reached.
    NetRate = "NET_RATE", 503, true;
    /// No such app, file or endpoint.
    NotFound = "NOT_FOUND", 404, false;
    /// The request is malformed or a value is invalid.
    BadRequest = "BAD_REQUEST", 400, false;
    /// Missing or wrong admin token.
    Unauthorized = "UNAUTHORIZED", 401, false;
    /// The method is not allowed on this path.
    MethodNotAllowed = "METHOD_NOT_ALLOWED", 405, false;
    /// The body is larger than allowed.
    PayloadTooLarge = "PAYLOAD_TOO_LARGE", 413, false;
    /// The client sent its request too slowly (`capacity.body_timeout_ms`).
    ClientTimeout = "CLIENT_TIMEOUT", 408, false;
    /// A part of fazt the request needs is not running now (egress
    /// restarting); try again.
    Unavailable = "UNAVAILABLE", 503, true;
    /// A bug or an unexpected failure inside fazt.
    Internal = "INTERNAL", 500, false;
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_upper_snake_and_serialize_as_themselves() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "duplicate {name}");
            assert!(name.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
            assert_eq!(serde_json::to_value(code).ok(), Some(name.into()));
            if code.retryable() {
                assert_eq!(code.http_status(), 503, "{name}");
            }
        }
    }
}
