//! The network rules shared by the CLI, the admin API and egress (SPEC §6):
//! [`domain`] parses host names and allowlist patterns once;
//! [`allowlist`] holds the entries and picks the one that applies;
//! [`secret`] holds the values egress sends for an app and never shows it;
//! [`log`] is one fetch as the network log keeps it.

pub mod allowlist;
pub mod domain;
pub mod log;
pub mod secret;

pub use allowlist::{AllowEntry, Allowlist, DomainSettings, Scope};
pub use domain::{Domain, DomainError, DomainPattern};
pub use log::NetLogRow;
pub use secret::{Injection, Secret, SecretError, SecretName, SecretValue, Secrets};
