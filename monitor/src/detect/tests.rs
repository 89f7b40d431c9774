//! The detectors, one rule at a time, at their thresholds (the count that must not alert and
//! the one that must), in time order and shuffled.

use std::collections::BTreeMap;

use super::*;
use crate::event::{Event, Kind};

/// A verified call (A attestation, no SPC), `origid` from its time and callee; also used by
/// [`crate::shards`]' tests.
pub(crate) fn call(time: u64, from: &str, to: &str) -> Event {
    Event {
        kind: Kind::Verification,
        time,
        from: from.into(),
        to: vec![to.into()],
        verstat: Some("TN-Validation-Passed".into()),
        reasoncode: None,
        attest: Some("A".into()),
        spc: None,
        origid: Some(format!("o-{time}-{to}")),
        x5u: None,
        flags: Vec::new(),
        ingress: None,
        firm: None,
    }
}

const T0: u64 = 1_700_000_000;
const CALLER: &str = "8613800000001";

/// Feeds events, returning the earliest crossing time per (subject, detector).
fn run(engine: &mut Engine, events: &[Event]) -> BTreeMap<(Subject, DetectorId), u64> {
    let mut first = BTreeMap::new();
    for event in events {
        let observation = engine.observe(event);
        assert!(!observation.late, "{event:?}");
        for c in observation.crossings {
            let slot = first.entry((c.subject, c.detector)).or_insert(c.time);
            *slot = (*slot).min(c.time);
        }
    }
    first
}

fn engine() -> Engine {
    Engine::new(&DetectionConfig::default(), Vec::new())
}

/// `n` calls a minute apart (so the minute rule stays quiet), to 30 numbers in turn (so
/// neither fan-out nor repeat fire).
fn spaced(n: u64, from: &str) -> Vec<Event> {
    (0..n)
        .map(|i| call(T0 + i * 59, from, &format!("86139{:08}", i % 30)))
        .collect()
}

#[test]
fn high_frequency_fires_at_the_61st_call_in_an_hour() {
    let events = spaced(61, CALLER);
    let mut e = engine();
    let crossed = run(&mut e, events.get(..60).unwrap());
    assert!(!crossed.contains_key(&(Subject::Caller(CALLER.into()), DetectorId::HighFrequency)));
    let crossing = e
        .observe(events.get(60).unwrap())
        .crossings
        .into_iter()
        .find(|c| c.detector == DetectorId::HighFrequency)
        .unwrap();
    assert_eq!(crossing.time, T0 + 60 * 59);
    assert_eq!(
        (crossing.count, crossing.threshold, crossing.window),
        (61, 60, 3600)
    );
    assert_eq!(
        crossing.text,
        "8613800000001 placed 61 calls in 60 min (threshold 60)"
    );
    assert_eq!(crossing.samples.len(), 5);
    assert_eq!(
        crossing.samples.last(),
        events.get(60).unwrap().origid.as_ref()
    );
    // 61 calls spread just over an hour do not alert.
    let mut e = engine();
    let slow: Vec<Event> = (0..61)
        .map(|i| call(T0 + i * 61, CALLER, &format!("86139{:08}", i % 30)))
        .collect();
    assert!(run(&mut e, &slow).is_empty());
}

#[test]
fn high_frequency_minute_rule_fires_at_the_11th_call_in_60_seconds() {
    let mut e = engine();
    let burst: Vec<Event> = (0..11)
        .map(|i| call(T0 + i * 5, CALLER, &format!("86139{:08}", i)))
        .collect();
    assert!(run(&mut e, burst.get(..10).unwrap()).is_empty());
    let c = e.observe(burst.get(10).unwrap()).crossings;
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].window, c[0].count, c[0].time), (60, 11, T0 + 50));
    assert!(c[0].text.contains("11 calls in 60 s"), "{}", c[0].text);
}

