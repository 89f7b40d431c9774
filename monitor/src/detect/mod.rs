//! The detectors, over event time.
//!
//! [`Engine::observe`] takes one event (in any order within `lateness_seconds`) and answers
//! which thresholds it pushed over ([`Crossing`]s) and how the call is marked; the result
//! (who alerts, with which crossing times) does not depend on the arrival order within the
//! bound. Counts are judged at once; `spoofing-source`, a share that a late clean call can
//! bring back under, is judged when its windows are final (`Engine::settle_spoofing`).
//!
//! One file per detector: `high_frequency.rs`, `fan_out.rs`, `repeat.rs`, `complaints.rs`,
//! `out_of_area.rs`, `spoofing_source.rs`, `firm_quota.rs`; their state in `callers.rs` (per
//! calling number) and `spc.rs` (per signing carrier, per second); exact window counting in
//! `window.rs`; the allow list and number keys in [`allow`].
//!
//! Memory: per active calling number, its calls over the horizon (16 bytes a callee), its
//! five latest `origid`s, and a hash-map slot; a caller is forgotten once the newest event
//! time passes its last call by the longest caller window plus the lateness bound. Every count
//! is exact (no sketch is needed: a window's state is bounded by the calls in it), up to
//! 10,000 called numbers kept per caller.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Who an alert is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// A calling number (E.164 digits): `{"caller": TN}`.
    Caller(String),
    /// A signing carrier: `{"spc": SPC}`.
    Spc(String),
    /// A white-listed marketing firm (its id in the regulator's list): `{"firm": ID}`
    /// (`firm-quota`).
    Firm(String),
    /// An ingress (trunk), for `out-of-area` calls that carry no SPC: `{"ingress": NAME}`.
    Ingress(String),
}

impl Subject {
    /// The member name the API writes (`caller`, `spc`, `firm`, `ingress`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Caller(_) => "caller",
            Self::Spc(_) => "spc",
            Self::Firm(_) => "firm",
            Self::Ingress(_) => "ingress",
        }
    }

    /// The number, SPC, firm id or ingress name.
    pub fn value(&self) -> &str {
        match self {
            Self::Caller(v) | Self::Spc(v) | Self::Firm(v) | Self::Ingress(v) => v,
        }
    }

    /// The subject of this kind (as [`Subject::kind`] names it) and value.
    pub fn from_parts(kind: &str, value: &str) -> Option<Self> {
        let value = value.to_owned();
        match kind {
            "caller" => Some(Self::Caller(value)),
            "spc" => Some(Self::Spc(value)),
            "firm" => Some(Self::Firm(value)),
            "ingress" => Some(Self::Ingress(value)),
            _ => None,
        }
    }

    /// How a sentence names it.
    pub fn describe(&self) -> String {
        match self {
            Self::Caller(v) => v.clone(),
            Self::Spc(v) => format!("SPC {v}"),
            Self::Firm(v) => format!("firm {v}"),
            Self::Ingress(v) => format!("ingress {v}"),
        }
    }
}

/// A detector's name, as the API and the config write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DetectorId {
    /// `high-frequency`.
    #[serde(rename = "high-frequency")]
    HighFrequency,
    /// `fan-out`.
    #[serde(rename = "fan-out")]
    FanOut,
    /// `repeat`.
    #[serde(rename = "repeat")]
    Repeat,
    /// `complaints`.
    #[serde(rename = "complaints")]
    Complaints,
    /// `out-of-area`.
    #[serde(rename = "out-of-area")]
    OutOfArea,
    /// `spoofing-source`.
    #[serde(rename = "spoofing-source")]
    SpoofingSource,
    /// `firm-quota`: a white-listed firm over its hourly quota.
    #[serde(rename = "firm-quota")]
    FirmQuota,
}

impl DetectorId {
    /// Every detector.
    pub const ALL: [Self; 7] = [
        Self::HighFrequency,
        Self::FanOut,
        Self::Repeat,
        Self::Complaints,
        Self::OutOfArea,
        Self::SpoofingSource,
        Self::FirmQuota,
    ];

