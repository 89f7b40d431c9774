//! The INVITE server transaction of RFC 3261 §17.2.1, without sockets: a table the transport
//! asks what to do with each request and each tick of the clock, so every rule is tested with
//! a clock passed in.
//!
//! The redirect server only ever answers an INVITE with a final non-2xx response (`302`,
//! `403`, `607`, `608`, `400`...), so its transactions go Proceeding → Completed → Confirmed →
//! Terminated:
//! - a retransmitted INVITE (same top Via branch and sent-by, RFC 3261 §17.2.3) gets the
//!   stored final response byte for byte, or nothing while the first copy is still being
//!   answered; it is never signed or verified twice;
//! - on an unreliable transport the final response is sent again on Timer G (T1, doubling up
//!   to T2) until the ACK arrives, and given up on Timer H (64·T1);
//! - the ACK is absorbed, and retransmitted ACKs with it for Timer I (T4 on UDP, 0 on TCP);
//! - a `CANCEL` matching a transaction gets its own `200` (RFC 3261 §9.2); the INVITE has
//!   already had, or will have, its final response (the dip is answered at once, so a
//!   `487` is never needed);
//! - the table holds at most `capacity` transactions: when full, a new INVITE is refused
//!   (`503` with Retry-After by the transport) rather than forgetting one that may be
//!   retransmitted.
//!
//! CONTRACT (skeleton): filled by the "transaction" part.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::message::Request;
use crate::via::Via;

/// The timer base values (RFC 3261 §17.1.1.1, Table 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// T1, the round-trip estimate (500 ms).
    pub t1: Duration,
    /// T2, the longest retransmit interval (4 s).
    pub t2: Duration,
    /// T4, the longest time a message stays in the network (5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// What the transport does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A new INVITE transaction: answer it (once) and hand the answer to
    /// [`Transactions::answered`].
    Answer(TransactionId),
    /// A retransmission of an INVITE already answered: send these bytes again.
    Resend(Arc<[u8]>),
    /// A retransmission of an INVITE still being answered, or an ACK: nothing to send.
    Absorb,
    /// A CANCEL that matches a transaction: answer it `200 OK` (built by the transport from
    /// the CANCEL).
    CancelOk,
    /// A CANCEL that matches nothing: answer it `481 Call/Transaction Does Not Exist`.
    CancelUnknown,
    /// The table is full: answer the INVITE `503 Service Unavailable` without remembering it.
    Full,
    /// Not a transaction this table keeps (OPTIONS, other methods, an ACK for nothing): the
    /// transport handles it statelessly.
    Stateless,
}

/// Names one server transaction inside a [`Transactions`] table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransactionId(pub u64);

/// Something the clock made due: bytes to send again to an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resend {
    /// Where.
    pub to: SocketAddr,
    /// The stored final response.
    pub bytes: Arc<[u8]>,
}

/// Counts the table keeps for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransactionCounts {
    /// Transactions held now.
    pub live: usize,
    /// INVITE retransmissions answered from memory.
    pub resent_from_memory: u64,
    /// Final responses sent again on Timer G.
    pub timer_g_resends: u64,
    /// Transactions given up on Timer H (no ACK).
    pub timer_h_expired: u64,
    /// ACKs absorbed.
    pub acks: u64,
    /// INVITEs refused because the table was full.
    pub refused_full: u64,
}

/// The table of INVITE server transactions.
#[derive(Debug)]
pub struct Transactions {
    timers: Timers,
    capacity: usize,
}

impl Transactions {
    /// An empty table holding at most `capacity` transactions.
    pub fn new(timers: Timers, capacity: usize) -> Self {
        Self { timers, capacity }
    }

    /// What to do with `request`, whose top Via is `via`, received from `source` over a
    /// reliable (TCP) or unreliable (UDP) transport at `now`.
    pub fn on_request(
        &mut self,
        request: &Request,
        via: &Via,
        source: SocketAddr,
        reliable: bool,
        now: Instant,
    ) -> Action {
        let _ = (
            request,
            via,
            source,
            reliable,
            now,
            self.timers,
            self.capacity,
        );
        Action::Stateless
    }

    /// Stores the final response of transaction `id` (its wire bytes) and starts its timers.
    /// Returns false when the transaction is unknown (expired meanwhile).
    pub fn answered(&mut self, id: &TransactionId, bytes: Arc<[u8]>, now: Instant) -> bool {
        let _ = (id, bytes, now);
        false
    }

    /// The resends due at `now` (Timer G), forgetting transactions whose Timer H or I fired.
    pub fn poll(&mut self, now: Instant) -> Vec<Resend> {
        let _ = now;
        Vec::new()
    }

    /// The next instant [`Transactions::poll`] has something to do, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// The counts for metrics.
    pub fn counts(&self) -> TransactionCounts {
        TransactionCounts::default()
    }
}