#[test]
fn fan_out_counts_distinct_callees_and_repeat_counts_one() {
    let mut e = engine();
    // 41 distinct numbers, 90 s apart (40 minutes: no high-frequency).
    let events: Vec<Event> = (0..41)
        .map(|i| call(T0 + i * 60, CALLER, &format!("86139{:08}", i)))
        .collect();
    let crossed = run(&mut e, &events);
    assert_eq!(
        crossed.get(&(Subject::Caller(CALLER.into()), DetectorId::FanOut)),
        Some(&(T0 + 40 * 60))
    );
    assert_eq!(crossed.len(), 1, "{crossed:?}");
    // The same callee 6 times: repeat, not fan-out.
    let mut e = engine();
    let events: Vec<Event> = (0..6)
        .map(|i| call(T0 + i * 300, CALLER, "8613900000000"))
        .collect();
    let crossed = run(&mut e, &events);
    assert_eq!(
        crossed.keys().cloned().collect::<Vec<_>>(),
        vec![(Subject::Caller(CALLER.into()), DetectorId::Repeat)]
    );
    let counts = e.caller_counts(CALLER);
    let repeat = counts
        .windows
        .iter()
        .find(|w| w.detector == DetectorId::Repeat)
        .unwrap();
    assert_eq!((repeat.count, repeat.threshold), (6, 5));
}

#[test]
fn allow_listed_numbers_skip_high_frequency_and_fan_out_but_not_repeat() {
    let mut e = Engine::new(&DetectionConfig::default(), vec![CALLER.to_string()]);
    assert_eq!(e.allowed(), vec![CALLER.to_string()]);
    let mut events = spaced(100, CALLER);
    events.extend((0..6).map(|i| call(T0 + 6000 + i, CALLER, "8613900000000")));
    let crossed = run(&mut e, &events);
    assert_eq!(
        crossed.keys().map(|k| k.1).collect::<Vec<_>>(),
        vec![DetectorId::Repeat]
    );
    assert!(e.disallow(CALLER));
    assert!(!e.disallow(CALLER));
    assert!(e.allow("12025550100"));
    assert!(!e.allow("+12025550100"));
}

#[test]
fn complaints_count_only_complaints() {
    let mut e = engine();
    let mut events = spaced(3, CALLER);
    let complaint = |t: u64| Event {
        kind: Kind::Complaint,
        verstat: None,
        ..call(t, CALLER, "8613900000000")
    };
    events.push(complaint(T0 + 100));
    events.push(complaint(T0 + 40_000));
    let crossed = run(&mut e, &events);
    assert!(crossed.is_empty());
    let c = e.observe(&complaint(T0 + 80_000)).crossings;
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].detector, c[0].count, c[0].window),
        (DetectorId::Complaints, 3, 86_400)
    );
    assert!(c[0].text.contains("3 complaints in 24 h"), "{}", c[0].text);
}

fn home_config() -> DetectionConfig {
    DetectionConfig {
        home_country: Some("86".into()),
        international_gateway_spcs: vec!["GW01".into()],
        ..DetectionConfig::default()
    }
}

#[test]
fn out_of_area_marks_and_alerts_on_the_spc_or_the_ingress() {
    let mut e = Engine::new(&home_config(), Vec::new());
    let gateway = |i: u64, from: &str| Event {
        spc: Some("GW01".into()),
        ..call(T0 + i * 10, from, "8613900000000")
    };
    // A foreign caller ID through the gateway is not marked.
    assert!(e.observe(&gateway(0, "12025550100")).marks.is_empty());
    for i in 0..20 {
        let o = e.observe(&gateway(i, &format!("861380000{i:04}")));
        assert_eq!(o.marks, vec![DetectorId::OutOfArea]);
        assert!(o.crossings.is_empty());
    }
    let c = e.observe(&gateway(20, "8613800009999")).crossings;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].subject, Subject::Spc("GW01".into()));
    assert_eq!((c[0].count, c[0].threshold, c[0].time), (21, 20, T0 + 200));
    assert_eq!(e.spc_counts("GW01").windows[0].count, 21);
    // Unsigned calls through an international ingress count against the ingress.
    let unsigned = |i: u64| Event {
        ingress: Some("international".into()),
        verstat: Some("No-TN-Validation".into()),
        ..call(T0 + 1000 + i, &format!("861380001{i:04}"), "8613900000000")
    };
    let crossed = run(&mut e, &(0..21).map(unsigned).collect::<Vec<_>>());
    assert_eq!(
        crossed.keys().cloned().collect::<Vec<_>>(),
        vec![(
            Subject::Ingress("international".into()),
            DetectorId::OutOfArea
        )]
    );
    // Without home_country, nothing is marked.
    let mut e = engine();
    assert!(e.observe(&unsigned(0)).marks.is_empty());
}

