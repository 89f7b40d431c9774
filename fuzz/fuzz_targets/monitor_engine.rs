//! The monitor's detectors over untrusted events: any body's accepted lines, fed to an engine
//! with every detector on (out-of-area included), in the order given, never panic (no
//! overflow in window arithmetic, whatever the times), every crossing is above its threshold
//! and names a window, and the engine's views stay answerable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::alerts::AlertBook;
use monitor::detect::{DetectionConfig, Engine};
use monitor::event::parse_body;

fuzz_target!(|data: &[u8]| {
    let config = DetectionConfig {
        home_country: Some("86".into()),
        international_gateway_spcs: vec!["2001".into()],
        ..DetectionConfig::default()
    };
    let mut engine = Engine::new(&config, ["8610000000".to_owned()]);
    let mut book = AlertBook::new(3600, 1);
    for (_, result) in parse_body(data) {
        let Ok(parsed) = result else { continue };
        let observation = engine.observe(&parsed.event);
        for crossing in observation.crossings {
            assert!(crossing.count > crossing.threshold, "{crossing:?}");
            assert!(crossing.window > 0);
            let _ = book.offer(crossing);
        }
        let _ = book.close_quiet(engine.newest_time());
        let _ = engine.caller_counts(&parsed.event.from);
        if let Some(spc) = &parsed.event.spc {
            let _ = engine.spc_counts(spc);
        }
    }
    let _ = engine.top_callers(20);
    let _ = engine.memory_bytes();
});
