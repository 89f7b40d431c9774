//! The signing service through its REST API on 127.0.0.1:0.

use std::net::SocketAddr;
use std::sync::Arc;

use passport::identity::IdentityHeader;
use passport::verify::{verify_shaken, VerifyOptions};
use passport::{SigningKey, Tn, TokenSigner};
use rest::clients::Client;
use signer::policy::{GatewayDomesticRule, OutageRule, PolicyConfig};
use signer::registry::import::{import, ImportMode, ImportOptions};
use signer::registry::{CachedRegistry, NumberRecord, Registry};
use signer::service::{self, NumberLookup, SignerState, StateParts};
use signer::trace::TraceLog;
use signer::SignerError;

use crate::http::{post_json, raw};
use crate::support::{oracle, stderr, stdout_json, tempdir};

pub(crate) const X5U: &str = "https://cr.shaken.test/sp/1001/chain.pem";
pub(crate) const REGISTRY_CSV: &str = "number,customer,name,verified,status\n\
    12155551212,c1,Verified One,yes,active\n\
    12155551213,c1,Verified One,yes,suspended\n\
    12155551214,c2,Unverified Two,no,active\n\
    12155560000..12155569999,c3,Range Three,yes,active\n";

/// A signing request with the current time as `iat` (the signer refuses one far from its clock).
pub(crate) fn request(attest: &str, orig: &str, dest: &str, extra: &str) -> String {
    request_at(attest, orig, dest, unix_now(), extra)
}