#[test]
fn spoofing_source_needs_the_share_over_enough_calls() {
    let signed = |i: u64, spoofed: bool| Event {
        spc: Some("709J".into()),
        flags: if spoofed {
            vec!["spoofed".into()]
        } else {
            Vec::new()
        },
        ..call(T0 + i, &format!("1202555{i:04}"), "12025550000")
    };
    // A share is judged once its window is final: a later call (another carrier's, past the
    // lateness bound) moves the newest event time on.
    let with_tick = |mut events: Vec<Event>| {
        events.push(Event {
            spc: Some("OTHER".into()),
            ..call(T0 + 200, "12025559999", "12025550000")
        });
        events
    };
    // 15 of 50 (30 %): not more than 30 %.
    let mut e = engine();
    let events = with_tick((0..50).map(|i| signed(i, i < 15)).collect());
    assert!(run(&mut e, &events).is_empty());
    // 16 of 50: 32 %; not judged before the window is final.
    let mut e = engine();
    let events: Vec<Event> = (0..50).map(|i| signed(i, i < 16)).collect();
    assert!(run(&mut e, &events).is_empty(), "not final yet");
    let mut e = engine();
    let crossed = run(&mut e, &with_tick(events));
    assert_eq!(
        crossed.get(&(Subject::Spc("709J".into()), DetectorId::SpoofingSource)),
        Some(&(T0 + 49))
    );
    // A late clean call inside the window brings the share back under: no alert.
    let mut e = engine();
    let mut events: Vec<Event> = (0..50).map(|i| signed(i, i < 16)).collect();
    for i in 0..40 {
        events.push(Event {
            spc: Some("709J".into()),
            ..call(T0, &format!("1202556{i:04}"), "12025550000")
        });
    }
    let crossed = run(&mut e, &with_tick(events));
    assert!(crossed.is_empty(), "at most 16 of 56 (28.6 %): {crossed:?}");
    // All spoofed but only 49 calls.
    let mut e = engine();
    let events = with_tick((0..49).map(|i| signed(i, true)).collect());
    assert!(run(&mut e, &events).is_empty());
}

#[test]
fn a_firms_numbers_are_held_to_its_quota() {
    let document = lists::ListDocument {
        version: 1,
        issued_at: 0,
        expires_at: u64::MAX / 2,
        firms: vec![lists::Firm {
            id: "F1".into(),
            name: "Example".into(),
            status: lists::FirmStatus::WhiteListed,
            numbers: vec![
                lists::NumberEntry::parse("8610000000001").unwrap(),
                lists::NumberEntry::parse("8610000000002").unwrap(),
            ],
            hourly_quota: 100,
            reasons: Vec::new(),
        }],
        blacklisted_numbers: Vec::new(),
    };
    let mut e = engine();
    e.set_list_index(Some(Arc::new(lists::ListIndex::new(document))));
    // 100 calls from two numbers, 50 each, far above high-frequency: nothing.
    let events: Vec<Event> = (0..100)
        .map(|i| {
            let from = if i % 2 == 0 {
                "8610000000001"
            } else {
                "8610000000002"
            };
            call(T0 + i * 10, from, &format!("86139{i:08}"))
        })
        .collect();
    assert!(run(&mut e, &events).is_empty());
    let c = e
        .observe(&call(T0 + 1000, "8610000000001", "8613900000999"))
        .crossings;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].subject, Subject::Firm("F1".into()));
    assert_eq!(
        (c[0].detector, c[0].count, c[0].threshold),
        (DetectorId::FirmQuota, 101, 100)
    );
}

