//! A synthetic call mix with ground truth, for tests, benches and the lab (not used by the
//! service itself).
//!
//! [`Mix::generate`] draws, from a seed, the event lines of a population over a duration
//! (the verifier's event line format, plus `ingress` and `kind`):
//! - ordinary subscribers: a few calls each, to random numbers, through a few ordinary
//!   carriers (1 % of their calls flagged `spoofed`), some from abroad;
//! - busy but legitimate lines held exactly at each threshold, never above it: 60 calls an
//!   hour; bursts of 10 calls in a minute; 40 distinct numbers an hour; 5 calls an hour to one
//!   number; 2 complaints a day; a gateway carrying 20 home-country caller IDs every 5
//!   minutes; a carrier with 25 % spoofed calls; a white-listed firm at its quota;
//! - allow-listed lines far above `high-frequency` and `fan-out`;
//! - planted offenders, [`MixConfig::offenders`] for each detector, above the threshold.
//!
//! Lines come out in event-time order with a jitter of up to [`MixConfig::jitter`] seconds
//! (keep it within the monitor's lateness bound). [`Mix::truth`] gives, for each planted
//! (subject, detector), the event time at which its behaviour crossed the threshold,
//! computed by brute force over the planted events, independently of the detectors.
//!
//! [`Mix::detection_config`], [`Mix::allow_list`] and [`Mix::list_index`] are the settings
//! the mix was drawn for (the home country, the gateway, the allow list, the regulator's
//! firms). Lines are formatted lazily by [`Mix::lines`]: 10^6 callers are a few seconds.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use crate::detect::{DetectionConfig, DetectorId, Subject};

/// What to draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixConfig {
    /// The seed: the same seed and settings draw the same lines.
    pub seed: u64,
    /// The first event time.
    pub start: u64,
    /// Seconds of traffic (at least two hours is best: the hour windows fill).
    pub duration: u64,
    /// Ordinary subscribers (each places 1 to 3 calls).
    pub subscribers: u64,
    /// Busy-but-legitimate lines of each kind.
    pub busy: u64,
    /// Allow-listed lines.
    pub allowed: u64,
    /// Planted offenders for each detector.
    pub offenders: u64,
    /// The most an event is emitted after a later one, in seconds (within the lateness bound).
    pub jitter: u64,
}

impl Default for MixConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            start: 1_700_000_000,
            duration: 3 * 3600,
            subscribers: 20_000,
            busy: 5,
            allowed: 3,
            offenders: 5,
            jitter: 50,
        }
    }
}

/// The home country of every mix.
pub const HOME_COUNTRY: &str = "86";
/// The international gateway's SPC prefix (planted offenders and the busy gateway).
const GATEWAY_PREFIX: &str = "GW";

/// splitmix64: small, fast, good enough for traffic shapes.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One drawn event, compact (numbers as integers, strings as indexes).
#[derive(Clone, Copy, Debug)]
struct Rec {
    /// Emission order: time plus jitter.
    key: u64,
    time: u64,
    from: u64,
    to: u64,
    /// Index into [`Mix::spcs`], or `u16::MAX` for an unsigned call.
    spc: u16,
    ingress: Ingress,
    spoofed: bool,
    complaint: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ingress {
    None,
    Local,
    Interconnect,
    International,
}

impl Ingress {
    fn as_str(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Local => Some("local"),
            Self::Interconnect => Some("interconnect"),
            Self::International => Some("international"),
        }
    }
}

/// A drawn mix.
#[derive(Debug)]
pub struct Mix {
    config: MixConfig,
    records: Vec<Rec>,
    spcs: Vec<String>,
    truth: BTreeMap<(Subject, DetectorId), u64>,
    allow: Vec<String>,
    firms: Vec<lists::Firm>,
    gateways: Vec<String>,
}

/// What the drawing functions share.
struct Draw {
    rng: Rng,
    records: Vec<Rec>,
    spcs: Vec<String>,
    start: u64,
    duration: u64,
    jitter: u64,
}

