//! The listener on real loopback sockets: a test handler answering `302`, raw UDP and TCP
//! clients sending hand-written requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sip::config::ListenerConfig;
use sip::message::{parse_response, Limits};
use sip::transport::{Answer, Handler, Peer, SipListener, SipStatus, Transport};
use sip::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;

/// Answers every INVITE `302` to its Request-URI, after `delay`; allows loopback while
/// `allow` is set. Counts the calls, the answers given (`finished`) and the calls whose
/// future was dropped before answering (`abandoned`: aborted).
struct TestHandler {
    calls: AtomicUsize,
    allow: AtomicBool,
    delay: Duration,
    finished: Arc<AtomicUsize>,
    abandoned: Arc<AtomicUsize>,
}

/// Counts a handler call dropped before it answered.
struct Abandoned(Arc<AtomicUsize>, bool);

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl TestHandler {
    fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            calls: AtomicUsize::new(0),
            allow: AtomicBool::new(true),
            delay,
            finished: Arc::new(AtomicUsize::new(0)),
            abandoned: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Handler for TestHandler {
    fn allowed(&self, peer: &Peer) -> bool {
        self.allow.load(Ordering::SeqCst) && peer.addr.ip().is_loopback()
    }

    fn invite(&self, request: &Request, _peer: Peer) -> impl Future<Output = Answer> + Send {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let uri = request.uri.clone();
        let delay = self.delay;
        let finished = self.finished.clone();
        let abandoned = Abandoned(self.abandoned.clone(), false);
        async move {
            // The whole guard moves in (not just the field set below), so it drops with the
            // future.
            let mut abandoned = abandoned;
            tokio::time::sleep(delay).await;
            abandoned.1 = true;
            finished.fetch_add(1, Ordering::SeqCst);
            Answer::new(302, "Moved Temporarily").with_header("Contact", format!("<{uri}>"))
        }
    }
}

struct Server {
    udp: SocketAddr,
    tcp: SocketAddr,
    handler: Arc<TestHandler>,
    status: Arc<SipStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(extra: &str, delay: Duration) -> Self {
        let config: ListenerConfig =
            toml::from_str(&format!("listen = [\"127.0.0.1:0\"]\nt1_ms = 50\n{extra}")).unwrap();
        let listener = SipListener::bind(&config).await.unwrap();
        let addrs = listener.local_addrs();
        let udp = addrs.iter().find(|(t, _)| *t == Transport::Udp).unwrap().1;
        let tcp = addrs.iter().find(|(t, _)| *t == Transport::Tcp).unwrap().1;
        let status = listener.status();
        let handler = TestHandler::new(delay);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(listener.serve(handler.clone(), async {
            let _ = stopped.await;
        }));
        Self {
            udp,
            tcp,
            handler,
            status,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
    }

    fn metric(&self, name: &str) -> u64 {
        let text = self.status.render("t");
        let line = format!("t_{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in {text}"))
    }
}

fn request(method: &str, branch: &str, call_id: &str, to_tag: Option<&str>, body: &str) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:+12025550143@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:+12025550100@127.0.0.1>;tag=f1\r\n\
         To: <sip:+12025550143@127.0.0.1>{to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn invite(branch: &str) -> String {
    request("INVITE", branch, &format!("call-{branch}"), None, "")
}

fn to_tag(response: &Response) -> String {
    let to = response.header("To").unwrap();
    to.split(";tag=").nth(1).unwrap().to_owned()
}

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// The next datagram within `wait`, if any.
async fn recv(socket: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let mut buffer = vec![0u8; 65536];
    match tokio::time::timeout(wait, socket.recv(&mut buffer)).await {
        Ok(Ok(n)) => Some(buffer[..n].to_vec()),
        _ => None,
    }
}

const WAIT: Duration = Duration::from_secs(3);

fn response(bytes: &[u8]) -> Response {
    parse_response(bytes, &Limits::default()).unwrap()
}

async fn exchange(socket: &UdpSocket, server: SocketAddr, message: &str) -> Response {
    socket.send_to(message.as_bytes(), server).await.unwrap();
    response(&recv(socket, WAIT).await.expect("an answer"))
}

#[tokio::test]
async fn an_invite_over_udp_gets_the_302_copying_via_from_to_call_id_and_cseq() {
    let server = Server::start("", Duration::ZERO).await;
    let socket = client().await;
    let answer = exchange(&socket, server.udp, &invite("a1")).await;
    assert_eq!(
        (answer.code, answer.reason.as_str()),
        (302, "Moved Temporarily")
    );
    // RFC 3581: the bare rport gets the source port, and received the source IP.
    let port = socket.local_addr().unwrap().port();
    assert_eq!(
        answer.header("Via"),
        Some(
            format!("SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKa1;rport={port};received=127.0.0.1")
                .as_str()
        )
    );
    assert_eq!(
        answer.header("From"),
        Some("\"Alice\" <sip:+12025550100@127.0.0.1>;tag=f1")
    );
    let to = answer.header("To").unwrap();
    assert!(to.starts_with("<sip:+12025550143@127.0.0.1>;tag="), "{to}");
    assert!(to_tag(&answer).len() >= 8);
    assert_eq!(answer.header("Call-ID"), Some("call-a1"));
    assert_eq!(answer.header("CSeq"), Some("1 INVITE"));
    assert_eq!(
        answer.header("Contact"),
        Some("<sip:+12025550143@127.0.0.1>")
    );
    assert_eq!(server.handler.calls(), 1);
    // Another transaction gets another tag.
    let other = exchange(&socket, server.udp, &invite("a2")).await;
    assert_ne!(to_tag(&other), to_tag(&answer));
    assert_eq!(server.metric("invites_total"), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_retransmitted_invite_gets_identical_bytes_and_the_handler_is_called_once() {
    let server = Server::start("", Duration::from_millis(150)).await;
    let socket = client().await;
    let message = invite("r1");
    socket
        .send_to(message.as_bytes(), server.udp)
        .await
        .unwrap();
    // A retransmission while the handler is still answering is absorbed.
    tokio::time::sleep(Duration::from_millis(20)).await;
    socket
        .send_to(message.as_bytes(), server.udp)
        .await
        .unwrap();
    let first = recv(&socket, WAIT).await.expect("an answer");
    socket
        .send_to(message.as_bytes(), server.udp)
        .await
        .unwrap();
    let second = recv(&socket, WAIT).await.expect("the answer again");
    assert_eq!(first, second);
    assert_eq!(server.handler.calls(), 1);
    assert!(server.metric("retransmissions_answered_total") >= 1);
    server.stop().await;
}

#[tokio::test]
async fn without_an_ack_the_answer_comes_again_on_timer_g_and_the_ack_stops_it() {
    let server = Server::start("", Duration::ZERO).await;
    let socket = client().await;
    socket
        .send_to(invite("g1").as_bytes(), server.udp)
        .await
        .unwrap();
    let first = recv(&socket, WAIT).await.expect("an answer");
    let started = std::time::Instant::now();
    let again = recv(&socket, WAIT).await.expect("Timer G");
    assert_eq!(again, first);
    assert!(started.elapsed() >= Duration::from_millis(30));
    let third = recv(&socket, WAIT).await.expect("Timer G again");
    assert_eq!(third, first);
    let tag = to_tag(&response(&first));
    let ack = request("ACK", "g1", "call-g1", Some(&tag), "");
    socket.send_to(ack.as_bytes(), server.udp).await.unwrap();
    // At most one resend already on its way; then silence.
    let _ = recv(&socket, Duration::from_millis(100)).await;
    assert_eq!(recv(&socket, Duration::from_millis(600)).await, None);
    assert_eq!(server.metric("acks_total"), 1);
    assert!(server.metric("timer_g_resends_total") >= 2);
    // An ACK for nothing is absorbed silently too.
    let stray = request("ACK", "nothing", "call-x", Some("x"), "");
    socket.send_to(stray.as_bytes(), server.udp).await.unwrap();
    assert_eq!(recv(&socket, Duration::from_millis(200)).await, None);
    assert_eq!(server.handler.calls(), 1);
    server.stop().await;
}

#[tokio::test]
async fn cancel_gets_200_with_the_invites_tag_or_481_options_200_and_other_methods_405() {
    let server = Server::start("", Duration::ZERO).await;
    let socket = client().await;
    let answer = exchange(&socket, server.udp, &invite("c1")).await;
    let cancel = exchange(
        &socket,
        server.udp,
        &request("CANCEL", "c1", "call-c1", None, ""),
    )
    .await;
    assert_eq!(cancel.code, 200);
    assert_eq!(cancel.header("CSeq"), Some("1 CANCEL"));
    assert_eq!(to_tag(&cancel), to_tag(&answer));
    // The resends of the INVITE's answer may arrive meanwhile: skip them.
    let unknown_message = request("CANCEL", "none", "call-none", None, "");
    socket
        .send_to(unknown_message.as_bytes(), server.udp)
        .await
        .unwrap();
    let unknown = loop {
        let r = response(&recv(&socket, WAIT).await.expect("an answer"));
        if r.header("Call-ID") == Some("call-none") {
            break r;
        }
    };
    assert_eq!(unknown.code, 481);

    let other = client().await;
    let options = exchange(
        &other,
        server.udp,
        &request("OPTIONS", "o1", "o1", None, ""),
    )
    .await;
    assert_eq!(options.code, 200);
    assert_eq!(
        options.header("Allow"),
        Some("INVITE, ACK, CANCEL, OPTIONS")
    );
    let bye = exchange(
        &other,
        server.udp,
        &request("BYE", "b1", "b1", Some("x"), ""),
    )
    .await;
    assert_eq!(bye.code, 405);
    assert_eq!(bye.header("Allow"), Some("INVITE, ACK, CANCEL, OPTIONS"));
    assert_eq!(server.handler.calls(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_malformed_request_gets_400_when_it_has_a_via_and_nothing_otherwise() {
    let server = Server::start("", Duration::ZERO).await;
    let socket = client().await;
    let no_cseq = invite("m1").replace("CSeq: 1 INVITE\r\n", "");
    let answer = exchange(&socket, server.udp, &no_cseq).await;
    assert_eq!(answer.code, 400);
    let warning = answer.header("Warning").unwrap();
    assert!(warning.starts_with("399 shaken \""), "{warning}");
    assert!(warning.contains("CSeq"), "{warning}");
    assert_eq!(answer.header("Call-ID"), Some("call-m1"));
    assert_eq!(server.handler.calls(), 0);

    let no_via = invite("m2").replace(
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKm2;rport\r\n",
        "",
    );
    socket.send_to(no_via.as_bytes(), server.udp).await.unwrap();
    socket
        .send_to(b"\x00\xff garbage", server.udp)
        .await
        .unwrap();
    assert_eq!(recv(&socket, Duration::from_millis(300)).await, None);
    // Responses are dropped too.
    socket
        .send_to(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", server.udp)
        .await
        .unwrap();
    assert_eq!(recv(&socket, Duration::from_millis(200)).await, None);
    // The listener still works.
    let good = exchange(&socket, server.udp, &invite("m3")).await;
    assert_eq!(good.code, 302);
    assert_eq!(server.metric("bad_requests_total"), 1);
    assert_eq!(server.metric("dropped_total"), 3);
    server.stop().await;
}

#[tokio::test]
async fn a_source_not_allowed_gets_403_every_time_and_never_reaches_the_handler() {
    let server = Server::start("", Duration::ZERO).await;
    server.handler.allow.store(false, Ordering::SeqCst);
    let socket = client().await;
    let message = invite("f1");
    let first = exchange(&socket, server.udp, &message).await;
    assert_eq!((first.code, first.reason.as_str()), (403, "Forbidden"));
    let again = exchange(&socket, server.udp, &message).await;
    assert_eq!(again.code, 403);
    let mut tcp = TcpStream::connect(server.tcp).await.unwrap();
    tcp.write_all(invite("f2").as_bytes()).await.unwrap();
    let over_tcp = read_responses(&mut tcp, 1).await;
    assert_eq!(over_tcp[0].code, 403);
    assert_eq!(server.handler.calls(), 0);
    assert_eq!(server.metric("forbidden_total"), 3);
    server.stop().await;
}

#[tokio::test]
async fn a_datagram_over_the_cap_is_dropped() {
    let server = Server::start("max_message_bytes = 1024", Duration::ZERO).await;
    let socket = client().await;
    let big = request("INVITE", "big", "call-big", None, &"v=0\r\n".repeat(300));
    assert!(big.len() > 1024);
    socket.send_to(big.as_bytes(), server.udp).await.unwrap();
    assert_eq!(recv(&socket, Duration::from_millis(300)).await, None);
    assert_eq!(server.metric("dropped_total"), 1);
    assert_eq!(
        exchange(&socket, server.udp, &invite("small")).await.code,
        302
    );
    server.stop().await;
}

#[tokio::test]
async fn a_full_transaction_table_answers_503_without_calling_the_handler() {
    let server = Server::start("max_transactions = 1", Duration::ZERO).await;
    let socket = client().await;
    assert_eq!(exchange(&socket, server.udp, &invite("x1")).await.code, 302);
    let full = loop {
        // Skip Timer G resends of the first answer.
        socket
            .send_to(invite("x2").as_bytes(), server.udp)
            .await
            .unwrap();
        let r = response(&recv(&socket, WAIT).await.expect("an answer"));
        if r.header("Call-ID") == Some("call-x2") {
            break r;
        }
    };
    assert_eq!(
        (full.code, full.reason.as_str()),
        (503, "Service Unavailable")
    );
    assert_eq!(full.header("Retry-After"), Some("1"));
    assert_eq!(server.handler.calls(), 1);
    assert!(server.metric("refused_full_total") >= 1);
    assert_eq!(server.metric("transactions"), 1);
    server.stop().await;
}

#[tokio::test]
async fn connections_over_max_connections_are_closed_at_once() {
    let server = Server::start("max_connections = 1", Duration::ZERO).await;
    let mut first = TcpStream::connect(server.tcp).await.unwrap();
    first.write_all(invite("k1").as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut first, 1).await[0].code, 302);
    let mut second = TcpStream::connect(server.tcp).await.unwrap();
    let _ = second.write_all(invite("k2").as_bytes()).await;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, second.read(&mut byte))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)));
    // The first connection still works.
    first.write_all(invite("k3").as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut first, 1).await[0].code, 302);
    assert_eq!(server.handler.calls(), 2);
    server.stop().await;
}

#[tokio::test]
async fn udp_answers_above_the_warning_size_are_counted() {
    let server = Server::start("udp_warn_bytes = 100", Duration::ZERO).await;
    let socket = client().await;
    assert_eq!(exchange(&socket, server.udp, &invite("w1")).await.code, 302);
    assert!(server.metric("udp_oversize_total") >= 1);
    server.stop().await;
}

/// Reads `count` responses framed by Content-Length from a TCP stream.
async fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<Response> {
    let limits = Limits::default();
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < count {
        if let Some(n) = sip::message::frame_length(&buffer, &limits).unwrap() {
            let framed: Vec<u8> = buffer.drain(..n).collect();
            out.push(response(&framed));
            continue;
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "connection closed after {} responses", out.len());
        buffer.extend_from_slice(&chunk[..n]);
    }
    out
}

#[tokio::test]
async fn tcp_frames_by_content_length_and_carries_many_transactions() {
    let server = Server::start("", Duration::ZERO).await;
    let mut stream = TcpStream::connect(server.tcp).await.unwrap();
    // Two INVITEs in one write, the second with a body.
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n";
    let both = format!(
        "{}{}",
        invite("t1"),
        request("INVITE", "t2", "call-t2", None, sdp)
    );
    stream.write_all(both.as_bytes()).await.unwrap();
    let mut answers = read_responses(&mut stream, 2).await;
    answers.sort_by_key(|r| r.header("Call-ID").map(str::to_owned));
    assert_eq!(answers[0].header("Call-ID"), Some("call-t1"));
    assert_eq!(answers[1].header("Call-ID"), Some("call-t2"));
    assert!(answers.iter().all(|r| r.code == 302));
    // One INVITE split over several writes, with keep-alives before it.
    let message = format!("\r\n\r\n{}", request("INVITE", "t3", "call-t3", None, sdp));
    let bytes = message.as_bytes();
    let mut keepalive = [0u8; 2];
    for piece in bytes.chunks(37) {
        stream.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The double CRLF is answered with one CRLF (RFC 5626), then the 302.
    tokio::time::timeout(WAIT, stream.read_exact(&mut keepalive))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&keepalive, b"\r\n");
    let split = read_responses(&mut stream, 1).await;
    assert_eq!(split[0].code, 302);
    assert_eq!(split[0].header("Call-ID"), Some("call-t3"));
    assert_eq!(server.handler.calls(), 3);
    // TCP is reliable: no Timer G.
    let mut rest = [0u8; 1];
    let nothing = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut rest)).await;
    assert!(nothing.is_err(), "nothing more on TCP");
    assert_eq!(server.metric("timer_g_resends_total"), 0);
    assert_eq!(server.metric("tcp_connections"), 1);
    server.stop().await;
}

