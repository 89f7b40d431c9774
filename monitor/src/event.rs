//! One call event, as a verifier writes it (or a complaint), parsed from one JSON line.
//!
//! The verifier's event line (`verifier/src/events.rs`) carries `time`, `from`, `to`, then the
//! verdict's members: `verstat`, `reasoncode`, `reasontext`, `reasondesc`, `attest`,
//! `origid`, `spc`, `x5u`, `rcd`, `crn`, `firm`, `flags`. The monitor adds two optional
//! members: `ingress` (where the call entered the terminating network) and `kind`
//! (`verification`, the default, or `complaint`).
//!
//! The rules, each with its own [`EventError`]:
//! - one JSON object a line, at most [`MAX_LINE_BYTES`] bytes, UTF-8 (a bad line is an error
//!   for that line only: [`parse_body`] goes on with the next);
//! - `time`: integer seconds since the epoch (no fraction, no sign, no string);
//! - `from` and every `to`: E.164 digits, 1 to 15, no `+`, no leading `0` (no national form,
//!   no default country applied); `to` is an array of at least one number, at most
//!   [`MAX_CALLEES`];
//! - a verification carries `verstat`, one of the three verstat values;
//! - members the verifier omits may be absent or `null`; members this monitor does not know
//!   are ignored (a newer verifier may add some); a member given twice is refused.
//!
//! Parsing borrows the line's strings where it can (serde into a private struct of borrowed
//! fields), then copies what the detectors and indexes use into an owned [`Event`].

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The longest line accepted, in bytes (without its newline).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The most called numbers one event may carry.
pub const MAX_CALLEES: usize = 64;

/// The most flags one event may carry.
pub const MAX_FLAGS: usize = 32;

/// The three verstat values a verifier answers.
pub const VERSTATS: [&str; 3] = [
    "TN-Validation-Passed",
    "TN-Validation-Failed",
    "No-TN-Validation",
];

/// What an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A verification (the default): the verifier's event line.
    Verification,
    /// A called subscriber reports a call.
    Complaint,
}

impl Kind {
    /// The name the event line uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verification => "verification",
            Self::Complaint => "complaint",
        }
    }
}

/// One event, owned, with the members the detectors and the indexes use. The line as
/// received is kept beside it by the store (see [`ParsedLine`]). Values produced by
/// [`parse_line`] always satisfy the module's rules.
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

impl Event {
    /// Whether the verifier flagged the call with `flag` (e.g. `spoofed`).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// A parsed line and its text, as the store keeps it.
#[derive(Clone, Debug)]
pub struct ParsedLine<'a> {
    /// The event.
    pub event: Event,
    /// The line as received (one JSON object, no newline, no trailing carriage return).
    pub raw: &'a str,
}

/// What is wrong with a telephone number member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberProblem {
    /// The empty string.
    Empty,
    /// More than 15 digits.
    TooLong,
    /// A leading `+` (the verifier writes digits only).
    Plus,
    /// A character other than a digit.
    NotDigits,
    /// A leading `0`: a national form (no country code starts with 0).
    NationalForm,
}

impl fmt::Display for NumberProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "it is empty",
            Self::TooLong => "it has more than 15 digits",
            Self::Plus => "it starts with '+' (write E.164 digits only)",
            Self::NotDigits => "it holds a character other than a digit",
            Self::NationalForm => "it starts with 0 (a national form, not E.164)",
        })
    }
}

