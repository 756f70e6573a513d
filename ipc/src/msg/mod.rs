//! The messages, one module per protocol and one enum per direction. Every
//! shape here is covered by [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION):
//! change a message, bump it.
//!
//! - [`worker`]: supervisor ↔ worker.
//! - [`egress`]: worker ↔ egress.
//! - [`control`]: CLI ↔ supervisor.

pub mod control;
pub mod egress;
pub mod worker;

pub use control::*;
pub use egress::*;
pub use worker::*;
