//! The INVITE server transaction of RFC 3261 §17.2.1, without sockets: a table the transport
//! asks what to do with each request and each tick of the clock, so every rule is tested with
//! a clock passed in.
//!
//! The redirect server only ever answers an INVITE with a final non-2xx response (`302`,
//! `403`, `607`, `608`, `400`...), so its transactions go Proceeding → Completed → Confirmed →
//! Terminated:
//! - a retransmitted INVITE (same top Via branch and sent-by, RFC 3261 §17.2.3, from the
//!   same source) gets the stored final response byte for byte, or while the first copy is
//!   still being answered the latest provisional response (`100 Trying`, stored with
//!   [`Transactions::provisional`]) or nothing when none was sent yet; it is never signed or
//!   verified twice;
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
//! How a request finds its transaction (RFC 3261 §17.2.3, plus where it came from):
//! - always the [`Source`]: the source address and port over UDP, the connection over TCP.
//!   RFC 3261 matches on the Via alone, but a branch is only as unique as the client made
//!   it: two clients that pick the same branch and sent-by (a copied template, a NAT hiding
//!   both behind one sent-by) must never receive each other's stored answers. A client's
//!   retransmissions come from the same address and port (over TCP, the same connection),
//!   so they still match;
//! - with a top Via branch starting with the magic cookie `z9hG4bK`: the branch, the sent-by
//!   host (case-insensitive) and port. Only INVITE transactions are kept, and the ACK of a
//!   non-2xx final response and a `CANCEL` carry the INVITE's branch (§17.1.1.3, §9.1), so
//!   they find the INVITE's transaction under the same key;
//! - without the cookie (RFC 2543 peers), a simplified form of §17.2.3's older rule: the
//!   Request-URI, the From tag, the Call-ID, the CSeq number and the whole top Via value. The
//!   To tag is left out of the key because the INVITE has none and its ACK carries ours; the
//!   CSeq method is left out so that ACK and CANCEL match their INVITE.
//!
//! Timers are kept in one ordered set of `(deadline, transaction)`: each transaction has at
//! most one pending deadline (Timer G or H, whichever is first, or I, or the limit on
//! answering), so [`Transactions::poll`] costs what is due, not a scan of the table.
//!
//! A transaction still being answered after 64·T1 (a handler that hung) is forgotten too, and
//! counted in [`TransactionCounts::unanswered_expired`]: the table never keeps an entry no
//! clock will remove.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::message::{Method, Request};
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
    /// A retransmission of an INVITE already answered, or still being answered after a
    /// provisional response was stored: send these bytes (the final or the latest provisional
    /// response) again.
    Resend(Arc<[u8]>),
    /// A retransmission of an INVITE still being answered and not yet given a provisional
    /// response, or an ACK: nothing to send.
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

/// Where a request came from, as part of its transaction's key (see the module
/// documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// An unreliable transport (UDP): the source address and port, where resends go.
    Udp(SocketAddr),
    /// A reliable transport (TCP): the connection, as numbered by the transport; nothing is
    /// ever resent on it.
    Tcp(u64),
}

impl Source {
    /// Whether the transport is reliable (TCP): no Timer G, Timer I zero.
    pub fn is_reliable(self) -> bool {
        matches!(self, Self::Tcp(_))
    }
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
    /// INVITE retransmissions answered from memory (with the final or the provisional
    /// response).
    pub resent_from_memory: u64,
    /// Final responses sent again on Timer G.
    pub timer_g_resends: u64,
    /// Transactions given up on Timer H (no ACK).
    pub timer_h_expired: u64,
    /// ACKs absorbed.
    pub acks: u64,
    /// INVITEs refused because the table was full.
    pub refused_full: u64,
    /// Transactions forgotten because no answer was stored within 64·T1 (a hung handler).
    pub unanswered_expired: u64,
}

/// How a request names its INVITE transaction (see the module documentation): where it came
/// from, and what its Via (or the older rule) says.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    source: Source,
    name: Name,
}

/// The part of a [`Key`] the request carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Name {
    /// RFC 3261: the branch (with the magic cookie) and the sent-by.
    Branch {
        branch: String,
        host: String,
        port: Option<u16>,
    },
    /// RFC 2543 peers: the simplified older rule.
    Legacy {
        uri: String,
        from_tag: String,
        call_id: String,
        cseq: String,
        via: String,
    },
}

