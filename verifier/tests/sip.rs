//! The verifier's SIP redirect interface: INVITEs parsed by the `sip` crate and answered by
//! [`VerifierSip`] without sockets, certificates served over HTTPS by the project's repository
//! from the test PKI; then one call over a real UDP socket through the server's wiring.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lists::{ListDocument, ListStore, RegulatorCert};
use passport::{Attestation, Claims, Dest, Party, SigningKey, TokenSigner};
use pki::TrustAnchors;
use rest::clients::{Client, ClientSection};
use sip::message::{Limits, Message, Request};
use sip::transport::{Answer, Handler, Peer, Transport};
use verifier::cache::CacheConfig;
use verifier::config::SipSection;
use verifier::crl::{Crl, CrlStore};
use verifier::events::{EventSink, EventTarget};
use verifier::fetch::{FetchPolicy, Fetcher};
use verifier::service::VerifierState;
use verifier::sip::{SipAnswers, SipOptions, VerifierSip};
use verifier::verify::Verifier;

/// The token's calling and called numbers.
const ORIG: &str = "12155551212";
const DEST: &str = "12125551213";

struct Lab {
    repository: SocketAddr,
    events: PathBuf,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn read(relative: &str) -> Vec<u8> {
    std::fs::read(certs_test::path(relative)).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The repository serving the test PKI's chains over HTTPS on loopback.
async fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let publish = dir.path().join("publish");
    std::fs::create_dir_all(publish.join("sp/1001")).unwrap();
    std::fs::copy(
        certs_test::path("sp/1001/chain.pem"),
        publish.join("sp/1001/chain.pem"),
    )
    .unwrap();
    let tls =
        rest::tls::acceptor_from_pem(&read("tls/server.pem"), &read("tls/server.key")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let repository = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ca_tools::repository::RepositoryConfig {
        dir: publish,
        max_age: 600,
    };
    tokio::spawn(ca_tools::repository::serve(
        listener,
        tls,
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    let events = dir.path().join("events.jsonl");
    Lab {
        repository,
        events,
        _dir: dir,
        _stop: stop,
    }
}

/// A verifier state fetching from `lab`'s repository, writing events to `lab.events`, with
/// `clients` (none: loopback).
fn state(lab: &Lab, clients: Vec<Client>) -> VerifierState {
    let policy = FetchPolicy {
        allow_private_addresses: true,
        allowed_ports: None,
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
        verifier::verify::Windows::default(),
    );
    let sink = EventSink::open(&EventTarget::File(lab.events.clone())).unwrap();
    VerifierState::new(verifier, clients, None, 16 * 1024, Some(sink))
}

/// `[sip]` with `extra` keys.
fn section(extra: &str) -> SipSection {
    toml::from_str(&format!("listen = [\"127.0.0.1:0\"]\n{extra}")).unwrap()
}

fn handler(state: VerifierState, extra: &str) -> VerifierSip {
    let options = SipOptions::from_section(&section(extra)).unwrap();
    VerifierSip::new(Arc::new(state), options, Arc::new(SipAnswers::default()))
}

/// An Identity header from `orig` to [`DEST`], attested `attest`, signed at `iat`, with the
/// rich call data `rcd` when given.
fn identity(lab: &Lab, orig: &str, attest: Attestation, iat: u64, rcd: Option<&str>) -> String {
    let x5u = format!(
        "https://127.0.0.1:{}/sp/1001/chain.pem",
        lab.repository.port()
    );
    let signer = TokenSigner::new(SigningKey::from_pem(&read("sp/1001/key.pem")).unwrap(), x5u);
    let claims = Claims::shaken(
        iat,
        Party::Tn(orig.into()),
        Dest::tns(vec![DEST.into()]).unwrap(),
        attest,
        "de305d54-75b4-431b-adb2-eb6b9e546014".parse().unwrap(),
    );
    let claims = match rcd {
        Some(nam) => claims.with_rcd(nam, None).unwrap(),
        None => claims,
    };
    signer.identity_header(&claims).unwrap()
}

fn good(lab: &Lab) -> String {
    identity(lab, ORIG, Attestation::A, now(), None)
}

/// The text of an INVITE to `ruri` from `sip:alice@example.com` with `headers` added.
fn invite_text(ruri: &str, headers: &[(&str, String)]) -> String {
    let mut text = format!(
        "INVITE {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{}\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:+1{DEST}@example.net;user=phone>\r\n\
         Call-ID: call-1@example.com\r\n\
         CSeq: 1 INVITE\r\n",
        now()
    );
    if !headers.iter().any(|(name, _)| *name == "From") {
        text.push_str("From: <sip:alice@example.com>;tag=f1\r\n");
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text
}

/// The INVITE of [`invite_text`], parsed.
fn invite(ruri: &str, headers: &[(&str, String)]) -> Request {
    match sip::message::parse(invite_text(ruri, headers).as_bytes(), &Limits::default()).unwrap() {
        Message::Request(request) => request,
        other => panic!("{other:?}"),
    }
}

const RURI: &str = "sip:+12125551213@example.net;user=phone";

fn pai(value: &str) -> (&'static str, String) {
    ("P-Asserted-Identity", value.to_owned())
}

fn identity_header(value: String) -> (&'static str, String) {
    ("Identity", value)
}

fn peer(address: &str) -> Peer {
    Peer {
        addr: address.parse().unwrap(),
        transport: Transport::Udp,
    }
}

async fn ask(handler: &VerifierSip, request: Request) -> Answer {
    handler.invite(&request, peer("127.0.0.1:5060")).await
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// The labelled header `name` of a `302`, parsed.
fn labelled(answer: &Answer, name: &str) -> sip::uri::NameAddr {
    assert_eq!(
        (answer.code, answer.reason.as_str()),
        (302, "Moved Temporarily"),
        "{answer:?}"
    );
    sip::uri::parse_name_addr(header(answer, name).unwrap_or_else(|| panic!("{answer:?}"))).unwrap()
}

/// The event lines written so far, waiting until there are `count`.
async fn events(lab: &Lab, count: usize) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        let lines = verifier::events::parse_lines(
            &std::fs::read_to_string(&lab.events).unwrap_or_default(),
        );
        if lines.len() >= count {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {count} event lines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_token_labels_the_pai_passed_in_each_placement() {
    let lab = lab().await;
    // User part (TS 24.229), the default; the display name and header parameters kept.
    let sip = handler(state(&lab, vec![]), "attestation_info = true");
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                pai("\"Alice\" <sip:+12155551212@example.com;user=phone>;x=1"),
                identity_header(good(&lab)),
            ],
        ),
    )
    .await;
    assert_eq!(
        header(&answer, "Contact"),
        Some(format!("<{RURI}>").as_str())
    );
    let pai_out = labelled(&answer, "P-Asserted-Identity");
    assert_eq!(pai_out.display.as_deref(), Some("Alice"));
    assert_eq!(
        pai_out.uri.user.as_deref(),
        Some("+12155551212;verstat=TN-Validation-Passed")
    );
    assert_eq!(pai_out.uri.param("verstat"), None);
    assert_eq!(pai_out.param("x"), Some(Some("1")));
    assert_eq!(header(&answer, "Attestation-Info"), Some("A"));
    assert!(header(&answer, "From").is_none(), "{answer:?}");

    // After the host, by configuration.
    let sip = handler(state(&lab, vec![]), "verstat = \"uri-parameter\"");
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                pai("<sip:+12155551212@example.com;user=phone>"),
                identity_header(good(&lab)),
            ],
        ),
    )
    .await;
    let pai_out = labelled(&answer, "P-Asserted-Identity");
    assert_eq!(pai_out.uri.user.as_deref(), Some("+12155551212"));
    assert_eq!(
        pai_out.uri.param("verstat"),
        Some(Some("TN-Validation-Passed"))
    );
    assert_eq!(header(&answer, "Attestation-Info"), None, "not configured");

    // A tel URI carries it as its own parameter, and is preferred to a sip one.
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                pai("<sip:+12155559999@example.com;user=phone>, <tel:+1-215-555-1212>"),
                identity_header(good(&lab)),
            ],
        ),
    )
    .await;
    let pai_out = labelled(&answer, "P-Asserted-Identity");
    assert_eq!(pai_out.uri.scheme, sip::uri::Scheme::Tel);
    assert_eq!(
        pai_out.uri.user.as_deref(),
        Some("+1-215-555-1212;verstat=TN-Validation-Passed")
    );

    let lines = events(&lab, 3).await;
    for line in &lines {
        assert_eq!(line["verstat"], "TN-Validation-Passed", "{line}");
        assert_eq!(line["from"], ORIG);
        assert_eq!(line["to"], serde_json::json!([DEST]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_unsigned_stale_and_upstream_claims() {
    let lab = lab().await;
    let sip = handler(
        state(&lab, vec![]),
        "verdict_header = \"X-Shaken-Verdict\"\nattestation_info = true",
    );
    // The PAI's number is not the token's: spoofed.
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                pai("<sip:+12155559999@example.com;user=phone>"),
                identity_header(good(&lab)),
            ],
        ),
    )
    .await;
    let pai_out = labelled(&answer, "P-Asserted-Identity");
    assert_eq!(
        pai_out.uri.user.as_deref(),
        Some("+12155559999;verstat=TN-Validation-Failed")
    );
    assert_eq!(
        header(&answer, "Attestation-Info"),
        None,
        "failed: no attestation"
    );
    let verdict = header(&answer, "X-Shaken-Verdict").unwrap();
    assert!(
        verdict.starts_with("flags=spoofed,unregistered;spc=") && verdict.ends_with(";reason=438"),
        "{verdict}"
    );
    assert!(verdict.is_ascii() && !verdict.contains("2155559999"));

    // No Identity and no PAI: From is labelled, No-TN-Validation, and an upstream verstat in it
    // is replaced, never passed on.
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[(
                "From",
                "<tel:+12155551212;verstat=TN-Validation-Passed>;tag=f2".to_owned(),
            )],
        ),
    )
    .await;
    let from = labelled(&answer, "From");
    assert_eq!(
        from.uri.user.as_deref(),
        Some("+12155551212;verstat=No-TN-Validation")
    );
    assert_eq!(from.param("tag"), Some(Some("f2")));
    assert_eq!(
        header(&answer, "X-Shaken-Verdict"),
        Some("flags=unsigned,unregistered")
    );

    // A Date ten minutes old: stale (403), like a REST `time` that far from the clock.
    let old = now() - 600;
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                pai("<tel:+12155551212>"),
                identity_header(identity(&lab, ORIG, Attestation::A, old, None)),
                ("Date", sip::date::format(old)),
            ],
        ),
    )
    .await;
    let pai_out = labelled(&answer, "P-Asserted-Identity");
    assert_eq!(
        pai_out.uri.user.as_deref(),
        Some("+12155551212;verstat=TN-Validation-Failed")
    );
    let verdict = header(&answer, "X-Shaken-Verdict").unwrap();
    assert!(verdict.starts_with("flags=stale,unregistered"), "{verdict}");
    assert!(verdict.ends_with(";reason=403"), "{verdict}");

    // A current Date is the request's time: passed, and the event carries it.
    let date = now();
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                pai("<tel:+12155551212>"),
                identity_header(good(&lab)),
                ("Date", sip::date::format(date)),
            ],
        ),
    )
    .await;
    let pai_out = labelled(&answer, "P-Asserted-Identity");
    assert!(pai_out
        .uri
        .user
        .as_deref()
        .unwrap()
        .ends_with(";verstat=TN-Validation-Passed"));
    assert_eq!(header(&answer, "Attestation-Info"), Some("A"));
    let lines = events(&lab, 4).await;
    assert_eq!(lines[3]["time"], date);
    assert_eq!(lines[1]["verstat"], "No-TN-Validation");
    assert_eq!(
        lines[2]["flags"],
        serde_json::json!(["stale", "unregistered"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_flags_get_their_code_with_a_reason_and_the_first_in_order_wins() {
    let lab = lab().await;
    let answers = Arc::new(SipAnswers::default());
    let state = Arc::new(state(&lab, vec![]));
    let options = SipOptions::from_section(&section(
        "[block]\nspoofed = 607\nunsigned = 608\nstale = 403\nunregistered = 608\ngateway = \"label\"\n",
    ))
    .unwrap();
    let sip = VerifierSip::new(state.clone(), options, answers.clone());

    let spoofed = ask(
        &sip,
        invite(
            RURI,
            &[pai("<tel:+12155559999>"), identity_header(good(&lab))],
        ),
    )
    .await;
    assert_eq!((spoofed.code, spoofed.reason.as_str()), (607, "Unwanted"));
    assert_eq!(
        header(&spoofed, "Reason"),
        Some("SIP;cause=607;text=\"spoofed\"")
    );
    assert!(header(&spoofed, "P-Asserted-Identity").is_none());

    let unsigned = ask(&sip, invite(RURI, &[pai("<tel:+12155551212>")])).await;
    assert_eq!((unsigned.code, unsigned.reason.as_str()), (608, "Rejected"));
    assert_eq!(
        header(&unsigned, "Reason"),
        Some("SIP;cause=608;text=\"unsigned\"")
    );

    // stale and unregistered: stale comes first in the documented order.
    let old = now() - 600;
    let stale = ask(
        &sip,
        invite(
            RURI,
            &[
                pai("<tel:+12155551212>"),
                identity_header(identity(&lab, ORIG, Attestation::A, old, None)),
                ("Date", sip::date::format(old)),
            ],
        ),
    )
    .await;
    assert_eq!((stale.code, stale.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        header(&stale, "Reason"),
        Some("SIP;cause=403;text=\"stale\"")
    );

    // Attested A: no flag, labelled.
    let good_call = ask(
        &sip,
        invite(
            RURI,
            &[pai("<tel:+12155551212>"), identity_header(good(&lab))],
        ),
    )
    .await;
    assert_eq!(good_call.code, 302);

    // Blocked calls are verified and recorded like the others.
    let lines = events(&lab, 4).await;
    assert_eq!(
        lines[0]["flags"],
        serde_json::json!(["spoofed", "unregistered"])
    );
    let text = answers.render("shaken_verifier_sip");
    for line in [
        "shaken_verifier_sip_answers_total{kind=\"labelled\",code=\"302\"} 1",
        "shaken_verifier_sip_answers_total{kind=\"blocked\",code=\"403\"} 1",
        "shaken_verifier_sip_answers_total{kind=\"blocked\",code=\"607\"} 1",
        "shaken_verifier_sip_answers_total{kind=\"blocked\",code=\"608\"} 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_from_the_address_or_the_trunk_group() {
    let lab = lab().await;
    let sip = handler(
        state(&lab, vec![]),
        "[ingress]\ntrunk_param = \"tgrp\"\n[ingress.addresses]\n\"127.0.0.0/8\" = \"local\"\n\"127.0.0.1/32\" = \"sbc-1\"\n",
    );
    let call = || {
        invite(
            RURI,
            &[pai("<tel:+12155551212>"), identity_header(good(&lab))],
        )
    };
    assert_eq!(sip.invite(&call(), peer("127.0.0.1:5060")).await.code, 302);
    assert_eq!(sip.invite(&call(), peer("127.0.0.2:5060")).await.code, 302);
    // RFC 4904: the trunk group inside the user part of the Request-URI wins over the address.
    let trunk = invite(
        "sip:+12125551213;tgrp=TG-7;trunk-context=example.net@example.net;user=phone",
        &[pai("<tel:+12155551212>"), identity_header(good(&lab))],
    );
    assert_eq!(sip.invite(&trunk, peer("127.0.0.1:5060")).await.code, 302);
    let lines = events(&lab, 3).await;
    let ingress: Vec<&str> = lines
        .iter()
        .map(|l| l["ingress"].as_str().unwrap())
        .collect();
    assert_eq!(ingress, ["sbc-1", "local", "TG-7"]);

    // A trunk group that is not a valid ingress name is ignored (never a 400 a caller could
    // provoke): the address names the ingress.
    let bad = invite(
        "sip:+12125551213@example.net;user=phone;tgrp=gw%2F1",
        &[pai("<tel:+12155551212>"), identity_header(good(&lab))],
    );
    let answer = sip.invite(&bad, peer("127.0.0.1:5060")).await;
    assert_eq!(answer.code, 302, "{answer:?}");
    let lines = events(&lab, 4).await;
    assert_eq!(lines[3]["ingress"], "sbc-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_requests_get_400_naming_the_header() {
    let lab = lab().await;
    let sip = handler(state(&lab, vec![]), "");
    for (headers, named) in [
        (vec![], "From: no telephone number"),
        (
            vec![pai("<sip:+1215*5551212@example.com;user=phone>")],
            "P-Asserted-Identity: not a telephone number",
        ),
        (
            vec![pai("<sip:%2B1215%2A5551212@example.com;user=phone>")],
            "P-Asserted-Identity: not a telephone number",
        ),
        // An unreadable PAI is skipped; From has no number either.
        (
            vec![pai("<sip:+1215%zz@example.com;user=phone>")],
            "From: no telephone number",
        ),
    ] {
        let answer = ask(&sip, invite(RURI, &headers)).await;
        assert_eq!((answer.code, answer.reason.as_str()), (400, "Bad Request"));
        let warning = header(&answer, "Warning").unwrap();
        assert!(
            warning.starts_with("399 shaken-verifier \"") && warning.contains(named),
            "{warning} should name {named}"
        );
        assert!(!warning.contains("5551212"), "no number in {warning}");
    }
    // No number in the Request-URI nor in To.
    let text = invite_text("sip:bob@example.net", &[pai("<tel:+12155551212>")]).replace(
        &format!("<sip:+1{DEST}@example.net;user=phone>"),
        "<sip:bob@example.net>",
    );
    let Message::Request(request) =
        sip::message::parse(text.as_bytes(), &Limits::default()).unwrap()
    else {
        panic!()
    };
    let answer = ask(&sip, request).await;
    assert_eq!(answer.code, 400);
    assert!(header(&answer, "Warning")
        .unwrap()
        .contains("To: no telephone number"));
}

/// The verstat of the `302`'s labelled header `name`, wherever it is in the URI.
fn verstat_of(answer: &Answer, name: &str) -> String {
    let labelled = labelled(answer, name);
    assert_eq!(labelled.param("verstat"), None, "not a header parameter");
    if let Some(Some(value)) = labelled.uri.param("verstat") {
        return value.to_owned();
    }
    let user = labelled.uri.user.unwrap();
    user.split(';')
        .find_map(|p| p.strip_prefix("verstat="))
        .unwrap_or_else(|| panic!("no verstat in {user}"))
        .to_owned()
}

/// Inputs a caller controls that once made the verifier answer `400` (and the SBC forward the
/// call untouched, planted verstat included) are verified: labelled, or blocked as configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_that_once_got_400_are_labelled_or_blocked() {
    let lab = lab().await;
    let sip = handler(
        state(&lab, vec![]),
        "verdict_header = \"X-V\"\n[block]\nstale = 403\n",
    );
    let tel = || pai("<tel:+12155551212>");
    let ok = |answer: &Answer, verstat: &str| {
        assert_eq!(
            verstat_of(answer, "P-Asserted-Identity"),
            verstat,
            "{answer:?}"
        );
    };

    // An unreadable Date is no Date: the verifier's clock is the call's time.
    for date in [
        "yesterday".to_owned(),
        sip::date::format(now()).replace("GMT", "+0000"),
        "Sunday, 06-Nov-94 08:49:37 GMT".to_owned(),
    ] {
        let answer = ask(
            &sip,
            invite(RURI, &[tel(), identity_header(good(&lab)), ("Date", date)]),
        )
        .await;
        ok(&answer, "TN-Validation-Passed");
    }
    // ... and the token's iat is still checked against that clock: stale, blocked here.
    let old = now() - 600;
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                tel(),
                identity_header(identity(&lab, ORIG, Attestation::A, old, None)),
                ("Date", "not a date".to_owned()),
            ],
        ),
    )
    .await;
    assert_eq!(answer.code, 403, "{answer:?}");
    assert_eq!(
        header(&answer, "Reason"),
        Some("SIP;cause=403;text=\"stale\"")
    );

    // A diverted call: a shaken and a div Identity (RFC 8946); the div one is ignored.
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                tel(),
                (
                    "Identity",
                    "eyJ.div.sig;info=<https://x.example/d.pem>;ppt=div".to_owned(),
                ),
                identity_header(good(&lab)),
            ],
        ),
    )
    .await;
    ok(&answer, "TN-Validation-Passed");

    // Several shaken ones: the first is judged; one that does not parse fails (438).
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                tel(),
                identity_header(good(&lab)),
                ("Identity", "a;ppt=shaken".to_owned()),
            ],
        ),
    )
    .await;
    ok(&answer, "TN-Validation-Passed");
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                tel(),
                ("Identity", "not a token".to_owned()),
                identity_header(good(&lab)),
            ],
        ),
    )
    .await;
    ok(&answer, "TN-Validation-Failed");
    assert!(
        header(&answer, "X-V").unwrap().ends_with("reason=438"),
        "{answer:?}"
    );

    // More than four Identity headers: the extra Rich Call Data ones are ignored.
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                tel(),
                ("Identity", "1;ppt=rcd, 2;ppt=rcd, 3;ppt=rcd".to_owned()),
                ("y", "4;ppt=rcd, 5;ppt=rcd".to_owned()),
                identity_header(good(&lab)),
            ],
        ),
    )
    .await;
    ok(&answer, "TN-Validation-Passed");

    // %-escaped numbers: in a PAI with user=phone, in the Request-URI, and in a From without
    // user=phone (labelled after the host: a user part is only rewritten with user=phone).
    let answer = ask(
        &sip,
        invite(
            "sip:%2B1%32125551213@example.net;user=phone",
            &[
                pai("<sip:%2B12155551212@example.com;user=phone>"),
                identity_header(good(&lab)),
            ],
        ),
    )
    .await;
    ok(&answer, "TN-Validation-Passed");
    assert_eq!(
        labelled(&answer, "P-Asserted-Identity").uri.user.as_deref(),
        Some("%2B12155551212;verstat=TN-Validation-Passed")
    );
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                ("From", "<sip:%2B12155551212@example.com>;tag=e1".to_owned()),
                identity_header(good(&lab)),
            ],
        ),
    )
    .await;
    assert_eq!(
        header(&answer, "From"),
        Some("<sip:%2B12155551212@example.com;verstat=TN-Validation-Passed>;tag=e1")
    );

    // A PAI whose number the REST rules refuse is skipped: From names the caller.
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                pai("<sip:+1215*5551212@example.com;user=phone>"),
                ("From", "<tel:+12155551212>;tag=e2".to_owned()),
                identity_header(good(&lab)),
            ],
        ),
    )
    .await;
    assert_eq!(verstat_of(&answer, "From"), "TN-Validation-Passed");
    assert!(header(&answer, "P-Asserted-Identity").is_none());
}

