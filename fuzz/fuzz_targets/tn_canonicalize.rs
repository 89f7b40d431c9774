//! Telephone number canonicalization: never panics; output is `[#*]?DIGIT{1,15}` and a fixed
//! point when read again as canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passport::{NumberingPlan, Tn};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for plan in [None, Some(NumberingPlan::Nanp), Some(NumberingPlan::China)] {
        if let Ok(tn) = Tn::canonicalize(text, plan) {
            let digits = tn.as_str().trim_start_matches(['*', '#']);
            assert!(tn.as_str().len() - digits.len() <= 1);
            assert!(!digits.is_empty() && digits.len() <= 15);
            assert!(digits.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(
                Tn::canonicalize(tn.as_str(), None).expect("canonical re-reads"),
                tn
            );
        }
    }
});
