//! Registry lookup cost with 10 million registered numbers, against the raw ECDSA signing
//! operation measured in the same run.
//!
//! - `registry/db_lookup`: a lookup that misses the cache and reads SQLite (random numbers);
//! - `registry/cached_lookup`: a lookup answered by the moka cache;
//! - `registry/raw_sign`: aws-lc-rs ECDSA P-256 signing, for scale.
//!
//! The database is built once under `target/bench-data/` (about a minute) and reused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use signer::registry::{CachedRegistry, Registry};

const NUMBERS: u64 = 10_000_000;

fn database() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("registry-10m.sqlite");
    let done = dir.join("registry-10m.done");
    if !done.exists() {
        let _ = std::fs::remove_file(&path);
        drop(Registry::open(&path).unwrap());
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;")
            .unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut customer = tx
                .prepare("INSERT INTO customers VALUES (?1, ?1, 1, NULL, 0)")
                .unwrap();
            for c in 0..100_000u64 {
                customer.execute([format!("c{c}")]).unwrap();
            }
            let mut number = tx
                .prepare("INSERT INTO numbers VALUES (?1, ?2, 'active', 0)")
                .unwrap();
            for n in 0..NUMBERS {
                number
                    .execute([format!("86138{n:08}"), format!("c{}", n % 100_000)])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        std::fs::write(&done, "").unwrap();
    }
    path
}

fn benches(c: &mut Criterion) {
    let path = database();
    let registry = Registry::open(&path).unwrap();
    assert_eq!(registry.counts().unwrap().0, NUMBERS);
    let mut group = c.benchmark_group("registry");
    group.measurement_time(Duration::from_secs(5));

    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    group.bench_function("db_lookup", |b| {
        b.iter(|| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let tn = format!("86138{:08}", state % NUMBERS);
            black_box(registry.lookup(&tn).unwrap().unwrap());
        })
    });

    let cached = CachedRegistry::new(
        Registry::open(&path).unwrap(),
        100_000,
        Duration::from_secs(3600),
    );
    let hot: Vec<String> = (0..10_000u64)
        .map(|n| format!("86138{:08}", n * 997 % NUMBERS))
        .collect();
    for tn in &hot {
        cached.lookup(tn).unwrap();
    }
    let mut i = 0usize;
    group.bench_function("cached_lookup", |b| {
        b.iter(|| {
            i = (i + 1) % hot.len();
            black_box(cached.lookup(&hot[i]).unwrap().unwrap());
        })
    });

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = SystemRandom::new();
    let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document.as_ref()).unwrap();
    group.bench_function("raw_sign", |b| {
        b.iter(|| pair.sign(&rng, black_box(&[7u8; 400])).unwrap())
    });
    group.finish();
}

criterion_group!(registry_benches, benches);
criterion_main!(registry_benches);
