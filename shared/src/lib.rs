//! What every fazt process agrees on.
//!
//! - [`limits`]: the one declaration of every bound (SPEC §3), its schema and
//!   the hardware probe.
//! - [`store`]: the data dir, the SQLite database, its migrations and pool (SPEC §4).
//! - [`app`]: validated app names and file paths; [`mime`]: content types.
//! - [`net`]: domains, allowlist patterns and entries (SPEC §6), secrets (§7).
//! - [`ticket`]: execution tickets, so egress knows a call's app (SPEC §7).
//! - [`error_code`]: the stable user-visible error codes.
//! - [`units`]: reading and showing sizes and durations.
//! - [`periodic`]: the one periodic-task loop every process uses.

pub mod app;
pub mod error_code;
pub mod limits;
pub mod mime;
pub mod net;
pub mod periodic;
pub mod store;
pub mod ticket;
pub mod units;

pub use app::{AppName, FilePath, PublicPath};
pub use error_code::ErrorCode;
pub use limits::{LimitKey, Limits, Probe};
pub use store::{DataDir, Store, StoreError};