/// A signing request with the given `iat`.
pub(crate) fn request_at(attest: &str, orig: &str, dest: &str, iat: u64, extra: &str) -> String {
    format!(
        r#"{{"signingRequest":{{"attest":"{attest}","dest":{{"tn":["{dest}"]}},"iat":{iat},"orig":{{"tn":"{orig}"}},"origid":"{}"{extra}}}}}"#,
        uuid::Uuid::new_v4()
    )
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A registry in `dir` holding `REGISTRY_CSV`.
fn test_registry(dir: &std::path::Path) -> Registry {
    let mut registry = Registry::open(&dir.join("registry.sqlite")).unwrap();
    let mut progress = |_| {};
    import(
        &mut registry,
        REGISTRY_CSV.as_bytes(),
        ImportOptions {
            mode: ImportMode::Merge,
            plan: None,
            secret: None,
            actor: "test",
            now: 1,
            progress: &mut progress,
        },
    )
    .unwrap();
    registry
}

struct FailingRegistry;

impl NumberLookup for FailingRegistry {
    fn lookup(&self, _tn: &str) -> Result<Option<Arc<NumberRecord>>, SignerError> {
        Err(SignerError::Config("simulated registry outage".into()))
    }
}

pub(crate) fn test_signer() -> Arc<TokenSigner> {
    let key =
        SigningKey::from_pem(&std::fs::read(certs_test::path("sp/1001/key.pem")).unwrap()).unwrap();
    Arc::new(TokenSigner::new(key, X5U))
}

struct Running {
    addr: SocketAddr,
    trace_db: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
    state: Arc<SignerState>,
}

async fn start(outage: bool, clients: Vec<Client>, policy: PolicyConfig) -> Running {
    start_with_clock(outage, clients, policy, None).await
}

/// [`start`], the signer reading `clock` when given.
async fn start_with_clock(
    outage: bool,
    clients: Vec<Client>,
    policy: PolicyConfig,
    clock: Option<service::Clock>,
) -> Running {
    let dir = tempdir();
    let registry = test_registry(dir.path());
    let lookup: Arc<dyn NumberLookup> = if outage {
        Arc::new(FailingRegistry)
    } else {
        Arc::new(CachedRegistry::new(
            registry,
            1000,
            std::time::Duration::from_secs(60),
        ))
    };
    let trace_db = dir.path().join("trace.sqlite");
    let state = SignerState::new(StateParts {
        signer: test_signer(),
        registry: lookup,
        // The smallest journal, so that a test can fill it.
        trace: TraceLog::open_bounded(&trace_db, signer::trace::MIN_JOURNAL_BYTES).unwrap(),
        policy,
        plan: None,
        clients,
        max_body: 4096,
        // A small pool: each test's signer fills its own.
        nonce_pool: 64,
    });
    let state = Arc::new(match clock {
        Some(clock) => state.with_clock(clock),
        None => state,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service::serve(
        listener,
        Arc::clone(&state),
        None,
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        trace_db,
        _dir: dir,
        _stop: stop,
        state,
    }
}

fn nanp_policy() -> PolicyConfig {
    PolicyConfig {
        home_country_code: Some("1".into()),
        ..PolicyConfig::default()
    }
}

fn error_id(reply: &crate::http::Reply) -> (String, serde_json::Value) {
    let json = reply.json();
    let error = &json["requestError"];
    let (kind, body) = if error["serviceException"].is_object() {
        ("serviceException", error["serviceException"].clone())
    } else {
        ("policyException", error["policyException"].clone())
    };
    assert!(
        body["text"].is_string() && body["variables"].is_array(),
        "{json}"
    );
    let id = body["messageId"].as_str().unwrap().to_owned();
    assert_eq!(kind == "serviceException", id.starts_with("SVC"), "{json}");
    (id, body["variables"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_error_has_its_id_and_status() {
    let s = start(false, vec![], nanp_policy()).await;
    let good = request("A", "12155551212", "12125551213", "");
    let post = |headers: &str, body: &str| {
        format!(
            "POST /stir/v1/signing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n{body}"
        )
    };
    let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
        (post("Content-Type: application/json\r\nContent-Length: 0\r\n", ""), 400, "SVC4000", None),
        (post("Content-Type: application/json\r\nContent-Length: 17\r\n", r#"{"signingReq":{}}"#), 400, "SVC4001", Some("signingRequest")),
        (post(&format!("Content-Type: application/json\r\nAccept: text/html\r\nContent-Length: {}\r\n", good.len()), &good), 406, "SVC4002", Some("text/html")),
        ("GET /stir/v1/nothing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".into(), 404, "SVC4003", None),
        (post(&format!("Content-Type: text/plain\r\nContent-Length: {}\r\n", good.len()), &good), 415, "SVC4004", Some("application/json")),
        (post("Content-Type: application/json\r\nContent-Length: 1\r\n", "{"), 400, "SVC4006", None),
        (post("Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 411, "SVC4007", None),
        (post("Content-Type: application/json\r\nContent-Length: 5000\r\n", ""), 413, "SVC4006", None),
        ("PUT /stir/v1/signing HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(), 405, "POL4050", None),
    ];
    for (request, status, id, variable) in cases {
        let reply = raw(s.addr, request.as_bytes()).await;
        assert_eq!(reply.status, status, "{request}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        // RFC 9110: a 405 lists the allowed methods; nothing else carries Allow.
        let allow = (status == 405).then_some("POST");
        assert_eq!(reply.header("allow"), allow, "{request}");
        assert!(
            reply.body.iter().all(u8::is_ascii),
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let (found, variables) = error_id(&reply);
        assert_eq!(found, id, "{request}");
        if let Some(variable) = variable {
            assert_eq!(variables[0], variable, "{request}");
        }
        let generated = reply.header("x-requestid").unwrap_or_default();
        let uuid = uuid::Uuid::parse_str(generated).unwrap();
        assert_eq!(
            (uuid.get_version_num(), uuid.get_variant()),
            (4, uuid::Variant::RFC4122),
            "a generated request id is a UUID v4: {generated}"
        );
        assert_eq!(generated, uuid.hyphenated().to_string());
    }
    let bad_value = request("D", "12155551212", "12125551213", "");
    let reply = post_json(s.addr, "/stir/v1/signing", &bad_value, &[]).await;
    assert_eq!(
        (reply.status, error_id(&reply).0.as_str()),
        (400, "SVC4005")
    );
    assert_eq!(error_id(&reply).1[0], "attest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_database_outage_fills_the_journal_then_signing_stops_with_pol5000_and_resumes() {
    let s = start(false, vec![], nanp_policy()).await;
    let conn = rusqlite::Connection::open(&s.trace_db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn.execute_batch("CREATE TRIGGER fail BEFORE INSERT ON trace_batch BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END;").unwrap();
    // While the database refuses records, calls are still signed: each record is durable in
    // the journal (one call at a time: one 4 KiB frame each) until the journal is full.
    let addr = s.addr;
    let sign_a_call = move || async move {
        let body = request("A", "12155551212", "12125551213", "");
        post_json(addr, "/stir/v1/signing", &body, &[]).await
    };
    let mut signed = 0usize;
    let refused = loop {
        let reply = sign_a_call().await;
        if reply.status != 200 {
            break reply;
        }
        signed += 1;
        assert!(signed < 20_000, "the journal never filled");
    };
    assert_eq!(refused.status, 500);
    assert_eq!(error_id(&refused).0, "POL5000");
    assert!(
        !String::from_utf8_lossy(&refused.body).contains("identity"),
        "no signature without a trace record"
    );
    let frames = (signer::trace::MIN_JOURNAL_BYTES / 4096) as usize;
    assert!(
        (frames - 2..=frames).contains(&signed),
        "{signed} calls signed into a journal of {frames} blocks"
    );
    // Every signed call can be traced meanwhile (from the journal).
    let traced = |db: &std::path::Path| {
        signer::trace::lookup_tn(db, "12155551212", 0, u64::MAX >> 2)
            .unwrap()
            .iter()
            .filter(|r| r.outcome == "signed")
            .count()
    };
    assert_eq!(traced(&s.trace_db), signed);
    // The database recovers: the journal drains into it and signing resumes by itself.
    conn.execute_batch("DROP TRIGGER fail").unwrap();
    let mut resumed = false;
    for _ in 0..50 {
        let reply = sign_a_call().await;
        if reply.status == 200 {
            resumed = true;
            signed += 1;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        resumed,
        "signing did not resume after the database recovered"
    );
    assert_eq!(traced(&s.trace_db), signed);
    let stored: i64 = conn
        .query_row("SELECT sum(count) FROM trace_batch", [], |r| r.get(0))
        .unwrap();
    assert!(
        stored >= i64::try_from(signed).unwrap() - 1,
        "{stored} of {signed} records in the database"
    );
}

async fn sign(
    addr: SocketAddr,
    attest: &str,
    orig: &str,
    dest: &str,
    extra: &str,
) -> crate::http::Reply {
    post_json(
        addr,
        "/stir/v1/signing",
        &request(attest, orig, dest, extra),
        &[],
    )
    .await
}

fn attest_of(reply: &crate::http::Reply) -> String {
    let json = reply.json();
    let identity = json["signingResponse"]["identity"]
        .as_str()
        .unwrap_or_else(|| panic!("{json}"));
    let parsed = IdentityHeader::parse(identity).unwrap();
    parsed.passport().claims().attest.unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_branch() {
    let s = start(false, vec![], nanp_policy()).await;
    let ok =
        |r: &crate::http::Reply| assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = sign(s.addr, "A", "12155551212", "12125551213", "").await;
    ok(&r);
    assert_eq!(
        attest_of(&r),
        "A",
        "registered, verified, no customer named: A"
    );
    let r = sign(
        s.addr,
        "A",
        "+1(215)555-1212",
        "12125551213",
        r#","customerId":"c1""#,
    )
    .await;
    assert_eq!(attest_of(&r), "A", "the owner named: A");
    let r = sign(
        s.addr,
        "A",
        "12155551212",
        "12125551213",
        r#","customerId":"pbx-9""#,
    )
    .await;
    assert_eq!(attest_of(&r), "B", "another customer named: A lowered to B");
    let r = sign(s.addr, "B", "12155561234", "12125551213", "").await;
    assert_eq!(
        attest_of(&r),
        "B",
        "a number in a registered range, B requested"
    );
    let r = sign(s.addr, "C", "442071234567", "12125551213", "").await;
    assert_eq!(attest_of(&r), "C", "foreign caller through a gateway");

    let refusals = [
        ("C", "12155551212", "12125551213", 403, "POL4104"),
        ("A", "12155550000", "12125551213", 403, "POL4101"),
        ("A", "12155551213", "12125551213", 403, "POL4102"),
        ("B", "12155551214", "12125551213", 403, "POL4103"),
    ];
    for (attest, orig, dest, status, id) in refusals {
        let r = sign(s.addr, attest, orig, dest, "").await;
        assert_eq!(r.status, status, "{orig}");
        let (found, variables) = error_id(&r);
        assert_eq!(found, id, "{orig}");
        assert_eq!(variables[0], orig, "the refused number is named");
    }
    let r = sign(s.addr, "A", "12155550000", "911", "").await;
    assert_eq!(
        attest_of(&r),
        "C",
        "an emergency call from an unregistered number is signed C"
    );
    let r = sign(s.addr, "A", "12155551213", "911", "").await;
    assert_eq!(
        attest_of(&r),
        "C",
        "an emergency call from a suspended number is signed C"
    );

    // Every decision is in the trace log, refusals included.
    let signed = signer::trace::lookup_tn(&s.trace_db, "12155551212", 0, u64::MAX >> 2).unwrap();
    assert!(signed
        .iter()
        .any(|r| r.outcome == "refused" && r.message_id.as_deref() == Some("POL4104")));
    assert_eq!(signed.iter().filter(|r| r.outcome == "signed").count(), 3);
    let metrics = s.state.metrics.render((0, 0));
    assert!(
        metrics.contains(r#"shaken_signer_requests_total{outcome="signed",attest="A"} 2"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_outage_rules_are_configurable() {
    let s = start(true, vec![], nanp_policy()).await;
    let r = sign(s.addr, "A", "12155551212", "12125551213", "").await;
    assert_eq!((r.status, error_id(&r).0.as_str()), (503, "POL5031"));
    let r = sign(s.addr, "A", "12155551212", "911", "").await;
    assert_eq!(
        attest_of(&r),
        "C",
        "emergency calls are signed during an outage"
    );

    let lenient = PolicyConfig {
        gateway_domestic: GatewayDomesticRule::SignC,
        registry_outage: OutageRule::SignC,
        ..nanp_policy()
    };
    let s = start(true, vec![], lenient).await;
    assert_eq!(
        attest_of(&sign(s.addr, "A", "12155551212", "12125551213", "").await),
        "C"
    );
    assert_eq!(
        attest_of(&sign(s.addr, "C", "12155551212", "12125551213", "").await),
        "C"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_verify_here_and_in_pyjwt_and_the_request_id_is_echoed() {
    let s = start(false, vec![], nanp_policy()).await;
    // The signature is finished from a precomputed nonce (signer::nonces) once the pool has
    // some; this test checks that path against both verifiers.
    for _ in 0..2000 {
        if s.state.nonces_ready() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(s.state.nonces_ready() > 0, "the nonce pool stays empty");
    let body = request("A", "12155551212", "+1(212)555-1213", "");
    let r = post_json(
        s.addr,
        "/stir/v1/signing",
        &body,
        &["X-RequestID: trace-me-42", "Accept: application/json"],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-requestid"), Some("trace-me-42"));
    let identity = r.json()["signingResponse"]["identity"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(identity.ends_with(&format!(";info=<{X5U}>;alg=ES256;ppt=shaken")));
    let parsed = IdentityHeader::parse(&identity).unwrap();
    assert_eq!(
        parsed.passport().claims().dest.tn(),
        ["12125551213"],
        "canonicalized"
    );
    let key = passport::cert::verifying_key_from_pem_chain(
        &std::fs::read(certs_test::path("sp/1001/chain.pem")).unwrap(),
    )
    .unwrap();
    let from = Tn::canonicalize("12155551212", None).unwrap();
    verify_shaken(
        &parsed,
        &key,
        &VerifyOptions::at(parsed.passport().claims().iat),
        Some(&from),
        &[],
    )
    .unwrap();

    let precomputed = s
        .state
        .metrics
        .signatures
        .get(signer::metrics::NONCE_PRECOMPUTED);
    assert_eq!(precomputed, 1, "signed from a precomputed nonce");

    let token = identity.split(';').next().unwrap();
    let cert = certs_test::path("sp/1001/cert.pem");
    let checked = oracle(&["verify", token, cert.to_str().unwrap()]);
    assert!(checked.status.success(), "PyJWT: {}", stderr(&checked));
    assert_eq!(stdout_json(&checked)["claims"]["attest"], "A");

    let records = signer::trace::lookup_tn(&s.trace_db, "12155551212", 0, u64::MAX >> 2).unwrap();
    assert_eq!(records[0].request_id, "trace-me-42");
    assert_eq!(
        records[0].origid.as_deref(),
        parsed
            .passport()
            .claims()
            .origid
            .as_ref()
            .map(|o| o.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_the_allow_list_and_over_their_rate_are_refused() {
    let section = |name: &str, ips: &[&str], rate: u32| signer::config::ClientSection {
        name: name.into(),
        ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        certificate_sha256: None,
        customer: None,
        rate_limit_per_second: rate,
    };
    let s = start(
        false,
        vec![Client::from_config(&section("far", &["10.0.0.0/8"], 0)).unwrap()],
        nanp_policy(),
    )
    .await;
    let r = sign(s.addr, "A", "12155551212", "12125551213", "").await;
    assert_eq!((r.status, error_id(&r).0.as_str()), (403, "POL4030"));

    let s = start(
        false,
        vec![Client::from_config(&section("slow", &["127.0.0.1/32"], 2)).unwrap()],
        nanp_policy(),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            sign(s.addr, "A", "12155551212", "12125551213", "")
                .await
                .status,
        );
    }
    assert_eq!(&statuses[..2], [200, 200]);
    assert!(statuses[2..].contains(&429), "{statuses:?}");
}

mod mutual_tls {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use sha2::Digest;

    use super::*;

    fn der(relative: &str) -> Vec<u8> {
        passport::cert::chain_from_pem(&std::fs::read(certs_test::path(relative)).unwrap())
            .unwrap()
            .remove(0)
    }

    fn client_config(with_certificate: bool) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(der("tls/root.pem")))
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if with_certificate {
            let key =
                SigningKey::from_pem(&std::fs::read(certs_test::path("tls/client.key")).unwrap())
                    .unwrap();
            let pkcs8 = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(key.secret()).unwrap();
            builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(der("tls/client.pem"))],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec())),
                )
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(config)
    }

    async fn start_tls(
        fingerprint: &str,
    ) -> (
        SocketAddr,
        tempfile::TempDir,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let dir = tempdir();
        let registry = super::test_registry(dir.path());
        let client = signer::config::ClientSection {
            name: "sbc-1".into(),
            ips: vec![],
            certificate_sha256: Some(fingerprint.to_owned()),
            customer: Some("pbx-9".into()),
            rate_limit_per_second: 0,
        };
        let state = Arc::new(SignerState::new(StateParts {
            signer: test_signer(),
            registry: Arc::new(CachedRegistry::new(
                registry,
                100,
                std::time::Duration::from_secs(60),
            )),
            trace: TraceLog::open(&dir.path().join("trace.sqlite")).unwrap(),
            policy: PolicyConfig::default(),
            plan: None,
            clients: vec![Client::from_config(&client).unwrap()],
            max_body: 4096,
            nonce_pool: 0,
        }));
        let acceptor = rest::tls::acceptor(&rest::tls::TlsSection {
            cert_file: certs_test::path("tls/server.pem"),
            key_file: certs_test::path("tls/server.key"),
            client_ca_file: Some(certs_test::path("tls/root.pem")),
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(service::serve(
            listener,
            state,
            Some(acceptor),
            async move {
                let _ = stopped.await;
            },
        ));
        (addr, dir, stop)
    }

    async fn post_tls(
        addr: SocketAddr,
        with_certificate: bool,
        body: &str,
    ) -> Result<crate::http::Reply, std::io::Error> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let mut tls = tokio_rustls::TlsConnector::from(client_config(with_certificate))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        // TLS 1.3 reports a refused client certificate on the first read, not in the handshake.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!(
            "POST /stir/v1/signing HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(request.as_bytes()).await?;
        let mut probe = [0u8; 1];
        let n = tls.read(&mut probe).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed"));
        }
        let mut rest = Vec::from(&probe[..]);
        tls.read_to_end(&mut rest).await.ok();
        crate::http::parse(&rest).ok_or_else(|| std::io::Error::other("incomplete response"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_certificate_identifies_the_client_and_its_customer() {
        let fingerprint: String = sha2::Sha256::digest(der("tls/client.pem"))
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let (addr, _dir, _stop) = start_tls(&fingerprint).await;
        let reply = post_tls(addr, true, &request("A", "12155551212", "12125551213", ""))
            .await
            .unwrap();
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(
            attest_of(&reply),
            "B",
            "the client speaks for pbx-9, who does not own the number"
        );

        assert!(
            post_tls(addr, false, &request("A", "12155551212", "12125551213", ""))
                .await
                .is_err(),
            "no client certificate"
        );

        let (addr, _dir2, _stop2) = start_tls(
            &"AB:"
                .repeat(31)
                .chars()
                .chain("AB".chars())
                .collect::<String>(),
        )
        .await;
        let reply = post_tls(addr, true, &request("A", "12155551212", "12125551213", ""))
            .await
            .unwrap();
        assert_eq!(
            (reply.status, error_id(&reply).0.as_str()),
            (403, "POL4030"),
            "a valid certificate that is not mapped"
        );
    }
}

/// The signer's clock in these tests.
const PINNED_NOW: u64 = 1_700_000_000;

async fn start_pinned() -> Running {
    start_with_clock(false, vec![], nanp_policy(), Some(Arc::new(|| PINNED_NOW))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iat_outside_the_window_around_the_signers_clock_is_refused() {
    let s = start_pinned().await;
    // The edges are inside: 60 s before, 10 s after.
    for iat in [PINNED_NOW - 60, PINNED_NOW, PINNED_NOW + 10] {
        let body = request_at("A", "12155551212", "12125551213", iat, "");
        let reply = post_json(s.addr, "/stir/v1/signing", &body, &[]).await;
        assert_eq!(reply.status, 200, "iat {iat}");
        let identity = reply.json()["signingResponse"]["identity"]
            .as_str()
            .unwrap()
            .to_owned();
        let parsed = IdentityHeader::parse(&identity).unwrap();
        assert_eq!(
            parsed.passport().claims().iat,
            iat,
            "the request's iat is signed"
        );
    }
    for (iat, reason) in [
        (PINNED_NOW - 61, "more than 60 s before the signer's clock"),
        (
            PINNED_NOW - 86_400,
            "more than 60 s before the signer's clock",
        ),
        (PINNED_NOW + 11, "more than 10 s after the signer's clock"),
    ] {
        let body = request_at("A", "12155551212", "12125551213", iat, "");
        let reply = post_json(s.addr, "/stir/v1/signing", &body, &[]).await;
        assert_eq!(reply.status, 400, "iat {iat}");
        let (id, variables) = error_id(&reply);
        assert_eq!(id, "SVC4005");
        assert_eq!(variables, serde_json::json!(["iat", reason]));
    }
    // Nothing refused for its iat reaches the trace log: only the three signed calls.
    let records = signer::trace::lookup_tn(&s.trace_db, "12155551212", 0, u64::MAX >> 2).unwrap();
    assert_eq!(records.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_shape_errors_come_before_the_iat_window() {
    let s = start_pinned().await;
    let stale = request_at("A", "12155551212", "12125551213", PINNED_NOW - 3600, "");
    let no_origid = stale.replace(r#","origid":""#, r#","x":""#);
    let reply = post_json(s.addr, "/stir/v1/signing", &no_origid, &[]).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        error_id(&reply),
        ("SVC4001".to_owned(), serde_json::json!(["origid"]))
    );
    let bad_attest = request_at("D", "12155551212", "12125551213", PINNED_NOW - 3600, "");
    let reply = post_json(s.addr, "/stir/v1/signing", &bad_attest, &[]).await;
    assert_eq!(error_id(&reply).1[0], "attest");
    // A stale iat from an unregistered number: the request is refused for its iat, before
    // the registry is asked.
    let unregistered = request_at("A", "12155550000", "12125551213", PINNED_NOW - 3600, "");
    let reply = post_json(s.addr, "/stir/v1/signing", &unregistered, &[]).await;
    assert_eq!(error_id(&reply).0, "SVC4005");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_call_with_a_bad_iat_is_signed_with_the_signers_clock() {
    let s = start_pinned().await;
    for iat in [PINNED_NOW - 3600, PINNED_NOW + 3600] {
        let body = request_at("A", "12155551212", "911", iat, "");
        let reply = post_json(s.addr, "/stir/v1/signing", &body, &[]).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let identity = reply.json()["signingResponse"]["identity"]
            .as_str()
            .unwrap()
            .to_owned();
        let parsed = IdentityHeader::parse(&identity).unwrap();
        assert_eq!(parsed.passport().claims().iat, PINNED_NOW);
    }
}
