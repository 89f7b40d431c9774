//! The verification service through its REST API, with certificates served over HTTPS by the
//! project's repository from the test PKI.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use passport::{Attestation, Claims, Dest, Party, SigningKey, TokenSigner};
use verifier::cache::CacheConfig;
use verifier::chain::TrustAnchors;
use verifier::crl::{Crl, CrlStore};
use verifier::events::{EventSink, EventTarget};
use verifier::fetch::{FetchPolicy, Fetcher};
use verifier::service::{self, VerifierState};
use verifier::verify::Verifier;

use crate::http::{post_json, raw};
use crate::support::{oracle, stderr, stdout_json, tempdir};

struct Lab {
    verifier: SocketAddr,
    repository: SocketAddr,
    events: std::path::PathBuf,
    dir: tempfile::TempDir,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

fn read(relative: &str) -> Vec<u8> {
    std::fs::read(certs_test::path(relative)).unwrap()
}

async fn lab() -> Lab {
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

    let policy = FetchPolicy {
        allow_private_addresses: true,
        allowed_ports: None,
        // Generous: no case here is about a slow repository, and a shared CI machine can
        // stall a loopback TLS handshake for a while.
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(5),
        ..FetchPolicy::default()
    };
    let fetcher = Fetcher::new(
        policy,
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
        60,
        10,
    );
    let events = dir.path().join("events.jsonl");
    let sink = EventSink::open(&EventTarget::File(events.clone())).unwrap();
    let state = Arc::new(VerifierState::new(
        verifier,
        vec![],
        None,
        16 * 1024,
        Some(sink),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service::serve(listener, state, None, async move {
        let _ = stopped.await;
    }));
    Lab {
        verifier: address,
        repository,
        events,
        dir,
        _stops: vec![stop_repo, stop],
    }
}

fn identity(lab: &Lab, path: &str, key: &str, iat: u64) -> String {
    let x5u = format!("https://127.0.0.1:{}/{path}", lab.repository.port());
    let signer = TokenSigner::new(SigningKey::from_pem(&read(key)).unwrap(), x5u);
    let claims = Claims::shaken(
        iat,
        Party::Tn("12155551212".into()),
        Dest::tns(vec!["12125551213".into()]).unwrap(),
        Attestation::A,
        "de305d54-75b4-431b-adb2-eb6b9e546014".parse().unwrap(),
    );
    signer.identity_header(&claims).unwrap()
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
        (
            "12155551212",
            Some(good.clone()),
            t + 120,
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
    }
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
    while read_lines().len() < 8 && waiting_since.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = read_lines();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0]["verstat"], "TN-Validation-Passed");
    assert_eq!(lines[0]["spc"], "1001");
    assert_eq!(lines[0]["to"], serde_json::json!(["12125551213"]));
    assert_eq!(lines[1]["reasoncode"], 438);
    for member in [
        "time",
        "from",
        "to",
        "verstat",
        "reasoncode",
        "attest",
        "spc",
        "origid",
        "flags",
    ] {
        assert!(lines[0].get(member).is_some(), "{member}");
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
