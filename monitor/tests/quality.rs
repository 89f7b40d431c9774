//! Detection quality over synthetic mixes with ground truth (`monitor::mix`): every line is
//! parsed as the service parses it, fed to the engine in emission order (jittered within the
//! lateness bound), and the crossings offered to the alert book. Precision and recall are over
//! (subject, detector); the latency is the first alert's `time` minus the event time at which
//! the behaviour crossed its threshold. Bar: precision and recall at least 0.99, and at least
//! 99 % of true alerts within 60 s.
//!
//! Seed 1 was used while writing the detectors; the acceptance mix (seed 0x5ca1ab1e, other
//! population and jitter) was drawn once, after, and never tuned against.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use monitor::alerts::{AlertBook, AlertChange};
use monitor::detect::{DetectorId, Engine, Subject};
use monitor::event::parse_line;
use monitor::mix::{Mix, MixConfig};

struct Figures {
    first: BTreeMap<(Subject, DetectorId), u64>,
    precision: f64,
    recall: f64,
    within_60s: f64,
    max_latency: u64,
    alerts: usize,
    truth: usize,
    events: usize,
}

fn replay(config: &MixConfig) -> Figures {
    let mix = Mix::generate(config);
    let mut engine = Engine::new(&mix.detection_config(), mix.allow_list().iter().cloned());
    engine.set_list_index(Some(mix.list_index()));
    let mut book = AlertBook::new(3600, 1);
    let mut first: BTreeMap<(Subject, DetectorId), u64> = BTreeMap::new();
    let mut note = |alert: &monitor::alerts::Alert| {
        let slot = first
            .entry((alert.subject.clone(), alert.detector))
            .or_insert(alert.time);
        *slot = (*slot).min(alert.time);
    };
    let mut late = 0;
    for line in mix.lines() {
        let event = parse_line(&line).expect("the mix writes valid lines");
        let observation = engine.observe(&event);
        late += usize::from(observation.late);
        for crossing in observation.crossings {
            match book.offer(crossing) {
                Some(AlertChange::Opened(a) | AlertChange::Extended(a)) => note(&a),
                Some(AlertChange::Reopened { opened, .. }) => note(&opened),
                None => {}
            }
        }
        book.close_quiet(engine.newest_time());
    }
    assert_eq!(late, 0, "the jitter stays within the lateness bound");
    let truth = mix.truth();
    let hits = first.keys().filter(|k| truth.contains_key(*k)).count();
    let false_alerts: Vec<_> = first.keys().filter(|k| !truth.contains_key(*k)).collect();
    let missed: Vec<_> = truth.keys().filter(|k| !first.contains_key(*k)).collect();
    if !false_alerts.is_empty() || !missed.is_empty() {
        eprintln!("false alerts: {false_alerts:?}\nmissed: {missed:?}");
    }
    let latencies: Vec<u64> = truth
        .iter()
        .filter_map(|(k, t)| first.get(k).map(|a| a.saturating_sub(*t)))
        .collect();
    let early: Vec<_> = truth
        .iter()
        .filter(|(k, t)| first.get(*k).is_some_and(|a| a < *t))
        .collect();
    assert!(early.is_empty(), "alerts before the truth: {early:?}");
    Figures {
        first: first.clone(),
        precision: hits as f64 / first.len().max(1) as f64,
        recall: hits as f64 / truth.len().max(1) as f64,
        within_60s: latencies.iter().filter(|&&l| l <= 60).count() as f64
            / latencies.len().max(1) as f64,
        max_latency: latencies.iter().copied().max().unwrap_or(0),
        alerts: first.len(),
        truth: truth.len(),
        events: mix.len(),
    }
}

fn check(name: &str, config: &MixConfig) {
    let f = replay(config);
    println!(
        "{name}: {} events, {} true (subject, detector), {} alerted: precision {:.4}, recall {:.4}, {:.2}% within 60 s (max latency {} s)",
        f.events, f.truth, f.alerts, f.precision, f.recall, f.within_60s * 100.0, f.max_latency
    );
    assert!(
        f.truth >= 8 * config.offenders as usize - 2,
        "offenders planted"
    );
    assert!(f.precision >= 0.99, "{name}: precision {}", f.precision);
    assert!(f.recall >= 0.99, "{name}: recall {}", f.recall);
    assert!(f.within_60s >= 0.99, "{name}: {} within 60 s", f.within_60s);
}

#[test]
fn development_mix() {
    check(
        "development (seed 1)",
        &MixConfig {
            seed: 1,
            subscribers: 20_000,
            offenders: 10,
            busy: 4,
            allowed: 3,
            ..MixConfig::default()
        },
    );
}

#[test]
fn acceptance_mix() {
    check(
        "acceptance (seed 0x5ca1ab1e)",
        &MixConfig {
            seed: 0x5ca1_ab1e,
            start: 1_750_000_000,
            duration: 4 * 3600,
            subscribers: 30_000,
            offenders: 12,
            busy: 6,
            allowed: 4,
            jitter: 60,
        },
    );
}

#[test]
fn arrival_order_within_the_bound_does_not_change_the_alerts() {
    // The same seed draws the same events; the jitter changes only their order.
    let config = MixConfig {
        seed: 7,
        subscribers: 5_000,
        offenders: 4,
        busy: 2,
        duration: 2 * 3600,
        jitter: 0,
        ..MixConfig::default()
    };
    let in_order = replay(&config);
    let shuffled = replay(&MixConfig {
        jitter: 60,
        ..config.clone()
    });
    assert!(!in_order.first.is_empty());
    assert_eq!(in_order.first, shuffled.first);
}