    /// The name the API and the config write.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HighFrequency => "high-frequency",
            Self::FanOut => "fan-out",
            Self::Repeat => "repeat",
            Self::Complaints => "complaints",
            Self::OutOfArea => "out-of-area",
            Self::SpoofingSource => "spoofing-source",
            Self::FirmQuota => "firm-quota",
        }
    }

    /// The detector with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

impl std::fmt::Display for DetectorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A detector crossed its threshold for a subject at an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Crossing {
    /// Who.
    pub subject: Subject,
    /// Which detector.
    pub detector: DetectorId,
    /// The event time of the event that made it fire.
    pub time: u64,
    /// The window, seconds.
    pub window: u64,
    /// The count in the window.
    pub count: u64,
    /// The threshold exceeded.
    pub threshold: u64,
    /// Some `origid`s of the calls counted (at most a few).
    pub samples: Vec<String>,
    /// One sentence a person can read.
    pub text: String,
}

/// What the engine made of one event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// Marks on the call itself (e.g. `out-of-area`), stored with the event.
    pub marks: Vec<DetectorId>,
    /// Thresholds crossed.
    pub crossings: Vec<Crossing>,
    /// The event came later than the lateness bound allows (older than the newest event
    /// time seen minus `lateness_seconds`): it is stored but the detectors did not count it.
    pub late: bool,
}

pub mod allow;
mod callers;
mod complaints;
pub mod config;
mod fan_out;
mod firm_quota;
mod high_frequency;
mod out_of_area;
mod repeat;
mod spc;
mod spoofing_source;
mod window;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub use allow::{read_allow_file, AllowFileError};
use config::Counted;
pub use config::DetectionConfig;

use allow::{tn_key, tn_text, AllowList, TnKey};
use callers::{Call, CallerState};
use complaints::ComplaintState;
use firm_quota::{FirmList, FirmState};
use spc::SpcState;
use window::{count_in, Over, Wheel};

use crate::event::Kind;

/// Callers with at least this many calls in the `high-frequency` hour window are candidates
/// for [`Engine::top_callers`].
pub const TOP_FLOOR: u64 = 5;

/// A window's length as a sentence writes it: `60 s`, `5 min`, `60 min`, `24 h`.
pub(crate) fn duration(seconds: u64) -> String {
    if seconds < 120 || !seconds.is_multiple_of(60) {
        format!("{seconds} s")
    } else if seconds <= 7200 || !seconds.is_multiple_of(3600) {
        format!("{} min", seconds / 60)
    } else {
        format!("{} h", seconds / 3600)
    }
}

/// All detectors. Single-threaded; the server holds it behind a lock. Never reads the clock.
#[derive(Debug)]
pub struct Engine {
    config: DetectionConfig,
    allow: AllowList,
    list: Option<FirmList>,
    callers: HashMap<TnKey, CallerState>,
    caller_wheel: Wheel<TnKey>,
    complaints: HashMap<TnKey, ComplaintState>,
    complaint_wheel: Wheel<TnKey>,
    firms: HashMap<String, FirmState>,
    spcs: HashMap<Subject, SpcState>,
    busy: HashSet<TnKey>,
    newest: u64,
    swept_minute: u64,
    /// `spoofing-source` windows ending before this second have been judged (0: none yet).
    spoofing_settled: u64,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(&DetectionConfig::default(), Vec::new())
    }
}

/// A subject's current window counts, as `GET /v1/callers/{tn}` and `GET /v1/spcs/{spc}`
/// serve them under `"windows"` (detector name -> counts).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WindowCounts {
    /// One entry per detector that tracks this subject: `{"detector", "window", "count",
    /// "threshold"}`.
    pub windows: Vec<WindowCount>,
}

/// One detector's current count for a subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowCount {
    /// Which detector.
    pub detector: DetectorId,
    /// The window, seconds.
    pub window: u64,
    /// Its count in the window ending at the newest event time seen.
    pub count: u64,
    /// The threshold.
    pub threshold: u64,
}

