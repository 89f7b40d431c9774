//! PASSporT speed against the raw ECDSA P-256 operation, measured in the same run.
//!
//! - group `verify`: `raw` is aws-lc-rs verifying the signature over a SHAKEN token's signing
//!   input with a key parsed once; `full` is what a verifier does per call with a cached key:
//!   parse the Identity header, decode and check the token, check freshness, the signature and
//!   the numbers.
//! - group `sign`: `raw` is aws-lc-rs signing the same signing input; `full` is
//!   `TokenSigner::identity_header` building the claims JSON, encoding, signing and formatting;
//!   `precomputed` is the same finished from a precomputed nonce (what a request pays when the
//!   signer's nonce pool has one), `nonce` the cost of one nonce made in a batch of 64.
//!
//! - `full-marketing` in both groups: the same for a marketing call's token, Rich Call Data
//!   inside the `shaken` PASSporT (`rcd` with `nam`, and `crn`), measured next to `full` in the
//!   same run (issue 16 asks for at least 0.9 of the plain call's rate); the verifier's
//!   version also takes the verified name and reason out, as the verifier does.
//!
//! `scripts/bench-ratios` prints full/raw throughput ratios from the results, and
//! `full-marketing`/`full`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ParsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use passport::identity::IdentityHeader;
use passport::verify::{verify_shaken, VerifyOptions};
use passport::{Attestation, Claims, Dest, Party, SigningKey, Tn, TokenSigner};

const X5U: &str = "https://cr.example.net/shaken/709J/chain.pem";
const IAT: u64 = 1_700_000_000;

fn claims() -> Claims {
    Claims::shaken(
        IAT,
        Party::Tn("12155551212".into()),
        Dest::tns(vec!["12125551213".into()]).unwrap(),
        Attestation::A,
        "de305d54-75b4-431b-adb2-eb6b9e546014".parse().unwrap(),
    )
}

fn benches(c: &mut Criterion) {
    let key = SigningKey::generate().unwrap();
    let pkcs8 = key.to_pkcs8_pem().unwrap();
    let signer = TokenSigner::new(SigningKey::from_pem(pkcs8.as_bytes()).unwrap(), X5U);
    let verifying = signer.verifying_key().unwrap();
    let claims = claims();
    let identity = signer.identity_header(&claims).unwrap();
    let token = identity.split(';').next().unwrap();
    let (signing_input, signature_b64) = token.rsplit_once('.').unwrap();
    let signature =
        passport::base64url::decode_part(signature_b64, passport::Part::Signature).unwrap();

    // The raw operations, on aws-lc-rs directly, with keys parsed once.
    let der = p256_pkcs8_der(&pkcs8);
    let raw_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
    let raw_public =
        ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, raw_pair.public_key().as_ref()).unwrap();
    let rng = SystemRandom::new();
    let from = Tn::canonicalize("12155551212", None).unwrap();
    let to = [Tn::canonicalize("12125551213", None).unwrap()];
    let options = VerifyOptions::at(IAT + 1);
    let marketing = claims
        .clone()
        .with_rcd("Example Marketing Co.", Some("Product offer"))
        .unwrap();
    let marketing_identity = signer.identity_header(&marketing).unwrap();

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw", |b| {
        b.iter(|| {
            raw_public
                .verify_sig(black_box(signing_input.as_bytes()), black_box(&signature))
                .unwrap()
        })
    });
    group.bench_function("full", |b| {
        b.iter(|| {
            let parsed = IdentityHeader::parse(black_box(&identity)).unwrap();
            verify_shaken(&parsed, &verifying, &options, Some(&from), &to).unwrap();
        })
    });
    group.bench_function("full-marketing", |b| {
        b.iter(|| {
            let parsed = IdentityHeader::parse(black_box(&marketing_identity)).unwrap();
            verify_shaken(&parsed, &verifying, &options, Some(&from), &to).unwrap();
            let claims = parsed.passport().claims();
            black_box((
                claims.rcd_name().map(str::to_owned),
                claims.call_reason().map(str::to_owned),
            ))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("sign");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw", |b| {
        b.iter(|| {
            raw_pair
                .sign(&rng, black_box(signing_input.as_bytes()))
                .unwrap()
        })
    });
    group.bench_function("full", |b| {
        b.iter(|| signer.identity_header(black_box(&claims)).unwrap())
    });
    group.bench_function("full-marketing", |b| {
        b.iter(|| signer.identity_header(black_box(&marketing)).unwrap())
    });
    // What a request pays when the signer's nonce pool has a nonce ready.
    group.bench_function("precomputed", |b| {
        b.iter_batched(
            || passport::nonce::precompute(1).unwrap().pop().unwrap(),
            |nonce| {
                signer
                    .identity_header_with(black_box(&claims), Some(nonce))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    // What the refill thread pays per nonce, made in batches of 64 as it makes them.
    group.throughput(Throughput::Elements(64));
    group.bench_function("nonce", |b| {
        b.iter(|| passport::nonce::precompute(64).unwrap())
    });
    group.finish();
}

fn p256_pkcs8_der(pem: &str) -> Vec<u8> {
    passport::pem::parse(pem.as_bytes(), 1)
        .unwrap()
        .remove(0)
        .der
}

criterion_group!(passport_benches, benches);
criterion_main!(passport_benches);
