//! The monitor's event journal reader (crash recovery reads whatever a crash left on disk):
//! never panics, accepts only a chain of numbered frames, and every record line it yields is
//! either refused or decodes into marks the detectors know and a line that re-encodes to it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let frames = monitor::journal::frames_in(data);
    for pair in frames.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    for frame in &frames {
        for line in frame.payload.lines() {
            if let Some(record) = monitor::indexer::decode_record(line) {
                let mut again = Vec::new();
                monitor::indexer::encode_record(&mut again, &record.marks, record.late, record.raw);
                let again = String::from_utf8(again).expect("utf-8 in, utf-8 out");
                let decoded = monitor::indexer::decode_record(again.trim_end_matches('\n'))
                    .expect("an encoded record decodes");
                assert_eq!(decoded, record);
            }
        }
    }
});