#[tokio::test]
async fn tcp_closes_an_idle_connection() {
    let server = Server::start("tcp_idle_seconds = 1", Duration::ZERO).await;
    let mut stream = TcpStream::connect(server.tcp).await.unwrap();
    stream.write_all(invite("i1").as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut stream, 1).await[0].code, 302);
    let started = std::time::Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(4), stream.read(&mut byte))
        .await
        .expect("closed in time");
    assert_eq!(read.unwrap(), 0);
    assert!(started.elapsed() >= Duration::from_millis(800));
    server.stop().await;
}

#[tokio::test]
async fn tcp_answers_a_message_over_the_cap_when_it_can_and_closes() {
    let server = Server::start("max_message_bytes = 1024", Duration::ZERO).await;
    let mut stream = TcpStream::connect(server.tcp).await.unwrap();
    let big = request("INVITE", "big", "call-big", None, &"v=0\r\n".repeat(300));
    stream.write_all(big.as_bytes()).await.unwrap();
    let answer = read_responses(&mut stream, 1).await;
    assert_eq!(answer[0].code, 513);
    assert_eq!(answer[0].header("Call-ID"), Some("call-big"));
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, stream.read(&mut byte))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)));

    // No Content-Length on a stream: a framing error, answered, then closed.
    let mut stream = TcpStream::connect(server.tcp).await.unwrap();
    let no_length = invite("nl").replace("Content-Length: 0\r\n", "");
    stream.write_all(no_length.as_bytes()).await.unwrap();
    let answer = read_responses(&mut stream, 1).await;
    assert_eq!(answer[0].code, 400);
    assert!(answer[0]
        .header("Warning")
        .unwrap()
        .contains("Content-Length"));
    let read = tokio::time::timeout(WAIT, stream.read(&mut byte))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)));
    assert_eq!(server.handler.calls(), 0);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_an_invite_in_flight_be_answered() {
    let server = Server::start("", Duration::from_millis(300)).await;
    let socket = client().await;
    socket
        .send_to(invite("s1").as_bytes(), server.udp)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.handler.calls(), 1);
    let udp = server.udp;
    server.stop().await;
    let trying = response(&recv(&socket, WAIT).await.expect("100 Trying after 200 ms"));
    assert_eq!(trying.code, 100);
    let answer = response(&recv(&socket, WAIT).await.expect("answered during shutdown"));
    assert_eq!(answer.code, 302);
    // Nothing listens any more.
    socket.send_to(invite("s2").as_bytes(), udp).await.unwrap();
    assert_eq!(recv(&socket, Duration::from_millis(200)).await, None);
}

