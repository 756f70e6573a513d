//! Reading request bodies with bounds (SPEC §3, `capacity`): a declared
//! length over the cap is refused before a byte is read (so
//! `Expect: 100-continue` gets 413, not 100); the bytes of all bodies being
//! read at once are bounded by a budget that a body reserves whole before it
//! is read (waiting, unread, for room); a client that pauses longer than the
//! stall timeout, or a request past its deadline, is cut off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fazt_shared::units::format_bytes;
use fazt_shared::ErrorCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Longer than allowed (declared or actual).
    #[error("the request body is over {}", format_bytes(*.0))]
    TooLarge(u64),
    /// No room in the body budget before the deadline.
    #[error("too many request bodies are being received; try again")]
    Busy,
    /// The client paused too long, or the request ran out of time.
    #[error("the request body arrived too slowly")]
    Slow,
    /// The connection broke or the body was malformed.
    #[error("the request body could not be read")]
    Broken,
}

impl BodyError {
    /// The code the client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            BodyError::TooLarge(_) => ErrorCode::PayloadTooLarge,
            BodyError::Busy => ErrorCode::Overloaded,
            BodyError::Slow => ErrorCode::ClientTimeout,
            BodyError::Broken => ErrorCode::BadRequest,
        }
    }
}

/// The declared `Content-Length`, when there is one.
pub fn declared_len(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Refuses a declared length over `max` before anything is read.
pub fn check_declared(headers: &HeaderMap, max: u64) -> Result<(), BodyError> {
    match declared_len(headers) {
        Some(n) if n > max => Err(BodyError::TooLarge(max)),
        _ => Ok(()),
    }
}

/// Bytes of request bodies that may be held at once, all requests together.
#[derive(Clone)]
pub struct BodyBudget(Arc<Semaphore>);

/// Room reserved in the budget; returned when dropped.
pub struct Reserved(Option<OwnedSemaphorePermit>);

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> BodyBudget {
        let permits = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        BodyBudget(Arc::new(Semaphore::new(permits)))
    }

    /// Waits for room for `n` more bytes until `deadline`.
    async fn reserve(
        &self,
        held: &mut Reserved,
        n: u64,
        deadline: Instant,
    ) -> Result<(), BodyError> {
        if n == 0 {
            return Ok(());
        }
        let n = u32::try_from(n).map_err(|_| BodyError::TooLarge(u64::from(u32::MAX)))?;
        let permit = tokio::time::timeout_at(deadline.into(), self.0.clone().acquire_many_owned(n))
            .await
            .map_err(|_| BodyError::Busy)?
            .map_err(|_| BodyError::Busy)?;
        match &mut held.0 {
            Some(p) => p.merge(permit),
            None => held.0 = Some(permit),
        }
        Ok(())
    }
}

/// How one body is read.
pub struct Bounds<'a> {
    /// Largest body.
    pub max: u64,
    /// The shared budget; `None` for bodies that need none (the admin
    /// API's authenticated uploads, bounded by their own cap).
    pub budget: Option<&'a BodyBudget>,
    /// Longest pause between two pieces of the body.
    pub stall: Duration,
    /// When the request must be over.
    pub deadline: Instant,
}

/// Reads a whole body within `bounds`. The returned reservation keeps the
/// body's room in the budget; drop it once the bytes are gone.
pub async fn read(
    headers: &HeaderMap,
    mut body: Incoming,
    bounds: Bounds<'_>,
) -> Result<(Bytes, Reserved), BodyError> {
    check_declared(headers, bounds.max)?;
    if hyper::body::Body::is_end_stream(&body) {
        return Ok((Bytes::new(), Reserved(None)));
    }
    let declared = declared_len(headers);
    let mut held = Reserved(None);
    // The whole room a body may need is taken at once, before it is read:
    // its declared length, or the cap when it has none. Growing a hold
    // while others wait for room could leave every body holding part of
    // the budget and none able to finish.
    if let Some(budget) = bounds.budget {
        let room = declared.unwrap_or(bounds.max).min(bounds.max);
        budget.reserve(&mut held, room, bounds.deadline).await?;
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(bounds.max) as usize);
    loop {
        let next = (Instant::now() + bounds.stall).min(bounds.deadline);
        let frame = match tokio::time::timeout_at(next.into(), body.frame()).await {
            Err(_) => return Err(BodyError::Slow),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let total = buf.len() as u64 + data.len() as u64;
        // More than declared is a broken body; more than the cap, too large.
        if total > bounds.max || declared.is_some_and(|n| total > n) {
            return Err(BodyError::TooLarge(bounds.max));
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf.freeze(), held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_makes_later_bodies_wait_and_times_out() {
        let budget = BodyBudget::new(10);
        let soon = Instant::now() + Duration::from_millis(100);
        let mut a = Reserved(None);
        budget.reserve(&mut a, 6, soon).await.expect("room");
        let mut b = Reserved(None);
        assert!(matches!(
            budget.reserve(&mut b, 6, soon).await,
            Err(BodyError::Busy)
        ));
        drop(a);
        let later = Instant::now() + Duration::from_millis(100);
        budget
            .reserve(&mut b, 6, later)
            .await
            .expect("room after the first left");
        budget.reserve(&mut b, 4, later).await.expect("grows");
        assert_eq!(budget.0.available_permits(), 0);
    }

    #[test]
    fn declared_lengths_over_the_cap_are_refused() {
        let mut h = HeaderMap::new();
        assert!(check_declared(&h, 10).is_ok());
        h.insert(CONTENT_LENGTH, "10".parse().expect("v"));
        assert!(check_declared(&h, 10).is_ok());
        h.insert(CONTENT_LENGTH, "11".parse().expect("v"));
        assert!(matches!(
            check_declared(&h, 10),
            Err(BodyError::TooLarge(10))
        ));
    }
}
