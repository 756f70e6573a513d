//! Execution tickets (SPEC §7): the supervisor gives each dispatched
//! request a ticket — an HMAC over its app id, request id and deadline —
//! and egress answers a net call only with a valid, unexpired ticket for
//! the app the call names. So a worker cannot act as another app or
//! outlive its request. The key is made at each supervisor start, handed
//! to egress over the children's socket, and never written anywhere.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The key tickets are signed with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketKey([u8; 32]);

/// A request's ticket: its deadline and the MAC binding it to the app and
/// the request. The worker holds it; JS never sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// When the request must be over, ms since the Unix epoch.
    pub deadline_unix_ms: u64,
    /// HMAC-SHA256 over app id, deadline and request id.
    pub mac: [u8; 32],
}

/// Why a ticket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The call came without one.
    #[error("no execution ticket")]
    Missing,
    /// The MAC does not match this app, request and deadline.
    #[error("the execution ticket is not valid for this app and request")]
    Forged,
    /// Its request's deadline has passed.
    #[error("the execution ticket has expired")]
    Expired,
}

impl TicketKey {
    /// A fresh random key.
    pub fn generate() -> TicketKey {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        TicketKey(key)
    }

    /// The ticket for request `request_id` of app `app_id`, valid until
    /// `deadline_unix_ms`.
    pub fn issue(&self, app_id: i64, request_id: &str, deadline_unix_ms: u64) -> Ticket {
        let mac = self
            .mac(app_id, request_id, deadline_unix_ms)
            .finalize()
            .into_bytes();
        Ticket {
            deadline_unix_ms,
            mac: mac.into(),
        }
    }

    /// Checks `ticket` for this app and request at `now_unix_ms`; the MAC
    /// is compared in constant time.
    pub fn verify(
        &self,
        ticket: Option<&Ticket>,
        app_id: i64,
        request_id: &str,
        now_unix_ms: u64,
    ) -> Result<(), TicketError> {
        let ticket = ticket.ok_or(TicketError::Missing)?;
        self.mac(app_id, request_id, ticket.deadline_unix_ms)
            .verify_slice(&ticket.mac)
            .map_err(|_| TicketError::Forged)?;
        if now_unix_ms >= ticket.deadline_unix_ms {
            return Err(TicketError::Expired);
        }
        Ok(())
    }

    fn mac(&self, app_id: i64, request_id: &str, deadline_unix_ms: u64) -> HmacSha256 {
        // Fixed-width fields first, the request id last: no two inputs
        // share an encoding.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(&app_id.to_be_bytes());
        mac.update(&deadline_unix_ms.to_be_bytes());
        mac.update(request_id.as_bytes());
        mac
    }
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketKey(***)")
    }
}

/// Now, in ms since the Unix epoch (the clock tickets are dated by).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_holds_for_its_app_request_and_time_only() {
        let key = TicketKey::generate();
        let t = key.issue(7, "req-1", 10_000);
        assert_eq!(key.verify(Some(&t), 7, "req-1", 9_999), Ok(()));
        assert_eq!(
            key.verify(Some(&t), 7, "req-1", 10_000),
            Err(TicketError::Expired)
        );
        assert_eq!(
            key.verify(Some(&t), 8, "req-1", 0),
            Err(TicketError::Forged),
            "another app"
        );
        assert_eq!(
            key.verify(Some(&t), 7, "req-2", 0),
            Err(TicketError::Forged),
            "another request"
        );
        let mut later = t.clone();
        later.deadline_unix_ms = 20_000;
        assert_eq!(
            key.verify(Some(&later), 7, "req-1", 15_000),
            Err(TicketError::Forged),
            "a deadline moved by hand"
        );
        let mut flipped = t.clone();
        flipped.mac[0] ^= 1;
        assert_eq!(
            key.verify(Some(&flipped), 7, "req-1", 0),
            Err(TicketError::Forged)
        );
        assert_eq!(key.verify(None, 7, "req-1", 0), Err(TicketError::Missing));
        assert_eq!(
            TicketKey::generate().verify(Some(&t), 7, "req-1", 0),
            Err(TicketError::Forged),
            "another supervisor's key"
        );
        assert_eq!(format!("{key:?}"), "TicketKey(***)");
    }
}
