//! The egress process (SPEC §6): the one way JS reaches the network. It
//! depends on `shared` and `ipc` only — never on the front door or the
//! worker pool — so what it allows is decided here and nowhere else.
//!
//! - [`fetch`]: one call, steps 1–12 in the spec's order — start here.
//! - [`decide`]: steps 1–5, one small check each.
//! - [`budget`]: per-request spend and the concurrency slots (5, 7).
//! - [`resolve`]: step 8; [`headers`]: step 9; [`client`]: step 10.
//! - [`server`]: the process: its supervisor link, heartbeats, shutdown.
//! - [`live`]: the allowlist and secrets as egress holds them, kept fresh.
//! - [`cache`]: step 6's response cache, per app, opt-in per entry.
//! - [`rate`]: step 7's rate limit, a token bucket per app and entry.
//! - [`secret`]: steps 6 and 10 for secrets: injected, then scrubbed from
//!   what comes back.
//! - [`settings`]: the test settings (`FAZT_NET_NAMESERVER`, pins).
//! - [`target`]: step 1, a URL parsed and normalised into a [`target::Target`].
//! - [`addr`]: step 8's address rules, one predicate per range with its RFC.
//! - [`refusal`]: why a call was refused: a code and a stable reason.

pub mod addr;
pub mod budget;
pub mod cache;
pub mod client;
pub mod decide;
pub mod fetch;
pub mod headers;
pub mod live;
pub mod rate;
pub mod refusal;
pub mod resolve;
pub mod secret;
pub mod server;
pub mod settings;
pub mod target;

pub use server::{run, EgressArgs, EgressError};
