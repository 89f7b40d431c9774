//! The verification service through its REST API, with certificates served over HTTPS by the
//! project's repository from the test PKI.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use passport::{Attestation, Claims, Dest, Party, SigningKey, TokenSigner};
use pki::TrustAnchors;
use verifier::cache::CacheConfig;
use verifier::crl::{Crl, CrlStore};
use verifier::events::{EventSink, EventTarget};
use verifier::fetch::{FetchPolicy, Fetcher};
use verifier::service::{self, VerifierState};
use verifier::verify::Verifier;

use crate::http::{post_json, raw};
use crate::support::{oracle, stderr, stdout_json, tempdir};

struct Lab {
    verifier: SocketAddr,
    state: Arc<VerifierState>,
    repository: SocketAddr,
    events: std::path::PathBuf,
    dir: tempfile::TempDir,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

fn read(relative: &str) -> Vec<u8> {
    std::fs::read(certs_test::path(relative)).unwrap()
}

/// Fetching from repositories on loopback. Generous timeouts: no case here is about a slow
/// repository, and a shared CI machine can stall a loopback TLS handshake for a while.
fn loopback_policy() -> FetchPolicy {
    FetchPolicy {
        allow_private_addresses: true,
        allowed_ports: None,
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(5),
        ..FetchPolicy::default()
    }
}

async fn lab() -> Lab {
    lab_with(|state| state).await
}

/// [`lab`], the verifier's state finished by `finish` (the regulator's list, the opt-outs,
/// the link issuer).
async fn lab_with(finish: impl FnOnce(VerifierState) -> VerifierState) -> Lab {
    let dir = tempdir();
    let publish = dir.path().join("publish");
    for sub in ["sp/1001", "revoked", "expired", "untrusted"] {
        std::fs::create_dir_all(publish.join(sub)).unwrap();
        std::fs::copy(
            certs_test::path(&format!("{sub}/chain.pem")),
            publish.join(sub).join("chain.pem"),
        )
        .unwrap();
    }
    let tls =
        rest::tls::acceptor_from_pem(&read("tls/server.pem"), &read("tls/server.key")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let repository = listener.local_addr().unwrap();
    let (stop_repo, repo_stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ca_tools::repository::RepositoryConfig {
        dir: publish,
        max_age: 600,
    };
    tokio::spawn(ca_tools::repository::serve(
        listener,
        tls,
        config,
        async move {
            let _ = repo_stopped.await;
        },
    ));

    let fetcher = Fetcher::new(
        loopback_policy(),
        &passport::cert::chain_from_pem(&read("tls/root.pem")).unwrap(),
    )
    .unwrap();
    let crls = vec![
        Crl::parse(&read("ca/intermediate.crl")).unwrap(),
        Crl::parse(&read("ca/root.crl")).unwrap(),
    ];
    let verifier = Verifier::new(
        fetcher,
        CacheConfig::default(),
        TrustAnchors::from_pem(&read("ca/root.pem")).unwrap(),
        CrlStore::new(crls, false),
        verifier::verify::Windows::default(),
    );
    let events = dir.path().join("events.jsonl");
    let sink = EventSink::open(&EventTarget::File(events.clone())).unwrap();
    let state = Arc::new(finish(VerifierState::new(
        verifier,
        vec![],
        None,
        16 * 1024,
        Some(sink),
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service::serve(
        listener,
        Arc::clone(&state),
        None,
        async move {
            let _ = stopped.await;
        },
    ));
    Lab {
        verifier: address,
        state,
        repository,
        events,
        dir,
        _stops: vec![stop_repo, stop],
    }
}

/// An Identity header for a call from 12155551212 to 12125551213, attested A, signed at `iat`
/// with the PEM key `key_pem` for `x5u`.
fn signed(key_pem: &[u8], x5u: String, iat: u64) -> String {
    let signer = TokenSigner::new(SigningKey::from_pem(key_pem).unwrap(), x5u);
    let claims = Claims::shaken(
        iat,
        Party::Tn("12155551212".into()),
        Dest::tns(vec!["12125551213".into()]).unwrap(),
        Attestation::A,
        "de305d54-75b4-431b-adb2-eb6b9e546014".parse().unwrap(),
    );
    signer.identity_header(&claims).unwrap()
}

fn identity(lab: &Lab, path: &str, key: &str, iat: u64) -> String {
    let x5u = format!("https://127.0.0.1:{}/{path}", lab.repository.port());
    signed(&read(key), x5u, iat)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn verify(lab: &Lab, from: &str, identity: Option<&str>, time: u64) -> serde_json::Value {
    let identity = identity
        .map(|i| format!(r#","identity":"{i}""#))
        .unwrap_or_default();
    let body = format!(
        r#"{{"verificationRequest":{{"from":{{"tn":"{from}"}},"to":{{"tn":["+1(212)555-1213"]}},"time":{time}{identity}}}}}"#
    );
    let reply = post_json(
        lab.verifier,
        "/stir/v1/verification",
        &body,
        &["X-RequestID: v-1"],
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("x-requestid"), Some("v-1"));
    reply.json()["verificationResponse"].clone()
}

const THREE_DAYS: u64 = 3 * 86_400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_through_the_rest_api_and_the_event_feed() {
    let lab = lab().await;
    let t = now();
    let good = identity(&lab, "sp/1001/chain.pem", "sp/1001/key.pem", t);
    let passed = verify(&lab, "12155551212", Some(&good), t + 2).await;
    assert_eq!(passed["verstat"], "TN-Validation-Passed", "{passed}");
    assert_eq!(
        (passed["attest"].as_str(), passed["spc"].as_str()),
        (Some("A"), Some("1001"))
    );
    assert_eq!(passed["flags"], serde_json::json!([]));
    assert!(passed.get("reasoncode").is_none());
    assert!(passed.get("reasondesc").is_none(), "a success is unchanged");
    assert!(passed["x5u"]
        .as_str()
        .unwrap()
        .ends_with("/sp/1001/chain.pem"));

    let cases = [
        (
            "12155550000",
            Some(good.clone()),
            t,
            438,
            "Invalid Identity Header",
            "spoofed",
        ),
        // A back-dated token (iat 120 s ago, signed directly) presented now.
        (
            "12155551212",
            Some(identity(
                &lab,
                "sp/1001/chain.pem",
                "sp/1001/key.pem",
                t - 120,
            )),
            t,
            403,
            "Stale Date",
            "stale",
        ),
        // A replay: a token signed three days ago, presented with `time` set to then. The
        // iat is fresh against that `time`, but the `time` is far from the verifier's clock.
        (
            "12155551212",
            Some(identity(
                &lab,
                "sp/1001/chain.pem",
                "sp/1001/key.pem",
                t - THREE_DAYS,
            )),
            t - THREE_DAYS,
            403,
            "Stale Date",
            "stale",
        ),
        (
            "12155551212",
            Some(identity(&lab, "revoked/chain.pem", "revoked/key.pem", t)),
            t,
            437,
            "Unsupported Credential",
            "revoked",
        ),
        (
            "12155551212",
            Some(identity(&lab, "expired/chain.pem", "expired/key.pem", t)),
            t,
            437,
            "Unsupported Credential",
            "untrusted",
        ),
        (
            "12155551212",
            Some(identity(
                &lab,
                "untrusted/chain.pem",
                "untrusted/key.pem",
                t,
            )),
            t,
            437,
            "Unsupported Credential",
            "untrusted",
        ),
        (
            "12155551212",
            Some(identity(&lab, "nothing/here.pem", "sp/1001/key.pem", t)),
            t,
            436,
            "Bad Identity Info",
            "unregistered",
        ),
    ];
    let mut failed = Vec::new();
    for (from, identity, time, code, text, flag) in cases {
        let v = verify(&lab, from, identity.as_deref(), time).await;
        assert_eq!(v["verstat"], "TN-Validation-Failed", "{v}");
        assert_eq!(v["reasoncode"], code, "{v}");
        assert!(v["reasoncode"].is_number());
        assert_eq!(v["reasontext"], text);
        assert!(
            v["flags"].as_array().unwrap().iter().any(|f| f == flag),
            "{flag}: {v}"
        );
        let desc = v["reasondesc"].as_str().unwrap_or_default();
        assert!(
            !desc.is_empty() && desc.len() <= verifier::verdict::MAX_REASONDESC && desc.is_ascii(),
            "{v}"
        );
        failed.push(v);
    }
    // What exactly failed, in the words of `shaken passport verify`.
    assert_eq!(
        failed[0]["reasondesc"],
        "token orig \"12155551212\" does not match the calling number \"12155550000\""
    );
    assert!(
        failed[2]["reasondesc"]
            .as_str()
            .is_some_and(|d| d.starts_with("request time ")),
        "{}",
        failed[2]
    );
    let unsigned = verify(&lab, "12155551212", None, t).await;
    assert_eq!(unsigned["verstat"], "No-TN-Validation");
    assert_eq!(
        unsigned["flags"],
        serde_json::json!(["unsigned", "unregistered"])
    );

    // The event feed has one line per verification with the response's member names. Its
    // writer thread runs behind the responses: wait (up to 30 s) for the lines to be there.
    let read_lines =
        || verifier::events::parse_lines(&std::fs::read_to_string(&lab.events).unwrap_or_default());
    let waiting_since = std::time::Instant::now();
    while read_lines().len() < 9 && waiting_since.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = read_lines();
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[0]["verstat"], "TN-Validation-Passed");
    assert_eq!(lines[0]["spc"], "1001");
    assert_eq!(lines[0]["to"], serde_json::json!(["12125551213"]));
    assert_eq!(lines[1]["reasoncode"], 438);
    // The replay's line records the verdict given, at the time the request claimed.
    let replay = &lines[3];
    assert_eq!(
        (
            &replay["verstat"],
            &replay["reasoncode"],
            &replay["time"],
            &replay["flags"]
        ),
        (
            &serde_json::json!("TN-Validation-Failed"),
            &serde_json::json!(403),
            &serde_json::json!(t - THREE_DAYS),
            &serde_json::json!(["stale", "unregistered"])
        ),
        "{replay}"
    );
    // Each line is the request's time, from and to, then the verdict exactly as the response
    // gave it (absent members omitted in both).
    let mut expected = passed.as_object().unwrap().clone();
    expected.insert("time".into(), serde_json::json!(t + 2));
    expected.insert("from".into(), serde_json::json!("12155551212"));
    expected.insert("to".into(), serde_json::json!(["12125551213"]));
    assert_eq!(lines[0], serde_json::Value::Object(expected));
    assert!(lines[0].get("reasoncode").is_none());
    assert_eq!(lines[1]["reasontext"], "Invalid Identity Header");

    // The metrics count the same verdicts, by enum: nothing can silently miss.
    let metrics = raw(
        lab.verifier,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&metrics.body);
    for line in [
        r#"shaken_verifier_verdicts_total{verstat="TN-Validation-Passed",reasoncode="none"} 1"#,
        r#"shaken_verifier_verdicts_total{verstat="TN-Validation-Failed",reasoncode="403"} 2"#,
        r#"shaken_verifier_verdicts_total{verstat="TN-Validation-Failed",reasoncode="437"} 3"#,
        r#"shaken_verifier_verdicts_total{verstat="No-TN-Validation",reasoncode="none"} 1"#,
        r#"shaken_verifier_flags_total{flag="stale"} 2"#,
        r#"shaken_verifier_flags_total{flag="unregistered"} 8"#,
        "shaken_verifier_events_dropped_total 0",
        r#"shaken_verifier_cache_entries{store="proven"} 1"#,
        r#"shaken_verifier_cache_entries{store="probation"} 0"#,
        "shaken_verifier_cache_fetches_in_flight 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
    drop(lab.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors_have_their_ids() {
    let lab = lab().await;
    let cases = [
        ("POST /stir/v1/verification HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 400, "SVC4000"),
        ("POST /stir/v1/verification HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", 400, "SVC4001"),
        ("POST /stir/v1/verification HTTP/1.1\r\nHost: t\r\nContent-Type: text/xml\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", 415, "SVC4004"),
        ("POST /stir/v1/verification HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nAccept: text/html\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", 406, "SVC4002"),
        ("POST /stir/v1/verification HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n", 411, "SVC4007"),
        ("GET /stir/v1/verification HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 405, "POL4050"),
        ("GET /nothing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404, "SVC4003"),
    ];
    for (request, status, id) in cases {
        let reply = raw(lab.verifier, request.as_bytes()).await;
        assert_eq!(reply.status, status, "{request}");
        let allow = (status == 405).then_some("POST");
        assert_eq!(reply.header("allow"), allow, "{request}");
        let json = reply.json();
        let error = &json["requestError"];
        let found = error["serviceException"]["messageId"]
            .as_str()
            .or(error["policyException"]["messageId"].as_str());
        assert_eq!(found, Some(id), "{json}");
    }
    let metrics = raw(
        lab.verifier,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains(r#"shaken_verifier_errors_total{message_id="SVC4004"} 1"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_by_pyjwt_with_the_test_pki_key_verify() {
    let lab = lab().await;
    let keys = tempdir();
    std::fs::copy(
        certs_test::path("sp/1002/key.pem"),
        keys.path().join("key-pkcs8.pem"),
    )
    .unwrap();
    let x5u = format!(
        "https://127.0.0.1:{}/sp/1001/chain.pem",
        lab.repository.port()
    );
    // Publish 1002's chain where the token says.
    std::fs::create_dir_all(lab.dir.path().join("publish/sp/1002")).unwrap();
    std::fs::copy(
        certs_test::path("sp/1002/chain.pem"),
        lab.dir.path().join("publish/sp/1002/chain.pem"),
    )
    .unwrap();
    let x5u_1002 = x5u.replace("1001", "1002");
    let t = now();
    let signed = oracle(&[
        "sign",
        keys.path().to_str().unwrap(),
        &x5u_1002,
        "12155551212",
        "12125551213",
        &t.to_string(),
    ]);
    assert!(signed.status.success(), "{}", stderr(&signed));
    let token = stdout_json(&signed)["token"].as_str().unwrap().to_owned();
    let identity = format!("{token};info=<{x5u_1002}>;alg=ES256;ppt=shaken");
    let v = verify(&lab, "12155551212", Some(&identity), t + 1).await;
    assert_eq!(v["verstat"], "TN-Validation-Passed", "{v}");
    assert_eq!(v["spc"], "1002");
}

/// A keep-alive HTTP/1.1 connection to the verifier.
struct Connection(hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>);

impl Connection {
    async fn open(address: SocketAddr) -> Self {
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(connection);
        Self(sender)
    }

    /// Posts a verification request; the status and the `reasoncode` (0 when none).
    async fn verify(&mut self, body: String) -> (u16, u64) {
        use http_body_util::BodyExt;
        self.0.ready().await.unwrap();
        let request = hyper::Request::post("/stir/v1/verification")
            .header("host", "verifier")
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let response = self.0.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let code = json["verificationResponse"]["reasoncode"]
            .as_u64()
            .unwrap_or(0);
        (status, code)
    }
}

fn verification_body(identity: &str, time: u64) -> String {
    format!(
        r#"{{"verificationRequest":{{"from":{{"tn":"12155551212"}},"to":{{"tn":["12125551213"]}},"time":{time},"identity":"{identity}"}}}}"#
    )
}

/// The same token with its header's x5u (and the Identity header's info) replaced: a forged
/// token, never signed for that x5u (its signature is never reached: the fetch fails first).
fn forge(identity: &str, x5u: &str) -> String {
    use passport::base64url;
    let token = identity.split(';').next().unwrap();
    let mut parts = token.split('.');
    let (header, payload, signature) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let header: serde_json::Value =
        serde_json::from_slice(&base64url::decode_part(header, passport::Part::Header).unwrap())
            .unwrap();
    let mut header = header.as_object().unwrap().clone();
    header.insert("x5u".into(), serde_json::json!(x5u));
    let header = base64url::encode(serde_json::Value::Object(header).to_string().as_bytes());
    format!("{header}.{payload}.{signature};info=<{x5u}>;alg=ES256;ppt=shaken")
}

/// Calls with a good token over one connection until `stop` (signing a new token every 20 s,
/// so that a long run does not make it stale); how many passed, and in what time.
async fn good_caller(
    address: SocketAddr,
    sign: impl Fn(u64) -> String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (u64, Duration) {
    let mut connection = Connection::open(address).await;
    let started = std::time::Instant::now();
    let mut passed = 0;
    let (mut signed_at, mut identity) = (now(), sign(now()));
    while !*stop.borrow() {
        let t = now();
        if t > signed_at + 20 {
            (signed_at, identity) = (t, sign(t));
        }
        let (status, code) = connection.verify(verification_body(&identity, t)).await;
        assert_eq!((status, code), (200, 0), "a good call failed");
        passed += 1;
    }
    (passed, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_x5u_neither_evicts_a_good_chain_nor_stops_good_calls() {
    const FORGED: usize = 50_000;
    const CONNECTIONS: usize = 16;
    let lab = lab().await;
    let cache = lab.state.verifier.cache();

    // Good calls alone, for the baseline rate.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let x5u = format!(
        "https://127.0.0.1:{}/sp/1001/chain.pem",
        lab.repository.port()
    );
    let key = read("sp/1001/key.pem");
    let sign = move |iat: u64| signed(&key, x5u.clone(), iat);
    let alone = tokio::spawn(good_caller(lab.verifier, sign.clone(), stopped.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(true).unwrap();
    let (alone_calls, alone_time) = alone.await.unwrap();
    let fetches_after_warm_up = cache.stats().fetches;
    assert_eq!(fetches_after_warm_up, 1, "one fetch of the good chain");

    // A server that accepts and never answers: the slow forged x5u values.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let repository_port = lab.repository.port();
    let forged_x5u = move |i: usize| match i % 10 {
        // One in 400 waits for the 5 s timeout.
        _ if i % 400 == 7 => format!("https://127.0.0.1:{silent_port}/forged/{i}.pem"),
        // One in 200 serves a real, valid public chain (the repository ignores the query):
        // it validates, but the forged token's signature does not match it (438).
        _ if i % 200 == 9 => {
            format!("https://127.0.0.1:{repository_port}/sp/1001/chain.pem?lure={i}")
        }
        // 404 from the real repository.
        0 => format!("https://127.0.0.1:{repository_port}/forged/{i}.pem"),
        // Nothing listens there.
        1..=4 => format!("https://127.0.0.1:1/forged/{i}.pem"),
        // Refused by the fetch policy (plain HTTP) before any I/O.
        _ => format!("http://forged-{i}.example/x.pem"),
    };

    // The flood, with good calls beside it.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let beside = tokio::spawn(good_caller(lab.verifier, sign.clone(), stopped));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut flooders = Vec::new();
    for _ in 0..CONNECTIONS {
        let (next, address) = (Arc::clone(&next), lab.verifier);
        let sign = sign.clone();
        flooders.push(tokio::spawn(async move {
            let mut connection = Connection::open(address).await;
            let mut answers = std::collections::BTreeMap::<(u16, u64), usize>::new();
            let (mut signed_at, mut good) = (now(), sign(now()));
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= FORGED {
                    break answers;
                }
                let t = now();
                if t > signed_at + 20 {
                    (signed_at, good) = (t, sign(t));
                }
                let body = verification_body(&forge(&good, &forged_x5u(i)), t);
                *answers.entry(connection.verify(body).await).or_default() += 1;
            }
        }));
    }
    let mut answers = std::collections::BTreeMap::<(u16, u64), usize>::new();
    for flooder in flooders {
        for (answer, count) in flooder.await.unwrap() {
            *answers.entry(answer).or_default() += count;
        }
    }
    stop.send(true).unwrap();
    let (beside_calls, beside_time) = beside.await.unwrap();

    // Every forged call got its normal answer: 200 with 436, or 438 for those whose x5u serves
    // a real chain their signature does not match; never anything else.
    let lures = (0..FORGED).filter(|i| i % 200 == 9 && i % 400 != 7).count();
    assert_eq!(
        answers,
        std::collections::BTreeMap::from([((200, 436), FORGED - lures), ((200, 438), lures)])
    );
    // Those chains wait in probation (bounded); none became a proven chain.
    assert!(cache.in_probation() <= CacheConfig::default().probation_capacity);
    // The good chain was never evicted nor fetched again, and good calls kept verifying.
    assert!(beside_calls > 0, "good calls verified during the flood");
    assert!(cache.failures() <= CacheConfig::default().negative_capacity);
    assert_eq!(cache.len(), 1, "the good chain is still cached");
    // One fetch for each forged x5u, and none more: the good chain was never fetched again.
    assert_eq!(cache.stats().fetches, fetches_after_warm_up + FORGED as u64);
    let fetches = cache.stats().fetches;
    let hits = cache.stats().hits;
    let mut connection = Connection::open(lab.verifier).await;
    assert_eq!(
        connection
            .verify(verification_body(&sign(now()), now()))
            .await,
        (200, 0)
    );
    assert_eq!(
        (cache.stats().fetches, cache.stats().hits),
        (fetches, hits + 1),
        "a hit, no refetch"
    );
    let rate = |calls: u64, time: Duration| calls as f64 / time.as_secs_f64();
    eprintln!(
        "good calls: alone {:.0}/s ({alone_calls} in {alone_time:.2?}); during {FORGED} forged \
         calls {:.0}/s ({beside_calls} in {beside_time:.2?}); ratio {:.3}; forged calls {:.0}/s",
        rate(alone_calls, alone_time),
        rate(beside_calls, beside_time),
        rate(beside_calls, beside_time) / rate(alone_calls, alone_time),
        FORGED as f64 / beside_time.as_secs_f64(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_while_its_certificate_is_fetched_leaves_no_fetch_behind() {
    use tokio::io::AsyncWriteExt;
    let lab = lab().await;
    // A repository that accepts and never answers (the lab's fetch timeout is 5 s).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let good = identity(&lab, "sp/1001/chain.pem", "sp/1001/key.pem", now());
    let cache = lab.state.verifier.cache();
    let mut clients = Vec::new();
    for i in 0..20 {
        let forged = forge(
            &good,
            &format!("https://127.0.0.1:{silent_port}/never/{i}.pem"),
        );
        let body = verification_body(&forged, now());
        let mut stream = tokio::net::TcpStream::connect(lab.verifier).await.unwrap();
        let request = format!(
            "POST /stir/v1/verification HTTP/1.1\r\nHost: v\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        clients.push(stream);
    }
    let started = std::time::Instant::now();
    while cache.in_flight() < 20 && started.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cache.in_flight(), 20, "every fetch started");
    // Every client gives up before the fetches' 5 s timeout.
    drop(clients);
    let dropped_at = std::time::Instant::now();
    while cache.in_flight() > 0 && dropped_at.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cache.in_flight(), 0);
    eprintln!(
        "fetches retired {:?} after the clients left",
        dropped_at.elapsed()
    );
    assert_eq!(cache.failures(), 0, "an abandoned fetch stores nothing");
}

/// A revocation the CA publishes after the verifier cached a chain takes effect by the next
/// update of the CRL the chain was checked against, however long the repository's max-age: the
/// cache entry does not outlive that CRL. Time is pinned: the verifier is asked at chosen times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_published_after_caching_takes_effect_by_the_crls_next_update() {
    use verifier::verdict::{Flag, Verstat};
    let now = now();
    let dir = tempdir();
    let publish = dir.path().join("publish");
    std::fs::create_dir_all(&publish).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    // The lab's PKI: its CA publishes a CRL valid 24 h from now - 30 s, at `base`.
    let pki = lab::pki::build(dir.path(), &publish, &base, now, &mut rand_core::OsRng).unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ca_tools::repository::serve(
        listener,
        pki.repository_tls.clone(),
        ca_tools::repository::RepositoryConfig {
            dir: publish.clone(),
            max_age: 7 * 86_400,
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let verifier = Verifier::new(
        Fetcher::new(loopback_policy(), std::slice::from_ref(&pki.tls_root)).unwrap(),
        CacheConfig::default(),
        TrustAnchors::from_pem(ca_tools::certificate::certificate_pem(&pki.ca_root).as_bytes())
            .unwrap(),
        CrlStore::default(),
        verifier::verify::Windows::default(),
    );
    let carrier = &pki.originating;
    let key_pem = std::fs::read(&carrier.key).unwrap();
    let call_at = |at: u64| {
        let identity = signed(&key_pem, carrier.x5u.clone(), at);
        let verifier = &verifier;
        async move {
            let (from, to) = (
                passport::Tn::canonicalize("12155551212", None).unwrap(),
                [passport::Tn::canonicalize("12125551213", None).unwrap()],
            );
            let call = verifier::verify::Call {
                from: &from,
                to: &to,
                time: at,
                identity: Some(&identity),
            };
            verifier.verify(call, at).await
        }
    };
    assert_eq!(call_at(now).await.verstat, Verstat::Passed);
    let fetches = verifier.cache().stats().fetches;

    // The CA revokes the carrier and publishes a new CRL.
    let mut ca = ca_tools::ca::CaDir::open(&dir.path().join("ca")).unwrap();
    let serial =
        ca_tools::ca::serial_of_certificate_pem(&std::fs::read(&carrier.chain).unwrap()).unwrap();
    ca.revoke(&serial, ca_tools::crl::Reason::KeyCompromise, now + 60)
        .unwrap();
    std::fs::write(
        publish.join("ca/intermediate.crl"),
        ca.crl(24, now + 60, false).unwrap(),
    )
    .unwrap();

    // Until the old CRL's next update (now - 30 + 24 h), the cached chain serves: the
    // repository's week-long max-age does not matter.
    let before = now - 30 + 86_400 - 1;
    assert_eq!(call_at(before).await.verstat, Verstat::Passed);
    assert_eq!(verifier.cache().stats().fetches, fetches, "no refetch");
    // From then on, the chain is fetched again, checked against the new CRL: revoked.
    let verdict = call_at(before + 1).await;
    assert_eq!(
        (verdict.reason.map(|r| r.code()), verdict.flags.as_slice()),
        (Some(437), &[Flag::Revoked, Flag::Unregistered][..]),
        "{verdict:?}"
    );
    // And the revoked chain is not served again from the stale entry.
    let verdict = call_at(before + 30).await;
    assert_eq!(verdict.reason.map(|r| r.code()), Some(437), "{verdict:?}");
}

/// `identity` as an array of Identity headers (a `ppt=rcd` PASSporT beside the `shaken` one):
/// the verdict is the lone `shaken` header's, whether the Rich Call Data verifies or not; two
/// headers that are not `ppt=rcd`, or more than four, are `SVC4005`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_array_with_rich_call_data_keeps_the_shaken_verdict() {
    let lab = lab().await;
    let t = now();
    let x5u = format!(
        "https://127.0.0.1:{}/sp/1001/chain.pem",
        lab.repository.port()
    );
    let good = signed(&read("sp/1001/key.pem"), x5u.clone(), t);
    let rcd = {
        let claims = Claims::rcd_passport(
            t,
            Party::Tn("12155551212".into()),
            Dest::tns(vec!["12125551213".into()]).unwrap(),
            passport::RichCallData::new("Example Marketing").unwrap(),
            None,
        );
        let key = SigningKey::from_pem(&read("sp/1001/key.pem")).unwrap();
        let token =
            passport::token::sign(&passport::Header::rcd(x5u.as_str()), &claims, &key).unwrap();
        passport::IdentityHeader::format(&token, &x5u, Some("rcd"))
    };
    let post = |identity: String| {
        let body = format!(
            r#"{{"verificationRequest":{{"from":{{"tn":"12155551212"}},"to":{{"tn":["12125551213"]}},"time":{t},"identity":{identity}}}}}"#
        );
        let verifier = lab.verifier;
        async move { post_json(verifier, "/stir/v1/verification", &body, &[]).await }
    };
    let lone = post(format!("{good:?}")).await.json()["verificationResponse"].clone();
    assert_eq!(lone["verstat"], "TN-Validation-Passed", "{lone}");
    for array in [
        format!("[{rcd:?},{good:?}]"),
        format!("[{good:?},{rcd:?}]"),
        format!(r#"[{good:?},"garbage;ppt=rcd"]"#),
    ] {
        let reply = post(array.clone()).await;
        assert_eq!(reply.status, 200, "{array}");
        assert_eq!(reply.json()["verificationResponse"], lone, "{array}");
    }
    let only_rcd = post(format!("[{rcd:?}]")).await.json()["verificationResponse"].clone();
    assert_eq!(only_rcd["verstat"], "No-TN-Validation", "{only_rcd}");
    for bad in [
        format!("[{good:?},{good:?}]"),
        format!("[{rcd:?},{rcd:?},{rcd:?},{rcd:?},{good:?}]"),
    ] {
        let reply = post(bad.clone()).await;
        assert_eq!(reply.status, 400, "{bad}");
        let json = reply.json();
        assert_eq!(
            json["requestError"]["serviceException"]["messageId"], "SVC4005",
            "{json}"
        );
    }
}

/// What the regulator's list, the opt-outs and the link issuer add to verdicts
/// (`GOVERNANCE.md` §3 and §5), through the REST API and the event feed.
mod marketing {
    use std::sync::Arc;
    use std::time::Duration;

    use optout::{LinkIssuer, LinkKey, OptOutMirror, Token};
    use passport::{Attestation, Claims, Dest, Party, SigningKey, TokenSigner};
    use serde_json::{json, Value};

    use super::{lab_with, now, read, Lab};
    use crate::http::post_json;
    use crate::signer::marketing::{
        loaded_store, opt_out, regulator_cert, BLACKLISTED_NUMBER, BLACK_NAME, BLACK_NUMBER,
        OTHER_SUBSCRIBER, PLAIN_NUMBER, SUBSCRIBER, WHITE_ID, WHITE_NAME, WHITE_NUMBER,
        WHITE_REASON,
    };

    const LINK_BASE: &str = "http://127.0.0.1:8090/optout";
    const LINK_KEY: [u8; 32] = [42; 32];
    const LINK_TTL: u64 = 3600;

    /// A verifier holding the list (version 1), `mirror` and a link issuer.
    async fn marketing_lab(mirror: Arc<OptOutMirror>) -> Lab {
        let store = loaded_store(now());
        lab_with(move |state| {
            state
                .with_lists(store)
                .with_optouts(mirror)
                .with_links(Arc::new(LinkIssuer::new(
                    LINK_BASE,
                    LinkKey::from_bytes(&LINK_KEY).unwrap(),
                    LINK_TTL,
                )))
        })
        .await
    }

    fn x5u(lab: &Lab) -> String {
        format!(
            "https://127.0.0.1:{}/sp/1001/chain.pem",
            lab.repository.port()
        )
    }

    fn key() -> SigningKey {
        SigningKey::from_pem(&read("sp/1001/key.pem")).unwrap()
    }

    /// A `shaken` Identity header from `orig` to `to`, attested A, with `rcd` (nam, crn)
    /// inside it when given (ATIS-1000094's claim-in-shaken form).
    fn shaken(lab: &Lab, orig: &str, to: &[&str], rcd: Option<(&str, Option<&str>)>) -> String {
        let claims = Claims::shaken(
            now(),
            Party::Tn(orig.into()),
            Dest::tns(to.iter().map(|t| t.to_string()).collect()).unwrap(),
            Attestation::A,
            "de305d54-75b4-431b-adb2-eb6b9e546014".parse().unwrap(),
        );
        let claims = match rcd {
            Some((nam, crn)) => claims.with_rcd(nam, crn).unwrap(),
            None => claims,
        };
        TokenSigner::new(key(), x5u(lab))
            .identity_header(&claims)
            .unwrap()
    }

    /// A separate `ppt=rcd` PASSporT (RFC 9795) from `orig` to `to`.
    fn rcd_passport(lab: &Lab, orig: &str, to: &[&str], nam: &str, crn: Option<&str>) -> String {
        let crn = crn.map(|c| passport::CallReason::new(c).unwrap());
        let claims = Claims::rcd_passport(
            now(),
            Party::Tn(orig.into()),
            Dest::tns(to.iter().map(|t| t.to_string()).collect()).unwrap(),
            passport::RichCallData::new(nam).unwrap(),
            crn,
        );
        let x5u = x5u(lab);
        let token =
            passport::token::sign(&passport::Header::rcd(x5u.as_str()), &claims, &key()).unwrap();
        passport::IdentityHeader::format(&token, &x5u, Some("rcd"))
    }

    /// The verification request for a call from `from` to `to` with `identity` (a JSON value:
    /// a string or an array), checked against the documented schema.
    fn request(from: &str, to: &[&str], identity: Value) -> String {
        let body = json!({"verificationRequest": {
            "from": {"tn": from}, "to": {"tn": to}, "time": now(), "identity": identity,
        }});
        crate::openapi::check_request("/stir/v1/verification", &body);
        body.to_string()
    }

    /// The verdict for `body`, checked against the documented response schema.
    async fn verdict(lab: &Lab, body: String) -> Value {
        let reply = post_json(lab.verifier, "/stir/v1/verification", &body, &[]).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let json = reply.json();
        crate::openapi::check_response("/stir/v1/verification", 200, &json);
        json["verificationResponse"].clone()
    }

    async fn verify(lab: &Lab, from: &str, to: &[&str], identity: Value) -> Value {
        verdict(lab, request(from, to, identity)).await
    }

    fn flags(verdict: &Value) -> Vec<&str> {
        verdict["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect()
    }

    /// The token of an unsubscribe link, checked with the opt-out service's key.
    fn link_token(link: &str) -> Token {
        let token = link
            .strip_prefix(&format!("{LINK_BASE}/u/"))
            .unwrap_or_else(|| panic!("{link}"));
        Token::parse(token, &LinkKey::from_bytes(&LINK_KEY).unwrap(), now()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_marketing_call_shows_the_vetted_name_and_an_unsubscribe_link() {
        let lab = marketing_lab(Arc::new(OptOutMirror::new())).await;
        let to = [OTHER_SUBSCRIBER, SUBSCRIBER];
        let identity = shaken(
            &lab,
            WHITE_NUMBER,
            &to,
            Some((WHITE_NAME, Some(WHITE_REASON))),
        );
        let minted = now();
        let shown = verify(&lab, WHITE_NUMBER, &to, json!(identity)).await;
        assert_eq!(shown["verstat"], "TN-Validation-Passed", "{shown}");
        assert_eq!(shown["attest"], "A");
        assert_eq!(flags(&shown), ["marketing"], "{shown}");
        assert_eq!(shown["rcd"], json!({"nam": WHITE_NAME}));
        assert_eq!(shown["crn"], WHITE_REASON);
        assert!(
            shown.get("firm").is_none(),
            "the firm id is for the event feed"
        );
        // The link is bound to the first called number and the firm, and expires.
        let token = link_token(shown["unsubscribe"].as_str().unwrap());
        assert_eq!(
            (
                token.subscriber.as_str(),
                token.firm_id.as_str(),
                token.firm_name.as_str()
            ),
            (OTHER_SUBSCRIBER, WHITE_ID, WHITE_NAME)
        );
        assert!((minted + LINK_TTL..=now() + LINK_TTL).contains(&token.expires_at));
        // Another key does not accept it.
        let link = shown["unsubscribe"].as_str().unwrap();
        let text = link.rsplit('/').next().unwrap();
        assert!(Token::parse(text, &LinkKey::from_bytes(&[1; 32]).unwrap(), now()).is_err());

        // The same call without a reason: no crn; with one the firm may not state: the name
        // shown, the reason not, rcd-mismatch.
        let identity = shaken(&lab, WHITE_NUMBER, &[SUBSCRIBER], Some((WHITE_NAME, None)));
        let plain = verify(&lab, WHITE_NUMBER, &[SUBSCRIBER], json!(identity)).await;
        assert_eq!(flags(&plain), ["marketing"]);
        assert!(plain.get("crn").is_none(), "{plain}");
        assert_eq!(
            link_token(plain["unsubscribe"].as_str().unwrap()).subscriber,
            SUBSCRIBER
        );
        let identity = shaken(
            &lab,
            WHITE_NUMBER,
            &[SUBSCRIBER],
            Some((WHITE_NAME, Some("Prize draw"))),
        );
        let odd = verify(&lab, WHITE_NUMBER, &[SUBSCRIBER], json!(identity)).await;
        assert_eq!(odd["verstat"], "TN-Validation-Passed");
        assert!(flags(&odd).contains(&"marketing") && flags(&odd).contains(&"rcd-mismatch"));
        assert_eq!(odd["rcd"]["nam"], WHITE_NAME);
        assert!(odd.get("crn").is_none(), "{odd}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_rcd_that_is_not_the_vetted_name_is_not_shown_and_keeps_the_verdict() {
        let lab = marketing_lab(Arc::new(OptOutMirror::new())).await;
        for (from, nam) in [
            (WHITE_NUMBER, "Example Bank"),
            (PLAIN_NUMBER, WHITE_NAME),
            (PLAIN_NUMBER, "Anyone at all"),
        ] {
            let unbranded = shaken(&lab, from, &[SUBSCRIBER], None);
            let reference = verify(&lab, from, &[SUBSCRIBER], json!(unbranded)).await;
            let branded = shaken(&lab, from, &[SUBSCRIBER], Some((nam, Some(WHITE_REASON))));
            let mismatch = verify(&lab, from, &[SUBSCRIBER], json!(branded)).await;
            assert_eq!(
                flags(&mismatch),
                ["rcd-mismatch"],
                "{from} {nam}: {mismatch}"
            );
            for member in ["rcd", "crn", "unsubscribe"] {
                assert!(mismatch.get(member).is_none(), "{from} {nam}: {mismatch}");
            }
            // Everything else is the verdict of the same call without rcd.
            let mut without_flags = mismatch.clone();
            without_flags["flags"] = reference["flags"].clone();
            assert_eq!(without_flags, reference, "{from} {nam}");
            assert_eq!(mismatch["verstat"], "TN-Validation-Passed");
        }
        // A failed verification: its rcd is not vouched for, neither shown nor flagged.
        let identity = shaken(&lab, WHITE_NUMBER, &[SUBSCRIBER], Some((WHITE_NAME, None)));
        let spoofed = verify(&lab, PLAIN_NUMBER, &[SUBSCRIBER], json!(identity)).await;
        assert_eq!(spoofed["verstat"], "TN-Validation-Failed");
        assert!(spoofed.get("rcd").is_none() && !flags(&spoofed).contains(&"marketing"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blacklisted_and_opted_out_calls_are_flagged() {
        let mirror = Arc::new(OptOutMirror::new());
        mirror.apply(&[opt_out(1, SUBSCRIBER, WHITE_ID, true)], 1);
        let lab = marketing_lab(Arc::clone(&mirror)).await;
        // Blacklisted: the number itself, the firm's number; the verstat is the signature's.
        for from in [BLACKLISTED_NUMBER, BLACK_NUMBER] {
            let identity = shaken(&lab, from, &[SUBSCRIBER], None);
            let flagged = verify(&lab, from, &[SUBSCRIBER], json!(identity)).await;
            assert_eq!(flagged["verstat"], "TN-Validation-Passed", "{flagged}");
            assert_eq!(flags(&flagged), ["blacklisted"], "{from}");
        }
        // A blacklisted firm's own name is not shown.
        let identity = shaken(&lab, BLACK_NUMBER, &[SUBSCRIBER], Some((BLACK_NAME, None)));
        let branded = verify(&lab, BLACK_NUMBER, &[SUBSCRIBER], json!(identity)).await;
        assert_eq!(flags(&branded), ["blacklisted", "rcd-mismatch"]);
        assert!(branded.get("rcd").is_none());
        // Flagged whatever the verdict: an unsigned call from a blacklisted number.
        let unsigned = verdict(
            &lab,
            json!({"verificationRequest": {"from": {"tn": BLACKLISTED_NUMBER}, "to": {"tn": [SUBSCRIBER]}, "time": now()}}).to_string(),
        )
        .await;
        assert!(flags(&unsigned).contains(&"blacklisted"), "{unsigned}");

        // Opted out: the firm's call reached the subscriber (its signer ignored the list),
        // branded or not; not to another subscriber.
        let identity = shaken(&lab, WHITE_NUMBER, &[SUBSCRIBER], None);
        let reached = verify(&lab, WHITE_NUMBER, &[SUBSCRIBER], json!(identity)).await;
        assert_eq!(flags(&reached), ["opted-out"], "{reached}");
        let identity = shaken(&lab, WHITE_NUMBER, &[SUBSCRIBER], Some((WHITE_NAME, None)));
        let branded = verify(&lab, WHITE_NUMBER, &[SUBSCRIBER], json!(identity)).await;
        assert!(flags(&branded).contains(&"opted-out") && flags(&branded).contains(&"marketing"));
        let identity = shaken(
            &lab,
            WHITE_NUMBER,
            &[OTHER_SUBSCRIBER],
            Some((WHITE_NAME, None)),
        );
        let other = verify(&lab, WHITE_NUMBER, &[OTHER_SUBSCRIBER], json!(identity)).await;
        assert_eq!(flags(&other), ["marketing"]);
        // Undone: no longer flagged.
        mirror.apply(&[opt_out(2, SUBSCRIBER, WHITE_ID, false)], 2);
        let identity = shaken(&lab, WHITE_NUMBER, &[SUBSCRIBER], None);
        let after = verify(&lab, WHITE_NUMBER, &[SUBSCRIBER], json!(identity)).await;
        assert_eq!(flags(&after), Vec::<&str>::new());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_separate_rcd_passport_counts_like_the_claims_in_shaken() {
        let lab = marketing_lab(Arc::new(OptOutMirror::new())).await;
        let to = [SUBSCRIBER];
        let inside = shaken(
            &lab,
            WHITE_NUMBER,
            &to,
            Some((WHITE_NAME, Some(WHITE_REASON))),
        );
        let reference = verify(&lab, WHITE_NUMBER, &to, json!(inside)).await;
        let plain = shaken(&lab, WHITE_NUMBER, &to, None);
        let rcd = rcd_passport(&lab, WHITE_NUMBER, &to, WHITE_NAME, Some(WHITE_REASON));
        for identity in [json!([plain, rcd]), json!([rcd, plain])] {
            let separate = verify(&lab, WHITE_NUMBER, &to, identity.clone()).await;
            for member in ["verstat", "attest", "flags", "rcd", "crn"] {
                assert_eq!(separate[member], reference[member], "{member}: {identity}");
            }
            assert_eq!(
                link_token(separate["unsubscribe"].as_str().unwrap()).firm_id,
                WHITE_ID
            );
        }
        // A separate rcd with another name: not shown, the verdict kept.
        let other = rcd_passport(&lab, WHITE_NUMBER, &to, "Example Bank", None);
        let mismatch = verify(&lab, WHITE_NUMBER, &to, json!([plain, other])).await;
        assert_eq!(mismatch["verstat"], "TN-Validation-Passed");
        assert_eq!(flags(&mismatch), ["rcd-mismatch"]);
        assert!(mismatch.get("rcd").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_event_feed_carries_the_firm_and_not_the_link() {
        let lab = marketing_lab(Arc::new(OptOutMirror::new())).await;
        let identity = shaken(
            &lab,
            WHITE_NUMBER,
            &[SUBSCRIBER],
            Some((WHITE_NAME, Some(WHITE_REASON))),
        );
        let shown = verify(&lab, WHITE_NUMBER, &[SUBSCRIBER], json!(identity)).await;
        let link = shown["unsubscribe"].as_str().unwrap().to_owned();
        let identity = shaken(&lab, PLAIN_NUMBER, &[SUBSCRIBER], None);
        verify(&lab, PLAIN_NUMBER, &[SUBSCRIBER], json!(identity)).await;
        let read = || std::fs::read_to_string(&lab.events).unwrap_or_default();
        let since = std::time::Instant::now();
        while read().lines().count() < 2 && since.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text = read();
        let token = link.rsplit('/').next().unwrap();
        assert!(!text.contains(token), "the link is not in the feed: {text}");
        let lines = verifier::events::parse_lines(&text);
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["rcd"], json!({"nam": WHITE_NAME}));
        assert_eq!(lines[0]["crn"], WHITE_REASON);
        assert_eq!(lines[0]["firm"], WHITE_ID);
        assert_eq!(lines[0]["flags"], json!(["marketing"]));
        assert!(lines[0].get("unsubscribe").is_none());
        // Apart from the link and the firm, the line is the response.
        let mut expected = shown.as_object().unwrap().clone();
        expected.remove("unsubscribe");
        for (name, value) in &expected {
            assert_eq!(&lines[0][name], value, "{name}");
        }
        for member in ["rcd", "crn", "firm", "unsubscribe"] {
            assert!(lines[1].get(member).is_none(), "{member}: {}", lines[1]);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_list_nothing_is_added() {
        // No list configured, or a store still waiting for its first list; a mirror and links
        // change nothing then.
        let mirror = Arc::new(OptOutMirror::new());
        mirror.apply(&[opt_out(1, SUBSCRIBER, WHITE_ID, true)], 1);
        let empty = Arc::new(lists::ListStore::new(regulator_cert()));
        let labs = [
            lab_with(|state| state).await,
            lab_with(move |state| {
                state
                    .with_lists(empty)
                    .with_optouts(mirror)
                    .with_links(Arc::new(LinkIssuer::new(
                        LINK_BASE,
                        LinkKey::from_bytes(&LINK_KEY).unwrap(),
                        LINK_TTL,
                    )))
            })
            .await,
        ];
        for lab in &labs {
            for from in [WHITE_NUMBER, BLACK_NUMBER, BLACKLISTED_NUMBER] {
                let identity = shaken(
                    lab,
                    from,
                    &[SUBSCRIBER],
                    Some((WHITE_NAME, Some(WHITE_REASON))),
                );
                let verdict = verify(lab, from, &[SUBSCRIBER], json!(identity)).await;
                assert_eq!(verdict["verstat"], "TN-Validation-Passed");
                assert_eq!(flags(&verdict), Vec::<&str>::new(), "{from}: {verdict}");
                for member in ["rcd", "crn", "unsubscribe"] {
                    assert!(verdict.get(member).is_none(), "{from}: {verdict}");
                }
            }
        }
    }
}

/// The request's optional `ingress` reaches the event line; a bad one is refused before any
/// verification, like any other bad member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_member_is_copied_into_the_event_line_or_refused() {
    let lab = lab().await;
    let t = now();
    let body = |ingress: &str| {
        format!(
            r#"{{"verificationRequest":{{"from":{{"tn":"12155551212"}},"to":{{"tn":["12125551213"]}},"time":{t},"ingress":{ingress}}}}}"#
        )
    };
    for ingress in [r#""international""#, r#""trunk-GZ.7""#, "null"] {
        let reply = post_json(lab.verifier, "/stir/v1/verification", &body(ingress), &[]).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        // The response itself does not echo it: it is for the feed.
        assert!(reply.json()["verificationResponse"]
            .get("ingress")
            .is_none());
    }
    for bad in [r#""trunk 7""#, r#""""#, "7"] {
        let reply = post_json(lab.verifier, "/stir/v1/verification", &body(bad), &[]).await;
        assert_eq!(reply.status, 400, "{bad}");
        let error = &reply.json()["requestError"]["serviceException"];
        assert_eq!(
            (&error["messageId"], &error["variables"][0]),
            (&"SVC4005".into(), &"ingress".into())
        );
    }
    let read_lines =
        || verifier::events::parse_lines(&std::fs::read_to_string(&lab.events).unwrap_or_default());
    let waiting_since = std::time::Instant::now();
    while read_lines().len() < 3 && waiting_since.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = read_lines();
    assert_eq!(lines.len(), 3, "refused requests make no line");
    assert_eq!(lines[0]["ingress"], "international");
    assert_eq!(lines[1]["ingress"], "trunk-GZ.7");
    assert!(lines[2].get("ingress").is_none(), "{}", lines[2]);
}
