//! The verifier against a local HTTPS repository that can misbehave, with the test PKI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use passport::{Attestation, Claims, Dest, Party, SigningKey, SipReason, Tn, TokenSigner};
use pki::TrustAnchors;
use verifier::cache::CacheConfig;
use verifier::crl::{Crl, CrlStore};
use verifier::fetch::{FetchPolicy, Fetcher};
use verifier::verdict::{Flag, Verdict, Verstat};
use verifier::verify::{Call, Verifier, Windows};

const NOW: u64 = 1_800_000_000;

/// How the test repository behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    Slow,
    Delayed,
    Oversized,
    Redirect,
    Garbage,
    NotFound,
    ServerError,
}

struct Repo {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

fn read(relative: &str) -> Vec<u8> {
    std::fs::read(certs_test::path(relative)).unwrap()
}

/// Serves `/chain.pem` (the given bundle), counting requests.
async fn repo(mode: Mode, bundle: Vec<u8>) -> Repo {
    let tls = ca_tools_free_tls_config();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let bundle = Bytes::from(bundle);
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, counter, bundle) =
                (acceptor.clone(), Arc::clone(&counter), bundle.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |_request: Request<hyper::body::Incoming>| {
                        let (counter, bundle) = (Arc::clone(&counter), bundle.clone());
                        async move {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let response = match mode {
                            Mode::Normal => Response::builder().header("cache-control", "max-age=600").body(Full::new(bundle)),
                            Mode::Delayed => {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                                Response::builder().body(Full::new(bundle))
                            }
                            Mode::Slow => {
                                tokio::time::sleep(Duration::from_secs(5)).await;
                                Response::builder().body(Full::new(bundle))
                            }
                            Mode::Oversized => Response::builder().body(Full::new(Bytes::from(vec![b'A'; 200_000]))),
                            Mode::Redirect => Response::builder().status(302).header("location", "https://127.0.0.1/other.pem").body(Full::new(Bytes::new())),
                            Mode::Garbage => Response::builder().body(Full::new(Bytes::from_static(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"))),
                            Mode::NotFound => Response::builder().status(404).body(Full::new(Bytes::new())),
                            Mode::ServerError => Response::builder().status(500).body(Full::new(Bytes::new())),
                        };
                            Ok::<_, std::convert::Infallible>(response.unwrap())
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Repo { addr, hits }
}

fn ca_tools_free_tls_config() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let chain: Vec<CertificateDer<'static>> =
        passport::cert::chain_from_pem(&read("tls/server.pem"))
            .unwrap()
            .into_iter()
            .map(CertificateDer::from)
            .collect();
    let key = SigningKey::from_pem(&read("tls/server.key")).unwrap();
    let pkcs8 = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(key.secret()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                chain,
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec())),
            )
            .unwrap(),
    )
}

fn verifier(timeout_ms: u64) -> Verifier {
    verifier_with(timeout_ms, Windows::default())
}

fn verifier_with(timeout_ms: u64, windows: Windows) -> Verifier {
    let policy = FetchPolicy {
        allow_private_addresses: true,
        allowed_ports: None,
        connect_timeout: Duration::from_millis(timeout_ms),
        total_timeout: Duration::from_millis(timeout_ms),
        ..FetchPolicy::default()
    };
    let tls_root = passport::cert::chain_from_pem(&read("tls/root.pem")).unwrap();
    let fetcher = Fetcher::new(policy, &tls_root).unwrap();
    let anchors = TrustAnchors::from_pem(&read("ca/root.pem")).unwrap();
    let crls = CrlStore::new(
        vec![
            Crl::parse(&read("ca/intermediate.crl")).unwrap(),
            Crl::parse(&read("ca/root.crl")).unwrap(),
        ],
        false,
    );
    Verifier::new(fetcher, CacheConfig::default(), anchors, crls, windows)
}

fn identity(key_file: &str, x5u: &str, attest: Attestation, iat: u64) -> String {
    let signer = TokenSigner::new(SigningKey::from_pem(&read(key_file)).unwrap(), x5u);
    let claims = Claims::shaken(
        iat,
        Party::Tn("12155551212".into()),
        Dest::tns(vec!["12125551213".into()]).unwrap(),
        attest,
        "de305d54-75b4-431b-adb2-eb6b9e546014".parse().unwrap(),
    );
    signer.identity_header(&claims).unwrap()
}

fn tn(s: &str) -> Tn {
    Tn::canonicalize(s, None).unwrap()
}

async fn check(v: &Verifier, identity: Option<&str>, from: &str) -> Verdict {
    check_at(v, identity, from, NOW, NOW).await
}

/// Verifies a call whose request says `time`, on a verifier whose clock reads `now`.
async fn check_at(
    v: &Verifier,
    identity: Option<&str>,
    from: &str,
    time: u64,
    now: u64,
) -> Verdict {
    let (from, to) = (tn(from), [tn("12125551213")]);
    v.verify(
        Call {
            from: &from,
            to: &to,
            time,
            identity,
        },
        now,
    )
    .await
}

fn url(repo: &Repo) -> String {
    format!("https://127.0.0.1:{}/chain.pem", repo.addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_verdict_and_code() {
    let v = verifier(2000);
    let good = repo(Mode::Normal, read("sp/1001/chain.pem")).await;
    let x5u = url(&good);

    let verdict = check(
        &v,
        Some(&identity("sp/1001/key.pem", &x5u, Attestation::A, NOW - 5)),
        "12155551212",
    )
    .await;
    assert_eq!(verdict.verstat, Verstat::Passed, "{verdict:?}");
    assert_eq!(
        (
            verdict.spc.as_deref(),
            verdict.attest,
            verdict.flags.as_slice()
        ),
        (Some("1001"), Some(Attestation::A), &[][..])
    );
    let verdict = check(
        &v,
        Some(&identity("sp/1001/key.pem", &x5u, Attestation::B, NOW)),
        "12155551212",
    )
    .await;
    assert_eq!(
        (verdict.verstat, verdict.flags.as_slice()),
        (Verstat::Passed, &[Flag::Unregistered][..])
    );
    let verdict = check(
        &v,
        Some(&identity("sp/1001/key.pem", &x5u, Attestation::C, NOW)),
        "12155551212",
    )
    .await;
    assert_eq!(
        (verdict.verstat, verdict.flags.as_slice()),
        (Verstat::Passed, &[Flag::Gateway, Flag::Unregistered][..])
    );

    let verdict = check(
        &v,
        Some(&identity("sp/1001/key.pem", &x5u, Attestation::A, NOW)),
        "12155550000",
    )
    .await;
    assert_eq!(
        (verdict.reason, verdict.flags.as_slice()),
        (
            Some(SipReason::InvalidIdentityHeader),
            &[Flag::Spoofed, Flag::Unregistered][..]
        )
    );
    let verdict = check(
        &v,
        Some(&identity("sp/1002/key.pem", &x5u, Attestation::A, NOW)),
        "12155551212",
    )
    .await;
    assert_eq!(
        (verdict.reason, verdict.flags.as_slice()),
        (
            Some(SipReason::InvalidIdentityHeader),
            &[Flag::Spoofed, Flag::Unregistered][..]
        )
    );
    let verdict = check(
        &v,
        Some(&identity("sp/1001/key.pem", &x5u, Attestation::A, NOW - 61)),
        "12155551212",
    )
    .await;
    assert_eq!(
        (verdict.reason, verdict.flags.as_slice()),
        (
            Some(SipReason::StaleDate),
            &[Flag::Stale, Flag::Unregistered][..]
        )
    );
    let verdict = check(&v, None, "12155551212").await;
    assert_eq!(
        (verdict.verstat, verdict.reason, verdict.flags.as_slice()),
        (
            Verstat::NoValidation,
            None,
            &[Flag::Unsigned, Flag::Unregistered][..]
        )
    );
    let verdict = check(&v, Some("garbage;info=<https://x/y>"), "12155551212").await;
    assert_eq!(verdict.reason, Some(SipReason::InvalidIdentityHeader));

    for (bundle, key, flag, what) in [
        (
            "revoked/chain.pem",
            "revoked/key.pem",
            Flag::Revoked,
            "revoked",
        ),
        (
            "expired/chain.pem",
            "expired/key.pem",
            Flag::Untrusted,
            "expired",
        ),
        (
            "untrusted/chain.pem",
            "untrusted/key.pem",
            Flag::Untrusted,
            "untrusted root",
        ),
    ] {
        let r = repo(Mode::Normal, read(bundle)).await;
        let verdict = check(
            &v,
            Some(&identity(key, &url(&r), Attestation::A, NOW)),
            "12155551212",
        )
        .await;
        assert_eq!(
            verdict.reason,
            Some(SipReason::UnsupportedCredential),
            "{what}: {verdict:?}"
        );
        assert!(verdict.flags.contains(&flag), "{what}: {verdict:?}");
    }
    // A certificate with the wrong policy, under the trusted issuing CA.
    let wrong_policy = [
        read("malformed/certificate-policies.pem"),
        read("ca/intermediate.pem"),
    ]
    .concat();
    let r = repo(Mode::Normal, wrong_policy).await;
    let verdict = check(
        &v,
        Some(&identity("sp/1001/key.pem", &url(&r), Attestation::A, NOW)),
        "12155551212",
    )
    .await;
    assert_eq!(
        verdict.reason,
        Some(SipReason::UnsupportedCredential),
        "{verdict:?}"
    );
    assert!(
        verdict
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("atis-1000080.certificate-policies"),
        "{verdict:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fetch_failure_is_436_and_other_calls_keep_verifying() {
    // 1 s: long enough for the good repository's first fetch on a busy machine, well short of
    // the slow repository's 5 s and of the 4 s this test allows a pair of calls.
    let v = Arc::new(verifier(1000));
    let good = repo(Mode::Normal, read("sp/1001/chain.pem")).await;
    let good_identity = identity("sp/1001/key.pem", &url(&good), Attestation::A, NOW);
    let wrong_order = [read("ca/intermediate.pem"), read("sp/1001/cert.pem")].concat();
    for (mode, bundle) in [
        (Mode::Slow, read("sp/1001/chain.pem")),
        (Mode::Oversized, vec![]),
        (Mode::Redirect, vec![]),
        (Mode::NotFound, vec![]),
        (Mode::ServerError, vec![]),
        (Mode::Garbage, vec![]),
        (Mode::Normal, wrong_order),
    ] {
        let bad = repo(mode, bundle).await;
        let bad_identity = identity("sp/1001/key.pem", &url(&bad), Attestation::A, NOW);
        let started = std::time::Instant::now();
        let (bad_verdict, good_verdict) = tokio::join!(
            check(&v, Some(&bad_identity), "12155551212"),
            check(&v, Some(&good_identity), "12155551212")
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{mode:?} took {:?}",
            started.elapsed()
        );
        assert_eq!(
            bad_verdict.reason,
            Some(SipReason::BadIdentityInfo),
            "{mode:?}: {bad_verdict:?}"
        );
        assert_eq!(good_verdict.verstat, Verstat::Passed, "{mode:?}");
    }
    // Nothing listens there.
    let unreachable = identity(
        "sp/1001/key.pem",
        "https://127.0.0.1:9/chain.pem",
        Attestation::A,
        NOW,
    );
    assert_eq!(
        check(&v, Some(&unreachable), "12155551212").await.reason,
        Some(SipReason::BadIdentityInfo)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_make_one_fetch() {
    let v = Arc::new(verifier(2000));
    let r = repo(Mode::Normal, read("sp/1001/chain.pem")).await;
    let identity = Arc::new(identity("sp/1001/key.pem", &url(&r), Attestation::A, NOW));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (v, identity) = (Arc::clone(&v), Arc::clone(&identity));
        tasks.push(tokio::spawn(async move {
            check(&v, Some(&identity), "12155551212").await.verstat
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), Verstat::Passed);
    }
    assert_eq!(
        r.hits.load(Ordering::SeqCst),
        1,
        "one request to the repository"
    );
    assert_eq!(v.cache().stats().fetches, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_refuses_plain_http_and_internal_addresses_by_default() {
    let fetcher = Fetcher::new(FetchPolicy::default(), &[]).unwrap();
    let anchors = TrustAnchors::from_pem(&read("ca/root.pem")).unwrap();
    let v = Verifier::new(
        fetcher,
        CacheConfig::default(),
        anchors,
        CrlStore::default(),
        verifier::verify::Windows::default(),
    );
    for x5u in [
        "http://cr.example.net/chain.pem",
        "https://127.0.0.1/chain.pem",
        "https://cr.example.net:9999/chain.pem",
    ] {
        let verdict = check(
            &v,
            Some(&identity("sp/1001/key.pem", x5u, Attestation::A, NOW)),
            "12155551212",
        )
        .await;
        assert_eq!(
            verdict.reason,
            Some(SipReason::BadIdentityInfo),
            "{x5u}: {verdict:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_time_is_checked_against_the_verifiers_clock() {
    let v = verifier(2000);
    let good = repo(Mode::Normal, read("sp/1001/chain.pem")).await;
    let x5u = url(&good);
    let signed_at = |iat| identity("sp/1001/key.pem", &x5u, Attestation::A, iat);

    // A replay: a token signed three days ago, presented with `time` set to then. Its iat is
    // fresh against that `time`, but the `time` is three days behind the verifier's clock.
    let three_days_ago = NOW - 3 * 86_400;
    let replay = check_at(
        &v,
        Some(&signed_at(three_days_ago)),
        "12155551212",
        three_days_ago,
        NOW,
    )
    .await;
    assert_eq!(
        (replay.verstat, replay.reason, replay.flags.as_slice()),
        (
            Verstat::Failed,
            Some(SipReason::StaleDate),
            &[Flag::Stale, Flag::Unregistered][..]
        ),
        "{replay:?}"
    );
    assert!(
        replay
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("request time")),
        "{replay:?}"
    );
    assert_eq!(
        good.hits.load(Ordering::SeqCst),
        0,
        "refused before any fetch"
    );

    // Within the default 60 s either way: passes; beyond it either way: 403.
    for (time, passes) in [
        (NOW - 60, true),
        (NOW + 60, true),
        (NOW - 61, false),
        (NOW + 61, false),
    ] {
        let verdict = check_at(&v, Some(&signed_at(time)), "12155551212", time, NOW).await;
        assert_eq!(
            verdict.verstat == Verstat::Passed,
            passes,
            "time {time} at {NOW}: {verdict:?}"
        );
        if !passes {
            assert_eq!(verdict.reason, Some(SipReason::StaleDate), "{verdict:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_validity_is_judged_at_the_verifiers_clock_not_the_request_time() {
    // Even with any request time allowed, the certificate is judged at the verifier's clock.
    let v = verifier_with(
        2000,
        Windows {
            request_time_skew: u64::MAX,
            ..Windows::default()
        },
    );
    // The expired certificate is valid on 2026-01-01 only.
    let expired = repo(Mode::Normal, read("expired/chain.pem")).await;
    let noon_2026_01_01 = 1_767_268_800;
    let token = identity(
        "expired/key.pem",
        &url(&expired),
        Attestation::A,
        noon_2026_01_01,
    );
    let verdict = check_at(&v, Some(&token), "12155551212", noon_2026_01_01, NOW).await;
    assert_eq!(
        (verdict.reason, verdict.flags.as_slice()),
        (
            Some(SipReason::UnsupportedCredential),
            &[Flag::Untrusted, Flag::Unregistered][..]
        ),
        "{verdict:?}"
    );
    // On that day (a new verifier: the first one remembers the failure), the same call passes.
    let v = verifier(2000);
    let verdict = check_at(
        &v,
        Some(&token),
        "12155551212",
        noon_2026_01_01,
        noon_2026_01_01 + 5,
    )
    .await;
    assert_eq!(verdict.verstat, Verstat::Passed, "{verdict:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_fetched_across_a_reload_is_not_stored() {
    let v = Arc::new(verifier(5000));
    let delayed = repo(Mode::Delayed, read("sp/1001/chain.pem")).await;
    let token = identity("sp/1001/key.pem", &url(&delayed), Attestation::A, NOW);
    // A call starts fetching under the test PKI's root...
    let in_flight = {
        let (v, token) = (Arc::clone(&v), token.clone());
        tokio::spawn(async move { check(&v, Some(&token), "12155551212").await })
    };
    while v.cache().in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    // ...and the anchors are reloaded, to a root that did not issue it, before the fetch ends.
    v.reload(
        TrustAnchors::from_pem(&read("untrusted/root.pem")).unwrap(),
        Vec::new(),
    );
    let verdict = in_flight.await.unwrap();
    assert_eq!(
        verdict.verstat,
        Verstat::Passed,
        "judged with the trust it started with"
    );
    assert_eq!(v.cache().len(), 0, "but not stored");
    // The next call fetches again and validates against the new anchors.
    let verdict = check(&v, Some(&token), "12155551212").await;
    assert_eq!(
        (verdict.reason, verdict.flags.as_slice()),
        (
            Some(SipReason::UnsupportedCredential),
            &[Flag::Untrusted, Flag::Unregistered][..]
        ),
        "{verdict:?}"
    );
    assert_eq!(delayed.hits.load(Ordering::SeqCst), 2);
}

/// Every certificate the linter refuses is refused by the verifier with 437 `untrusted`, and
/// the one the linter only warns about (the CP v1.1 policy) is accepted: one profile check
/// serves both (`pki::profile`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_linters_fixtures_are_refused_by_the_verifier_with_437() {
    let v = verifier(5000);
    let intermediate = read("ca/intermediate.pem");
    let mut files: Vec<_> = std::fs::read_dir(certs_test::path("malformed"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        17,
        "one fixture per rule, and the CP v1.1 warning"
    );
    let (mut refused, mut accepted) = (0, 0);
    for file in files {
        let pem = std::fs::read(&file).unwrap();
        let reports = ca_tools::lint::lint_pem(&pem, Some(NOW)).unwrap();
        let lint_errors = reports[0]
            .findings
            .iter()
            .filter(|f| f.severity() == ca_tools::lint::Severity::Error)
            .count();
        let mut bundle = pem.clone();
        bundle.extend_from_slice(&intermediate);
        let served = repo(Mode::Normal, bundle).await;
        let credential = v.credential(&url(&served), NOW).await;
        let token = identity("sp/1001/key.pem", &url(&served), Attestation::A, NOW);
        let verdict = check(&v, Some(&token), "12155551212").await;
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if lint_errors > 0 {
            refused += 1;
            assert_eq!(
                (verdict.reason, verdict.flags.as_slice()),
                (
                    Some(SipReason::UnsupportedCredential),
                    &[Flag::Untrusted, Flag::Unregistered][..]
                ),
                "{name}: {verdict:?}"
            );
        } else {
            accepted += 1;
            assert_eq!(
                name, "cp-1.1-policy.pem",
                "only the warning-only fixture passes"
            );
            assert!(credential.is_ok(), "{name}: {credential:?}");
        }
    }
    assert_eq!((refused, accepted), (16, 1));
}

/// A Rich Call Data PASSporT (RFC 9795) for the test call, signed with `key_file`.
fn rcd_identity(key_file: &str, x5u: &str, dest: &str, iat: u64) -> String {
    let key = SigningKey::from_pem(&read(key_file)).unwrap();
    let claims = Claims::rcd_passport(
        iat,
        Party::Tn("12155551212".into()),
        Dest::tns(vec![dest.into()]).unwrap(),
        passport::RichCallData::new("Example Marketing").unwrap(),
        Some("Sales".parse().unwrap()),
    );
    let token = passport::token::sign(&passport::Header::rcd(x5u), &claims, &key).unwrap();
    passport::IdentityHeader::format(&token, x5u, Some("rcd"))
}

async fn check_rcd(v: &Verifier, identity: Option<&str>, from: &str, rcd: &[String]) -> Verdict {
    let (from, to) = (tn(from), [tn("12125551213")]);
    let call = Call {
        from: &from,
        to: &to,
        time: NOW,
        identity,
    };
    v.verify_with_rcd(call, rcd, NOW).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_call_data_in_shaken_or_beside_it_never_changes_the_verdict() {
    use verifier::verdict::{Rcd, RcdSource};
    let v = verifier(2000);
    let good = repo(Mode::Normal, read("sp/1001/chain.pem")).await;
    let x5u = url(&good);
    let plain = identity("sp/1001/key.pem", &x5u, Attestation::A, NOW);
    let plain_verdict = check(&v, Some(&plain), "12155551212").await;
    assert_eq!(plain_verdict.verstat, Verstat::Passed);
    assert_eq!(plain_verdict.rcd, None);

    // Inside the shaken PASSporT (ATIS-1000094).
    let signer = TokenSigner::new(
        SigningKey::from_pem(&read("sp/1001/key.pem")).unwrap(),
        &x5u,
    );
    let claims = Claims::shaken(
        NOW,
        Party::Tn("12155551212".into()),
        Dest::tns(vec!["12125551213".into()]).unwrap(),
        Attestation::A,
        "de305d54-75b4-431b-adb2-eb6b9e546014".parse().unwrap(),
    )
    .with_rcd("Example Marketing", Some("Product offer"))
    .unwrap();
    let branded = signer.identity_header(&claims).unwrap();
    let verdict = check(&v, Some(&branded), "12155551212").await;
    assert_eq!(
        verdict.rcd,
        Some(Rcd {
            nam: "Example Marketing".into(),
            crn: Some("Product offer".into()),
            source: RcdSource::InShaken
        })
    );
    assert_eq!(
        (verdict.verstat, verdict.flags.clone()),
        (Verstat::Passed, vec![])
    );
    // ...but not when the shaken verification fails.
    let verdict = check(&v, Some(&branded), "12155550000").await;
    assert_eq!((verdict.verstat, verdict.rcd), (Verstat::Failed, None));

    // A separate ppt=rcd PASSporT that verifies.
    let rcd = vec![rcd_identity(
        "sp/1001/key.pem",
        &x5u,
        "12125551213",
        NOW - 2,
    )];
    let verdict = check_rcd(&v, Some(&plain), "12155551212", &rcd).await;
    assert_eq!(
        verdict.rcd,
        Some(Rcd {
            nam: "Example Marketing".into(),
            crn: Some("Sales".into()),
            source: RcdSource::RcdPassport
        })
    );
    assert_eq!(
        Verdict {
            rcd: None,
            ..verdict
        },
        plain_verdict
    );

    // Ones that do not verify change nothing: another callee, stale, a signature from another
    // key than the certificate's, garbage, a shaken token passed as rcd.
    for bad in [
        rcd_identity("sp/1001/key.pem", &x5u, "12125550000", NOW),
        rcd_identity("sp/1001/key.pem", &x5u, "12125551213", NOW - 61),
        rcd_identity("sp/1002/key.pem", &x5u, "12125551213", NOW),
        "garbage;ppt=rcd".to_owned(),
        plain.clone(),
    ] {
        let verdict = check_rcd(&v, Some(&plain), "12155551212", std::slice::from_ref(&bad)).await;
        assert_eq!(verdict, plain_verdict, "{bad}");
    }
    // The first one that verifies counts.
    let both = vec!["garbage;ppt=rcd".to_owned(), rcd[0].clone()];
    let verdict = check_rcd(&v, Some(&plain), "12155551212", &both).await;
    assert_eq!(verdict.rcd.map(|r| r.source), Some(RcdSource::RcdPassport));
    // A failed or absent shaken PASSporT yields none.
    let verdict = check_rcd(&v, Some(&plain), "12155550000", &rcd).await;
    assert_eq!((verdict.verstat, verdict.rcd), (Verstat::Failed, None));
    let verdict = check_rcd(&v, None, "12155551212", &rcd).await;
    assert_eq!(
        (verdict.verstat, verdict.rcd),
        (Verstat::NoValidation, None)
    );
}