#[tokio::test]
async fn both_transports_share_one_port_and_bad_configs_are_refused() {
    let server = Server::start("", Duration::ZERO).await;
    assert_eq!(server.udp.port(), server.tcp.port());
    assert_ne!(server.udp.port(), 0);
    server.stop().await;
    let bad: ListenerConfig = toml::from_str("listen = [\"udp:nowhere\"]").unwrap();
    assert!(SipListener::bind(&bad).await.is_err());
}

#[test]
fn peers_are_allowed_by_address_only() {
    let clients = rest::clients::Clients::new(Vec::new());
    let peer = |addr: &str| Peer {
        addr: addr.parse().unwrap(),
        transport: Transport::Udp,
    };
    assert!(sip::transport::peer_allowed(
        &clients,
        &peer("127.0.0.1:5060")
    ));
    assert!(sip::transport::peer_allowed(&clients, &peer("[::1]:5060")));
    assert!(!sip::transport::peer_allowed(
        &clients,
        &peer("192.0.2.1:5060")
    ));
    // A client known by its certificate never matches over SIP, even from a network it
    // names; one known by its networks does.
    let section = |name: &str, ips: &str, certificate: Option<&str>| rest::clients::ClientSection {
        name: name.into(),
        ips: vec![ips.parse().unwrap()],
        certificate_sha256: certificate.map(str::to_owned),
        customer: None,
        rate_limit_per_second: 0,
    };
    let by_certificate =
        rest::clients::Client::from_config(&section("tls", "192.0.2.0/24", Some(&"ab".repeat(32))))
            .unwrap();
    let by_network =
        rest::clients::Client::from_config(&section("sbc", "198.51.100.0/24", None)).unwrap();
    let clients = rest::clients::Clients::new(vec![by_certificate, by_network]);
    assert!(!sip::transport::peer_allowed(
        &clients,
        &peer("192.0.2.1:5060")
    ));
    assert!(sip::transport::peer_allowed(
        &clients,
        &peer("198.51.100.7:5060")
    ));
    assert!(!sip::transport::peer_allowed(
        &clients,
        &peer("127.0.0.1:5060")
    ));
}