impl Key {
    fn of(request: &Request, via: &Via, source: Source) -> Self {
        Self {
            source,
            name: Name::of(request, via),
        }
    }
}

impl Name {
    fn of(request: &Request, via: &Via) -> Self {
        match &via.branch {
            Some(branch) if via.is_rfc3261() => Self::Branch {
                branch: branch.clone(),
                host: via.host.to_ascii_lowercase(),
                port: via.port,
            },
            _ => Self::Legacy {
                uri: request.uri.clone(),
                from_tag: request
                    .header("From")
                    .and_then(tag_param)
                    .unwrap_or_default()
                    .to_owned(),
                call_id: request.header("Call-ID").unwrap_or_default().to_owned(),
                // The number only: ACK and CANCEL carry the INVITE's number with their own
                // method (RFC 3261 §17.1.1.3, §9.1).
                cseq: request
                    .header("CSeq")
                    .and_then(|v| v.split_whitespace().next())
                    .unwrap_or_default()
                    .to_owned(),
                via: request
                    .header("Via")
                    .map(|v| v.split(',').next().unwrap_or(v).trim().to_owned())
                    .unwrap_or_default(),
            },
        }
    }
}

/// The `tag` parameter of a From or To value: the parameters after the `>` of a name-addr,
/// or after the URI of an addr-spec (whose own parameters are then the header's, RFC 3261
/// §20.10).
pub(crate) fn tag_param(value: &str) -> Option<&str> {
    let params = match value.rfind('>') {
        Some(end) => value.get(end + 1..)?,
        None => value,
    };
    params.split(';').skip(1).find_map(|param| {
        let (name, tag) = param.split_once('=')?;
        name.trim().eq_ignore_ascii_case("tag").then(|| tag.trim())
    })
}

/// Where a transaction is in RFC 3261 §17.2.1's state machine.
#[derive(Debug)]
enum State {
    /// Being answered by the service; forgotten at `deadline` (64·T1) if no answer comes.
    /// The latest provisional response sent, if any, for retransmitted INVITEs.
    Proceeding { provisional: Option<Arc<[u8]>> },
    /// Answered: the bytes, and Timer G's next firing and interval (unreliable only), Timer H.
    Completed {
        bytes: Arc<[u8]>,
        timer_g: Option<(Instant, Duration)>,
        timer_h: Instant,
    },
    /// ACKed: retransmitted ACKs are absorbed until Timer I (the entry's deadline).
    Confirmed,
}

#[derive(Debug)]
struct Entry {
    key: Key,
    state: State,
    /// The one pending deadline of this transaction, as held in `Transactions::deadlines`.
    deadline: Instant,
}

/// The table of INVITE server transactions.
#[derive(Debug)]
pub struct Transactions {
    timers: Timers,
    capacity: usize,
    next_id: u64,
    by_key: HashMap<Key, u64>,
    entries: HashMap<u64, Entry>,
    deadlines: BTreeSet<(Instant, u64)>,
    counts: TransactionCounts,
}

impl Transactions {
    /// An empty table holding at most `capacity` transactions.
    pub fn new(timers: Timers, capacity: usize) -> Self {
        Self {
            timers,
            capacity,
            next_id: 0,
            by_key: HashMap::new(),
            entries: HashMap::new(),
            deadlines: BTreeSet::new(),
            counts: TransactionCounts::default(),
        }
    }

    /// What to do with `request`, whose top Via is `via`, received from `source` (a UDP
    /// address, or a TCP connection: reliable) at `now`.
    ///
    /// INVITE: new → [`Action::Answer`] (or [`Action::Full`]); a retransmission while being
    /// answered → [`Action::Resend`] of the latest provisional response, or
    /// [`Action::Absorb`] when there is none; once answered → [`Action::Resend`] of the
    /// stored bytes;
    /// once ACKed → [`Action::Absorb`]. ACK: matching → [`Action::Absorb`] (stops Timers G
    /// and H, starts Timer I), matching nothing → [`Action::Stateless`]. CANCEL →
    /// [`Action::CancelOk`] or [`Action::CancelUnknown`]. Anything else →
    /// [`Action::Stateless`].
    pub fn on_request(
        &mut self,
        request: &Request,
        via: &Via,
        source: Source,
        now: Instant,
    ) -> Action {
        let key = Key::of(request, via, source);
        let found = self.by_key.get(&key).copied();
        match (&request.method, found) {
            (Method::Invite, None) => self.start(key, now),
            (Method::Invite, Some(id)) => match self.entries.get(&id).map(|e| &e.state) {
                Some(
                    State::Completed { bytes, .. }
                    | State::Proceeding {
                        provisional: Some(bytes),
                    },
                ) => {
                    self.counts.resent_from_memory += 1;
                    Action::Resend(bytes.clone())
                }
                _ => Action::Absorb,
            },
            (Method::Ack, Some(id)) => {
                self.on_ack(id, now);
                Action::Absorb
            }
            (Method::Ack, None) => Action::Stateless,
            (Method::Cancel, Some(_)) => Action::CancelOk,
            (Method::Cancel, None) => Action::CancelUnknown,
            _ => Action::Stateless,
        }
    }

