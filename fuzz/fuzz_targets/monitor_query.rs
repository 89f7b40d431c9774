//! The monitor's query readers: `GET /v1/alerts`' query never panics and, when accepted,
//! gives a limit between 1 and 10,000; a percent-encoded value decodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::api::{alert_query, decode_query_value, DEFAULT_ALERT_LIMIT};
use monitor::traceback::encode_query_value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(query) = alert_query(Some(text)) {
        assert!((1..=DEFAULT_ALERT_LIMIT).contains(&query.limit));
    }
    let _ = decode_query_value(text);
    assert_eq!(
        decode_query_value(&encode_query_value(text)).as_deref(),
        Some(text)
    );
});