/// The next UDP response that is not `100 Trying`.
async fn recv_final(socket: &UdpSocket) -> Response {
    loop {
        let r = response(&recv(socket, WAIT).await.expect("an answer"));
        if r.code != 100 {
            return r;
        }
    }
}

/// Whether the server closes `stream` within `wait` (reads until end of stream or error,
/// discarding what comes).
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(wait, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_refused_tcp_source_is_closed_quickly_and_takes_no_allowed_slot() {
    let server = Server::start("max_connections = 1", Duration::ZERO).await;
    server.handler.allow.store(false, Ordering::SeqCst);
    // Nothing sent: closed after about 2 s, not after tcp_idle_seconds (60).
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(server.tcp).await.unwrap();
    // Bytes that never make a whole message do not keep it open either.
    silent
        .write_all(b"INVITE sip:x@127.0.0.1 SIP/2.0\r\n")
        .await
        .unwrap();
    // Meanwhile, an allowed client still gets the one slot.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.handler.allow.store(true, Ordering::SeqCst);
    let mut allowed = TcpStream::connect(server.tcp).await.unwrap();
    allowed.write_all(invite("ok1").as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut allowed, 1).await[0].code, 302);
    assert!(closed_within(&mut silent, Duration::from_secs(4)).await);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1800), "{elapsed:?}");

    // A refused source's first request is answered 403, then the connection is closed even
    // though more requests follow.
    server.handler.allow.store(false, Ordering::SeqCst);
    let mut refused = TcpStream::connect(server.tcp).await.unwrap();
    let two = format!("{}{}", invite("no1"), invite("no2"));
    refused.write_all(two.as_bytes()).await.unwrap();
    let answers = read_responses(&mut refused, 1).await;
    assert_eq!(answers[0].code, 403);
    assert_eq!(answers[0].header("Call-ID"), Some("call-no1"));
    assert!(closed_within(&mut refused, Duration::from_secs(1)).await);
    assert_eq!(server.handler.calls(), 1);
    assert_eq!(server.metric("forbidden_total"), 1);
    server.stop().await;
}

