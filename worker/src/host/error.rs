//! The host error funnel: every host function returns a [`HostError`] on
//! failure, and [`HostError::throw`] alone turns it into a JS exception of
//! the calling request's realm. An error with a platform code carries it as
//! the exception's `code` property, which survives to the HTTP answer.

use fazt_shared::store::kv::KvError;
use fazt_shared::{ErrorCode, StoreError};
use rquickjs::{Ctx, Exception};

/// Why a host function failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A JS exception is already pending (QuickJS threw, or JS code the host
    /// called threw); it is passed on as it is.
    #[error("JS exception")]
    Js(#[from] rquickjs::Error),
    /// An argument has the wrong type: a `TypeError`.
    #[error("{0}")]
    Type(String),
    /// An argument or result is out of range: a `RangeError`.
    #[error("{0}")]
    Range(String),
    /// A plain `Error` without a platform code.
    #[error("{0}")]
    Message(String),
    /// An `Error` whose `code` property is a platform code.
    #[error("{message}")]
    Coded {
        /// The stable code (`DB_BUSY`, `NET_…`).
        code: ErrorCode,
        /// The message; never a secret or a host path.
        message: String,
    },
    /// The request this host function belongs to is over: a closure kept by
    /// JS (a job, a finaliser) must never act for a later request.
    #[error("fazt host API called after its request ended")]
    Ended,
}

/// What host functions return.
pub type HostResult<T> = Result<T, HostError>;

impl HostError {
    /// A store failure inside `what`: a busy database is retryable
    /// (`DB_BUSY`, 503), anything else is internal and logged here, once.
    pub fn store(what: &str, e: &StoreError) -> HostError {
        if e.code() == ErrorCode::Internal {
            tracing::warn!(error = %e, "{what} failed");
        }
        HostError::Coded {
            code: e.code(),
            message: format!("{what}: {}", e.public_message()),
        }
    }

    /// A kv failure inside `what`: a full kv is `KV_QUOTA`; bad keys and
    /// values are `RangeError`s; the store as above.
    pub fn kv(what: &str, e: KvError) -> HostError {
        match e {
            KvError::Store(s) => HostError::store(what, &s),
            KvError::Quota(_) => HostError::Coded {
                code: ErrorCode::KvQuota,
                message: format!("{what}: {e}"),
            },
            limit @ (KvError::BadKey(_) | KvError::TooLarge { .. } | KvError::ListTooLarge(_)) => {
                HostError::Range(format!("{what}: {limit}"))
            }
        }
    }

    /// Throws this error in `ctx` and returns the marker QuickJS expects.
    pub fn throw(self, ctx: &Ctx<'_>) -> rquickjs::Error {
        match self {
            HostError::Js(e) => e,
            HostError::Type(m) => Exception::throw_type(ctx, &m),
            HostError::Range(m) => Exception::throw_range(ctx, &m),
            HostError::Message(m) => Exception::throw_message(ctx, &m),
            HostError::Ended => Exception::throw_message(ctx, &HostError::Ended.to_string()),
            HostError::Coded { code, message } => {
                let Ok(err) = Exception::from_message(ctx.clone(), &message) else {
                    return rquickjs::Error::Exception;
                };
                let _ = err.as_object().set("code", code.as_str());
                ctx.throw(err.into_value())
            }
        }
    }
}

/// `.or_throw(ctx)` on a host result, for the few places that hand a result
/// straight back to rquickjs (installing globals).
pub trait OrThrow<T> {
    /// The value, or the error thrown in `ctx`.
    fn or_throw(self, ctx: &Ctx<'_>) -> rquickjs::Result<T>;
}

impl<T> OrThrow<T> for HostResult<T> {
    fn or_throw(self, ctx: &Ctx<'_>) -> rquickjs::Result<T> {
        self.map_err(|e| e.throw(ctx))
    }
}
