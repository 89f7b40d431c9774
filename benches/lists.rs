//! Regulator list lookups: the time must not grow with the list's size.
//!
//! Two lists are built in memory (not signed): 10^5 firms holding 10^6 entries (8 single
//! numbers and 2 ranges of 100 numbers each per firm), and 10^3 firms with the same shape
//! (10^4 entries). For each: a single number that is listed (`hit_exact`), a number inside a
//! range (`hit_range`), and a number listed nowhere (`miss`), drawn at random per iteration.
//! Compare `lists_1e5_firms/*` with `lists_1e3_firms/*`: the ratio should stay near 1
//! (hash map for single numbers, binary search over the ranges of the number's length).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::time::Duration;

use big_list::{list, RANGES_BASE, RANGES_PER_FIRM, SINGLES_BASE, SINGLES_PER_FIRM};
use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/big_list.rs"]
mod big_list;

/// Numbers listed nowhere start here.
const MISS_BASE: u64 = 8_614_000_000_000;

struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn benches(c: &mut Criterion) {
    for (firms, name) in [(100_000u64, "lists_1e5_firms"), (1_000, "lists_1e3_firms")] {
        let index = list(firms);
        let entries: usize = index.document().firms.iter().map(|f| f.numbers.len()).sum();
        assert_eq!(entries as u64, firms * (SINGLES_PER_FIRM + RANGES_PER_FIRM));
        let mut group = c.benchmark_group(name);
        group.measurement_time(Duration::from_secs(3));
        let mut random = Random(0x2545_f491_4f6c_dd1d);
        group.bench_function("hit_exact", |b| {
            b.iter(|| {
                let tn = (SINGLES_BASE + random.below(firms * SINGLES_PER_FIRM)).to_string();
                assert!(black_box(index.lookup(&tn)).firm.is_some());
            })
        });
        group.bench_function("hit_range", |b| {
            b.iter(|| {
                let range = random.below(firms * RANGES_PER_FIRM);
                let tn = (RANGES_BASE + range * 1000 + random.below(100)).to_string();
                assert!(black_box(index.lookup(&tn)).firm.is_some());
            })
        });
        group.bench_function("miss", |b| {
            b.iter(|| {
                let tn = (MISS_BASE + random.below(1_000_000_000)).to_string();
                assert!(black_box(index.lookup(&tn)).firm.is_none());
            })
        });
        group.finish();
    }
}

criterion_group!(lists_benches, benches);
criterion_main!(lists_benches);
