//! The UDP and TCP listeners (RFC 3261 §18) on one port, in front of a [`Handler`].
//!
//! For each message: parse it within the caps (malformed: `400` when its Via is usable,
//! dropped otherwise); drop responses; refuse a source the handler does not allow (`403`);
//! ask the [`crate::transaction::Transactions`] table what to do (retransmissions answered
//! from memory, ACKs absorbed, CANCEL answered `200`); `OPTIONS` gets `200`; other methods
//! `405` with `Allow`; a new INVITE goes to [`Handler::invite`] exactly once, and its answer
//! becomes a response copying Via, From, To (plus a To tag), Call-ID and CSeq. When the
//! handler has not answered within [`TRYING_AFTER`] (200 ms), a `100 Trying` goes first
//! (RFC 3261 §17.2.1); a retransmitted INVITE gets it again until the final answer is ready.
//!
//! Every response's top Via says where the request came from (RFC 3261 §18.2.1, RFC 3581):
//! `received=<source IP>` when the sent-by host is not that address, and a bare `rport`
//! filled with the source port (`received` is then always added). UDP answers go to the
//! source address and port of the request, never to the Via's sent-by: that is what the
//! filled `rport` describes and what SBCs expect (they send from the port they listen on, or
//! sit behind NAT), and it is done for a Via without `rport` too. TCP answers go back on the
//! connection.
//!
//! A transaction is named by its Via (branch and sent-by) and by where it came from: the
//! source address and port over UDP, the connection over TCP
//! ([`crate::transaction::Source`]), so a client never gets another's stored answer.
//!
//! TCP frames by `Content-Length` and carries many transactions per connection. The
//! allow-list is checked when a connection is accepted: a source the handler does not allow
//! gets its first request answered (`403`) if it arrives whole within [`REFUSED_WITHIN`]
//! (2 s), and the connection is then closed, or closed at once when nothing whole arrives;
//! such connections have their own `max_connections` slots and never take an allowed
//! client's. An allowed connection is closed when it completes no message (or CRLF
//! keep-alive) within `tcp_idle_seconds`, counted from the last one: bytes that trickle in
//! without completing a message do not keep it open. A framing error closes the connection
//! too (answering `400`, `513` when too large, first when the bytes read so far carry a
//! usable Via). Framing does not rescan a message's bytes on every read: it waits for a
//! possible end of the headers (see `HeadScan`).
//!
//! How it runs: one receive loop per UDP socket, one accept loop per TCP socket and one task
//! per TCP connection; a new INVITE is answered in a task of its own, so a slow handler never
//! blocks a receive loop. Each UDP socket has its own transaction table (a resend leaves from
//! the socket the INVITE came to) and its own timer task, which sleeps until the table's next
//! deadline (within `TIMER_SLACK`, 4 ms, so one wake-up serves the timers falling together),
//! woken early only when a change brings an earlier deadline; TCP transactions share one more
//! table (reliable: never resent). The transaction counts are read from the tables when
//! `/metrics` asks ([`SipStatus::counts`]), never on a call's path. `max_transactions` bounds each table; a handler still answering after
//! 64·T1 is abandoned (the table has forgotten the transaction by then; nothing is sent).
//! On shutdown the loops stop receiving, INVITEs in flight get up to [`SHUTDOWN_GRACE`] to be
//! answered and written, then every task still running (INVITE or connection) is aborted:
//! nothing of the listener runs once [`SipListener::serve`] returns.
//!
//! The To tag of every response is a keyed hash (SipHash with the process's random keys) of
//! the transaction's identity (Call-ID, From tag, CSeq number, top Via branch): as
//! unpredictable as a random tag, and a `CANCEL`'s `200` carries the same tag as its
//! INVITE's final response (RFC 3261 §9.2) without the table storing it.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

use crate::config::{ListenOn, ListenerConfig};
use crate::message::{self, Header, Limits, Message, Method, ParseError, Request, Response};
use crate::metrics::SipMetrics;
use crate::transaction::{
    tag_param, Action, Source, TransactionCounts, TransactionId, Transactions,
};

/// A transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Transport {
    /// `udp` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// Who sent a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The source address and port.
    pub addr: SocketAddr,
    /// The transport it came over.
    pub transport: Transport,
}

/// A service's answer to an INVITE: the status, the reason phrase and the headers of its own
/// (Contact, Identity, Reason, P-Asserted-Identity...). The transport adds what every
/// response copies from its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub code: u16,
    /// The reason phrase.
    pub reason: String,
    /// The service's header fields, in order.
    pub headers: Vec<Header>,
}

impl Answer {
    /// An answer with no header of its own.
    pub fn new(code: u16, reason: &str) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
            headers: Vec::new(),
        }
    }

    /// The same answer with one more header field.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push(Header {
            name: name.to_owned(),
            value: value.into(),
        });
        self
    }
}

/// What a service plugs into the listener.
pub trait Handler: Send + Sync + 'static {
    /// Whether `peer` may send requests (the service's client allow-list); others get `403`.
    fn allowed(&self, peer: &Peer) -> bool;

    /// Answers a new INVITE with its final response. Called once per transaction, never for a
    /// retransmission.
    fn invite(&self, request: &Request, peer: Peer) -> impl Future<Output = Answer> + Send;
}

/// Why the listener could not start.
#[derive(Debug, Error)]
pub enum BindError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A socket could not be bound: the address and the error.
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
}

/// The listener's counters and the transaction tables' counts, for `/metrics`.
#[derive(Default)]
pub struct SipStatus {
    /// The counters.
    pub metrics: SipMetrics,
    /// Every transaction table, read when the counts are asked for (never on a call's path).
    lanes: std::sync::Mutex<Vec<Arc<Lane>>>,
}