/// The crossings an [`Over`] stands for: its first window end, and its last when later (the
/// alert book keeps the earliest as the alert's time and the latest as its `last`).
fn crossings(
    out: &mut Vec<Crossing>,
    subject: &Subject,
    detector: DetectorId,
    over: Over,
    (window, threshold): (u64, u64),
    samples: Vec<String>,
    text: String,
) {
    let crossing = Crossing {
        subject: subject.clone(),
        detector,
        time: over.first,
        window,
        count: over.count,
        threshold,
        samples,
        text,
    };
    if over.last != over.first {
        out.push(Crossing {
            time: over.last,
            ..crossing.clone()
        });
    }
    out.push(crossing);
    // The earliest first.
    out.sort_by_key(|c| c.time);
}

impl Engine {
    /// An engine with these settings. `allow` are the allow-listed calling numbers (numbers
    /// that are not E.164 digits are skipped: [`read_allow_file`] refuses them first).
    pub fn new(config: &DetectionConfig, allow: impl IntoIterator<Item = String>) -> Self {
        let mut list = AllowList::default();
        for tn in allow {
            list.add(&tn);
        }
        Self {
            config: config.clone(),
            allow: list,
            list: None,
            callers: HashMap::new(),
            caller_wheel: Wheel::default(),
            complaints: HashMap::new(),
            complaint_wheel: Wheel::default(),
            firms: HashMap::new(),
            spcs: HashMap::new(),
            busy: HashSet::new(),
            newest: 0,
            swept_minute: 0,
            spoofing_settled: 0,
        }
    }

    /// An engine with this one's settings, allow list and firm list, and no windows: what a
    /// newly assigned partition starts from ([`crate::shards`]).
    pub fn fresh(&self) -> Self {
        let mut engine = Self::new(&self.config, Vec::new());
        engine.allow = self.allow.clone();
        engine.list = self.list.clone();
        engine
    }

    /// Whether the windows hold calls of, or complaints about, this calling number.
    pub fn knows_caller(&self, tn: &str) -> bool {
        tn_key(tn).is_some_and(|key| {
            self.callers.contains_key(&key) || self.complaints.contains_key(&key)
        })
    }

    /// The settings.
    pub fn config(&self) -> &DetectionConfig {
        &self.config
    }

    /// Sets the regulator's list (the service's `lists::ListStore::current()`): white-listed
    /// firms' numbers are held to their firm's quota instead of `high-frequency` and `fan-out`.
    /// `None` forgets it.
    pub fn set_list(&mut self, list: Option<Arc<lists::ActiveList>>) {
        self.list = list.map(FirmList::Active);
    }

    /// Sets the list from a bare index (tests, the lab, [`crate::mix`]).
    pub fn set_list_index(&mut self, index: Option<Arc<lists::ListIndex>>) {
        self.list = index.map(FirmList::Index);
    }

    /// The longest window of the per-caller detectors.
    fn caller_window(&self) -> u64 {
        let d = &self.config.detectors;
        d.high_frequency
            .hour_window_seconds
            .max(d.high_frequency.minute_window_seconds)
            .max(d.fan_out.window_seconds)
            .max(d.repeat.window_seconds)
    }

    fn spc_window(&self) -> u64 {
        let d = &self.config.detectors;
        d.out_of_area
            .window_seconds
            .max(d.spoofing_source.window_seconds)
    }

    /// Entries at or before this time can no longer be in a window with a non-late event.
    fn cutoff(&self, window: u64) -> u64 {
        self.newest
            .saturating_sub(self.config.lateness_seconds)
            .saturating_sub(window)
    }

    /// Feeds one event (in any order within the lateness bound).
    pub fn observe(&mut self, event: &Event) -> Observation {
        let mut observation = Observation::default();
        if event.time.saturating_add(self.config.lateness_seconds) < self.newest {
            observation.late = true;
            return observation;
        }
        if event.time > self.newest {
            self.newest = event.time;
            if self.newest / 60 != self.swept_minute {
                self.swept_minute = self.newest / 60;
                self.expire();
            }
        }
        match event.kind {
            Kind::Complaint => self.observe_complaint(event, &mut observation.crossings),
            Kind::Verification => {
                self.observe_caller(event, &mut observation.crossings);
                self.observe_spc(event, &mut observation);
            }
        }
        self.settle_spoofing(&mut observation.crossings);
        observation
    }

