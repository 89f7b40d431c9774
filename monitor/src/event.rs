//! One call event, as a verifier writes it (or a complaint), parsed from one JSON line.
//!
//! CONTRACT (skeleton): the types below are the interface between the detectors and the
//! store/server; the parser is written on the detectors branch.

use serde::Serialize;

/// What an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A verification (the default): the verifier's event line.
    Verification,
    /// A called subscriber reports a call.
    Complaint,
}

/// One event, owned, with the members the detectors and the indexes use. The line as
/// received is kept beside it by the store (see [`ParsedLine`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `kind`.
    pub kind: Kind,
    /// `time`: integer seconds since the epoch (event time).
    pub time: u64,
    /// `from`: the calling number, E.164 digits.
    pub from: String,
    /// `to`: the called numbers, E.164 digits (at least one).
    pub to: Vec<String>,
    /// `verstat` (absent for complaints).
    pub verstat: Option<String>,
    /// `reasoncode`.
    pub reasoncode: Option<u16>,
    /// `attest`: `A`, `B` or `C`.
    pub attest: Option<String>,
    /// `spc`: the signing carrier's SPC.
    pub spc: Option<String>,
    /// `origid`.
    pub origid: Option<String>,
    /// `x5u`.
    pub x5u: Option<String>,
    /// `flags`.
    pub flags: Vec<String>,
    /// `ingress`: `international`, `interconnect`, `local` or a trunk name.
    pub ingress: Option<String>,
    /// `firm`: the white-listed marketing firm, for a marketing call.
    pub firm: Option<String>,
}

/// A parsed line and its text, as the store keeps it.
#[derive(Clone, Debug)]
pub struct ParsedLine<'a> {
    /// The event.
    pub event: Event,
    /// The line as received (one JSON object, no newline).
    pub raw: &'a str,
}