impl std::fmt::Debug for SipStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipStatus")
            .field("metrics", &self.metrics)
            .field("counts", &self.counts())
            .finish()
    }
}

impl SipStatus {
    /// The Prometheus text under `prefix` (e.g. `shaken_signer_sip`).
    pub fn render(&self, prefix: &str) -> String {
        self.metrics.render(prefix, self.counts())
    }

    /// The transaction tables' counts, summed.
    pub fn counts(&self) -> TransactionCounts {
        let lanes = match self.lanes.lock() {
            Ok(lanes) => lanes.clone(),
            Err(_) => return TransactionCounts::default(),
        };
        let mut sum = TransactionCounts::default();
        for lane in lanes {
            if let Ok(table) = lane.table.lock() {
                let c = table.counts();
                sum.live += c.live;
                sum.resent_from_memory += c.resent_from_memory;
                sum.timer_g_resends += c.timer_g_resends;
                sum.timer_h_expired += c.timer_h_expired;
                sum.acks += c.acks;
                sum.refused_full += c.refused_full;
                sum.unanswered_expired += c.unanswered_expired;
            }
        }
        sum
    }

    fn add_lane(&self, lane: Arc<Lane>) {
        if let Ok(mut lanes) = self.lanes.lock() {
            lanes.push(lane);
        }
    }
}

/// How long in-flight INVITEs may take to be answered once shutdown has begun; the tasks
/// still running after it are aborted.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long the service may take to answer an INVITE before the listener sends `100 Trying`
/// (RFC 3261 §17.2.1).
pub const TRYING_AFTER: Duration = Duration::from_millis(200);

/// How long a TCP connection from a source the handler does not allow may take to send its
/// first whole request (answered `403`, then the connection is closed).
pub const REFUSED_WITHIN: Duration = Duration::from_secs(2);

/// The methods a redirect server handles, for `Allow`.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, OPTIONS";

/// Whether `peer` is on the service's client allow-list, by source address only: a client
/// identified by a certificate never matches over SIP (there is no TLS here), a client
/// identified by networks matches when the address is in one of them.
pub fn peer_allowed(clients: &rest::clients::Clients, peer: &Peer) -> bool {
    clients.find(peer.addr.ip(), None).is_some()
}

/// The bound sockets of a `[sip]` section, ready to serve.
#[derive(Debug)]
pub struct SipListener {
    status: Arc<SipStatus>,
    config: ListenerConfig,
    udp: Vec<Arc<UdpSocket>>,
    tcp: Vec<TcpListener>,
}

/// How many times `bind` tries to find a port free for both UDP and TCP.
const BIND_ATTEMPTS: usize = 16;

impl SipListener {
    /// Binds every `listen` item (for `ADDR` with port 0, UDP and TCP get the same free port).
    /// The configuration is validated first.
    pub async fn bind(config: &ListenerConfig) -> Result<Self, BindError> {
        config.validate()?;
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for item in config.listen_on()? {
            match item {
                ListenOn::Udp(addr) => udp.push(Arc::new(bind_udp(addr).await?)),
                ListenOn::Tcp(addr) => tcp.push(bind_tcp(addr).await?),
                ListenOn::Both(addr) => {
                    let (u, t) = bind_both(addr).await?;
                    udp.push(Arc::new(u));
                    tcp.push(t);
                }
            }
        }
        Ok(Self {
            status: Arc::new(SipStatus::default()),
            config: config.clone(),
            udp,
            tcp,
        })
    }

    /// The addresses actually bound, with their transport.
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        let udp = self
            .udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .map(|a| (Transport::Udp, a));
        let tcp = self
            .tcp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .map(|a| (Transport::Tcp, a));
        udp.chain(tcp).collect()
    }

    /// The counters, shared with the running listener.
    pub fn status(&self) -> Arc<SipStatus> {
        self.status.clone()
    }

    /// Serves until `shutdown` completes, then lets the INVITEs in flight be answered and
    /// written (at most [`SHUTDOWN_GRACE`]), then aborts whatever still runs: when `serve`
    /// returns, no task of the listener (no handler call, no connection) is left running.
    pub async fn serve<H: Handler>(self, handler: Arc<H>, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop) = watch::channel(false);
        let inflight = Arc::new(InFlight::default());
        let shared = Arc::new(Shared {
            handler,
            status: self.status.clone(),
            limits: self.config.limits(),
            udp_warn_bytes: self.config.udp_warn_bytes,
            tags: RandomState::new(),
            inflight: inflight.clone(),
            answer_limit: self.config.timers().t1 * 64,
            tasks: std::sync::Mutex::new(Some(JoinSet::new())),
            next_connection: AtomicU64::new(0),
        });
        let timers = self.config.timers();
        let capacity = self.config.max_transactions;
        let mut loops = Vec::new();
        let mut timer_tasks = Vec::new();
        let (timer_stop_tx, timer_stop) = watch::channel(false);
        for socket in self.udp {
            let lane = Arc::new(Lane::new(timers, capacity));
            shared.status.add_lane(lane.clone());
            timer_tasks.push(tokio::spawn(timer_loop(
                shared.clone(),
                lane.clone(),
                socket.clone(),
                timer_stop.clone(),
            )));
            loops.push(tokio::spawn(udp_loop(
                shared.clone(),
                lane,
                socket,
                stop.clone(),
            )));
        }
        let tcp_lane = Arc::new(Lane::new(timers, capacity));
        shared.status.add_lane(tcp_lane.clone());
        // TCP transactions are never resent, but Timer H still forgets them.
        timer_tasks.push(tokio::spawn(timer_loop_reliable(
            tcp_lane.clone(),
            timer_stop,
        )));
        let pools = Arc::new(ConnectionPools {
            allowed: tokio::sync::Semaphore::new(self.config.max_connections),
            refused: tokio::sync::Semaphore::new(self.config.max_connections),
        });
        for listener in self.tcp {
            loops.push(tokio::spawn(tcp_accept_loop(
                shared.clone(),
                tcp_lane.clone(),
                listener,
                pools.clone(),
                self.config.tcp_idle(),
                stop.clone(),
            )));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        for task in loops {
            let _ = task.await;
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, inflight.idle()).await;
        // What is still running (a handler that hangs, a peer that does not read) is aborted,
        // so nothing of this listener runs once `serve` returns; nothing new is spawned.
        let tasks = shared.tasks.lock().ok().and_then(|mut tasks| tasks.take());
        if let Some(mut tasks) = tasks {
            tasks.shutdown().await;
        }
        let _ = timer_stop_tx.send(true);
        for task in timer_tasks {
            let _ = task.await;
        }
    }
}

async fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, BindError> {
    UdpSocket::bind(addr)
        .await
        .map_err(|e| BindError::Bind(format!("udp:{addr}"), e))
}

async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| BindError::Bind(format!("tcp:{addr}"), e))
}

/// UDP and TCP on one port: for port 0, the port UDP got, tried again with another free port
/// when TCP cannot have it.
async fn bind_both(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), BindError> {
    if addr.port() != 0 {
        return Ok((bind_udp(addr).await?, bind_tcp(addr).await?));
    }
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = bind_udp(addr).await?;
        let port = udp
            .local_addr()
            .map_err(|e| BindError::Bind(format!("udp:{addr}"), e))?
            .port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(BindError::Bind(
        format!("{addr}"),
        last.unwrap_or_else(|| std::io::Error::other("no port free for both UDP and TCP")),
    ))
}

/// What every task of a running listener shares.
struct Shared<H> {
    handler: Arc<H>,
    status: Arc<SipStatus>,
    limits: Limits,
    udp_warn_bytes: usize,
    /// Keys of the To tag hash (random per listener).
    tags: RandomState,
    inflight: Arc<InFlight>,
    /// How long the handler may take to answer an INVITE (64·T1: the table forgets a
    /// transaction never answered after that long).
    answer_limit: Duration,
    /// The INVITE and TCP connection tasks, aborted after the shutdown grace; `None` once
    /// shut down (nothing more is spawned).
    tasks: std::sync::Mutex<Option<JoinSet<()>>>,
    /// Numbers TCP connections, for the transaction key ([`Source::Tcp`]).
    next_connection: AtomicU64,
}

/// The TCP connection slots: connections from sources the handler allows, and (separately,
/// so that they never take an allowed client's slot) connections being refused.
struct ConnectionPools {
    allowed: tokio::sync::Semaphore,
    refused: tokio::sync::Semaphore,
}

/// A transaction table and what its timer task sleeps until.
///
/// The timer task is woken only when a change to the table brings the next deadline before
/// the one it sleeps until (`armed`, kept under the table's lock): at steady load a new
/// answer's Timer G is always later than some older transaction's timer, so answering a call
/// costs no wake-up of another task.
struct Lane {
    table: std::sync::Mutex<Transactions>,
    wake: Notify,
    /// Where `armed` counts from.
    epoch: Instant,
    /// The deadline the timer task sleeps until, in nanoseconds after `epoch`; `u64::MAX`
    /// when it waits with no deadline. Written and compared under `table`'s lock.
    armed: AtomicU64,
}

/// How much later than a deadline the timer task may run it, so that one wake-up serves the
/// transactions whose timers fall within it (Timer G resends and forgetting are not
/// precise to the millisecond; tokio's timer is not either).
const TIMER_SLACK: Duration = Duration::from_millis(4);

impl Lane {
    fn new(timers: crate::transaction::Timers, capacity: usize) -> Self {
        Self {
            table: std::sync::Mutex::new(Transactions::new(timers, capacity)),
            wake: Notify::new(),
            epoch: Instant::now(),
            armed: AtomicU64::new(u64::MAX),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Runs `change` on the table, then wakes the timer task if the table's next deadline
    /// is now earlier than the one it sleeps until. `None` when the lock is poisoned.
    fn change<T>(&self, change: impl FnOnce(&mut Transactions) -> T) -> Option<T> {
        let mut table = self.table.lock().ok()?;
        let result = change(&mut table);
        if let Some(next) = table.next_deadline() {
            if self.nanos(next) < self.armed.load(Ordering::Relaxed) {
                // Re-armed by the timer task itself before it sleeps again.
                self.armed.store(self.nanos(next), Ordering::Relaxed);
                self.wake.notify_one();
            }
        }
        Some(result)
    }

    /// The table's next deadline, recorded as what the timer task now sleeps until.
    fn arm(&self) -> Option<Instant> {
        let table = self.table.lock().ok()?;
        let next = table.next_deadline();
        self.armed.store(
            next.map_or(u64::MAX, |at| self.nanos(at)),
            Ordering::Relaxed,
        );
        next
    }
}

/// Counts the tasks answering an INVITE or serving a TCP connection, so that shutdown can
/// wait for them.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Where a response goes.
#[derive(Clone)]
enum ReplyTo {
    /// Back to a UDP source.
    Udp(Arc<UdpSocket>, SocketAddr),
    /// Into a TCP connection's writer.
    Tcp(mpsc::Sender<Arc<[u8]>>),
}

impl<H: Handler> Shared<H> {
    /// Runs `task` in the listener's task set (aborted after the shutdown grace); once shut
    /// down, `task` is dropped unrun.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if let Ok(mut tasks) = self.tasks.lock() {
            if let Some(tasks) = tasks.as_mut() {
                // Reap the finished ones so the set holds only what runs.
                while tasks.try_join_next().is_some() {}
                tasks.spawn(task);
            }
        }
    }

