//! The egress process's two protocols: supervisor ↔ egress (configuration,
//! liveness, shutdown) and worker ↔ egress (`fazt.net.fetch` calls and
//! their answers).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use fazt_shared::limits::Net;
use fazt_shared::ticket::{Ticket, TicketKey};
use fazt_shared::ErrorCode;

/// A `FAZT_NET_TEST_RESOLVE` pin: this host and port connect to `addr`,
/// exempt from the address rules (tests only; SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The host, normalised as the allowlist compares it.
    pub host: String,
    /// The port.
    pub port: u16,
    /// Where it connects.
    pub addr: SocketAddr,
}

/// What egress runs with; sent once after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressConfig {
    /// `Limits.net` as the supervisor resolved it.
    pub net: Net,
    /// The DNS server to ask (`FAZT_NET_NAMESERVER`), else the system's.
    pub nameserver: Option<SocketAddr>,
    /// Test pins (`FAZT_NET_TEST_RESOLVE`); empty in production.
    pub pins: Vec<Pin>,
    /// The key execution tickets are checked with (made at the
    /// supervisor's start, never written anywhere).
    pub ticket_key: TicketKey,
    /// Whether an egress ran before this one: its rate buckets then start
    /// drained, so a crash grants no fresh burst.
    pub restarted: bool,
}

/// Counters egress reports with each heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressStats {
    /// Calls being answered now.
    pub in_flight: u32,
    /// Calls answered since egress started.
    pub answered: u64,
    /// Of those, refused or failed.
    pub failed: u64,
    /// Allowlist entries loaded.
    pub allowlist_entries: u32,
}

/// Supervisor → egress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToEgress {
    /// First message after the handshake.
    Configure(EgressConfig),
    /// Liveness probe; answered with [`FromEgress::Heartbeat`].
    Heartbeat {
        /// Echoed back.
        seq: u64,
    },
    /// The response cache's numbers (and, with `clear`, empty it first
    /// for `app_id`, or for every app); answered with
    /// [`FromEgress::Cache`].
    Cache {
        /// Echoed back.
        id: u64,
        /// One app, or all.
        app_id: Option<i64>,
        /// Empty it.
        clear: bool,
    },
    /// Stop taking calls, finish the ones in flight, exit.
    Shutdown,
}

/// The response cache's numbers, for one app or all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Entries held.
    pub items: u64,
    /// Bytes they hold.
    pub bytes: u64,
    /// Lookups answered from it since egress started.
    pub hits: u64,
    /// Lookups that were not.
    pub misses: u64,
    /// Entries removed by a `clear`.
    pub cleared: u64,
}

/// Egress → supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromEgress {
    /// One fetch for the network log.
    Log(fazt_shared::net::NetLogRow),
    /// Answer to [`ToEgress::Cache`].
    Cache {
        /// The request's id.
        id: u64,
        /// The numbers (after the clear, if asked).
        stats: CacheStats,
    },
    /// Listening for workers, allowlist loaded.
    Ready,
    /// Answer to a heartbeat.
    Heartbeat {
        /// The probe's sequence number.
        seq: u64,
        /// Current counters.
        stats: EgressStats,
    },
}

/// Identifies one call on one worker ↔ egress connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallId(pub u64);

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
    // Raw bytes on the wire, not a sequence of numbers: large bodies
    // encode at memory speed.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// JS `timeout` option, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Name of the secret to inject (`auth` option).
    pub auth: Option<String>,
}

/// Worker → egress: one `fazt.net.fetch` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetCall {
    /// Connection-local id, echoed in the answer.
    pub id: CallId,
    /// The app calling.
    pub app_id: i64,
    /// Its name, for logs.
    pub app: String,
    /// The request it runs for; budgets are kept per request.
    pub request_id: String,
    /// The request's time left when the call was sent, in ms.
    pub time_left_ms: u64,
    /// The request's execution ticket, from its job.
    pub ticket: Option<Ticket>,
    /// The call.
    pub request: NetRequest,
}

/// What egress got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetResponse {
    /// Status code.
    pub status: u16,
    /// Header names lower-case, in arrival order, repeated as they came.
    pub headers: Vec<(String, String)>,
    /// Body bytes, at most the call's `max_response`.
    // Raw bytes on the wire, not a sequence of numbers: large bodies
    // encode at memory speed.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetOutcome {
    /// The upstream answered (any status).
    Response(NetResponse),
    /// Refused or failed: JS gets an Error with this code.
    Failed {
        /// `NET_BLOCKED`, `NET_TIMEOUT`, …
        code: ErrorCode,
        /// Safe to show JS: no secret, no query string, no private address.
        message: String,
    },
}

/// Egress → worker: the answer to one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetAnswer {
    /// The call's id.
    pub id: CallId,
    /// How it ended.
    pub outcome: NetOutcome,
}