    /// Judges the `spoofing-source` windows that became final. A share, unlike a count, can
    /// fall back under its threshold when a late clean call arrives, so a window is judged
    /// only once no call inside it can still be counted: when it ends before the newest event
    /// time minus the lateness bound. The crossing's `time` is still the window's end (the
    /// event that pushed the share over), so replaying fast or receiving live gives the same
    /// alerts; the alert becomes visible at most `lateness_seconds` of event time later.
    fn settle_spoofing(&mut self, out: &mut Vec<Crossing>) {
        let settled = self.newest.saturating_sub(self.config.lateness_seconds);
        if self.spoofing_settled == 0 {
            self.spoofing_settled = settled;
            return;
        }
        if settled <= self.spoofing_settled || !self.config.detectors.spoofing_source.enabled {
            self.spoofing_settled = self.spoofing_settled.max(settled);
            return;
        }
        let (from, to) = (self.spoofing_settled, settled - 1);
        self.spoofing_settled = settled;
        let s = &self.config.detectors.spoofing_source;
        for (subject, state) in &mut self.spcs {
            if !matches!(subject, Subject::Spc(_)) || state.newest < from {
                continue;
            }
            if let Some((over, threshold, text)) =
                spoofing_source::check_settled(s, state, subject.value(), from, to)
            {
                let samples = state.spoofed_samples.list();
                crossings(
                    out,
                    subject,
                    DetectorId::SpoofingSource,
                    over,
                    (s.window_seconds, threshold),
                    samples,
                    text,
                );
            }
        }
    }

    fn observe_complaint(&mut self, event: &Event, out: &mut Vec<Crossing>) {
        let settings = &self.config.detectors.complaints;
        let Some(key) = tn_key(&event.from) else {
            return;
        };
        if !settings.enabled {
            return;
        }
        let cutoff = self.cutoff(settings.window_seconds);
        let state = self.complaints.entry(key).or_default();
        let before = state.newest / 60;
        state.add(event.time, event.origid.as_deref(), cutoff);
        if state.newest / 60 != before || state.times.len() == 1 {
            self.complaint_wheel.note(key, state.newest);
        }
        if let Some((over, text)) =
            complaints::check(&Counted::from(settings), state, &event.from, event.time)
        {
            let subject = Subject::Caller(event.from.clone());
            crossings(
                out,
                &subject,
                DetectorId::Complaints,
                over,
                (settings.window_seconds, settings.threshold),
                state.samples.list(),
                text,
            );
        }
    }

