//! Wire types and framing between fazt's processes (SPEC §2).
//!
//! - [`frame`]: one length-prefixed bincode frame; pure encode/decode.
//! - [`conn`]: frames over a byte stream, the handshake, local sockets.
//! - [`msg`]: the messages, one module per protocol (worker, egress,
//!   control) and one enum per direction.
//!
//! Every connection opens with a [`conn::Hello`] carrying the protocol
//! version and the sender's role; a peer of another version is refused before
//! any frame is decoded.

pub mod conn;
pub mod frame;
pub mod msg;

pub use conn::{handshake, FrameReader, FrameWriter, Hello};

/// The one protocol number for every frame type; bump it on any change to `msg`.
pub const PROTOCOL_VERSION: u16 = 8;

/// What a process is, announced in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Role {
    /// `fazt supervise`.
    Supervisor = 1,
    /// `fazt worker`.
    Worker = 2,
    /// `fazt egress`.
    Egress = 3,
    /// A CLI command on the control socket.
    Cli = 4,
}

impl Role {
    fn from_u8(b: u8) -> Option<Role> {
        Some(match b {
            1 => Role::Supervisor,
            2 => Role::Worker,
            3 => Role::Egress,
            4 => Role::Cli,
            _ => return None,
        })
    }
}

/// Errors of a connection. Every one closes it; none panics.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    /// The socket failed.
    #[error("ipc i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A length prefix over the maximum; nothing was allocated for it.
    #[error("frame of {len} bytes is over the maximum of {max}", max = frame::MAX_FRAME)]
    FrameTooLarge {
        /// The claimed or actual length.
        len: usize,
    },
    /// The peer closed in the middle of a frame or handshake.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// A payload that is not a valid message.
    #[error("undecodable frame: {0}")]
    Decode(String),
    /// A message that could not be encoded.
    #[error("unencodable message: {0}")]
    Encode(String),
    /// The peer is not a fazt process.
    #[error("peer is not fazt (bad magic in handshake)")]
    BadMagic,
    /// The peer speaks another protocol version (a binary of another build).
    #[error("peer speaks ipc protocol {theirs}, this fazt speaks {ours}; restart all fazt processes from one binary")]
    VersionMismatch {
        /// Ours.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// The peer announced a role number this build does not know.
    #[error("peer announced unknown role {0}")]
    UnknownRole(u8),
    /// The peer's role is not one this endpoint serves.
    #[error("peer role {0:?} is not expected here")]
    UnexpectedRole(Role),
    /// The peer did not finish the handshake in time.
    #[error("peer did not complete the handshake in time")]
    HandshakeTimeout,
    /// The supervisor sent no configuration in time.
    #[error("no configuration from the supervisor in time")]
    ConfigureTimeout,
}
