//! Why egress refused a call: the code JS sees (`NET_BLOCKED`, …) and a
//! reason with a stable name for logs and tests. Messages never carry a
//! query string or a secret.

use std::fmt;
use std::net::IpAddr;

use fazt_shared::net::Domain;
use fazt_shared::ticket::TicketError;
use fazt_shared::ErrorCode;

use crate::addr::Blocked;

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Not a URL the WHATWG parser accepts.
    BadUrl,
    /// A scheme other than http and https.
    Scheme(String),
    /// `user:pass@` in the URL.
    Userinfo,
    /// An IP literal as the host, in whatever spelling.
    IpLiteral,
    /// A host that is not a valid domain name.
    BadHost,
    /// A port on the fetch standard's bad-port list, or 0.
    BadPort(u16),
    /// No allowlist entry matches the host.
    NotAllowed(String),
    /// http to a host allowed for https only.
    HttpNotAllowed(String),
    /// A resolved (or redirected-to) address in a blocked range.
    Address {
        /// The host that resolved to it (this hop's).
        host: Domain,
        /// The address.
        ip: IpAddr,
        /// Why it is blocked.
        range: Blocked,
    },
    /// The request body is over `net.max_req_body`.
    BodyTooLarge {
        /// The bound.
        max: u64,
    },
    /// The request made `net.max_calls` calls already.
    TooManyCalls {
        /// The bound.
        max: u64,
    },
    /// The request's network time (`net.budget_ms`) is spent.
    BudgetSpent {
        /// The budget.
        budget_ms: u64,
    },
    /// Less than a second of the request is left.
    NoTimeLeft,
    /// The call's time ran out.
    Timeout,
    /// A concurrency limit is full (`net.app_concurrency` when `app`,
    /// else `net.concurrency`).
    Busy {
        /// Whether it is the app's own limit.
        app: bool,
    },
    /// The name has no address.
    Unresolvable(String),
    /// A request header with CR, LF or NUL, or not a valid header.
    BadHeader(String),
    /// A method that is not an HTTP token, or CONNECT/TRACE.
    BadMethod(String),
    /// No checked address accepted a connection.
    ConnectFailed,
    /// The TLS handshake failed.
    Tls(String),
    /// The upstream broke HTTP (or the connection).
    Upstream(String),
    /// The response head is over 64 KiB or 100 fields.
    HeadTooLarge,
    /// The response body is over the call's `max_response`.
    ResponseTooLarge {
        /// The bound.
        max: u64,
    },
    /// More redirects than `net.max_redirects`.
    TooManyRedirects {
        /// The bound.
        max: u64,
    },
    /// A redirect from https to http.
    Downgrade,
    /// The egress process cannot be reached (worker side).
    EgressUnavailable,
    /// The call's execution ticket is missing, forged or expired.
    Ticket(TicketError),
    /// No secret of this name for the app, nor a global one.
    UnknownSecret(String),
    /// The secret is for another domain.
    SecretElsewhere(String),
    /// The app's rate for this entry is used up.
    RateLimited {
        /// The rate, per minute.
        per_minute: u64,
    },
}

