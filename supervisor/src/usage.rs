//! The error that means "you asked for something invalid": exit code 2,
//! nothing written.

/// A usage error with a message for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    /// Wraps anything displayable.
    pub fn from_display(e: impl std::fmt::Display) -> UsageError {
        UsageError(e.to_string())
    }
}