/// Planted subjects' events, by subject and detector, for the brute-force truth.
type Planted = BTreeMap<(Subject, DetectorId), Vec<Rec>>;

impl Draw {
    fn spc(&mut self, name: &str) -> u16 {
        if let Some(i) = self.spcs.iter().position(|s| s == name) {
            return u16::try_from(i).unwrap_or(u16::MAX - 1);
        }
        self.spcs.push(name.to_owned());
        u16::try_from(self.spcs.len() - 1).unwrap_or(u16::MAX - 1)
    }

    /// A start time leaving `span` seconds of activity inside the duration.
    fn begin(&mut self, span: u64) -> u64 {
        self.start + self.rng.below(self.duration.saturating_sub(span).max(1))
    }

    fn push(&mut self, mut rec: Rec) -> Rec {
        rec.key = rec.time + self.rng.below(self.jitter + 1);
        self.records.push(rec);
        rec
    }

    fn call(&mut self, time: u64, from: u64, to: u64, spc: u16) -> Rec {
        self.push(Rec {
            key: 0,
            time,
            from,
            to,
            spc,
            ingress: Ingress::Interconnect,
            spoofed: false,
            complaint: false,
        })
    }
}

/// `prefix` followed by `index` on `width` digits, as an integer (a 13-digit Chinese mobile
/// number for the prefixes used here).
fn number(prefix: u64, index: u64) -> u64 {
    prefix * 100_000_000 + index % 100_000_000
}

const ORDINARY: u64 = 86_138;
const BUSY: u64 = 86_137;
const ALLOWED: u64 = 86_136;
const FIRM: u64 = 86_135;
const OFFENDER: u64 = 86_131;
const SPOOFED_ID: u64 = 86_132;
const CALLEE: u64 = 86_139;
const FOREIGN: u64 = 1_202;

/// The earliest event time `f` (an event's) at which the events in `(f - w, f]` that `keep`
/// number more than `threshold`. Brute force: the truth must not share code with the engine.
fn brute_count(recs: &[Rec], w: u64, threshold: u64, keep: impl Fn(&Rec) -> bool) -> Option<u64> {
    let mut times: Vec<u64> = recs.iter().filter(|r| keep(r)).map(|r| r.time).collect();
    times.sort_unstable();
    times
        .iter()
        .copied()
        .find(|&f| times.iter().filter(|&&t| t + w > f && t <= f).count() as u64 > threshold)
}

fn brute_distinct(recs: &[Rec], w: u64, threshold: u64) -> Option<u64> {
    let mut times: Vec<u64> = recs.iter().map(|r| r.time).collect();
    times.sort_unstable();
    times.into_iter().find(|&f| {
        let mut callees: Vec<u64> = recs
            .iter()
            .filter(|r| r.time + w > f && r.time <= f)
            .map(|r| r.to)
            .collect();
        callees.sort_unstable();
        callees.dedup();
        callees.len() as u64 > threshold
    })
}

fn brute_share(recs: &[Rec], w: u64, share: u64, min: u64) -> Option<u64> {
    let mut times: Vec<u64> = recs.iter().map(|r| r.time).collect();
    times.sort_unstable();
    times.into_iter().find(|&f| {
        let inside = recs.iter().filter(|r| r.time + w > f && r.time <= f);
        let (calls, spoofed) =
            inside.fold((0u64, 0u64), |(c, s), r| (c + 1, s + u64::from(r.spoofed)));
        calls >= min && spoofed * 100 > share * calls
    })
}

