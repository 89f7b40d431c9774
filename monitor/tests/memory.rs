//! Memory with 10^6 active callers: the engine's own estimate (`memory_bytes`) and the
//! process's resident set growth, per active caller. Bar: under 1 KiB per active caller.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use monitor::detect::{DetectionConfig, Engine};
use monitor::event::{Event, Kind};

/// The resident set, bytes (Linux), if known.
fn rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn a_million_active_callers_fit_in_under_a_kibibyte_each() {
    const CALLERS: u64 = 1_000_000;
    const T0: u64 = 1_700_000_000;
    let config = DetectionConfig {
        home_country: Some("86".into()),
        ..DetectionConfig::default()
    };
    let mut engine = Engine::new(&config, Vec::new());
    let before = rss();
    let mut event = Event {
        kind: Kind::Verification,
        time: T0,
        from: String::new(),
        to: vec![String::new()],
        verstat: Some("TN-Validation-Passed".into()),
        reasoncode: None,
        attest: Some("A".into()),
        spc: Some("1001".into()),
        origid: None,
        x5u: None,
        flags: Vec::new(),
        ingress: Some("interconnect".into()),
        firm: None,
    };
    let mut calls = 0u64;
    // Over 50 minutes: every caller places one call, one in ten three, one in a hundred ten.
    for i in 0..CALLERS {
        let n = match i % 100 {
            0 => 10,
            k if k % 10 == 0 => 3,
            _ => 1,
        };
        for k in 0..n {
            event.time = T0 + (i * 3000 / CALLERS) + k;
            event.from = format!("86138{i:08}");
            event.to[0] = format!("86139{:08}", (i * 7 + k) % 100_000_000);
            event.origid = Some(format!("4437c7eb-8f7a-4b8d-9d0c-{:012}", calls));
            engine.observe(&event);
            calls += 1;
        }
    }
    let after = rss();
    let active = engine.active_callers();
    assert_eq!(active as u64, CALLERS);
    let per_caller = engine.memory_bytes() / active;
    let rss_per_caller = before.zip(after).map(|(b, a)| a.saturating_sub(b) / active);
    println!(
        "{active} active callers, {calls} calls: memory_bytes {} ({per_caller} B/caller), RSS growth {:?} B/caller",
        engine.memory_bytes(),
        rss_per_caller
    );
    assert!(per_caller < 1024, "{per_caller} bytes per caller");
    if let Some(rss) = rss_per_caller {
        assert!(rss < 1024, "RSS grew {rss} bytes per caller");
    }
    // Past the horizon, the callers are forgotten.
    event.time = T0 + 3000 + 3600 + 120;
    event.from = "8613700000000".into();
    engine.observe(&event);
    assert_eq!(engine.active_callers(), 1);
}