    fn count(&self, counter: fn(&SipMetrics) -> &AtomicU64) {
        counter(&self.status.metrics).fetch_add(1, Ordering::Relaxed);
    }

    async fn send(&self, to: &ReplyTo, bytes: Arc<[u8]>) {
        match to {
            ReplyTo::Udp(socket, addr) => {
                if bytes.len() > self.udp_warn_bytes {
                    self.count(|m| &m.udp_oversize);
                }
                if let Err(e) = socket.send_to(&bytes, addr).await {
                    tracing::debug!(%addr, error = %e, "sip: cannot send over udp");
                }
            }
            ReplyTo::Tcp(writer) => {
                let _ = writer.send(bytes).await;
            }
        }
    }

    /// The To tag of the transaction `request` belongs to.
    fn to_tag(&self, request: &Request) -> String {
        let from_tag = request.header("From").and_then(tag_param).unwrap_or("");
        let cseq = request
            .header("CSeq")
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("");
        let branch = request
            .top_via()
            .ok()
            .and_then(|v| v.branch)
            .unwrap_or_default();
        let hash = self.tags.hash_one((
            request.header("Call-ID").unwrap_or(""),
            from_tag,
            cseq,
            branch,
        ));
        format!("{hash:016x}")
    }

    /// The response to `request` from `peer`: [`Response::to`] with the transaction's To tag,
    /// and the top Via marked with where the request came from ([`mark_received`]).
    fn response(&self, request: &Request, code: u16, reason: &str, peer: &Peer) -> Response {
        let mut response = Response::to(request, code, reason, &self.to_tag(request));
        mark_received(&mut response, peer.addr);
        response
    }

    /// Handles one whole message from `peer` (`source` names it for the transaction table);
    /// responses go to `reply`.
    async fn handle(
        self: &Arc<Self>,
        lane: &Arc<Lane>,
        bytes: &[u8],
        peer: Peer,
        source: Source,
        reply: ReplyTo,
    ) {
        let request = match message::parse(bytes, &self.limits) {
            Ok(Message::Request(request)) => request,
            Ok(Message::Response(_)) => {
                self.count(|m| &m.dropped);
                return;
            }
            Err(error) => {
                match self.bad_request(bytes, &error, &peer) {
                    Some(answer) => {
                        self.count(|m| &m.bad_requests);
                        self.send(&reply, answer.into()).await;
                    }
                    None => self.count(|m| &m.dropped),
                }
                tracing::debug!(peer = %peer.addr, %error, "sip: malformed message");
                return;
            }
        };
        self.count(|m| &m.requests);
        let Ok(via) = request.top_via() else {
            self.count(|m| &m.dropped);
            return;
        };
        if !self.handler.allowed(&peer) {
            self.count(|m| &m.forbidden);
            if request.method != Method::Ack {
                let answer = self.response(&request, 403, "Forbidden", &peer).to_bytes();
                self.send(&reply, answer.into()).await;
            }
            return;
        }
        let answer = match &request.method {
            Method::Options => self
                .response(&request, 200, "OK", &peer)
                .with_header("Allow", ALLOW),
            Method::Other(_) => self
                .response(&request, 405, "Method Not Allowed", &peer)
                .with_header("Allow", ALLOW),
            Method::Invite | Method::Ack | Method::Cancel => {
                let now = Instant::now();
                let Some(action) = lane.change(|t| t.on_request(&request, &via, source, now))
                else {
                    return;
                };
                let answer = match action {
                    Action::Answer(id) => {
                        self.count(|m| &m.invites);
                        self.spawn_invite(lane.clone(), id, request, peer, reply);
                        return;
                    }
                    Action::Resend(bytes) => {
                        self.send(&reply, bytes).await;
                        None
                    }
                    Action::Absorb | Action::Stateless => None,
                    Action::CancelOk => Some(self.response(&request, 200, "OK", &peer)),
                    Action::CancelUnknown => {
                        Some(self.response(&request, 481, "Call/Transaction Does Not Exist", &peer))
                    }
                    Action::Full => Some(
                        self.response(&request, 503, "Service Unavailable", &peer)
                            .with_header("Retry-After", "1"),
                    ),
                };
                match answer {
                    Some(answer) => answer,
                    None => return,
                }
            }
        };
        self.send(&reply, answer.to_bytes().into()).await;
    }