/// A spoofing caller who plants two shaken Identity headers or a bad Date meets the block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofer_cannot_dodge_the_block_with_a_400() {
    let lab = lab().await;
    let sip = handler(state(&lab, vec![]), "[block]\nspoofed = 607\n");
    for extra in [
        vec![("Identity", "b;ppt=shaken".to_owned())],
        vec![("Date", "yesterday".to_owned())],
        vec![(
            "Identity",
            "1;ppt=rcd, 2;ppt=rcd, 3;ppt=rcd, 4;ppt=rcd, 5;ppt=rcd".to_owned(),
        )],
    ] {
        let mut headers = vec![
            pai("<tel:+12155559999;verstat=TN-Validation-Passed>"),
            identity_header(good(&lab)),
        ];
        headers.extend(extra);
        let answer = ask(&sip, invite(RURI, &headers)).await;
        assert_eq!(
            (answer.code, answer.reason.as_str()),
            (607, "Unwanted"),
            "{answer:?}"
        );
    }
}

/// A planted verstat never passes: not in the URI, not among the header parameters (where an
/// addr-spec value puts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_verstat_is_removed_from_the_uri_and_the_header_parameters() {
    let lab = lab().await;
    let sip = handler(state(&lab, vec![]), "");
    for (value, expected) in [
        // addr-spec: `;verstat=` after the URI is a header parameter (RFC 3261 §20.10).
        (
            "tel:+12155559999;verstat=TN-Validation-Passed",
            "<tel:+12155559999;verstat=TN-Validation-Failed>",
        ),
        (
            "<tel:+12155559999>;VerStat=TN-Validation-Passed;x=1",
            "<tel:+12155559999;verstat=TN-Validation-Failed>;x=1",
        ),
        (
            "<sip:+12155559999;verstat=TN-Validation-Passed@example.com;user=phone;verstat=TN-Validation-Passed>;verstat=TN-Validation-Passed",
            "<sip:+12155559999;verstat=TN-Validation-Failed@example.com;user=phone>",
        ),
    ] {
        let answer = ask(&sip, invite(RURI, &[pai(value), identity_header(good(&lab))])).await;
        assert_eq!(header(&answer, "P-Asserted-Identity"), Some(expected), "{value}");
        assert_eq!(answer.headers.iter().filter(|h| h.name == "P-Asserted-Identity").count(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_list_and_the_rate_limit_apply() {
    let lab = lab().await;
    let client = Client::from_config(&ClientSection {
        name: "sbc".into(),
        ips: vec!["127.0.0.1/32".parse().unwrap()],
        certificate_sha256: None,
        customer: None,
        rate_limit_per_second: 1,
    })
    .unwrap();
    let by_certificate = Client::from_config(&ClientSection {
        name: "tls-only".into(),
        ips: vec![],
        certificate_sha256: Some("00".repeat(32)),
        customer: None,
        rate_limit_per_second: 0,
    })
    .unwrap();
    let sip = handler(state(&lab, vec![client, by_certificate]), "");
    assert!(sip.allowed(&peer("127.0.0.1:5060")));
    assert!(
        !sip.allowed(&peer("127.0.0.2:5060")),
        "a certificate never matches over SIP"
    );
    let call = || invite(RURI, &[pai("<tel:+12155551212>")]);
    assert_eq!(ask(&sip, call()).await.code, 302);
    let over = ask(&sip, call()).await;
    assert_eq!(
        (over.code, over.reason.as_str()),
        (503, "Service Unavailable")
    );
    assert_eq!(header(&over, "Retry-After"), Some("1"));
}

/// The regulator's list (signed by the test PA) with one white-listed firm.
fn marketing_store(now: u64) -> Arc<ListStore> {
    let toml = format!(
        r#"
version = 1
issued_at = {issued}
expires_at = {expires}
blacklisted_numbers = ["12155560300"]

[[firms]]
id = "91310000MA1FL1234X"
name = "Example \"Insurance\" Co."
status = "white-listed"
numbers = ["12155560001-12155560099"]
hourly_quota = 1000
reasons = []
"#,
        issued = now - 3600,
        expires = now + 86_400,
    );
    let document = ListDocument::parse(toml.as_bytes(), lists::Format::Toml).unwrap();
    let cert = RegulatorCert::from_pem(&read("pa/pa.pem")).unwrap();
    let key = SigningKey::from_pem(&read("pa/pa.key")).unwrap();
    let signed = lists::jws::sign(&document, &key, &cert).unwrap();
    let store = Arc::new(ListStore::new(cert));
    store.offer(signed.as_bytes(), now).unwrap();
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketing_calls_vetted_name_is_the_display_name_when_configured() {
    let lab = lab().await;
    let white = "12155560001";
    let name = "Example \"Insurance\" Co.";
    let call = |lab: &Lab| {
        invite(
            RURI,
            &[
                pai("\"Anything\" <tel:+12155560001>"),
                identity_header(identity(lab, white, Attestation::A, now(), Some(name))),
            ],
        )
    };
    let sip = handler(
        state(&lab, vec![]).with_lists(marketing_store(now())),
        "display_name = true\nverdict_header = \"X-Verdict\"",
    );
    let answer = ask(&sip, call(&lab)).await;
    let pai_out = labelled(&answer, "P-Asserted-Identity");
    assert_eq!(pai_out.display.as_deref(), Some(name));
    assert!(
        header(&answer, "P-Asserted-Identity").unwrap().starts_with(
            "\"Example \\\"Insurance\\\" Co.\" <tel:+12155560001;verstat=TN-Validation-Passed>"
        ),
        "{answer:?}"
    );
    assert!(header(&answer, "X-Verdict")
        .unwrap()
        .starts_with("flags=marketing;spc="));

    // Without the option the caller's display name stays.
    let sip = handler(state(&lab, vec![]).with_lists(marketing_store(now())), "");
    let answer = ask(&sip, call(&lab)).await;
    assert_eq!(
        labelled(&answer, "P-Asserted-Identity").display.as_deref(),
        Some("Anything")
    );

    // A blacklisted number, blocked with 608.
    let sip = handler(
        state(&lab, vec![]).with_lists(marketing_store(now())),
        "[block]\nblacklisted = 608\n",
    );
    let answer = ask(
        &sip,
        invite(
            RURI,
            &[
                pai("<tel:+12155560300>"),
                identity_header(identity(&lab, "12155560300", Attestation::A, now(), None)),
            ],
        ),
    )
    .await;
    assert_eq!(answer.code, 608, "{answer:?}");
    assert_eq!(
        header(&answer, "Reason"),
        Some("SIP;cause=608;text=\"blacklisted\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_udp_through_the_servers_wiring() {
    let lab = lab().await;
    let bound = verifier::server::SipBound::bind(&section(""))
        .await
        .unwrap();
    let udp = bound
        .local_addrs()
        .into_iter()
        .find(|(transport, _)| *transport == Transport::Udp)
        .unwrap()
        .1;
    let state = Arc::new(bound.attach(state(&lab, vec![])));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(bound.serve(state.clone(), async move {
        let _ = stopped.await;
    }));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let text = invite_text(
        RURI,
        &[pai("<tel:+12155551212>"), identity_header(good(&lab))],
    );
    socket.send_to(text.as_bytes(), udp).await.unwrap();
    let mut buffer = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), socket.recv_from(&mut buffer))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&buffer[..n]).into_owned();
    assert!(
        answer.starts_with("SIP/2.0 302 Moved Temporarily\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("P-Asserted-Identity: <tel:+12155551212;verstat=TN-Validation-Passed>\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains(&format!("Contact: <{RURI}>\r\n")),
        "{answer}"
    );
    assert!(
        answer.contains("Call-ID: call-1@example.com\r\n"),
        "{answer}"
    );
    // Without a PAI the From is labelled: the answer carries that one From, tag kept.
    let text = invite_text(RURI, &[("From", "<tel:+12155551212>;tag=f9".to_owned())])
        .replace("branch=z9hG4bK-", "branch=z9hG4bK-nopai-");
    socket.send_to(text.as_bytes(), udp).await.unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), socket.recv_from(&mut buffer))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&buffer[..n]).into_owned();
    assert_eq!(answer.matches("\r\nFrom:").count(), 1, "{answer}");
    assert!(
        answer.contains("\r\nFrom: <tel:+12155551212;verstat=No-TN-Validation>;tag=f9\r\n"),
        "{answer}"
    );
    let metrics = state.render_metrics();
    for line in [
        "shaken_verifier_sip_answers_total{kind=\"labelled\",code=\"302\"} 2",
        "shaken_verifier_sip_invites_total 2",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap();
}