    fn observe_caller(&mut self, event: &Event, out: &mut Vec<Crossing>) {
        let Some(key) = tn_key(&event.from) else {
            return;
        };
        let callees: Vec<TnKey> = event.to.iter().filter_map(|tn| tn_key(tn)).collect();
        if callees.is_empty() {
            return;
        }
        let cutoff = self.cutoff(self.caller_window());
        let firm = self
            .list
            .as_ref()
            .and_then(|l| l.firm_of(&event.from))
            .map(|(id, quota)| (id.to_owned(), quota));
        let exempt = firm.is_some() || self.allow.contains(key);
        let config = &self.config;
        let d = &config.detectors;
        let state = self.callers.entry(key).or_default();
        let before = (state.newest / 60, state.calls.is_empty());
        state.prune(cutoff);
        state.add(event.time, &callees);
        state.samples.push(event.origid.as_deref());
        if before.1 || state.newest / 60 != before.0 {
            self.caller_wheel.note(key, state.newest);
        }
        let subject = || Subject::Caller(event.from.clone());
        let t = event.time;
        if !exempt && d.high_frequency.enabled {
            for (over, window, threshold, text) in
                high_frequency::check(&d.high_frequency, state, &event.from, t)
            {
                let samples = state.samples.list();
                crossings(
                    out,
                    &subject(),
                    high_frequency::ID,
                    over,
                    (window, threshold),
                    samples,
                    text,
                );
            }
        }
        if !exempt && d.fan_out.enabled {
            if let Some((over, text)) =
                fan_out::check(&Counted::from(&d.fan_out), state, &event.from, t)
            {
                let samples = state.samples.list();
                let (w, th) = (d.fan_out.window_seconds, d.fan_out.threshold);
                crossings(
                    out,
                    &subject(),
                    DetectorId::FanOut,
                    over,
                    (w, th),
                    samples,
                    text,
                );
            }
        }
        if d.repeat.enabled {
            if let Some((over, text)) =
                repeat::check(&Counted::from(&d.repeat), state, &event.from, &callees, t)
            {
                let samples = state.samples.list();
                let (w, th) = (d.repeat.window_seconds, d.repeat.threshold);
                crossings(
                    out,
                    &subject(),
                    DetectorId::Repeat,
                    over,
                    (w, th),
                    samples,
                    text,
                );
            }
        }
        if state.calls.len() as u64 >= TOP_FLOOR
            && count_in(
                &state.calls,
                Call::time,
                Call::is_call,
                self.newest,
                d.high_frequency.hour_window_seconds,
            ) >= TOP_FLOOR
        {
            self.busy.insert(key);
        }
        if let (Some((id, quota)), true) = (firm, d.firm_quota.enabled) {
            let window = d.firm_quota.window_seconds;
            let cutoff = self.cutoff(window);
            let state = self.firms.entry(id.clone()).or_default();
            state.add(t, event.origid.as_deref(), cutoff);
            if let Some((over, text)) = firm_quota::check(state, &id, quota, window, t) {
                let samples = state.samples.list();
                let firm = Subject::Firm(id);
                crossings(
                    out,
                    &firm,
                    DetectorId::FirmQuota,
                    over,
                    (window, quota),
                    samples,
                    text,
                );
            }
        }
    }

    fn observe_spc(&mut self, event: &Event, observation: &mut Observation) {
        let config = &self.config;
        let marked = config.enabled(DetectorId::OutOfArea) && out_of_area::marked(config, event);
        let spoofing = config.detectors.spoofing_source.enabled && event.spc.is_some();
        if !marked && !spoofing {
            return;
        }
        let cutoff = self.cutoff(self.spc_window());
        let t = event.time;
        let spoofed = event.has_flag("spoofed");
        if marked {
            observation.marks.push(DetectorId::OutOfArea);
        }
        // A signed call counts once in its SPC's buckets (calls, spoofed, marked); a marked
        // call without SPC counts in its ingress's buckets (marked only).
        let Some(subject) = (if spoofing {
            event.spc.clone().map(Subject::Spc)
        } else {
            out_of_area::subject(event)
        }) else {
            return;
        };
        let state = self.spcs.entry(subject.clone()).or_default();
        if let Some(bucket) = state.bucket(t, cutoff) {
            if event.spc.is_some() {
                bucket.calls += 1;
                if spoofed {
                    bucket.spoofed += 1;
                }
            }
            if marked {
                bucket.marked += 1;
            }
        }
        if spoofed {
            state.spoofed_samples.push(event.origid.as_deref());
        }
        if marked {
            state.marked_samples.push(event.origid.as_deref());
            if let Some((over, text)) = out_of_area::check(config, state, &subject, t) {
                let s = &config.detectors.out_of_area;
                let samples = state.marked_samples.list();
                crossings(
                    &mut observation.crossings,
                    &subject,
                    DetectorId::OutOfArea,
                    over,
                    (s.window_seconds, s.threshold),
                    samples,
                    text,
                );
            }
        }
        // `spoofing-source` is judged when its windows become final: `settle_spoofing`.
    }