#[tokio::test]
async fn tcp_bytes_that_complete_no_message_do_not_keep_a_connection_open() {
    let server = Server::start("tcp_idle_seconds = 1", Duration::ZERO).await;
    let mut stream = TcpStream::connect(server.tcp).await.unwrap();
    let started = std::time::Instant::now();
    // One byte every 100 ms for up to 3 s: each read would restart a per-read idle timer.
    let message = invite("slow");
    let mut closed_after = None;
    for byte in message.as_bytes().iter().take(30) {
        if stream.write_all(&[*byte]).await.is_err()
            || closed_within(&mut stream, Duration::from_millis(100)).await
        {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let elapsed = closed_after.expect("closed while bytes still trickled in");
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");
    assert_eq!(server.handler.calls(), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_slow_answer_is_preceded_by_100_trying_which_a_retransmission_gets_again() {
    let server = Server::start("", Duration::from_millis(600)).await;
    let socket = client().await;
    let message = invite("p1");
    let started = std::time::Instant::now();
    socket
        .send_to(message.as_bytes(), server.udp)
        .await
        .unwrap();
    let trying = response(&recv(&socket, WAIT).await.expect("100 Trying"));
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert_eq!((trying.code, trying.reason.as_str()), (100, "Trying"));
    assert_eq!(trying.header("Call-ID"), Some("call-p1"));
    assert_eq!(trying.header("CSeq"), Some("1 INVITE"));
    let via = trying.header("Via").unwrap();
    assert!(via.contains(";rport="), "{via}");
    // A retransmission while the answer is computed gets the 100 again, byte for byte.
    socket
        .send_to(message.as_bytes(), server.udp)
        .await
        .unwrap();
    let again = response(&recv(&socket, WAIT).await.expect("the 100 again"));
    assert_eq!(again, trying);
    let answer = recv_final(&socket).await;
    assert_eq!(answer.code, 302);
    assert_eq!(server.handler.calls(), 1);
    // Over TCP too.
    let mut stream = TcpStream::connect(server.tcp).await.unwrap();
    stream.write_all(invite("p2").as_bytes()).await.unwrap();
    let both = read_responses(&mut stream, 2).await;
    assert_eq!((both[0].code, both[1].code), (100, 302));
    // A fast answer gets no 100.
    let quick = Server::start("", Duration::ZERO).await;
    let answer = exchange(&socket, quick.udp, &invite("p3")).await;
    assert_eq!(answer.code, 302);
    quick.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn the_top_via_gets_received_and_rport_for_the_source() {
    let server = Server::start("", Duration::ZERO).await;
    let socket = client().await;
    let port = socket.local_addr().unwrap().port();
    // A sent-by that is not the source: received; no rport asked for: none added.
    let elsewhere = invite("v1").replace(
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKv1;rport",
        "Via: SIP/2.0/UDP sbc.example.com:5060;branch=z9hG4bKv1",
    );
    let answer = exchange(&socket, server.udp, &elsewhere).await;
    assert_eq!(
        answer.header("Via"),
        Some("SIP/2.0/UDP sbc.example.com:5060;branch=z9hG4bKv1;received=127.0.0.1")
    );
    // The stored bytes of a retransmission carry it too.
    let again = exchange(&socket, server.udp, &elsewhere).await;
    assert_eq!(again.header("Via"), answer.header("Via"));
    // The sent-by is the source and there is no bare rport: nothing changes, the other Via
    // fields neither.
    let plain = invite("v2").replace(
        "branch=z9hG4bKv2;rport\r\n",
        "branch=z9hG4bKv2;rport=7\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx;rport\r\n",
    );
    let answer = exchange(&socket, server.udp, &plain).await;
    let vias: Vec<&str> = answer
        .headers
        .iter()
        .filter(|h| h.name == "Via")
        .map(|h| h.value.as_str())
        .collect();
    assert_eq!(
        vias,
        [
            "SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKv2;rport=7",
            "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx;rport"
        ]
    );
    // The answer still goes to the source, not to the sent-by (5999 / 5060).
    let refused_port = invite("v3").replace("127.0.0.1:5999", "127.0.0.1:9");
    let answer = exchange(&socket, server.udp, &refused_port).await;
    assert_eq!(
        answer.header("Via"),
        Some(
            format!("SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKv3;rport={port};received=127.0.0.1")
                .as_str()
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn two_clients_with_the_same_branch_and_sent_by_get_their_own_answers() {
    let server = Server::start("", Duration::ZERO).await;
    let one = client().await;
    let two = client().await;
    // Same branch, same sent-by (the template's 127.0.0.1:5999), different source ports.
    let message = invite("same");
    let first = exchange(&one, server.udp, &message).await;
    let second = exchange(&two, server.udp, &message).await;
    assert_eq!(server.handler.calls(), 2);
    let port = |s: &UdpSocket| s.local_addr().unwrap().port();
    assert!(first
        .header("Via")
        .unwrap()
        .contains(&format!("rport={}", port(&one))));
    assert!(second
        .header("Via")
        .unwrap()
        .contains(&format!("rport={}", port(&two))));
    // Each one's retransmission still gets its own stored answer.
    let again = response(&{
        one.send_to(message.as_bytes(), server.udp).await.unwrap();
        recv(&one, WAIT).await.unwrap()
    });
    assert_eq!(again.header("Via"), first.header("Via"));
    assert_eq!(server.handler.calls(), 2);
    server.stop().await;
}

#[tokio::test]
async fn after_the_shutdown_grace_a_hung_invite_is_aborted_before_serve_returns() {
    let server = Server::start("", Duration::from_secs(30)).await;
    let socket = client().await;
    socket
        .send_to(invite("h1").as_bytes(), server.udp)
        .await
        .unwrap();
    let trying = response(&recv(&socket, WAIT).await.expect("100 Trying"));
    assert_eq!(trying.code, 100);
    let mut tcp = TcpStream::connect(server.tcp).await.unwrap();
    tcp.write_all(invite("h2").as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut tcp, 1).await[0].code, 100);
    let handler = server.handler.clone();
    assert_eq!(handler.calls(), 2);
    let started = std::time::Instant::now();
    server.stop().await;
    // The grace (2 s), then both calls dropped unanswered: nothing runs any more.
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert_eq!(handler.abandoned.load(Ordering::SeqCst), 2);
    assert_eq!(handler.finished.load(Ordering::SeqCst), 0);
    assert!(closed_within(&mut tcp, Duration::from_secs(1)).await);
    assert_eq!(recv(&socket, Duration::from_millis(200)).await, None);
}