/// Why a line was refused. The messages never repeat a telephone number (they may be
/// logged); they name the member and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The line is longer than [`MAX_LINE_BYTES`].
    #[error("the line has {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The line is not UTF-8.
    #[error("the line is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The offset of the first invalid byte.
        offset: usize,
    },
    /// Not one JSON object (or a member given twice).
    #[error("not one JSON object: {detail}")]
    Syntax {
        /// serde_json's description, with the column.
        detail: String,
    },
    /// A required member is absent or null.
    #[error("`{member}` is missing")]
    Missing {
        /// The member.
        member: &'static str,
    },
    /// A member has the wrong JSON type.
    #[error("`{member}` must be {expected}, not {found}")]
    WrongType {
        /// The member.
        member: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        found: &'static str,
    },
    /// `time` has a fractional part.
    #[error("`time` must be integer seconds, not a fractional number")]
    TimeNotInteger,
    /// `time` is negative.
    #[error("`time` must not be negative")]
    TimeNegative,
    /// `time` is past [`MAX_TIME`] (it cannot be a call's time: seconds, not milliseconds).
    #[error("`time` is beyond {max} (epoch seconds, not milliseconds)")]
    TimeTooLarge {
        /// The largest accepted.
        max: u64,
    },
    /// `to` is an empty array.
    #[error("`to` must hold at least one number")]
    NoCallee,
    /// `to` holds more than [`MAX_CALLEES`] numbers.
    #[error("`to` holds {count} numbers, more than the {max} allowed")]
    TooManyCallees {
        /// How many.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// `flags` holds more than [`MAX_FLAGS`] flags.
    #[error("`flags` holds {count} flags, more than the {max} allowed")]
    TooManyFlags {
        /// How many.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// A number is not E.164 digits.
    #[error("`{member}` is not an E.164 number: {problem}")]
    BadNumber {
        /// `from` or `to`.
        member: &'static str,
        /// What is wrong.
        problem: NumberProblem,
    },
    /// `kind` is neither `verification` nor `complaint`.
    #[error("`kind` must be \"verification\" or \"complaint\", not {0:?}")]
    UnknownKind(String),
    /// `verstat` is not one of the three values.
    #[error("`verstat` must be one of TN-Validation-Passed, TN-Validation-Failed, No-TN-Validation, not {0:?}")]
    UnknownVerstat(String),
    /// `attest` is not `A`, `B` or `C`.
    #[error("`attest` must be \"A\", \"B\" or \"C\", not {0:?}")]
    BadAttest(String),
    /// `reasoncode` is not a SIP code (100..=699).
    #[error("`reasoncode` must be a SIP status code (100 to 699), not {0}")]
    BadReasonCode(String),
}

/// A JSON value as seen by the parser: enough of its shape to name what is wrong, borrowing
/// strings from the line when they have no escapes.
#[derive(Debug)]
enum Loose<'a> {
    Null,
    Bool,
    Unsigned(u64),
    Negative,
    Float,
    Str(Cow<'a, str>),
    Array(Vec<Loose<'a>>),
    Object,
}

impl Loose<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool => "a boolean",
            Self::Unsigned(_) | Self::Negative | Self::Float => "a number",
            Self::Str(_) => "a string",
            Self::Array(_) => "an array",
            Self::Object => "an object",
        }
    }
}

struct LooseVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for LooseVisitor<'a> {
    type Value = Loose<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Loose::Unsigned(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).map_or(Loose::Negative, Loose::Unsigned))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Loose::Float)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Loose<'a>>()? {
            // The line cap bounds the count; MAX_CALLEES and MAX_FLAGS are checked after.
            items.push(item);
        }
        Ok(Loose::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Object)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor(PhantomData))
    }
}

/// The line's members, borrowed. Unknown members are ignored; a duplicate is a syntax error.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow, default)]
    kind: Option<Loose<'a>>,
    #[serde(borrow, default)]
    time: Option<Loose<'a>>,
    #[serde(borrow, default)]
    from: Option<Loose<'a>>,
    #[serde(borrow, default)]
    to: Option<Loose<'a>>,
    #[serde(borrow, default)]
    verstat: Option<Loose<'a>>,
    #[serde(borrow, default)]
    reasoncode: Option<Loose<'a>>,
    #[serde(borrow, default)]
    reasontext: Option<Loose<'a>>,
    #[serde(borrow, default)]
    reasondesc: Option<Loose<'a>>,
    #[serde(borrow, default)]
    attest: Option<Loose<'a>>,
    #[serde(borrow, default)]
    origid: Option<Loose<'a>>,
    #[serde(borrow, default)]
    spc: Option<Loose<'a>>,
    #[serde(borrow, default)]
    x5u: Option<Loose<'a>>,
    #[serde(borrow, default)]
    rcd: Option<Loose<'a>>,
    #[serde(borrow, default)]
    crn: Option<Loose<'a>>,
    #[serde(borrow, default)]
    firm: Option<Loose<'a>>,
    #[serde(borrow, default)]
    flags: Option<Loose<'a>>,
    #[serde(borrow, default)]
    ingress: Option<Loose<'a>>,
}