impl Mix {
    /// Draws a mix.
    pub fn generate(config: &MixConfig) -> Self {
        let mut d = Draw {
            rng: Rng(config.seed ^ 0x5eed_0000_0000_0001),
            records: Vec::with_capacity(usize::try_from(config.subscribers * 2).unwrap_or(0)),
            spcs: Vec::new(),
            start: config.start,
            duration: config.duration.max(1),
            jitter: config.jitter,
        };
        let ordinary_spcs: Vec<u16> = (0..8).map(|i| d.spc(&format!("{}", 1001 + i))).collect();
        let mut planted: Planted = BTreeMap::new();
        let mut allow = Vec::new();
        let mut firms = Vec::new();
        let mut gateways = Vec::new();

        // Ordinary subscribers.
        for i in 0..config.subscribers {
            let from = number(ORDINARY, i);
            for _ in 0..=d.rng.below(3) {
                let time = d.begin(0);
                let to = number(CALLEE, d.rng.below(100_000_000));
                let spc_index = d.rng.below(ordinary_spcs.len() as u64) as usize;
                let spc = ordinary_spcs.get(spc_index).copied().unwrap_or(u16::MAX);
                let roll = d.rng.below(100);
                let mut rec = Rec {
                    key: 0,
                    time,
                    from,
                    to,
                    spc,
                    ingress: Ingress::Interconnect,
                    spoofed: roll == 0,
                    complaint: false,
                };
                if roll >= 95 {
                    // A caller from abroad (not a home-country number): never marked.
                    rec.from = number(FOREIGN, i);
                    rec.ingress = Ingress::International;
                    rec.spc = u16::MAX;
                } else if roll >= 90 {
                    rec.ingress = Ingress::Local;
                    rec.spc = u16::MAX;
                } else if roll == 1 {
                    rec.complaint = true;
                    rec.ingress = Ingress::None;
                }
                d.push(rec);
            }
        }

        let mut serial = 0u64;
        let mut next_number = |prefix: u64| {
            serial += 1;
            number(prefix, serial)
        };
        let firm_numbers = |first: u64, count: u64| -> Vec<lists::NumberEntry> {
            (0..count)
                .filter_map(|k| lists::NumberEntry::parse(&(first + k).to_string()).ok())
                .collect()
        };

        for b in 0..config.busy {
            let spc = ordinary_spcs.first().copied().unwrap_or(u16::MAX);
            // 60 calls an hour, one a minute, to 30 numbers in turn.
            let from = next_number(BUSY);
            let t0 = d.begin(0) % 60 + d.start;
            for k in 0..(d.duration / 60) {
                d.call(t0 + k * 60, from, number(CALLEE, b * 1000 + k % 30), spc);
            }
            // Bursts of 10 calls in 45 s every 10 minutes (60 an hour), 20 numbers in turn.
            let from = next_number(BUSY);
            for burst in 0..(d.duration / 600) {
                for k in 0..10 {
                    let to = number(CALLEE, b * 1000 + 100 + (burst * 10 + k) % 20);
                    d.call(d.start + burst * 600 + k * 5, from, to, spc);
                }
            }
            // 40 distinct numbers an hour: one every 90 s, 40 in turn.
            let from = next_number(BUSY);
            for k in 0..(d.duration / 90) {
                d.call(
                    d.start + k * 90,
                    from,
                    number(CALLEE, b * 1000 + 200 + k % 40),
                    spc,
                );
            }
            // 5 calls an hour to one number: every 720 s.
            let from = next_number(BUSY);
            for k in 0..(d.duration / 720) {
                d.call(
                    d.start + 7 + k * 720,
                    from,
                    number(CALLEE, b * 1000 + 300),
                    spc,
                );
            }
            // 2 complaints a day (both within the duration).
            let from = next_number(BUSY);
            for k in 0..2 {
                let time = d.start + 100 + k * (d.duration / 2);
                let mut rec = d.call(time, from, number(CALLEE, 1), spc);
                rec.complaint = true;
                d.records.pop();
                d.push(rec);
            }
            // A gateway carrying 20 home-country caller IDs every 5 minutes (one per 15 s).
            let gateway = format!("{GATEWAY_PREFIX}OK{b}");
            gateways.push(gateway.clone());
            let g = d.spc(&gateway);
            for k in 0..(d.duration / 15) {
                let from = next_number(SPOOFED_ID);
                let to = number(CALLEE, d.rng.below(1000));
                d.call(d.start + k * 15, from, to, g);
            }
            // A carrier with 25 % spoofed calls, one call every 2 s.
            let s = d.spc(&format!("BUSY{b}"));
            for k in 0..(d.duration / 2) {
                let from = number(ORDINARY, d.rng.below(config.subscribers.max(1)));
                let mut rec = d.call(d.start + k * 2, from, number(CALLEE, k), s);
                rec.spoofed = k % 4 == 0;
                d.records.pop();
                d.push(rec);
            }
            // A white-listed firm at its quota: 200 calls an hour (every 18 s) from 5 numbers.
            let first = number(FIRM, b * 100);
            firms.push(lists::Firm {
                id: format!("FIRM-OK{b}"),
                name: format!("Busy Firm {b}"),
                status: lists::FirmStatus::WhiteListed,
                numbers: firm_numbers(first, 5),
                hourly_quota: 200,
                reasons: Vec::new(),
            });
            for k in 0..(d.duration / 18) {
                let to = number(CALLEE, d.rng.below(1 << 20));
                d.call(d.start + k * 18, first + k % 5, to, spc);
            }
        }

        // Allow-listed lines: 200 calls an hour to 100 numbers in turn.
        for a in 0..config.allowed {
            let from = number(ALLOWED, a);
            allow.push(from.to_string());
            let spc = ordinary_spcs.get(1).copied().unwrap_or(u16::MAX);
            for k in 0..(d.duration / 18) {
                d.call(
                    d.start + k * 18,
                    from,
                    number(CALLEE, a * 1000 + k % 100),
                    spc,
                );
            }
        }

        // Planted offenders.
        let spc = ordinary_spcs.get(2).copied().unwrap_or(u16::MAX);
        for o in 0..config.offenders {
            let mut plant = |d: &mut Draw, subject: Subject, detector: DetectorId, rec: Rec| {
                let rec = d.push(rec);
                planted.entry((subject, detector)).or_default().push(rec);
            };
            let base = |time: u64, from: u64, to: u64| Rec {
                key: 0,
                time,
                from,
                to,
                spc,
                ingress: Ingress::Interconnect,
                spoofed: false,
                complaint: false,
            };
            // high-frequency (hour): 90 calls at 40 s, 30 numbers in turn.
            let from = next_number(OFFENDER);
            let s = Subject::Caller(from.to_string());
            let t0 = d.begin(90 * 40);
            for k in 0..90 {
                let rec = base(t0 + k * 40, from, number(CALLEE, o * 1000 + k % 30));
                plant(&mut d, s.clone(), DetectorId::HighFrequency, rec);
            }
            // high-frequency (minute): 15 calls 3 s apart.
            let from = next_number(OFFENDER);
            let s = Subject::Caller(from.to_string());
            let t0 = d.begin(60);
            for k in 0..15 {
                let rec = base(t0 + k * 3, from, number(CALLEE, o * 1000 + 100 + k));
                plant(&mut d, s.clone(), DetectorId::HighFrequency, rec);
            }
            // fan-out: 50 distinct numbers, one a minute.
            let from = next_number(OFFENDER);
            let s = Subject::Caller(from.to_string());
            let t0 = d.begin(50 * 60);
            for k in 0..50 {
                let rec = base(t0 + k * 60, from, number(CALLEE, o * 1000 + 200 + k));
                plant(&mut d, s.clone(), DetectorId::FanOut, rec);
            }
            // repeat: 8 calls to one number, 5 minutes apart.
            let from = next_number(OFFENDER);
            let s = Subject::Caller(from.to_string());
            let t0 = d.begin(8 * 300);
            for k in 0..8 {
                let rec = base(t0 + k * 300, from, number(CALLEE, o * 1000 + 300));
                plant(&mut d, s.clone(), DetectorId::Repeat, rec);
            }
            // complaints: 4, 1000 s apart.
            let from = next_number(OFFENDER);
            let s = Subject::Caller(from.to_string());
            let t0 = d.begin(4 * 1000);
            for k in 0..4 {
                let mut rec = base(t0 + k * 1000, from, number(CALLEE, o * 1000 + 400 + k));
                rec.complaint = true;
                rec.ingress = Ingress::None;
                plant(&mut d, s.clone(), DetectorId::Complaints, rec);
            }
            // out-of-area: 40 home-country caller IDs through the international ingress, 5 s
            // apart, signed by one carrier.
            let name = format!("ROGUE{o}");
            let rogue = d.spc(&name);
            let s = Subject::Spc(name);
            let t0 = d.begin(40 * 5);
            for k in 0..40 {
                let mut rec = base(t0 + k * 5, next_number(SPOOFED_ID), number(CALLEE, k));
                rec.spc = rogue;
                rec.ingress = Ingress::International;
                plant(&mut d, s.clone(), DetectorId::OutOfArea, rec);
            }
            // spoofing-source: 100 calls 2 s apart, every other one spoofed.
            let name = format!("SPOOF{o}");
            let spoofer = d.spc(&name);
            let s = Subject::Spc(name);
            let t0 = d.begin(100 * 2);
            for k in 0..100 {
                let from = number(ORDINARY, d.rng.below(config.subscribers.max(1)));
                let mut rec = base(t0 + k * 2, from, number(CALLEE, k));
                rec.spc = spoofer;
                rec.spoofed = k % 2 == 1;
                plant(&mut d, s.clone(), DetectorId::SpoofingSource, rec);
            }
            // firm-quota: a firm with a quota of 50 placing 80 calls, 20 s apart, from 3
            // numbers.
            let id = format!("FIRM-OVER{o}");
            let first = number(FIRM, 50_000 + o * 100);
            firms.push(lists::Firm {
                id: id.clone(),
                name: format!("Pushy Firm {o}"),
                status: lists::FirmStatus::WhiteListed,
                numbers: firm_numbers(first, 3),
                hourly_quota: 50,
                reasons: Vec::new(),
            });
            let s = Subject::Firm(id);
            let t0 = d.begin(80 * 20);
            for k in 0..80 {
                let rec = base(
                    t0 + k * 20,
                    first + k % 3,
                    number(CALLEE, o * 1000 + 500 + k),
                );
                plant(&mut d, s.clone(), DetectorId::FirmQuota, rec);
            }
        }

        let detection = DetectionConfig::default();
        let dd = &detection.detectors;
        let mut truth = BTreeMap::new();
        for ((subject, detector), recs) in &planted {
            let crossed = match detector {
                DetectorId::HighFrequency => {
                    let hf = &dd.high_frequency;
                    [
                        brute_count(recs, hf.hour_window_seconds, hf.hour_threshold, |_| true),
                        brute_count(recs, hf.minute_window_seconds, hf.minute_threshold, |_| {
                            true
                        }),
                    ]
                    .into_iter()
                    .flatten()
                    .min()
                }
                DetectorId::FanOut => {
                    brute_distinct(recs, dd.fan_out.window_seconds, dd.fan_out.threshold)
                }
                DetectorId::Repeat => {
                    brute_count(recs, dd.repeat.window_seconds, dd.repeat.threshold, |_| {
                        true
                    })
                }
                DetectorId::Complaints => brute_count(
                    recs,
                    dd.complaints.window_seconds,
                    dd.complaints.threshold,
                    |_| true,
                ),
                DetectorId::OutOfArea => brute_count(
                    recs,
                    dd.out_of_area.window_seconds,
                    dd.out_of_area.threshold,
                    |_| true,
                ),
                DetectorId::SpoofingSource => {
                    let s = &dd.spoofing_source;
                    brute_share(recs, s.window_seconds, s.share_percent, s.min_calls)
                }
                DetectorId::FirmQuota => {
                    brute_count(recs, dd.firm_quota.window_seconds, 50, |_| true)
                }
            };
            if let Some(time) = crossed {
                truth.insert((subject.clone(), *detector), time);
            }
        }

        let mut records = d.records;
        records.sort_by_key(|r| r.key);
        Self {
            config: config.clone(),
            records,
            spcs: d.spcs,
            truth,
            allow,
            firms,
            gateways,
        }
    }

