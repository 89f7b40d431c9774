//! The monitor's event line parser: any body parses without panicking, every accepted event
//! satisfies the rules (E.164 digits, at least one callee, a verstat on verifications), and
//! the line numbers are increasing and within the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::event::{check_number, parse_body, Kind};

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|&b| b == b'\n').count();
    let mut previous = 0;
    for (number, result) in parse_body(data) {
        assert!(number > previous && number <= lines);
        previous = number;
        if let Ok(parsed) = result {
            let event = parsed.event;
            assert!(check_number(&event.from).is_ok());
            assert!(!event.to.is_empty());
            assert!(event.to.iter().all(|tn| check_number(tn).is_ok()));
            if event.kind == Kind::Verification {
                assert!(event.verstat.is_some());
            }
            assert_eq!(monitor::event::parse_line(parsed.raw).ok(), Some(event));
        }
    }
});
