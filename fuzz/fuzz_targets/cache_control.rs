//! The repository `Cache-Control` reader: never panics; the result is stable, `no-store` or
//! `no-cache` as a directive gives `Some(0)`, a value naming none of `max-age`, `no-cache`,
//! `no-store` gives `None`, a returned age reads back from `max-age=N`, and
//! appending `, no-store` always gives `Some(0)`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verifier::fetch::max_age;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let age = max_age(value);
    assert_eq!(max_age(value), age);
    let lower = value.to_ascii_lowercase();
    if !["max-age", "no-cache", "no-store"]
        .iter()
        .any(|d| lower.contains(d))
    {
        assert_eq!(age, None);
    }
    // Directives are comma-separated, with optional spaces and tabs around them (RFC 9110).
    let directive = |name: &str| {
        value
            .split(',')
            .any(|d| d.trim_matches([' ', '\t']).eq_ignore_ascii_case(name))
    };
    if directive("no-store") || directive("no-cache") {
        assert_eq!(age, Some(0));
    }
    if let Some(n) = age {
        assert_eq!(max_age(&format!("max-age={n}")), Some(n));
    }
    assert_eq!(max_age(&format!("{value}, no-store")), Some(0));
});