/// A present, non-null member.
fn present<'a>(value: Option<Loose<'a>>) -> Option<Loose<'a>> {
    value.filter(|v| !matches!(v, Loose::Null))
}

fn required<'a>(value: Option<Loose<'a>>, member: &'static str) -> Result<Loose<'a>, EventError> {
    present(value).ok_or(EventError::Missing { member })
}

fn string<'a>(value: Loose<'a>, member: &'static str) -> Result<Cow<'a, str>, EventError> {
    match value {
        Loose::Str(s) => Ok(s),
        other => Err(EventError::WrongType {
            member,
            expected: "a string",
            found: other.name(),
        }),
    }
}

fn optional_string(
    value: Option<Loose<'_>>,
    member: &'static str,
) -> Result<Option<String>, EventError> {
    present(value)
        .map(|v| string(v, member).map(Cow::into_owned))
        .transpose()
}

/// Checks an E.164 number as the verifier writes it: 1 to 15 digits, no `+`, no leading 0.
pub fn check_number(text: &str) -> Result<(), NumberProblem> {
    let bytes = text.as_bytes();
    match bytes.first() {
        None => Err(NumberProblem::Empty),
        Some(b'+') => Err(NumberProblem::Plus),
        _ if !bytes.iter().all(u8::is_ascii_digit) => Err(NumberProblem::NotDigits),
        _ if bytes.len() > 15 => Err(NumberProblem::TooLong),
        Some(b'0') => Err(NumberProblem::NationalForm),
        _ => Ok(()),
    }
}

fn number(value: Loose<'_>, member: &'static str) -> Result<String, EventError> {
    let text = string(value, member)?;
    check_number(&text).map_err(|problem| EventError::BadNumber { member, problem })?;
    Ok(text.into_owned())
}

/// The largest `time` accepted: 2100-01-01T00:00:00Z. Window arithmetic (`time + window`)
/// never overflows below it, and a time in milliseconds is refused rather than taken for a
/// date centuries ahead.
pub const MAX_TIME: u64 = 4_102_444_800;

fn time(value: Loose<'_>) -> Result<u64, EventError> {
    match value {
        Loose::Unsigned(t) if t > MAX_TIME => Err(EventError::TimeTooLarge { max: MAX_TIME }),
        Loose::Unsigned(t) => Ok(t),
        Loose::Negative => Err(EventError::TimeNegative),
        Loose::Float => Err(EventError::TimeNotInteger),
        other => Err(EventError::WrongType {
            member: "time",
            expected: "integer seconds",
            found: other.name(),
        }),
    }
}

fn array<'a>(value: Loose<'a>, member: &'static str) -> Result<Vec<Loose<'a>>, EventError> {
    match value {
        Loose::Array(items) => Ok(items),
        other => Err(EventError::WrongType {
            member,
            expected: "an array",
            found: other.name(),
        }),
    }
}