impl Reason {
    /// The stable name, for logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            Reason::BadUrl => "bad_url",
            Reason::Scheme(_) => "scheme",
            Reason::Userinfo => "userinfo",
            Reason::IpLiteral => "ip_literal",
            Reason::BadHost => "bad_host",
            Reason::BadPort(_) => "bad_port",
            Reason::NotAllowed(_) => "not_allowed",
            Reason::HttpNotAllowed(_) => "http_not_allowed",
            Reason::Address { .. } => "blocked_address",
            Reason::BodyTooLarge { .. } => "body_too_large",
            Reason::TooManyCalls { .. } => "too_many_calls",
            Reason::BudgetSpent { .. } => "budget_spent",
            Reason::NoTimeLeft => "no_time_left",
            Reason::Timeout => "timeout",
            Reason::Busy { .. } => "busy",
            Reason::Unresolvable(_) => "unresolvable",
            Reason::BadHeader(_) => "bad_header",
            Reason::BadMethod(_) => "bad_method",
            Reason::ConnectFailed => "connect_failed",
            Reason::Tls(_) => "tls",
            Reason::Upstream(_) => "upstream",
            Reason::HeadTooLarge => "head_too_large",
            Reason::ResponseTooLarge { .. } => "response_too_large",
            Reason::TooManyRedirects { .. } => "too_many_redirects",
            Reason::Downgrade => "downgrade",
            Reason::EgressUnavailable => "egress_unavailable",
            Reason::Ticket(TicketError::Missing) => "ticket_missing",
            Reason::Ticket(TicketError::Forged) => "ticket_forged",
            Reason::Ticket(TicketError::Expired) => "ticket_expired",
            Reason::UnknownSecret(_) => "unknown_secret",
            Reason::SecretElsewhere(_) => "secret_elsewhere",
            Reason::RateLimited { .. } => "rate_limited",
        }
    }

    /// The code JS sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            Reason::BadUrl
            | Reason::Scheme(_)
            | Reason::Userinfo
            | Reason::IpLiteral
            | Reason::BadHost
            | Reason::BadPort(_)
            | Reason::NotAllowed(_)
            | Reason::HttpNotAllowed(_)
            | Reason::Address { .. }
            | Reason::BadHeader(_)
            | Reason::BadMethod(_)
            | Reason::Downgrade
            | Reason::Ticket(TicketError::Missing | TicketError::Forged) => ErrorCode::NetBlocked,
            // A genuine ticket past its request's deadline: the call is the
            // app's, too late.
            Reason::Ticket(TicketError::Expired) => ErrorCode::NetTimeout,
            Reason::UnknownSecret(_) | Reason::SecretElsewhere(_) => ErrorCode::NetAuth,
            Reason::RateLimited { .. } => ErrorCode::NetRate,
            Reason::BodyTooLarge { .. } => ErrorCode::NetSize,
            Reason::TooManyCalls { .. } => ErrorCode::NetLimit,
            Reason::BudgetSpent { .. } => ErrorCode::NetBudget,
            Reason::NoTimeLeft | Reason::Timeout => ErrorCode::NetTimeout,
            Reason::Busy { .. } => ErrorCode::NetLimit,
            Reason::HeadTooLarge | Reason::ResponseTooLarge { .. } => ErrorCode::NetSize,
            Reason::Unresolvable(_)
            | Reason::ConnectFailed
            | Reason::Tls(_)
            | Reason::Upstream(_)
            | Reason::TooManyRedirects { .. }
            | Reason::EgressUnavailable => ErrorCode::NetError,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::BadUrl => f.write_str("not a valid URL"),
            Reason::Scheme(s) => write!(f, "scheme {s:?} is not allowed; use https"),
            Reason::Userinfo => f.write_str("credentials in the URL are not allowed; use auth"),
            Reason::IpLiteral => f.write_str("IP addresses are not allowed; use a domain name"),
            Reason::BadHost => f.write_str("the host is not a valid domain name"),
            Reason::BadPort(p) => write!(f, "port {p} is not allowed"),
            Reason::NotAllowed(d) => write!(f, "{d} is not on the allowlist"),
            Reason::HttpNotAllowed(d) => write!(f, "{d} is allowed over https only"),
            // The address is not shown to JS: it would map the private
            // network for the app.
            Reason::Address { .. } => f.write_str("the host resolves to a non-public address"),
            Reason::BodyTooLarge { max } => {
                write!(f, "the request body is over net.max_req_body ({max} bytes)")
            }
            Reason::TooManyCalls { max } => {
                write!(f, "this request made its {max} calls (net.max_calls)")
            }
            Reason::BudgetSpent { budget_ms } => write!(
                f,
                "this request used its {budget_ms} ms of network time (net.budget_ms)"
            ),
            Reason::NoTimeLeft => f.write_str("less than a second of the request is left"),
            Reason::Timeout => f.write_str("the call took longer than its timeout"),
            Reason::Busy { app: true } => {
                f.write_str("this app has net.app_concurrency calls in flight")
            }
            Reason::Busy { app: false } => f.write_str("fazt has net.concurrency calls in flight"),
            Reason::Unresolvable(d) => write!(f, "{d} has no address"),
            Reason::BadHeader(h) => write!(f, "request header {h:?} is not allowed as given"),
            Reason::BadMethod(m) => write!(f, "method {m:?} is not allowed"),
            Reason::ConnectFailed => f.write_str("the upstream did not accept a connection"),
            Reason::Tls(why) => write!(f, "TLS handshake failed: {why}"),
            Reason::Upstream(why) => write!(f, "the upstream broke the exchange: {why}"),
            Reason::HeadTooLarge => {
                f.write_str("the response head is over 64 KiB or 100 header fields")
            }
            Reason::ResponseTooLarge { max } => {
                write!(f, "the response body is over {max} bytes (max_response)")
            }
            Reason::TooManyRedirects { max } => {
                write!(f, "more than {max} redirects (net.max_redirects)")
            }
            Reason::Downgrade => f.write_str("a redirect from https to http is not followed"),
            Reason::EgressUnavailable => f.write_str("the egress process is not reachable"),
            Reason::Ticket(why) => write!(f, "{why}"),
            Reason::UnknownSecret(name) => write!(f, "no secret named {name:?} for this app"),
            Reason::SecretElsewhere(name) => {
                write!(f, "secret {name:?} is not for this domain")
            }
            Reason::RateLimited { per_minute } => write!(
                f,
                "this app's rate for the domain ({per_minute} per minute) is used up"
            ),
        }
    }
}

/// A refused call, as the worker turns it into a JS error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code JS sees.
    pub code: ErrorCode,
    /// Why.
    pub reason: Reason,
}

impl From<Reason> for Refusal {
    fn from(reason: Reason) -> Refusal {
        Refusal {
            code: reason.code(),
            reason,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}