    /// Answers a new INVITE in a task of its own: the handler, the response, the table, the
    /// wire. A handler slower than [`TRYING_AFTER`] gets a `100 Trying` sent first (and
    /// stored, for retransmitted INVITEs).
    fn spawn_invite(
        self: &Arc<Self>,
        lane: Arc<Lane>,
        id: TransactionId,
        request: Request,
        peer: Peer,
        reply: ReplyTo,
    ) {
        let shared = self.clone();
        let guard = self.inflight.enter();
        self.spawn(async move {
            let _guard = guard;
            // Boxed: the task, moved into the runtime, stays small whatever the handler's
            // future holds.
            let mut invite = Box::pin(shared.handler.invite(&request, peer));
            let answering = async {
                tokio::select! {
                    answer = &mut invite => return answer,
                    _ = tokio::time::sleep(TRYING_AFTER) => {}
                }
                // A 100 carries no To tag (RFC 3261 §8.2.6.2 allows either).
                let mut trying = Response::to(&request, 100, "Trying", "");
                mark_received(&mut trying, peer.addr);
                let trying: Arc<[u8]> = trying.to_bytes().into();
                lane.change(|t| t.provisional(&id, trying.clone()));
                shared.send(&reply, trying).await;
                invite.await
            };
            let Ok(answer) = tokio::time::timeout(shared.answer_limit, answering).await else {
                // The table has forgotten the transaction by now (64·T1): nobody waits.
                tracing::warn!(peer = %peer.addr, "sip: an INVITE was not answered in time");
                return;
            };
            let mut response = shared.response(&request, answer.code, &answer.reason, &peer);
            // A service's From (the verifier's label, when the INVITE had no PAI) replaces the
            // copied one: a response carries one From.
            if answer
                .headers
                .iter()
                .any(|h| message::same_header_name(&h.name, "From"))
            {
                response
                    .headers
                    .retain(|h| !message::same_header_name(&h.name, "From"));
            }
            response.headers.extend(answer.headers);
            let bytes: Arc<[u8]> = response.to_bytes().into();
            let now = Instant::now();
            lane.change(|t| t.answered(&id, bytes.clone(), now));
            shared.send(&reply, bytes).await;
        });
    }

    /// The answer to a message that did not parse, when it can be answered
    /// ([`message::parse_for_error_response`]: a request, not an ACK, with a usable top Via):
    /// `400 Bad Request` (`513` too large, `505` another version, [`ParseError::status`])
    /// copying what could be read of Via, From, To, Call-ID and CSeq, the problem named in a
    /// `Warning` (RFC 3261 §20.43, code 399).
    fn bad_request(&self, bytes: &[u8], error: &ParseError, peer: &Peer) -> Option<Vec<u8>> {
        let request = message::parse_for_error_response(bytes, &self.limits)?;
        let (code, reason) = error.status();
        Some(
            self.response(&request, code, reason, peer)
                .with_header("Warning", format!("399 shaken \"{error}\""))
                .to_bytes(),
        )
    }
}

async fn udp_loop<H: Handler>(
    shared: Arc<Shared<H>>,
    lane: Arc<Lane>,
    socket: Arc<UdpSocket>,
    mut stop: watch::Receiver<bool>,
) {
    // One byte more than the cap, so a datagram over it is seen whole-or-truncated and dropped.
    let mut buffer = vec![0u8; shared.limits.max_message_bytes.saturating_add(1)];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buffer) => received,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let (length, addr) = match received {
            Ok(received) => received,
            // ICMP port unreachable from an earlier send surfaces here on some systems.
            Err(e) => {
                tracing::debug!(error = %e, "sip: udp receive error");
                continue;
            }
        };
        let Some(datagram) = buffer
            .get(..length)
            .filter(|_| length <= shared.limits.max_message_bytes)
        else {
            shared.count(|m| &m.dropped);
            continue;
        };
        if message::is_keepalive(datagram) {
            continue;
        }
        let peer = Peer {
            addr,
            transport: Transport::Udp,
        };
        shared
            .handle(
                &lane,
                datagram,
                peer,
                Source::Udp(addr),
                ReplyTo::Udp(socket.clone(), addr),
            )
            .await;
    }
}

/// Sends the resends of a UDP lane when they are due; forgets expired transactions.
async fn timer_loop<H: Handler>(
    shared: Arc<Shared<H>>,
    lane: Arc<Lane>,
    socket: Arc<UdpSocket>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let resends = match lane.table.lock() {
            Ok(mut table) => table.poll(Instant::now()),
            Err(_) => return,
        };
        for resend in resends {
            let to = ReplyTo::Udp(socket.clone(), resend.to);
            shared.send(&to, resend.bytes).await;
        }
        if !sleep_until_due(&lane, &mut stop).await {
            return;
        }
    }
}

/// Forgets the TCP lane's expired transactions (nothing is ever resent on TCP).
async fn timer_loop_reliable(lane: Arc<Lane>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Ok(mut table) = lane.table.lock() {
            table.poll(Instant::now());
        }
        if !sleep_until_due(&lane, &mut stop).await {
            return;
        }
    }
}

/// Sleeps until the lane's next deadline (give or take [`TIMER_SLACK`]), a change that brings
/// an earlier one ([`Lane::change`]), or the stop; false on stop.
async fn sleep_until_due(lane: &Lane, stop: &mut watch::Receiver<bool>) -> bool {
    let deadline = lane.arm();
    let sleep = async {
        match deadline {
            Some(at) => tokio::time::sleep_until((at + TIMER_SLACK).into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = sleep => true,
        _ = lane.wake.notified() => true,
        _ = stop.wait_for(|stopped| *stopped) => false,
    }
}

async fn tcp_accept_loop<H: Handler>(
    shared: Arc<Shared<H>>,
    lane: Arc<Lane>,
    listener: TcpListener,
    pools: Arc<ConnectionPools>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "sip: tcp accept error");
                // Out of file descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let peer = Peer {
            addr,
            transport: Transport::Tcp,
        };
        // The allow-list is checked here, not only per message: a source the handler does
        // not allow must not hold a slot (see `Connection`).
        let rules = if shared.handler.allowed(&peer) {
            Connection::Allowed { idle }
        } else {
            Connection::Refused
        };
        let pool = match rules {
            Connection::Allowed { .. } => &pools.allowed,
            Connection::Refused => &pools.refused,
        };
        let Ok(permit) = pool.try_acquire() else {
            // Over max_connections: closed at once.
            shared.count(|m| &m.dropped);
            continue;
        };
        // The slot is given back when the connection task ends, is aborted, or is dropped
        // unrun.
        permit.forget();
        let slot = PoolPermit(pools.clone(), rules);
        let number = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        let task_shared = shared.clone();
        let lane = lane.clone();
        let stop = stop.clone();
        let guard = shared.inflight.enter();
        shared.spawn(async move {
            let _guard = guard;
            let _slot = slot;
            let shared = task_shared;
            shared
                .status
                .metrics
                .tcp_connections
                .fetch_add(1, Ordering::Relaxed);
            let _gauge = ConnectionGauge(&shared.status);
            tcp_connection(&shared, &lane, stream, peer, number, rules, stop).await;
        });
    }
}