#[test]
fn late_events_are_not_counted() {
    let mut e = engine();
    e.observe(&call(T0 + 1000, CALLER, "8613900000000"));
    assert!(!e.observe(&call(T0 + 940, CALLER, "8613900000000")).late);
    assert!(e.observe(&call(T0 + 939, CALLER, "8613900000000")).late);
    assert_eq!(e.newest_time(), T0 + 1000);
    assert_eq!(e.horizon(), 86_400 + 60);
}

/// A small xorshift for shuffling.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn shuffled_within_the_bound_gives_the_same_crossings() {
    // Offenders of every caller rule, plus noise, then shuffled so that no event arrives more
    // than 60 s after a later one.
    let mut events = Vec::new();
    let mut seed = 99u64;
    for i in 0..200u64 {
        let from = format!("86138{:08}", next(&mut seed) % 50);
        events.push(call(
            T0 + i * 17,
            &from,
            &format!("86139{:08}", next(&mut seed) % 1000),
        ));
    }
    for i in 0..80 {
        events.push(call(
            T0 + i * 40,
            "8613811111111",
            &format!("86139{:08}", i),
        ));
        events.push(call(T0 + 500 + i * 3, "8613822222222", "8613900000001"));
    }
    events.extend((0..12).map(|i| call(T0 + 2000 + i * 4, "8613833333333", "8613900000002")));
    events.sort_by_key(|e| e.time);
    let mut expected = engine();
    let in_order = run(&mut expected, &events);
    assert!(in_order.len() >= 4, "{in_order:?}");
    for round in 0..20 {
        let mut keyed: Vec<(u64, &Event)> = events
            .iter()
            .map(|e| (e.time + next(&mut seed) % 61, e))
            .collect();
        keyed.sort_by_key(|(k, _)| *k);
        let shuffled: Vec<Event> = keyed.into_iter().map(|(_, e)| e.clone()).collect();
        assert_ne!(shuffled, events);
        let mut e = engine();
        assert_eq!(run(&mut e, &shuffled), in_order, "round {round}");
    }
}

#[test]
fn callers_are_forgotten_past_the_horizon_and_top_callers_rank_busy_ones() {
    let mut e = engine();
    for i in 0..1000u64 {
        e.observe(&call(T0 + i % 60, &format!("86138{i:08}"), "8613900000000"));
    }
    for i in 0..8 {
        e.observe(&call(T0 + 60 + i, "8613877777777", &format!("86139{i:08}")));
    }
    assert_eq!(e.active_callers(), 1001);
    assert_eq!(e.top_callers(3), vec![("8613877777777".to_string(), 8)]);
    let before = e.memory_bytes();
    assert!(before > 1000 * 50, "{before}");
    e.observe(&call(
        T0 + 3600 + 60 + 200,
        "8613899999999",
        "8613900000000",
    ));
    assert_eq!(e.active_callers(), 1);
    assert!(e.top_callers(3).is_empty());
    assert!(e.memory_bytes() < before);
}

#[test]
fn a_jump_to_the_largest_time_is_handled_in_bounded_work() {
    // One call, then one at the largest time a line may carry: the spoofing windows that
    // become final are judged over the seconds the carrier's counters hold, not over every
    // second in between (billions).
    let mut e = engine();
    let signed = |t: u64| Event {
        spc: Some("709J".into()),
        ..call(t, "12025550100", "12025550000")
    };
    assert!(e.observe(&signed(T0)).crossings.is_empty());
    assert!(e.observe(&signed(T0 + 1)).crossings.is_empty());
    let far = crate::event::MAX_TIME;
    assert!(!e.observe(&signed(far)).late);
    assert_eq!(e.newest_time(), far);
    assert!(e.observe(&signed(T0 + 2)).late, "now far behind the newest");
}