    fn start(&mut self, key: Key, now: Instant) -> Action {
        if self.entries.len() >= self.capacity {
            self.counts.refused_full += 1;
            return Action::Full;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let deadline = now + self.timer_h();
        self.by_key.insert(key.clone(), id);
        self.entries.insert(
            id,
            Entry {
                key,
                state: State::Proceeding { provisional: None },
                deadline,
            },
        );
        self.deadlines.insert((deadline, id));
        Action::Answer(TransactionId(id))
    }

    fn on_ack(&mut self, id: u64, now: Instant) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        self.counts.acks += 1;
        if !matches!(entry.state, State::Completed { .. }) {
            // An ACK before the answer, or a retransmitted ACK: absorbed, nothing changes.
            return;
        }
        if entry.key.source.is_reliable() {
            // Timer I is zero on a reliable transport: the transaction ends now.
            self.forget(id);
            return;
        }
        entry.state = State::Confirmed;
        let deadline = now + self.timers.t4;
        self.reschedule(id, deadline);
    }

    /// Stores `bytes` as the latest provisional response (`100 Trying`) of transaction `id`,
    /// still being answered: a retransmitted INVITE gets it again (RFC 3261 §17.2.1). Its
    /// deadline does not change. Returns false when the transaction is unknown or already
    /// answered.
    pub fn provisional(&mut self, id: &TransactionId, bytes: Arc<[u8]>) -> bool {
        match self.entries.get_mut(&id.0).map(|e| &mut e.state) {
            Some(State::Proceeding { provisional }) => {
                *provisional = Some(bytes);
                true
            }
            _ => false,
        }
    }

    /// Stores the final response of transaction `id` (its wire bytes) and starts its timers:
    /// Timer G (unreliable only: first at T1, then doubling up to T2) and Timer H (64·T1).
    /// Returns false when the transaction is unknown (expired meanwhile) or already answered.
    pub fn answered(&mut self, id: &TransactionId, bytes: Arc<[u8]>, now: Instant) -> bool {
        let timer_h = now + self.timer_h();
        let t1 = self.timers.t1;
        let Some(entry) = self.entries.get_mut(&id.0) else {
            return false;
        };
        if !matches!(entry.state, State::Proceeding { .. }) {
            return false;
        }
        let timer_g = (!entry.key.source.is_reliable()).then(|| (now + t1, t1));
        entry.state = State::Completed {
            bytes,
            timer_g,
            timer_h,
        };
        let deadline = timer_g.map_or(timer_h, |(at, _)| at.min(timer_h));
        self.reschedule(id.0, deadline);
        true
    }

