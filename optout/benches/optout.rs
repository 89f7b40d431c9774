//! What one-click unsubscribe adds to a call:
//!
//! - `optout/link_mint`: a verifier mints a link (HMAC-SHA-256 and base64url);
//! - `optout/token_parse`: the service checks a link's token;
//! - `optout/mirror_hit`, `optout/mirror_miss`: a signer or verifier asks its local copy
//!   holding 1,000,000 opt-outs (a hash lookup under a read lock).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use optout::{Change, LinkIssuer, LinkKey, OptOutMirror, Token};

const ENTRIES: u64 = 1_000_000;

fn benches(c: &mut Criterion) {
    let issuer = LinkIssuer::new(
        "https://optout.example.net",
        LinkKey::from_bytes(&[9; 32]).unwrap(),
        3600,
    );
    let key = LinkKey::from_bytes(&[9; 32]).unwrap();
    let mut group = c.benchmark_group("optout");
    group.bench_function("link_mint", |b| {
        b.iter(|| {
            issuer
                .link(
                    black_box("8613800138000"),
                    "91310000MA1FL1234X",
                    "Sunrise Insurance",
                    1_800_000_000,
                )
                .unwrap()
        })
    });
    let link = issuer
        .link(
            "8613800138000",
            "91310000MA1FL1234X",
            "Sunrise Insurance",
            1_800_000_000,
        )
        .unwrap();
    let token = link.rsplit('/').next().unwrap().to_owned();
    group.bench_function("token_parse", |b| {
        b.iter(|| Token::parse(black_box(&token), &key, 1_800_000_001).unwrap())
    });

    let mirror = OptOutMirror::new();
    let changes: Vec<Change> = (1..=ENTRIES)
        .map(|seq| Change {
            seq,
            subscriber: format!("86138{:08}", seq),
            firm: format!("F{}", seq % 1000),
            opted_out: true,
            at: 0,
        })
        .collect();
    mirror.apply(&changes, ENTRIES);
    drop(changes);
    assert_eq!(mirror.status().entries, ENTRIES);
    group.bench_function("mirror_hit", |b| {
        b.iter(|| assert!(mirror.is_opted_out(black_box("8613800500000"), black_box("F0"))))
    });
    group.bench_function("mirror_miss", |b| {
        b.iter(|| assert!(!mirror.is_opted_out(black_box("8613800500000"), black_box("F1"))))
    });
    group.finish();
}

criterion_group!(optout_benches, benches);
criterion_main!(optout_benches);
