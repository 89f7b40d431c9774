//! The trace journal's segment reader (crash recovery reads whatever a crash left on disk):
//! never panics, and what it accepts are whole records that survive a JSON round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(records) = signer::trace::journal_segment_records(data) {
        for record in records {
            let line = serde_json::to_string(&record).expect("a record serializes");
            let again: signer::trace::TraceRecord =
                serde_json::from_str(&line).expect("and parses back");
            assert_eq!(again, record);
        }
    }
});