    /// Forgets subjects whose newest event fell behind their horizon.
    fn expire(&mut self) {
        let cutoff = self.cutoff(self.caller_window());
        let (callers, busy) = (&mut self.callers, &mut self.busy);
        self.caller_wheel.expire(cutoff, |key| {
            if callers.get(&key).is_some_and(|s| s.newest <= cutoff) {
                callers.remove(&key);
                busy.remove(&key);
            }
        });
        let hour = self.config.detectors.high_frequency.hour_window_seconds;
        let newest = self.newest;
        busy.retain(|key| {
            callers.get(key).is_some_and(|s| {
                count_in(&s.calls, Call::time, Call::is_call, newest, hour) >= TOP_FLOOR
            })
        });
        let cutoff = self.cutoff(self.config.detectors.complaints.window_seconds);
        let complaints = &mut self.complaints;
        self.complaint_wheel.expire(cutoff, |key| {
            if complaints.get(&key).is_some_and(|s| s.newest <= cutoff) {
                complaints.remove(&key);
            }
        });
        let cutoff = self.cutoff(self.spc_window());
        self.spcs.retain(|_, s| s.newest > cutoff);
        let cutoff = self.cutoff(self.config.detectors.firm_quota.window_seconds);
        self.firms
            .retain(|_, s| s.times.last().is_some_and(|&t| t > cutoff));
        if self.callers.capacity() > 64 && self.callers.capacity() > 4 * self.callers.len() {
            self.callers.shrink_to(2 * self.callers.len());
        }
    }

    /// Adds a number to the allow list (true when it was not there; false also for a number
    /// that is not E.164 digits).
    pub fn allow(&mut self, tn: &str) -> bool {
        self.allow.add(tn)
    }

    /// Removes a number from the allow list (true when it was there).
    pub fn disallow(&mut self, tn: &str) -> bool {
        self.allow.remove(tn)
    }

    /// The allow list, sorted.
    pub fn allowed(&self) -> Vec<String> {
        self.allow.sorted()
    }

    /// Whether a number is on the allow list.
    pub fn is_allowed(&self, tn: &str) -> bool {
        tn_key(tn).is_some_and(|k| self.allow.contains(k))
    }

    /// A calling number's current window counts (windows ending at the newest event time):
    /// `high-frequency` (minute and hour), `fan-out` (distinct callees), `repeat` (the most
    /// calls to one callee), `complaints`.
    pub fn caller_counts(&self, tn: &str) -> WindowCounts {
        let mut windows = Vec::new();
        let Some(key) = tn_key(tn) else {
            return WindowCounts { windows };
        };
        let d = &self.config.detectors;
        let end = self.newest;
        let calls: &[Call] = self.callers.get(&key).map_or(&[], |s| &s.calls);
        let in_window = |w: u64| {
            let lo = calls.partition_point(|c| c.time + w <= end);
            let hi = calls.partition_point(|c| c.time <= end);
            calls.get(lo..hi).unwrap_or(&[])
        };
        for (w, th) in [
            (
                d.high_frequency.minute_window_seconds,
                d.high_frequency.minute_threshold,
            ),
            (
                d.high_frequency.hour_window_seconds,
                d.high_frequency.hour_threshold,
            ),
        ] {
            windows.push(WindowCount {
                detector: DetectorId::HighFrequency,
                window: w,
                count: in_window(w).iter().filter(|c| c.is_call()).count() as u64,
                threshold: th,
            });
        }
        let distinct: HashSet<TnKey> = in_window(d.fan_out.window_seconds)
            .iter()
            .map(Call::callee)
            .collect();
        windows.push(WindowCount {
            detector: DetectorId::FanOut,
            window: d.fan_out.window_seconds,
            count: distinct.len() as u64,
            threshold: d.fan_out.threshold,
        });
        let mut per_callee: HashMap<TnKey, u64> = HashMap::new();
        for c in in_window(d.repeat.window_seconds) {
            *per_callee.entry(c.callee()).or_default() += 1;
        }
        windows.push(WindowCount {
            detector: DetectorId::Repeat,
            window: d.repeat.window_seconds,
            count: per_callee.values().copied().max().unwrap_or(0),
            threshold: d.repeat.threshold,
        });
        let complaints: &[u64] = self.complaints.get(&key).map_or(&[], |s| &s.times);
        windows.push(WindowCount {
            detector: DetectorId::Complaints,
            window: d.complaints.window_seconds,
            count: count_in(
                complaints,
                |x| *x,
                |_| true,
                end,
                d.complaints.window_seconds,
            ),
            threshold: d.complaints.threshold,
        });
        WindowCounts { windows }
    }