    /// The resends due at `now` (Timer G), forgetting transactions whose Timer H or I fired
    /// (and those never answered within 64·T1).
    pub fn poll(&mut self, now: Instant) -> Vec<Resend> {
        let mut resends = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.remove(&(deadline, id));
            self.fire(id, now, &mut resends);
        }
        resends
    }

    /// Runs the timer of transaction `id`, whose deadline has passed and was removed.
    fn fire(&mut self, id: u64, now: Instant, resends: &mut Vec<Resend>) {
        let t2 = self.timers.t2;
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let next = match &mut entry.state {
            State::Proceeding { .. } => {
                self.counts.unanswered_expired += 1;
                None
            }
            State::Confirmed => None,
            State::Completed {
                bytes,
                timer_g,
                timer_h,
            } => {
                if *timer_h <= now {
                    self.counts.timer_h_expired += 1;
                    None
                } else {
                    if let (Some((at, interval)), Source::Udp(to)) =
                        (timer_g.as_mut(), entry.key.source)
                    {
                        if *at <= now {
                            resends.push(Resend {
                                to,
                                bytes: bytes.clone(),
                            });
                            self.counts.timer_g_resends += 1;
                            *interval = (*interval * 2).min(t2);
                            *at += *interval;
                        }
                    }
                    Some(timer_g.map_or(*timer_h, |(at, _)| at.min(*timer_h)))
                }
            }
        };
        match next {
            Some(deadline) => {
                entry.deadline = deadline;
                self.deadlines.insert((deadline, id));
            }
            None => self.forget(id),
        }
    }

    fn reschedule(&mut self, id: u64, deadline: Instant) {
        if let Some(entry) = self.entries.get_mut(&id) {
            self.deadlines.remove(&(entry.deadline, id));
            entry.deadline = deadline;
            self.deadlines.insert((deadline, id));
        }
    }

    fn forget(&mut self, id: u64) {
        if let Some(entry) = self.entries.remove(&id) {
            self.deadlines.remove(&(entry.deadline, id));
            self.by_key.remove(&entry.key);
        }
    }

    fn timer_h(&self) -> Duration {
        self.timers.t1 * 64
    }

    /// The next instant [`Transactions::poll`] has something to do, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The counts for metrics.
    pub fn counts(&self) -> TransactionCounts {
        TransactionCounts {
            live: self.entries.len(),
            ..self.counts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Header;
    use crate::via::ViaTransport;

    const SOURCE: &str = "192.0.2.1:5060";

    fn request(method: Method) -> Request {
        let cseq = format!("1 {}", method.as_str());
        Request {
            method,
            uri: "sip:+12025550143@192.0.2.9".into(),
            headers: [
                ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1"),
                ("From", "<sip:+12025550100@192.0.2.1>;tag=a1"),
                ("To", "<sip:+12025550143@192.0.2.9>"),
                ("Call-ID", "call-1"),
                ("CSeq", &cseq),
            ]
            .iter()
            .map(|(name, value)| Header {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect(),
            body: Vec::new(),
        }
    }

    fn via(branch: &str) -> Via {
        Via {
            transport: ViaTransport::Udp,
            host: "192.0.2.1".into(),
            port: Some(5060),
            branch: Some(branch.into()),
            rport: false,
        }
    }

    fn source() -> SocketAddr {
        SOURCE.parse().unwrap()
    }

    struct Table {
        table: Transactions,
        start: Instant,
    }

    impl Table {
        fn new(capacity: usize) -> Self {
            Self {
                table: Transactions::new(Timers::default(), capacity),
                start: Instant::now(),
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.start + Duration::from_millis(ms)
        }

        fn send(&mut self, method: Method, branch: &str, reliable: bool, ms: u64) -> Action {
            let at = self.at(ms);
            let from = if reliable {
                Source::Tcp(1)
            } else {
                Source::Udp(source())
            };
            self.table
                .on_request(&request(method), &via(branch), from, at)
        }

        /// A new INVITE answered at `ms` with `bytes`.
        fn answered(&mut self, branch: &str, reliable: bool, ms: u64, bytes: &[u8]) {
            let Action::Answer(id) = self.send(Method::Invite, branch, reliable, ms) else {
                panic!("not a new transaction");
            };
            assert!(self.table.answered(&id, bytes.into(), self.at(ms)));
        }

        /// The instants (ms since start) of every resend, polling every millisecond until
        /// `until`.
        fn resends_until(&mut self, until: u64) -> Vec<u64> {
            let mut at = Vec::new();
            for ms in 0..=until {
                for resend in self.table.poll(self.at(ms)) {
                    assert_eq!(resend.to, source());
                    at.push(ms);
                }
            }
            at
        }
    }

    #[test]
    fn a_new_invite_is_answered_once_and_its_retransmissions_get_the_stored_bytes() {
        let mut t = Table::new(10);
        let Action::Answer(id) = t.send(Method::Invite, "z9hG4bK-1", false, 0) else {
            panic!("not a new transaction");
        };
        assert_eq!(
            t.send(Method::Invite, "z9hG4bK-1", false, 10),
            Action::Absorb
        );
        assert!(t
            .table
            .answered(&id, b"SIP/2.0 302 x\r\n\r\n"[..].into(), t.at(20)));
        assert!(!t.table.answered(&id, b"other"[..].into(), t.at(21)));
        let expected: Arc<[u8]> = b"SIP/2.0 302 x\r\n\r\n"[..].into();
        assert_eq!(
            t.send(Method::Invite, "z9hG4bK-1", false, 30),
            Action::Resend(expected.clone())
        );
        assert_eq!(
            t.send(Method::Invite, "z9hG4bK-1", false, 40),
            Action::Resend(expected)
        );
        assert_eq!(t.table.counts().resent_from_memory, 2);
        assert_eq!(t.table.counts().live, 1);
        // Another branch is another transaction; so is the same branch from another sent-by.
        assert!(matches!(
            t.send(Method::Invite, "z9hG4bK-2", false, 50),
            Action::Answer(_)
        ));
        let mut other = via("z9hG4bK-1");
        other.host = "192.0.2.2".into();
        let action = t.table.on_request(
            &request(Method::Invite),
            &other,
            Source::Udp(source()),
            t.at(60),
        );
        assert!(matches!(action, Action::Answer(_)));
        // The sent-by host is compared without regard to case.
        let mut upper = via("z9hG4bK-3");
        upper.host = "Example.COM".into();
        let first = t.table.on_request(
            &request(Method::Invite),
            &upper,
            Source::Udp(source()),
            t.at(70),
        );
        assert!(matches!(first, Action::Answer(_)));
        upper.host = "example.com".into();
        let again = t.table.on_request(
            &request(Method::Invite),
            &upper,
            Source::Udp(source()),
            t.at(71),
        );
        assert_eq!(again, Action::Absorb);
    }

    #[test]
    fn the_same_branch_and_sent_by_from_another_source_is_another_transaction() {
        let mut t = Table::new(10);
        let now = t.at(0);
        let invite = request(Method::Invite);
        let branch = via("z9hG4bK-1");
        let other: SocketAddr = "192.0.2.1:5061".parse().unwrap();
        let Action::Answer(first) =
            t.table
                .on_request(&invite, &branch, Source::Udp(source()), now)
        else {
            panic!("not a new transaction");
        };
        assert!(t.table.answered(&first, b"first"[..].into(), now));
        // Another port: not a retransmission, the stored answer is not handed over.
        let Action::Answer(second) = t
            .table
            .on_request(&invite, &branch, Source::Udp(other), now)
        else {
            panic!("another source must start its own transaction");
        };
        assert!(t.table.answered(&second, b"second"[..].into(), now));
        assert_eq!(
            t.table
                .on_request(&invite, &branch, Source::Udp(source()), now),
            Action::Resend(b"first"[..].into())
        );
        assert_eq!(
            t.table
                .on_request(&invite, &branch, Source::Udp(other), now),
            Action::Resend(b"second"[..].into())
        );
        // Over TCP, each connection is its own source; ACK and CANCEL match on theirs only.
        assert!(matches!(
            t.table.on_request(&invite, &branch, Source::Tcp(7), now),
            Action::Answer(_)
        ));
        assert!(matches!(
            t.table.on_request(&invite, &branch, Source::Tcp(8), now),
            Action::Answer(_)
        ));
        assert_eq!(
            t.table
                .on_request(&request(Method::Cancel), &branch, Source::Tcp(9), now),
            Action::CancelUnknown
        );
        assert_eq!(
            t.table
                .on_request(&request(Method::Cancel), &branch, Source::Tcp(7), now),
            Action::CancelOk
        );
        // Resends of the second go to its own address.
        let due: Vec<SocketAddr> = t.table.poll(t.at(500)).iter().map(|r| r.to).collect();
        assert_eq!(due.len(), 2);
        assert!(due.contains(&source()) && due.contains(&other));
    }

    #[test]
    fn a_retransmission_while_answering_gets_the_latest_provisional_response() {
        let mut t = Table::new(10);
        let Action::Answer(id) = t.send(Method::Invite, "z9hG4bK-1", false, 0) else {
            panic!("not a new transaction");
        };
        // Nothing sent yet: absorbed.
        assert_eq!(
            t.send(Method::Invite, "z9hG4bK-1", false, 10),
            Action::Absorb
        );
        assert!(t.table.provisional(&id, b"SIP/2.0 100 Trying"[..].into()));
        assert_eq!(
            t.send(Method::Invite, "z9hG4bK-1", false, 300),
            Action::Resend(b"SIP/2.0 100 Trying"[..].into())
        );
        // Provisional responses are not resent on a timer.
        assert!(t.table.poll(t.at(1000)).is_empty());
        assert!(t.table.answered(&id, b"final"[..].into(), t.at(1000)));
        assert_eq!(
            t.send(Method::Invite, "z9hG4bK-1", false, 1100),
            Action::Resend(b"final"[..].into())
        );
        // Once answered, no provisional response replaces the final one.
        assert!(!t.table.provisional(&id, b"late 100"[..].into()));
        assert_eq!(t.table.counts().resent_from_memory, 2);
    }

    #[test]
    fn timer_g_doubles_from_t1_to_t2_until_timer_h_gives_up_at_64_t1() {
        let mut t = Table::new(10);
        t.answered("z9hG4bK-1", false, 0, b"answer");
        let resends = t.resends_until(33_000);
        // Intervals 500, 1000, 2000, 4000, then 4000 each until 32 s.
        let mut expected = vec![500, 1500, 3500, 7500];
        let mut next = 11_500;
        while next < 32_000 {
            expected.push(next);
            next += 4000;
        }
        assert_eq!(resends, expected);
        let counts = t.table.counts();
        assert_eq!(counts.timer_g_resends, expected.len() as u64);
        assert_eq!(counts.timer_h_expired, 1);
        assert_eq!(counts.live, 0);
        assert_eq!(t.table.next_deadline(), None);
        // Forgotten: the same INVITE now starts a new transaction.
        assert!(matches!(
            t.send(Method::Invite, "z9hG4bK-1", false, 33_001),
            Action::Answer(_)
        ));
    }

    #[test]
    fn timer_h_fires_at_32_seconds_and_not_before() {
        let mut t = Table::new(10);
        t.answered("z9hG4bK-1", false, 0, b"answer");
        t.table.poll(t.at(31_999));
        assert_eq!(t.table.counts().live, 1);
        assert_eq!(t.table.counts().timer_h_expired, 0);
        t.table.poll(t.at(32_000));
        assert_eq!(t.table.counts().live, 0);
        assert_eq!(t.table.counts().timer_h_expired, 1);
    }

    #[test]
    fn the_ack_stops_timer_g_and_is_absorbed_until_timer_i() {
        let mut t = Table::new(10);
        t.answered("z9hG4bK-1", false, 0, b"answer");
        assert_eq!(t.resends_until(600), vec![500]);
        assert_eq!(t.send(Method::Ack, "z9hG4bK-1", false, 700), Action::Absorb);
        // Timer I: T4 (5 s) after the ACK; no more resends meanwhile.
        assert_eq!(t.table.next_deadline(), Some(t.at(5700)));
        let mut late = Vec::new();
        for ms in (701..5699).step_by(7) {
            late.extend(t.table.poll(t.at(ms)));
        }
        assert!(late.is_empty());
        assert_eq!(
            t.send(Method::Ack, "z9hG4bK-1", false, 5000),
            Action::Absorb
        );
        // A retransmitted INVITE after the ACK is absorbed too.
        assert_eq!(
            t.send(Method::Invite, "z9hG4bK-1", false, 5100),
            Action::Absorb
        );
        assert_eq!(t.table.counts().acks, 2);
        assert_eq!(t.table.counts().live, 1);
        t.table.poll(t.at(5700));
        assert_eq!(t.table.counts().live, 0);
        assert_eq!(t.table.counts().timer_h_expired, 0);
        // Once forgotten, an ACK matches nothing: the transport absorbs it statelessly.
        assert_eq!(
            t.send(Method::Ack, "z9hG4bK-1", false, 5800),
            Action::Stateless
        );
    }

    #[test]
    fn a_reliable_transport_never_resends_and_the_ack_ends_the_transaction() {
        let mut t = Table::new(10);
        t.answered("z9hG4bK-1", true, 0, b"answer");
        assert_eq!(t.table.next_deadline(), Some(t.at(32_000)));
        assert!(t.resends_until(31_000).is_empty());
        assert_eq!(
            t.send(Method::Ack, "z9hG4bK-1", true, 31_001),
            Action::Absorb
        );
        assert_eq!(t.table.counts().live, 0);
        assert_eq!(t.table.next_deadline(), None);

        // Without an ACK, Timer H still ends it.
        t.answered("z9hG4bK-2", true, 0, b"answer");
        assert!(t.resends_until(32_000).is_empty());
        assert_eq!(t.table.counts().timer_h_expired, 1);
        assert_eq!(t.table.counts().live, 0);
    }

    #[test]
    fn cancel_matches_the_invite_whatever_its_state() {
        let mut t = Table::new(10);
        assert_eq!(
            t.send(Method::Cancel, "z9hG4bK-1", false, 0),
            Action::CancelUnknown
        );
        let Action::Answer(id) = t.send(Method::Invite, "z9hG4bK-1", false, 0) else {
            panic!("not a new transaction");
        };
        assert_eq!(
            t.send(Method::Cancel, "z9hG4bK-1", false, 1),
            Action::CancelOk
        );
        assert!(t.table.answered(&id, b"answer"[..].into(), t.at(2)));
        assert_eq!(
            t.send(Method::Cancel, "z9hG4bK-1", false, 3),
            Action::CancelOk
        );
        assert_eq!(
            t.send(Method::Cancel, "z9hG4bK-9", false, 4),
            Action::CancelUnknown
        );
        // The CANCEL does not end the transaction: the INVITE is still answered from memory.
        assert!(matches!(
            t.send(Method::Invite, "z9hG4bK-1", false, 5),
            Action::Resend(_)
        ));
    }

    #[test]
    fn other_methods_are_stateless() {
        let mut t = Table::new(10);
        assert_eq!(
            t.send(Method::Options, "z9hG4bK-1", false, 0),
            Action::Stateless
        );
        assert_eq!(
            t.send(Method::Other("BYE".into()), "z9hG4bK-1", false, 0),
            Action::Stateless
        );
        assert_eq!(t.table.counts().live, 0);
    }

    #[test]
    fn a_full_table_refuses_new_invites_and_keeps_the_old_ones() {
        let mut t = Table::new(2);
        t.answered("z9hG4bK-1", false, 0, b"one");
        assert!(matches!(
            t.send(Method::Invite, "z9hG4bK-2", false, 0),
            Action::Answer(_)
        ));
        assert_eq!(t.send(Method::Invite, "z9hG4bK-3", false, 1), Action::Full);
        assert_eq!(t.send(Method::Invite, "z9hG4bK-3", false, 2), Action::Full);
        assert_eq!(t.table.counts().refused_full, 2);
        assert_eq!(t.table.counts().live, 2);
        // Retransmissions of the transactions held are still answered.
        assert_eq!(
            t.send(Method::Invite, "z9hG4bK-1", false, 3),
            Action::Resend(b"one"[..].into())
        );
        // Room again once Timer H forgot the first.
        t.table.poll(t.at(32_000));
        assert!(matches!(
            t.send(Method::Invite, "z9hG4bK-3", false, 32_001),
            Action::Answer(_)
        ));
    }

    #[test]
    fn a_transaction_never_answered_is_forgotten_after_64_t1() {
        let mut t = Table::new(1);
        let Action::Answer(id) = t.send(Method::Invite, "z9hG4bK-1", false, 0) else {
            panic!("not a new transaction");
        };
        assert_eq!(t.table.next_deadline(), Some(t.at(32_000)));
        t.table.poll(t.at(31_999));
        assert_eq!(t.table.counts().live, 1);
        assert!(t.table.poll(t.at(32_000)).is_empty());
        assert_eq!(t.table.counts().live, 0);
        assert_eq!(t.table.counts().unanswered_expired, 1);
        // The late answer finds nothing to store.
        assert!(!t.table.answered(&id, b"late"[..].into(), t.at(32_001)));
    }

    #[test]
    fn poll_returns_only_what_is_due_across_many_transactions() {
        let mut t = Table::new(1000);
        for i in 0..1000 {
            t.answered(&format!("z9hG4bK-{i}"), false, i, b"answer");
        }
        assert!(t.table.poll(t.at(499)).is_empty());
        assert_eq!(t.table.poll(t.at(500)).len(), 1);
        assert_eq!(t.table.poll(t.at(599)).len(), 99);
        assert_eq!(t.table.next_deadline(), Some(t.at(600)));
    }

    #[test]
    fn without_the_magic_cookie_the_older_rule_matches_ack_and_cancel_to_their_invite() {
        let mut table = Transactions::new(Timers::default(), 10);
        let now = Instant::now();
        let old = via("1234");
        let invite = request(Method::Invite);
        let Action::Answer(id) = table.on_request(&invite, &old, Source::Udp(source()), now) else {
            panic!("not a new transaction");
        };
        assert!(table.answered(&id, b"answer"[..].into(), now));
        assert!(matches!(
            table.on_request(&invite, &old, Source::Udp(source()), now),
            Action::Resend(_)
        ));
        assert_eq!(
            table.on_request(&request(Method::Cancel), &old, Source::Udp(source()), now),
            Action::CancelOk
        );
        // The ACK carries our To tag: still the same transaction.
        let mut ack = request(Method::Ack);
        for h in &mut ack.headers {
            if h.name == "To" {
                h.value.push_str(";tag=ours");
            }
        }
        assert_eq!(
            table.on_request(&ack, &old, Source::Udp(source()), now),
            Action::Absorb
        );
        assert_eq!(table.counts().acks, 1);
        // Another Call-ID, another From tag, or another CSeq number: another transaction.
        for (name, value) in [
            ("Call-ID", "call-2"),
            ("From", "<sip:+12025550100@192.0.2.1>;tag=b2"),
            ("CSeq", "2 INVITE"),
        ] {
            let mut other = request(Method::Invite);
            for h in &mut other.headers {
                if h.name == name {
                    h.value = value.into();
                }
            }
            assert!(
                matches!(
                    table.on_request(&other, &old, Source::Udp(source()), now),
                    Action::Answer(_)
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn tags_are_read_from_name_addr_and_addr_spec() {
        assert_eq!(tag_param("<sip:a@b;tag=x>;tag=y"), Some("y"));
        assert_eq!(tag_param("\"A\" <sip:a@b> ; TAG = 12"), Some("12"));
        assert_eq!(tag_param("sip:a@b;tag=z"), Some("z"));
        assert_eq!(tag_param("<sip:a@b>"), None);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Invite(u8, bool),
        Ack(u8),
        Cancel(u8),
        Answer(usize),
        Advance(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..6, any::<bool>()).prop_map(|(b, r)| Op::Invite(b, r)),
            (0u8..6).prop_map(Op::Ack),
            (0u8..6).prop_map(Op::Cancel),
            (0usize..8).prop_map(Op::Answer),
            (0u64..6000).prop_map(Op::Advance),
        ]
    }

    proptest::proptest! {
        /// Whatever arrives in whatever order: the table stays within its capacity, resends
        /// only answers of unreliable transactions, keeps its next deadline in the future after
        /// a poll, and is empty once 64·T1 + T4 has passed.
        #[test]
        fn any_sequence_keeps_the_table_bounded_and_ends_empty(
            capacity in 1usize..5,
            ops in proptest::collection::vec(op(), 0..60),
        ) {
            let mut t = Table::new(capacity);
            let mut now = 0u64;
            let mut pending: Vec<(TransactionId, bool)> = Vec::new();
            for op in ops {
                match op {
                    Op::Invite(b, reliable) => {
                        if let Action::Answer(id) =
                            t.send(Method::Invite, &format!("z9hG4bK-{b}"), reliable, now)
                        {
                            pending.push((id, reliable));
                        }
                    }
                    Op::Ack(b) => {
                        t.send(Method::Ack, &format!("z9hG4bK-{b}"), false, now);
                    }
                    Op::Cancel(b) => {
                        let action = t.send(Method::Cancel, &format!("z9hG4bK-{b}"), false, now);
                        proptest::prop_assert!(matches!(
                            action,
                            Action::CancelOk | Action::CancelUnknown
                        ));
                    }
                    Op::Answer(i) => {
                        if i < pending.len() {
                            let (id, reliable) = pending.remove(i);
                            let bytes = format!("{}{}", if reliable { 'R' } else { 'U' }, id.0);
                            t.table.answered(&id, bytes.as_bytes().into(), t.at(now));
                        }
                    }
                    Op::Advance(ms) => {
                        now += ms;
                        for resend in t.table.poll(t.at(now)) {
                            proptest::prop_assert_eq!(resend.bytes.first(), Some(&b'U'));
                        }
                        if let Some(next) = t.table.next_deadline() {
                            proptest::prop_assert!(next > t.at(now));
                        }
                    }
                }
                proptest::prop_assert!(t.table.counts().live <= capacity);
            }
            now += 32_000 + 5_000;
            t.table.poll(t.at(now));
            proptest::prop_assert_eq!(t.table.counts().live, 0);
            proptest::prop_assert_eq!(t.table.next_deadline(), None);
            proptest::prop_assert!(t.table.by_key.is_empty());
            proptest::prop_assert!(t.table.deadlines.is_empty());
        }
    }
}