/// Gives a connection's slot back to its pool when the connection task ends (or is aborted).
struct PoolPermit(Arc<ConnectionPools>, Connection);

impl Drop for PoolPermit {
    fn drop(&mut self) {
        match self.1 {
            Connection::Allowed { .. } => self.0.allowed.add_permits(1),
            Connection::Refused => self.0.refused.add_permits(1),
        }
    }
}

/// Takes a connection off the `tcp_connections` gauge when its task ends (or is aborted).
struct ConnectionGauge<'a>(&'a SipStatus);

impl Drop for ConnectionGauge<'_> {
    fn drop(&mut self) {
        self.0
            .metrics
            .tcp_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a TCP connection is served, decided when it is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Connection {
    /// From a source the handler allows: many messages; closed when no whole message (or
    /// CRLF keep-alive) completes within `idle`, counted from the last one, however many
    /// bytes trickle in meanwhile.
    Allowed { idle: Duration },
    /// From a source the handler does not allow: its first request, if it arrives whole
    /// within [`REFUSED_WITHIN`], is answered (`403`, or `400` when malformed), then the
    /// connection is closed; it is closed at once when nothing whole arrives in time.
    Refused,
}

impl Connection {
    /// How long a whole message may take to arrive.
    fn within(self) -> Duration {
        match self {
            Self::Allowed { idle } => idle,
            Self::Refused => REFUSED_WITHIN,
        }
    }
}

/// How many responses may wait for a TCP connection's writer.
const TCP_WRITE_QUEUE: usize = 64;

/// Remembers how far the search for the end of a message's headers got, so that a message
/// arriving in many small reads is not rescanned from its start on every read:
/// [`message::frame_length`] runs only once the bytes may hold a blank line (the end of the
/// headers), more lines than `max_headers`, or more than `max_message_bytes`. Once the
/// headers are whole, it runs on every read (rescanning the headers, not the body) until
/// the message is.
#[derive(Debug, Default)]
struct HeadScan {
    /// Bytes of the buffer already searched.
    searched: usize,
    /// Line ends among them.
    lines: usize,
    /// Whether a blank line was seen: from then on, framing runs on every read.
    head_seen: bool,
}

impl HeadScan {
    /// Whether [`message::frame_length`] may give something new for `buffer` (which only
    /// grew since the last call; after a message is drained, start a new `HeadScan`).
    fn worth_framing(&mut self, buffer: &[u8], limits: &Limits) -> bool {
        if self.head_seen || buffer.len() > limits.max_message_bytes {
            return true;
        }
        // A blank line is "\n\n" or "\n\r\n" (bare LF line ends are accepted): look again
        // at the last two bytes already searched, in case one began there.
        let from = self.searched.saturating_sub(2);
        let recent = buffer.get(from..).unwrap_or_default();
        let blank =
            recent.windows(2).any(|w| w == b"\n\n") || recent.windows(3).any(|w| w == b"\n\r\n");
        let new = buffer.get(self.searched..).unwrap_or_default();
        self.lines = self
            .lines
            .saturating_add(new.iter().filter(|b| **b == b'\n').count());
        self.searched = buffer.len();
        self.head_seen = blank;
        blank || self.lines > limits.max_headers
    }
}

/// Reads framed messages from one connection until it closes, completes no message in
/// time ([`Connection`]), breaks framing or the listener stops; the writer half sends the
/// answers back, the last ones included, and ends with the connection.
async fn tcp_connection<H: Handler>(
    shared: &Arc<Shared<H>>,
    lane: &Arc<Lane>,
    stream: TcpStream,
    peer: Peer,
    number: u64,
    rules: Connection,
    stop: watch::Receiver<bool>,
) {
    let (reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Arc<[u8]>>(TCP_WRITE_QUEUE);
    // A peer that stops reading holds nothing for longer than the idle timeout.
    let write_limit = rules.within();
    let write_side = async move {
        let mut writer = writer;
        let mut rx = rx;
        while let Some(bytes) = rx.recv().await {
            match tokio::time::timeout(write_limit, writer.write_all(&bytes)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        let _ = writer.shutdown().await;
    };
    let read_side = read_messages(shared, lane, reader, peer, number, rules, stop, tx);
    tokio::join!(read_side, write_side);
}

/// The reading half of [`tcp_connection`]; `tx` (the writer's queue) is dropped at the end,
/// which lets the writer finish once the INVITE tasks holding a copy have answered.
#[allow(clippy::too_many_arguments)]
async fn read_messages<H: Handler>(
    shared: &Arc<Shared<H>>,
    lane: &Arc<Lane>,
    mut reader: tokio::net::tcp::OwnedReadHalf,
    peer: Peer,
    number: u64,
    rules: Connection,
    mut stop: watch::Receiver<bool>,
    tx: mpsc::Sender<Arc<[u8]>>,
) {
    let source = Source::Tcp(number);
    let limits = shared.limits;
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8192];
    let mut scan = HeadScan::default();
    let mut deadline = tokio::time::Instant::now() + rules.within();
    'connection: loop {
        if tx.is_closed() {
            // The writer gave up (the peer stopped reading): nothing could be answered.
            break;
        }
        // Every whole message in the buffer.
        loop {
            // A double CRLF ping is answered with one CRLF at once (RFC 5626 §3.5.1), even
            // when a message follows it in the same read.
            if buffer.starts_with(b"\r\n\r\n") {
                buffer.drain(..4);
                scan = HeadScan::default();
                if let Connection::Allowed { idle } = rules {
                    deadline = tokio::time::Instant::now() + idle;
                }
                let _ = tx.send(Arc::from(&b"\r\n"[..])).await;
                continue;
            }
            if !scan.worth_framing(&buffer, &limits) {
                break;
            }
            match message::frame_length(&buffer, &limits) {
                Ok(Some(length)) => {
                    let framed: Vec<u8> = buffer.drain(..length.min(buffer.len())).collect();
                    scan = HeadScan::default();
                    let start = framed
                        .iter()
                        .position(|b| *b != b'\r' && *b != b'\n')
                        .unwrap_or(framed.len());
                    match framed.get(start..) {
                        Some(message) if !message.is_empty() => {
                            shared
                                .handle(lane, message, peer, source, ReplyTo::Tcp(tx.clone()))
                                .await;
                            match rules {
                                Connection::Allowed { idle } => {
                                    deadline = tokio::time::Instant::now() + idle;
                                }
                                // Answered once, then closed.
                                Connection::Refused => break 'connection,
                            }
                        }
                        // A lone CRLF (a pong, or the rest of a keep-alive): ignored.
                        _ => {}
                    }
                }
                Ok(None) if buffer.len() > limits.max_message_bytes => {
                    framing_error(
                        shared,
                        &buffer,
                        &ParseError::TooLarge(limits.max_message_bytes),
                        &tx,
                        &peer,
                    )
                    .await;
                    break 'connection;
                }
                Ok(None) => break,
                Err(error) => {
                    framing_error(shared, &buffer, &error, &tx, &peer).await;
                    break 'connection;
                }
            }
        }
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, reader.read(&mut chunk)) => read,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buffer.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
            Err(_) => {
                tracing::debug!(peer = %peer.addr, "sip: tcp connection closed: no whole message in time");
                break;
            }
        }
    }
}