    /// A signing carrier's current window counts: `out-of-area` (marked calls) and
    /// `spoofing-source` (spoofed calls, against the most the share allows over its calls).
    pub fn spc_counts(&self, spc: &str) -> WindowCounts {
        let d = &self.config.detectors;
        let state = self.spcs.get(&Subject::Spc(spc.to_owned()));
        let sums = |w: u64| state.map(|s| s.sums(self.newest, w)).unwrap_or_default();
        let marked = sums(d.out_of_area.window_seconds);
        let spoof = sums(d.spoofing_source.window_seconds);
        WindowCounts {
            windows: vec![
                WindowCount {
                    detector: DetectorId::OutOfArea,
                    window: d.out_of_area.window_seconds,
                    count: marked.marked,
                    threshold: d.out_of_area.threshold,
                },
                WindowCount {
                    detector: DetectorId::SpoofingSource,
                    window: d.spoofing_source.window_seconds,
                    count: spoof.spoofed,
                    threshold: d.spoofing_source.share_percent * spoof.calls / 100,
                },
            ],
        }
    }

    /// The `n` calling numbers with the most calls in the `high-frequency` hour window ending
    /// at the newest event time, most first (ties by number). Only callers with at least
    /// [`TOP_FLOOR`] calls in that window are ranked, so the cost is in the busy callers, not
    /// in all active ones.
    pub fn top_callers(&self, n: usize) -> Vec<(String, u64)> {
        let hour = self.config.detectors.high_frequency.hour_window_seconds;
        let mut ranked: Vec<(u64, TnKey)> = self
            .busy
            .iter()
            .filter_map(|key| {
                let s = self.callers.get(key)?;
                let count = count_in(&s.calls, Call::time, Call::is_call, self.newest, hour);
                (count >= TOP_FLOOR).then_some((count, *key))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked
            .into_iter()
            .take(n)
            .map(|(count, key)| (tn_text(key), count))
            .collect()
    }

    /// Calling numbers with state in memory.
    pub fn active_callers(&self) -> usize {
        self.callers.len()
    }

    /// An estimate of the bytes the windows hold: hash tables at their capacity, the vectors
    /// at theirs, and the `origid` samples (allocator overhead not counted).
    pub fn memory_bytes(&self) -> usize {
        let slot = |k: usize, v: usize| k + v + 1;
        let callers = self.callers.capacity()
            * slot(
                std::mem::size_of::<TnKey>(),
                std::mem::size_of::<CallerState>(),
            )
            + self
                .callers
                .values()
                .map(CallerState::memory_bytes)
                .sum::<usize>();
        let complaints = self.complaints.capacity()
            * slot(8, std::mem::size_of::<ComplaintState>())
            + self
                .complaints
                .values()
                .map(ComplaintState::memory_bytes)
                .sum::<usize>();
        let spcs = self.spcs.capacity()
            * slot(
                std::mem::size_of::<Subject>(),
                std::mem::size_of::<SpcState>(),
            )
            + self
                .spcs
                .values()
                .map(SpcState::memory_bytes)
                .sum::<usize>();
        let firms = self
            .firms
            .values()
            .map(|f| f.times.capacity() * 8 + 64)
            .sum::<usize>();
        callers
            + complaints
            + spcs
            + firms
            + self.busy.capacity() * 9
            + self.caller_wheel.memory_bytes()
            + self.complaint_wheel.memory_bytes()
            + self.allow.memory_bytes()
    }

    /// The seconds of event history the detectors need behind the newest event time: the
    /// store replays at least this much into a new engine on restart (the longest enabled
    /// window plus the lateness bound).
    pub fn horizon(&self) -> u64 {
        let longest = DetectorId::ALL
            .into_iter()
            .filter(|d| self.config.enabled(*d))
            .map(|d| self.config.window(d))
            .max()
            .unwrap_or(0);
        longest + self.config.lateness_seconds
    }

    /// The newest event time seen (the watermark's base), 0 before any event.
    pub fn newest_time(&self) -> u64 {
        self.newest
    }
}

#[cfg(test)]
pub(crate) mod tests;
