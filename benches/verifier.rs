//! The verifier's full verification of a request with a warm certificate cache, against the
//! raw ECDSA P-256 verification of the same signing input, in one group and one run.
//!
//! - `verifier/raw`: aws-lc-rs verifying the token's signature (key parsed once);
//! - `verifier/full`: `Verifier::verify`: Identity header, token, SHAKEN form, freshness,
//!   cache hit, signature, numbers, verdict;
//! - `verifier/marketing`: the same for a marketing call (a token carrying `rcd` and `crn`,
//!   from a white-listed firm's number), then what the service adds: the lookup of the calling
//!   number in a regulator list of 10^5 firms (10^6 entries, ranges included), the opt-out
//!   check, `verifier::marketing::assess`, the verdict's marketing members and the unsubscribe
//!   link (an HMAC). Issue 16 asks for at least 0.9 of `full`'s rate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lists::ListIndex;

#[path = "support/big_list.rs"]
mod big_list;
use optout::{LinkIssuer, LinkKey, OptOutMirror};
use passport::{Attestation, Claims, Dest, Party, SigningKey, Tn, TokenSigner};
use pki::TrustAnchors;
use verifier::cache::{CacheConfig, Loaded};
use verifier::crl::CrlStore;
use verifier::fetch::{FetchPolicy, Fetcher};
use verifier::marketing::{assess, CarriedRcd};
use verifier::verdict::{MarketingNote, Verdict, Verstat};
use verifier::verify::{Call, Verifier};

const NOW: u64 = 1_800_000_000;
const X5U: &str = "https://cr.shaken.test/sp/1001/chain.pem";

fn read(relative: &str) -> Vec<u8> {
    std::fs::read(certs_test::path(relative)).unwrap()
}

/// What the service adds to a verdict ([`verifier::service`]'s `assess_marketing`): the list
/// lookup, the opt-outs, the assessment, the marketing members and the link.
fn add_marketing(
    verdict: &mut Verdict,
    index: &ListIndex,
    optouts: &OptOutMirror,
    links: &LinkIssuer,
    from: &str,
    to: &[&str],
    now: u64,
) {
    let rcd = verdict.rcd.clone();
    let carried = rcd.as_ref().map(|rcd| CarriedRcd {
        nam: &rcd.nam,
        crn: rcd.crn.as_deref(),
    });
    let assessment = assess(
        Some(index.lookup(from)),
        carried,
        verdict.verstat == Verstat::Passed,
        to,
        |subscriber, firm| optouts.is_opted_out(subscriber, firm),
    );
    verdict.add_flags(&assessment.flags);
    if let Some(shown) = assessment.shown {
        let unsubscribe = to
            .first()
            .and_then(|s| links.link(s, &shown.firm, &shown.nam, now).ok());
        verdict.add_marketing(MarketingNote {
            nam: shown.nam,
            crn: shown.crn,
            firm: shown.firm,
            unsubscribe,
        });
    }
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let anchors = TrustAnchors::from_pem(&read("ca/root.pem")).unwrap();
    let validated = pki::path::validate(
        &passport::cert::chain_from_pem(&read("sp/1001/chain.pem")).unwrap(),
        &anchors,
        NOW,
    )
    .unwrap();
    let verifier = Verifier::new(
        Fetcher::new(FetchPolicy::default(), &[]).unwrap(),
        CacheConfig::default(),
        anchors,
        CrlStore::default(),
        verifier::verify::Windows::default(),
    );
    // Warm the cache with the validated chain, proven (a signature verified with it).
    let generation = verifier.cache().generation();
    runtime
        .block_on(verifier.cache().get(X5U, NOW, generation, || async {
            Ok(Loaded {
                valid_until: validated.not_after,
                chain: validated,
                max_age: Some(86_400),
            })
        }))
        .unwrap();
    verifier.cache().confirm(X5U, generation);

    let signer = TokenSigner::new(SigningKey::from_pem(&read("sp/1001/key.pem")).unwrap(), X5U);
    let claims = Claims::shaken(
        NOW,
        Party::Tn("12155551212".into()),
        Dest::tns(vec!["12125551213".into()]).unwrap(),
        Attestation::A,
        "de305d54-75b4-431b-adb2-eb6b9e546014".parse().unwrap(),
    );
    let identity = signer.identity_header(&claims).unwrap();
    let token = identity.split(';').next().unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature = passport::base64url::decode_part(signature, passport::Part::Signature).unwrap();
    let raw_key = ParsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        signer.verifying_key().unwrap().sec1_bytes(),
    )
    .unwrap();
    let (from, to) = (
        Tn::canonicalize("12155551212", None).unwrap(),
        [Tn::canonicalize("12125551213", None).unwrap()],
    );
    let call = Call {
        from: &from,
        to: &to,
        time: NOW + 1,
        identity: Some(&identity),
    };
    assert_eq!(
        runtime.block_on(verifier.verify(call, NOW + 1)).verstat,
        Verstat::Passed
    );

    // A marketing call: firm 54321's third number, with its vetted name and reason.
    // 10^5 white-listed firms (10^6 entries).
    let index = big_list::list(100_000);
    let firm_number =
        (big_list::SINGLES_BASE + 54_321 * big_list::SINGLES_PER_FIRM + 2).to_string();
    let marketing_claims = Claims::shaken(
        NOW,
        Party::Tn(firm_number.clone()),
        Dest::tns(vec!["12125551213".into()]).unwrap(),
        Attestation::A,
        "de305d54-75b4-431b-adb2-eb6b9e546014".parse().unwrap(),
    )
    .with_rcd("Firm 54321", Some("Policy renewal"))
    .unwrap();
    let marketing_identity = signer.identity_header(&marketing_claims).unwrap();
    let firm_tn = Tn::canonicalize(&firm_number, None).unwrap();
    let marketing_call = Call {
        from: &firm_tn,
        to: &to,
        time: NOW + 1,
        identity: Some(&marketing_identity),
    };
    let optouts = OptOutMirror::new();
    let links = LinkIssuer::new(
        "https://optout.shaken.test",
        LinkKey::from_bytes(&[7; 32]).unwrap(),
        86_400,
    );
    let to_numbers = ["12125551213"];
    let verify_marketing = || {
        let mut verdict = runtime.block_on(verifier.verify_with_rcd(marketing_call, &[], NOW + 1));
        add_marketing(
            &mut verdict,
            &index,
            &optouts,
            &links,
            firm_tn.as_str(),
            &to_numbers,
            NOW + 1,
        );
        verdict
    };
    let shown = verify_marketing();
    assert_eq!(shown.verstat, Verstat::Passed);
    assert_eq!(
        shown.marketing.as_ref().map(|m| m.nam.as_str()),
        Some("Firm 54321")
    );
    assert!(shown.marketing.as_ref().unwrap().unsubscribe.is_some());

    let mut group = c.benchmark_group("verifier");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("raw", |b| {
        b.iter(|| {
            raw_key
                .verify_sig(black_box(input.as_bytes()), black_box(&signature))
                .unwrap()
        })
    });
    group.bench_function("full", |b| {
        b.iter(|| runtime.block_on(verifier.verify(black_box(call), black_box(NOW + 1))))
    });
    group.bench_function("marketing", |b| b.iter(|| black_box(verify_marketing())));
    group.finish();
}

criterion_group!(verifier_benches, benches);
criterion_main!(verifier_benches);