/// A framing error closes the connection; the `400` goes first when it can be answered.
async fn framing_error<H: Handler>(
    shared: &Arc<Shared<H>>,
    buffer: &[u8],
    error: &ParseError,
    tx: &mpsc::Sender<Arc<[u8]>>,
    peer: &Peer,
) {
    match shared.bad_request(buffer, error, peer) {
        Some(answer) => {
            shared.count(|m| &m.bad_requests);
            let _ = tx.send(answer.into()).await;
        }
        None => shared.count(|m| &m.dropped),
    }
}

/// Marks the top Via of a response to a request received from `source` (RFC 3261 §18.2.1,
/// RFC 3581 §4): `received=<source IP>` when the sent-by host is not that IP, and
/// `;rport=<source port>` in place of a bare `rport` (with `received` then, even when the
/// host is the same, as RFC 3581 requires). A Via that needs neither, or does not parse, is
/// left as it is; a `received` the request already carried is replaced. Only the first
/// value of the first Via field changes.
///
/// The answer still goes to the source address and port, whatever the Via says (see the
/// module documentation): the parameters tell the client what was seen.
pub fn mark_received(response: &mut Response, source: SocketAddr) {
    let Some(via) = response
        .headers
        .iter_mut()
        .find(|h| message::same_header_name(&h.name, "Via"))
    else {
        return;
    };
    if let Some(marked) = marked_via(&via.value, source) {
        via.value = marked;
    }
}

/// The Via value `value` marked for `source`, or `None` when nothing changes.
fn marked_via(value: &str, source: SocketAddr) -> Option<String> {
    let top = crate::via::parse_top(value).ok()?;
    let ip = source.ip().to_canonical();
    let (first, rest) = split_first_value(value);
    let mut parts = first.split(';');
    let mut marked = parts.next()?.to_owned();
    let mut bare_rport = false;
    for param in parts {
        let name = param.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("received") {
            // Ours replaces it (if one is needed at all: see below).
            continue;
        }
        if name.eq_ignore_ascii_case("rport") && !param.contains('=') {
            bare_rport = true;
            marked.push_str(&format!(";rport={}", source.port()));
            continue;
        }
        marked.push(';');
        marked.push_str(param);
    }
    let same_host = top
        .host
        .parse::<IpAddr>()
        .is_ok_and(|host| host.to_canonical() == ip);
    if same_host && !bare_rport {
        return None;
    }
    marked.push_str(&format!(";received={ip}"));
    marked.push_str(rest);
    Some(marked)
}

