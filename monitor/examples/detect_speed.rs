//! Measures, on one core, how fast a synthetic mix of about 10^6 distinct callers is parsed
//! (the service's throughput floor: the lines only parsed into the event type) and parsed then
//! fed to every detector, and the engine's memory per active caller.
//!
//! `cargo run --release -p monitor --example detect_speed [SUBSCRIBERS]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use monitor::detect::Engine;
use monitor::event::parse_line;
use monitor::mix::{Mix, MixConfig};

fn main() {
    let subscribers = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let started = Instant::now();
    let mix = Mix::generate(&MixConfig {
        subscribers,
        duration: 3600,
        ..MixConfig::default()
    });
    let lines: Vec<String> = mix.lines().collect();
    println!(
        "mix: {} lines, {} distinct callers, drawn and formatted in {:.2?}",
        lines.len(),
        mix.callers(),
        started.elapsed()
    );
    let started = Instant::now();
    let mut parsed = 0usize;
    for line in &lines {
        parsed += usize::from(parse_line(line).is_ok());
    }
    let parse = started.elapsed();
    assert_eq!(parsed, lines.len());
    let mut engine = Engine::new(&mix.detection_config(), mix.allow_list().iter().cloned());
    engine.set_list_index(Some(mix.list_index()));
    let started = Instant::now();
    let mut crossings = 0usize;
    for line in &lines {
        crossings += engine.observe(&parse_line(line).unwrap()).crossings.len();
    }
    let both = started.elapsed();
    let rate = |d: std::time::Duration| lines.len() as f64 / d.as_secs_f64();
    println!("parse only:           {:>10.0} events/s", rate(parse));
    println!(
        "parse + all detectors: {:>10.0} events/s ({crossings} crossings)",
        rate(both)
    );
    println!(
        "engine: {} active callers, memory_bytes {} ({} B/caller); top callers {:?}",
        engine.active_callers(),
        engine.memory_bytes(),
        engine.memory_bytes() / engine.active_callers().max(1),
        engine.top_callers(3)
    );
    let started = Instant::now();
    let top = engine.top_callers(20);
    println!(
        "top_callers(20): {} in {:.2?}",
        top.len(),
        started.elapsed()
    );
}