    /// The settings it was drawn with.
    pub fn config(&self) -> &MixConfig {
        &self.config
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it has no events.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Distinct calling numbers (ordinary subscribers, busy, allowed, offenders, firms'
    /// numbers, spoofed caller IDs).
    pub fn callers(&self) -> usize {
        let mut from: Vec<u64> = self.records.iter().map(|r| r.from).collect();
        from.sort_unstable();
        from.dedup();
        from.len()
    }

    /// For each planted (subject, detector), the event time its behaviour crossed the
    /// threshold (the issue's default thresholds).
    pub fn truth(&self) -> &BTreeMap<(Subject, DetectorId), u64> {
        &self.truth
    }

    /// The allow list the mix assumes.
    pub fn allow_list(&self) -> &[String] {
        &self.allow
    }

    /// The regulator's list the mix assumes: its white-listed firms.
    pub fn list_index(&self) -> Arc<lists::ListIndex> {
        Arc::new(lists::ListIndex::new(lists::ListDocument {
            version: 1,
            issued_at: self.config.start.saturating_sub(86_400),
            expires_at: self.config.start + self.config.duration + 365 * 86_400,
            firms: self.firms.clone(),
            blacklisted_numbers: Vec::new(),
        }))
    }

    /// The detection settings the mix assumes: the issue's defaults, home country `86`, the
    /// busy gateways as international gateways.
    pub fn detection_config(&self) -> DetectionConfig {
        DetectionConfig {
            home_country: Some(HOME_COUNTRY.into()),
            international_gateway_spcs: self.gateways.clone(),
            ..DetectionConfig::default()
        }
    }

    /// The event lines (JSON, no newline), in emission order.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.records
            .iter()
            .enumerate()
            .map(|(i, r)| self.line(i, r))
    }

    fn line(&self, index: usize, r: &Rec) -> String {
        let mut out = String::with_capacity(200);
        let seed = self.config.seed;
        if r.complaint {
            let _ = write!(
                out,
                r#"{{"kind":"complaint","time":{},"from":"{}","to":["{}"],"origid":"m{seed:x}-{index}"}}"#,
                r.time, r.from, r.to
            );
            return out;
        }
        let _ = write!(
            out,
            r#"{{"time":{},"from":"{}","to":["{}"],"#,
            r.time, r.from, r.to
        );
        match self.spcs.get(usize::from(r.spc)) {
            Some(spc) if r.spoofed => {
                let _ = write!(
                    out,
                    r#""verstat":"TN-Validation-Failed","reasoncode":438,"reasontext":"Invalid Identity Header","reasondesc":"the signature does not verify","attest":"A","origid":"m{seed:x}-{index}","spc":"{spc}","x5u":"https://cr.example/{spc}.pem","flags":["spoofed"]"#
                );
            }
            Some(spc) => {
                let _ = write!(
                    out,
                    r#""verstat":"TN-Validation-Passed","attest":"A","origid":"m{seed:x}-{index}","spc":"{spc}","x5u":"https://cr.example/{spc}.pem","flags":[]"#
                );
            }
            None => {
                out.push_str(r#""verstat":"No-TN-Validation","flags":["unsigned","unregistered"]"#);
            }
        }
        if let Some(ingress) = r.ingress.as_str() {
            let _ = write!(out, r#","ingress":"{ingress}""#);
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_line;

    #[test]
    fn the_same_seed_draws_the_same_lines_and_every_line_parses() {
        let config = MixConfig {
            subscribers: 500,
            duration: 7200,
            offenders: 1,
            busy: 1,
            ..MixConfig::default()
        };
        let a = Mix::generate(&config);
        let b = Mix::generate(&config);
        assert!(a.lines().eq(b.lines()));
        assert_eq!(a.truth(), b.truth());
        assert_eq!(a.truth().len(), 8, "{:?}", a.truth());
        let mut newest = 0;
        for line in a.lines() {
            let event = parse_line(&line).unwrap();
            assert!(event.time + config.jitter >= newest, "{line}");
            newest = newest.max(event.time);
        }
        let other = Mix::generate(&MixConfig { seed: 2, ..config });
        assert!(!a.lines().eq(other.lines()));
    }
}