/// `value` split before its first comma outside quotes and brackets: the first Via value,
/// and the rest (empty, or starting with the comma).
fn split_first_value(value: &str) -> (&str, &str) {
    let mut quoted = false;
    let mut escaped = false;
    let mut bracket = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '[' if !quoted => bracket = true,
            ']' if !quoted => bracket = false,
            ',' if !quoted && !bracket => return value.split_at(i),
            _ => {}
        }
    }
    (value, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn invite(branch: &str) -> Request {
        let text = format!(
            "INVITE sip:+12025550143@192.0.2.9 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-{branch}\r\n\
             From: <sip:+12025550100@192.0.2.1>;tag=a\r\n\
             To: <sip:+12025550143@192.0.2.9>\r\n\
             Call-ID: {branch}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        match message::parse(text.as_bytes(), &Limits::default()).unwrap() {
            Message::Request(request) => request,
            Message::Response(_) => unreachable!(),
        }
    }

    /// Whether the lane's timer task has a wake-up waiting for it.
    async fn woken(lane: &Lane) -> bool {
        tokio::time::timeout(Duration::ZERO, lane.wake.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn the_timer_task_is_woken_only_for_an_earlier_deadline() {
        let lane = Lane::new(Default::default(), 100);
        let source = Source::Udp(addr("192.0.2.1:5060"));
        let start = Instant::now();
        let add = |branch: &str, at: Instant| {
            let request = invite(branch);
            let via = request.top_via().unwrap();
            lane.change(|t| t.on_request(&request, &via, source, at))
        };
        // An empty table's timer task waits for no deadline: the first transaction wakes it.
        assert!(matches!(
            add("1", start + Duration::from_secs(2)),
            Some(Action::Answer(_))
        ));
        assert!(woken(&lane).await);
        assert_eq!(lane.arm(), lane.table.lock().unwrap().next_deadline());
        // A later deadline than the one armed: no wake-up (it is found when that one fires).
        add("2", start + Duration::from_secs(3));
        assert!(!woken(&lane).await);
        // An earlier one: woken.
        add("3", start + Duration::from_secs(1));
        assert!(woken(&lane).await);
        // Nothing to wait for once the table is empty: a new transaction wakes the task again.
        lane.table
            .lock()
            .unwrap()
            .poll(start + Duration::from_secs(3600));
        assert_eq!(lane.arm(), None);
        add("4", start);
        assert!(woken(&lane).await);
    }

    #[test]
    fn the_top_via_is_marked_with_the_source_only_when_needed() {
        let from = addr("192.0.2.7:40000");
        // Sent-by is the source, no bare rport: unchanged.
        assert_eq!(
            marked_via("SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1", from),
            None
        );
        assert_eq!(
            marked_via("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1;rport=5", from),
            None
        );
        // Another host (a name, another address): received.
        assert_eq!(
            marked_via("SIP/2.0/UDP sbc.example;branch=z9hG4bK1", from).as_deref(),
            Some("SIP/2.0/UDP sbc.example;branch=z9hG4bK1;received=192.0.2.7")
        );
        // A bare rport: filled in place, and received even for the same host (RFC 3581 §4);
        // a received the client put there is replaced; later values are kept as they are.
        assert_eq!(
            marked_via(
                "SIP/2.0/UDP 192.0.2.7:5060 ; rport ;received=10.0.0.1;branch=z9hG4bK1, SIP/2.0/UDP 10.9.9.9;rport",
                from
            )
            .as_deref(),
            Some("SIP/2.0/UDP 192.0.2.7:5060 ;rport=40000;branch=z9hG4bK1;received=192.0.2.7, SIP/2.0/UDP 10.9.9.9;rport")
        );
        // IPv6: compared as addresses, written without brackets; an IPv4 client seen through
        // an IPv6 socket is written as IPv4.
        assert_eq!(
            marked_via(
                "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1",
                addr("[2001:DB8::1]:5060")
            ),
            None
        );
        assert_eq!(
            marked_via(
                "SIP/2.0/TCP [2001:db8::1];branch=z9hG4bK1",
                addr("[2001:db8::2]:5060")
            )
            .as_deref(),
            Some("SIP/2.0/TCP [2001:db8::1];branch=z9hG4bK1;received=2001:db8::2")
        );
        assert_eq!(
            marked_via(
                "SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1",
                addr("[::ffff:192.0.2.7]:5060")
            ),
            None
        );
        // A Via that does not parse is left alone.
        assert_eq!(marked_via("not a via", from), None);
        // Commas inside quotes do not end the first value.
        assert_eq!(
            split_first_value("SIP/2.0/UDP h;x=\"a,b\";rport, SIP/2.0/UDP g"),
            ("SIP/2.0/UDP h;x=\"a,b\";rport", ", SIP/2.0/UDP g")
        );
    }

    #[test]
    fn framing_runs_only_when_the_new_bytes_may_end_the_headers() {
        let limits = Limits {
            max_message_bytes: 1024,
            max_headers: 4,
        };
        let mut scan = HeadScan::default();
        let mut buffer = b"INVITE sip:a@b SIP/2.0\r\nVia: x".to_vec();
        assert!(!scan.worth_framing(&buffer, &limits));
        buffer.extend_from_slice(b"yz");
        assert!(!scan.worth_framing(&buffer, &limits));
        // A blank line split across two reads ("\r\n" then "\r\n").
        buffer.extend_from_slice(b"\r\n");
        assert!(!scan.worth_framing(&buffer, &limits));
        buffer.extend_from_slice(b"\r\n");
        assert!(scan.worth_framing(&buffer, &limits));
        // From then on (the body is awaited), every read.
        buffer.extend_from_slice(b"v");
        assert!(scan.worth_framing(&buffer, &limits));
        // Bare LF blank line, split as "\n" | "\n".
        let mut scan = HeadScan::default();
        let mut buffer = b"INVITE sip:a@b SIP/2.0\nVia: x\n".to_vec();
        assert!(!scan.worth_framing(&buffer, &limits));
        buffer.push(b'\n');
        assert!(scan.worth_framing(&buffer, &limits));
        // More lines than max_headers, or more bytes than the cap: framing reports it.
        let mut scan = HeadScan::default();
        let lines = b"A\r\nB: 1\r\nC: 2\r\nD: 3\r\nE: 4\r\n".to_vec();
        assert!(scan.worth_framing(&lines, &limits));
        let mut scan = HeadScan::default();
        assert!(scan.worth_framing(&[b'x'; 1025], &limits));
    }
}