/// Parses one event line (without its newline).
pub fn parse_line(line: &str) -> Result<Event, EventError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(EventError::TooLong {
            len: line.len(),
            max: MAX_LINE_BYTES,
        });
    }
    // A derived struct also accepts a JSON array (members by position): refuse it first.
    if !line.trim_start().starts_with('{') {
        return Err(EventError::Syntax {
            detail: "the line is not a JSON object".into(),
        });
    }
    let raw: RawEvent<'_> = serde_json::from_str(line).map_err(|e| EventError::Syntax {
        detail: e.to_string(),
    })?;
    let kind = match present(raw.kind) {
        None => Kind::Verification,
        Some(value) => match string(value, "kind")?.as_ref() {
            "verification" => Kind::Verification,
            "complaint" => Kind::Complaint,
            other => return Err(EventError::UnknownKind(other.to_owned())),
        },
    };
    let time = time(required(raw.time, "time")?)?;
    let from = number(required(raw.from, "from")?, "from")?;
    let callees = array(required(raw.to, "to")?, "to")?;
    if callees.is_empty() {
        return Err(EventError::NoCallee);
    }
    if callees.len() > MAX_CALLEES {
        return Err(EventError::TooManyCallees {
            count: callees.len(),
            max: MAX_CALLEES,
        });
    }
    let to = callees
        .into_iter()
        .map(|v| number(v, "to"))
        .collect::<Result<Vec<_>, _>>()?;
    let verstat = match present(raw.verstat) {
        Some(value) => {
            let text = string(value, "verstat")?;
            if !VERSTATS.contains(&text.as_ref()) {
                return Err(EventError::UnknownVerstat(text.into_owned()));
            }
            Some(text.into_owned())
        }
        None if kind == Kind::Verification => {
            return Err(EventError::Missing { member: "verstat" })
        }
        None => None,
    };
    let reasoncode = match present(raw.reasoncode) {
        None => None,
        Some(Loose::Unsigned(code)) => match u16::try_from(code) {
            Ok(code) if (100..=699).contains(&code) => Some(code),
            _ => return Err(EventError::BadReasonCode(code.to_string())),
        },
        Some(Loose::Negative | Loose::Float) => {
            return Err(EventError::BadReasonCode(
                "a negative or fractional number".into(),
            ))
        }
        Some(other) => {
            return Err(EventError::WrongType {
                member: "reasoncode",
                expected: "an integer",
                found: other.name(),
            })
        }
    };
    let attest = optional_string(raw.attest, "attest")?;
    if let Some(a) = &attest {
        if !matches!(a.as_str(), "A" | "B" | "C") {
            return Err(EventError::BadAttest(a.clone()));
        }
    }
    let flags = match present(raw.flags) {
        None => Vec::new(),
        Some(value) => {
            let items = array(value, "flags")?;
            if items.len() > MAX_FLAGS {
                return Err(EventError::TooManyFlags {
                    count: items.len(),
                    max: MAX_FLAGS,
                });
            }
            items
                .into_iter()
                .map(|v| string(v, "flags").map(Cow::into_owned))
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    // Members kept only in the raw line: their type is still checked.
    for (value, member) in [
        (raw.reasontext, "reasontext"),
        (raw.reasondesc, "reasondesc"),
        (raw.crn, "crn"),
    ] {
        if let Some(v) = present(value) {
            string(v, member)?;
        }
    }
    if let Some(v) = present(raw.rcd) {
        if !matches!(v, Loose::Object) {
            return Err(EventError::WrongType {
                member: "rcd",
                expected: "an object",
                found: v.name(),
            });
        }
    }
    Ok(Event {
        kind,
        time,
        from,
        to,
        verstat,
        reasoncode,
        attest,
        spc: optional_string(raw.spc, "spc")?,
        origid: optional_string(raw.origid, "origid")?,
        x5u: optional_string(raw.x5u, "x5u")?,
        flags,
        ingress: optional_string(raw.ingress, "ingress")?,
        firm: optional_string(raw.firm, "firm")?,
    })
}

/// Parses a body of JSON lines: one result per non-blank line with its 1-based line number,
/// in order. A bad line is an error for that line only. Lines end with `\n`; a `\r` before
/// it is dropped (senders on Windows write CRLF; JSON never needs a bare trailing `\r`).
pub fn parse_body(body: &[u8]) -> Vec<(usize, Result<ParsedLine<'_>, EventError>)> {
    let mut out = Vec::new();
    for (index, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let number = index + 1;
        if line.len() > MAX_LINE_BYTES {
            out.push((
                number,
                Err(EventError::TooLong {
                    len: line.len(),
                    max: MAX_LINE_BYTES,
                }),
            ));
            continue;
        }
        let result = match std::str::from_utf8(line) {
            Err(e) => Err(EventError::NotUtf8 {
                offset: e.valid_up_to(),
            }),
            Ok(raw) => parse_line(raw).map(|event| ParsedLine { event, raw }),
        };
        out.push((number, result));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER_LINE: &str = r#"{"time":1700000000,"from":"8613800000001","to":["8613900000002"],"verstat":"TN-Validation-Passed","attest":"A","origid":"4437c7eb-8f7a-4b8d-9d0c-6a8bd4e3c5a1","spc":"1001","x5u":"https://cr.example/c.pem","rcd":{"nam":"Example Insurance"},"crn":"Policy renewal","firm":"F1","flags":["marketing"]}"#;

    #[test]
    fn the_verifiers_line_parses() {
        let event = parse_line(VERIFIER_LINE).unwrap();
        assert_eq!(event.kind, Kind::Verification);
        assert_eq!(event.time, 1_700_000_000);
        assert_eq!(event.from, "8613800000001");
        assert_eq!(event.to, vec!["8613900000002".to_string()]);
        assert_eq!(event.verstat.as_deref(), Some("TN-Validation-Passed"));
        assert_eq!(event.attest.as_deref(), Some("A"));
        assert_eq!(event.spc.as_deref(), Some("1001"));
        assert_eq!(event.firm.as_deref(), Some("F1"));
        assert_eq!(event.flags, vec!["marketing".to_string()]);
        assert!(event.has_flag("marketing"));
        assert_eq!(event.ingress, None);
    }

    #[test]
    fn a_failure_line_parses() {
        let line = r#"{"time":5,"from":"12025550100","to":["12025550101","12025550102"],"verstat":"TN-Validation-Failed","reasoncode":438,"reasontext":"Invalid Identity Header","reasondesc":"bad signature","spc":"709J","flags":["spoofed"],"ingress":"international","future":{"x":1}}"#;
        let event = parse_line(line).unwrap();
        assert_eq!(event.reasoncode, Some(438));
        assert_eq!(event.to.len(), 2);
        assert_eq!(event.ingress.as_deref(), Some("international"));
    }

    #[test]
    fn a_complaint_needs_no_verstat_and_nulls_are_absent() {
        let line = r#"{"kind":"complaint","time":7,"from":"8613800000001","to":["8613900000002"],"origid":null,"spc":null}"#;
        let event = parse_line(line).unwrap();
        assert_eq!(event.kind, Kind::Complaint);
        assert_eq!(event.origid, None);
        assert_eq!(event.verstat, None);
    }

    #[test]
    fn escaped_strings_are_read() {
        let line = r#"{"time":7,"from":"1202555","to":["1202556"],"verstat":"No-TN-Validation","origid":"a\"b\u00e9"}"#;
        assert_eq!(parse_line(line).unwrap().origid.as_deref(), Some("a\"bé"));
    }

    #[test]
    fn each_rule_has_its_error() {
        let base = |members: &str| {
            format!(
                r#"{{"from":"12025550100","to":["12025550101"],"verstat":"No-TN-Validation",{members}}}"#
            )
        };
        let cases = [
            (base(r#""time":1.5"#), EventError::TimeNotInteger),
            (base(r#""time":-1"#), EventError::TimeNegative),
            (
                base(r#""time":1700000000000"#),
                EventError::TimeTooLarge { max: MAX_TIME },
            ),
            (
                base(r#""time":18446744073709551615"#),
                EventError::TimeTooLarge { max: MAX_TIME },
            ),
            (
                base(r#""time":"1""#),
                EventError::WrongType {
                    member: "time",
                    expected: "integer seconds",
                    found: "a string",
                },
            ),
            (
                base(r#""time":null"#),
                EventError::Missing { member: "time" },
            ),
            (
                base(r#""time":1,"kind":"survey""#),
                EventError::UnknownKind("survey".into()),
            ),
            (
                base(r#""time":1,"attest":"D""#),
                EventError::BadAttest("D".into()),
            ),
            (
                base(r#""time":1,"reasoncode":99"#),
                EventError::BadReasonCode("99".into()),
            ),
            (
                base(r#""time":1,"flags":"spoofed""#),
                EventError::WrongType {
                    member: "flags",
                    expected: "an array",
                    found: "a string",
                },
            ),
            (
                base(r#""time":1,"rcd":"x""#),
                EventError::WrongType {
                    member: "rcd",
                    expected: "an object",
                    found: "a string",
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_line(&line), Err(expected), "{line}");
        }
        let numbers = [
            (
                r#""from":"+12025550100","to":["1"]"#,
                "from",
                NumberProblem::Plus,
            ),
            (
                r#""from":"02025550100","to":["1"]"#,
                "from",
                NumberProblem::NationalForm,
            ),
            (
                r#""from":"1202555010012345","to":["1"]"#,
                "from",
                NumberProblem::TooLong,
            ),
            (r#""from":"1","to":["12a"]"#, "to", NumberProblem::NotDigits),
            (r#""from":"1","to":[""]"#, "to", NumberProblem::Empty),
        ];
        for (members, member, problem) in numbers {
            let line = format!(r#"{{"time":1,"verstat":"No-TN-Validation",{members}}}"#);
            assert_eq!(
                parse_line(&line),
                Err(EventError::BadNumber { member, problem }),
                "{line}"
            );
        }
        let no_verstat = r#"{"time":1,"from":"1","to":["2"]}"#;
        assert_eq!(
            parse_line(no_verstat),
            Err(EventError::Missing { member: "verstat" })
        );
        let bad_verstat = r#"{"time":1,"from":"1","to":["2"],"verstat":"ok"}"#;
        assert_eq!(
            parse_line(bad_verstat),
            Err(EventError::UnknownVerstat("ok".into()))
        );
        let to_string = r#"{"time":1,"from":"1","to":"2","verstat":"No-TN-Validation"}"#;
        assert!(matches!(
            parse_line(to_string),
            Err(EventError::WrongType { member: "to", .. })
        ));
        let to_empty = r#"{"time":1,"from":"1","to":[],"verstat":"No-TN-Validation"}"#;
        assert_eq!(parse_line(to_empty), Err(EventError::NoCallee));
        let duplicate = r#"{"time":1,"time":2,"from":"1","to":["2"],"verstat":"No-TN-Validation"}"#;
        assert!(matches!(
            parse_line(duplicate),
            Err(EventError::Syntax { .. })
        ));
        assert!(matches!(parse_line("[1]"), Err(EventError::Syntax { .. })));
        assert!(matches!(
            parse_line(r#"{"time":1} x"#),
            Err(EventError::Syntax { .. })
        ));
    }

    #[test]
    fn errors_never_repeat_the_number() {
        let line = r#"{"time":1,"from":"+8613812345678","to":["2"],"verstat":"No-TN-Validation"}"#;
        let message = parse_line(line).unwrap_err().to_string();
        assert!(!message.contains("13812345678"), "{message}");
        assert!(message.contains("`from`"), "{message}");
    }

    #[test]
    fn a_body_keeps_good_lines_around_bad_ones() {
        let mut body = Vec::new();
        body.extend_from_slice(VERIFIER_LINE.as_bytes());
        body.extend_from_slice(b"\r\n\n   \n{\"time\":1}\n");
        body.extend_from_slice(b"{\"time\":1,\"from\":\"\xff\"}\n");
        body.extend_from_slice(VERIFIER_LINE.as_bytes());
        let long = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_LINE_BYTES));
        body.extend_from_slice(b"\n");
        body.extend_from_slice(long.as_bytes());
        let results = parse_body(&body);
        let numbers: Vec<usize> = results.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, vec![1, 4, 5, 6, 7]);
        assert_eq!(results[0].1.as_ref().unwrap().raw, VERIFIER_LINE);
        assert_eq!(
            results[1].1.as_ref().unwrap_err(),
            &EventError::Missing { member: "from" }
        );
        assert_eq!(
            results[2].1.as_ref().unwrap_err(),
            &EventError::NotUtf8 { offset: 18 }
        );
        assert!(results[3].1.is_ok());
        assert!(matches!(
            results[4].1.as_ref().unwrap_err(),
            EventError::TooLong { .. }
        ));
    }
}
