//! The registry CSV import: never panics, and a refused file leaves the registry unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signer::registry::import::{import, ImportMode, ImportOptions};
use signer::registry::Registry;

fuzz_target!(|data: &[u8]| {
    let Ok(mut registry) = Registry::open(std::path::Path::new(":memory:")) else {
        return;
    };
    let mut progress = |_| {};
    let result = import(
        &mut registry,
        data,
        ImportOptions {
            mode: ImportMode::Merge,
            plan: Some(passport::NumberingPlan::Nanp),
            secret: Some(b"fuzzing secret"),
            actor: "fuzz",
            now: 1,
            progress: &mut progress,
        },
    );
    let counts = registry.counts().expect("counts");
    match result {
        Ok(summary) => assert!(counts.0 + counts.1 <= (summary.numbers + summary.ranges) as u64),
        Err(_) => assert_eq!(counts, (0, 0)),
    }
});
