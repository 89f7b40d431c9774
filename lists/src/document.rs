//! The list document: what the regulator publishes, read from TOML or JSON into typed values
//! that are always consistent, and written back as canonical JSON (the signed payload).
//!
//! The shape (TOML uses the same keys; `[[firms]]` tables):
//!
//! ```json
//! {"version": 7, "issued_at": 1764000000, "expires_at": 1766592000,
//!  "firms": [{"id": "91310000MA1FL1234X", "name": "Example Insurance Co.",
//!             "status": "white-listed", "numbers": ["8613800138000", "862158880000-862158889999"],
//!             "hourly_quota": 1000, "reasons": ["Policy renewal"]}],
//!  "blacklisted_numbers": ["8617000000001", "8617100000000-8617100009999"]}
//! ```
//!
//! Rules checked here, each with its own [`DocumentError`]:
//! - unknown or missing members are refused (`blacklisted_numbers` may be left out: empty);
//! - numbers are E.164 digits without `+`, 1 to 15 digits, not starting with 0; a range is
//!   `FIRST-LAST`, two digit strings of the same length with FIRST <= LAST, and holds only
//!   numbers of that length;
//! - firm ids are 1 to 64 characters of `A-Z a-z 0-9 - _ .` and unique; names are 1 to 64
//!   characters without control characters (RFC 9795 `nam` is shown on a phone); reasons the
//!   same, unique per firm; the hourly quota is 0 or more (0: no calls);
//! - `issued_at < expires_at`;
//! - every number is listed at most once in the whole document: two firms may not share a
//!   number, and a number may not be both a firm's and in `blacklisted_numbers` (the list
//!   would be inconsistent: blacklist the firm, or remove the number from it).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{DocumentError, NumberProblem, Owner, TextProblem};

/// The most digits of an E.164 number.
pub const MAX_DIGITS: usize = 15;
/// The most characters of a firm's id.
pub const MAX_ID_CHARS: usize = 64;
/// The most characters of a firm's name.
pub const MAX_NAME_CHARS: usize = 64;
/// The most characters of a call reason.
pub const MAX_REASON_CHARS: usize = 64;

/// The syntax a document is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON (what is signed).
    Json,
    /// TOML (what people write).
    Toml,
}

impl Format {
    /// The format of a file: by its extension (`.json`, `.toml`, any case), else by its
    /// content: JSON when the first non-blank byte is `{`, TOML otherwise.
    pub fn of_file(path: &Path, content: &[u8]) -> Self {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("json") => Self::Json,
            Some("toml") => Self::Toml,
            _ => Self::sniff(content),
        }
    }

    /// JSON when the first non-blank byte is `{`, TOML otherwise.
    pub fn sniff(content: &[u8]) -> Self {
        match content.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::Json,
            _ => Self::Toml,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Toml => "TOML",
        }
    }
}

/// A firm's standing with the regulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FirmStatus {
    /// May place marketing calls, branded with its vetted name.
    WhiteListed,
    /// May not call for now.
    Suspended,
    /// May not call: it harassed.
    Blacklisted,
}

impl FirmStatus {
    /// The spelling in the document: `white-listed`, `suspended`, `blacklisted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WhiteListed => "white-listed",
            Self::Suspended => "suspended",
            Self::Blacklisted => "blacklisted",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "white-listed" => Some(Self::WhiteListed),
            "suspended" => Some(Self::Suspended),
            "blacklisted" => Some(Self::Blacklisted),
            _ => None,
        }
    }
}

impl fmt::Display for FirmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A number or a range of numbers of one length: `8613800138000` or
/// `862158880000-862158889999`. Always well formed: 1 to 15 digits, no leading 0,
/// `first <= last`. Displays as written in the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NumberEntry {
    digits: u8,
    first: u64,
    last: u64,
    range: bool,
}

impl NumberEntry {
    /// Parses `DIGITS` or `FIRST-LAST`.
    pub fn parse(text: &str) -> Result<Self, NumberProblem> {
        match text.split_once('-') {
            None => {
                let (digits, value) = parse_digits(text)?;
                Ok(Self {
                    digits,
                    first: value,
                    last: value,
                    range: false,
                })
            }
            Some((first, last)) => {
                let (digits, first) = parse_digits(first)?;
                let (last_digits, last) = parse_digits(last)?;
                if digits != last_digits {
                    return Err(NumberProblem::RangeLengths);
                }
                if first > last {
                    return Err(NumberProblem::RangeOrder);
                }
                Ok(Self {
                    digits,
                    first,
                    last,
                    range: true,
                })
            }
        }
    }

    /// The number of digits of every number in the entry.
    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// The first number, as an integer.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The last number, as an integer (the first, for a single number).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Whether it was written as a range.
    pub fn is_range(&self) -> bool {
        self.range
    }

    /// How many numbers it holds.
    pub fn count(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Whether it holds the number `digits` digits long with this value.
    pub fn contains(&self, digits: u8, value: u64) -> bool {
        self.digits == digits && self.first <= value && value <= self.last
    }
}

impl fmt::Display for NumberEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = usize::from(self.digits);
        if self.range {
            write!(f, "{:0width$}-{:0width$}", self.first, self.last)
        } else {
            write!(f, "{:0width$}", self.first)
        }
    }
}

/// Parses 1 to 15 ASCII digits not starting with 0: `(length, value)`.
pub(crate) fn parse_digits(text: &str) -> Result<(u8, u64), NumberProblem> {
    if text.is_empty() || text.len() > MAX_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberProblem::NotDigits);
    }
    if text.starts_with('0') {
        return Err(NumberProblem::LeadingZero);
    }
    let value = text.parse().map_err(|_| NumberProblem::NotDigits)?;
    let digits = u8::try_from(text.len()).map_err(|_| NumberProblem::NotDigits)?;
    Ok((digits, value))
}

/// A marketing firm as the regulator lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firm {
    /// Its id (for example a unified social credit code); unique in the document.
    pub id: String,
    /// The vetted display name (RFC 9795 `nam`), 1 to 64 characters.
    pub name: String,
    /// Its standing.
    pub status: FirmStatus,
    /// The numbers and ranges it calls from.
    pub numbers: Vec<NumberEntry>,
    /// Signed calls allowed per hour (0: none).
    pub hourly_quota: u64,
    /// The call reasons (RFC 9795 `crn`) it may state, unique.
    pub reasons: Vec<String>,
}

impl Firm {
    /// Whether `reason` is one of the firm's reasons (exact match).
    pub fn may_state(&self, reason: &str) -> bool {
        self.reasons.iter().any(|r| r == reason)
    }

    /// How many numbers its entries hold.
    pub fn number_count(&self) -> u64 {
        self.numbers.iter().map(NumberEntry::count).sum()
    }
}

/// A validated list document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListDocument {
    /// Increases with every published list; consumers refuse an older one.
    pub version: u64,
    /// When the regulator issued it, seconds since the epoch.
    pub issued_at: u64,
    /// When it stops being valid, seconds since the epoch; after `issued_at`.
    pub expires_at: u64,
    /// The marketing firms, ids unique.
    pub firms: Vec<Firm>,
    /// Numbers blacklisted on their own (no listed firm holds them).
    pub blacklisted_numbers: Vec<NumberEntry>,
}

/// The document as written, before validation.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    version: u64,
    issued_at: u64,
    expires_at: u64,
    firms: Vec<RawFirm>,
    #[serde(default)]
    blacklisted_numbers: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawFirm {
    id: String,
    name: String,
    status: String,
    numbers: Vec<String>,
    hourly_quota: i64,
    reasons: Vec<String>,
}

impl ListDocument {
    /// Reads and validates a document in `format`.
    pub fn parse(bytes: &[u8], format: Format) -> Result<Self, DocumentError> {
        let syntax = |detail: String| DocumentError::Syntax {
            format: format.name(),
            detail,
        };
        let raw: RawDocument = match format {
            Format::Json => serde_json::from_slice(bytes).map_err(|e| syntax(e.to_string()))?,
            Format::Toml => {
                let text =
                    std::str::from_utf8(bytes).map_err(|e| syntax(format!("not UTF-8: {e}")))?;
                toml::from_str(text).map_err(|e| syntax(toml_message(text, &e)))?
            }
        };
        Self::validate(raw)
    }

    /// Reads a document from a file's content: the format by extension, else by content.
    pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<Self, DocumentError> {
        Self::parse(bytes, Format::of_file(path, bytes))
    }

    fn validate(raw: RawDocument) -> Result<Self, DocumentError> {
        if raw.issued_at >= raw.expires_at {
            return Err(DocumentError::Times {
                issued_at: raw.issued_at,
                expires_at: raw.expires_at,
            });
        }
        let mut ids = HashSet::with_capacity(raw.firms.len());
        let mut firms = Vec::with_capacity(raw.firms.len());
        for (position, firm) in raw.firms.into_iter().enumerate() {
            let firm = validate_firm(position + 1, firm)?;
            if !ids.insert(firm.id.clone()) {
                return Err(DocumentError::DuplicateFirm(firm.id));
            }
            firms.push(firm);
        }
        let blacklisted_numbers = raw
            .blacklisted_numbers
            .iter()
            .map(|n| parse_entry(n, &Owner::Blacklist))
            .collect::<Result<Vec<_>, _>>()?;
        let document = Self {
            version: raw.version,
            issued_at: raw.issued_at,
            expires_at: raw.expires_at,
            firms,
            blacklisted_numbers,
        };
        document.check_overlaps()?;
        Ok(document)
    }

    /// Refuses two entries sharing a number, naming both.
    fn check_overlaps(&self) -> Result<(), DocumentError> {
        // (entry, owner: the firm's position, or None for the blacklist)
        let mut entries: Vec<(NumberEntry, Option<usize>)> = self
            .firms
            .iter()
            .enumerate()
            .flat_map(|(i, firm)| firm.numbers.iter().map(move |n| (*n, Some(i))))
            .chain(self.blacklisted_numbers.iter().map(|n| (*n, None)))
            .collect();
        entries.sort_unstable_by_key(|(n, _)| (n.digits, n.first, n.last));
        // The entry reaching furthest among those of the same length seen so far: any later
        // entry starting at or before its end overlaps it.
        let mut widest: Option<(NumberEntry, Option<usize>)> = None;
        for (entry, owner) in entries {
            if let Some((wide, wide_owner)) = widest {
                if wide.digits == entry.digits && entry.first <= wide.last {
                    return Err(DocumentError::Overlap {
                        first_owner: self.owner(wide_owner),
                        first: wide.to_string(),
                        second_owner: self.owner(owner),
                        second: entry.to_string(),
                    });
                }
            }
            widest = match widest {
                Some((wide, _)) if wide.digits == entry.digits && wide.last >= entry.last => widest,
                _ => Some((entry, owner)),
            };
        }
        Ok(())
    }

    fn owner(&self, position: Option<usize>) -> Owner {
        match position.and_then(|i| self.firms.get(i)) {
            Some(firm) => Owner::Firm(firm.id.clone()),
            None => Owner::Blacklist,
        }
    }

    /// How many numbers the firms' entries hold, ranges counted in full.
    pub fn firm_number_count(&self) -> u64 {
        self.firms.iter().map(Firm::number_count).sum()
    }

    /// How many numbers `blacklisted_numbers` holds, ranges counted in full.
    pub fn blacklisted_number_count(&self) -> u64 {
        self.blacklisted_numbers
            .iter()
            .map(NumberEntry::count)
            .sum()
    }

    /// The firm with this id.
    pub fn firm(&self, id: &str) -> Option<&Firm> {
        self.firms.iter().find(|f| f.id == id)
    }

    /// The document as canonical JSON: members sorted by name at every level, no whitespace,
    /// arrays in document order; what is signed. A TOML and a JSON file with the same content
    /// give the same bytes.
    pub fn canonical_json(&self) -> String {
        let firms = self
            .firms
            .iter()
            .map(|firm| {
                let mut map = Map::new();
                map.insert("id".into(), firm.id.clone().into());
                map.insert("name".into(), firm.name.clone().into());
                map.insert("status".into(), firm.status.as_str().into());
                map.insert("numbers".into(), entries_json(&firm.numbers));
                map.insert("hourly_quota".into(), firm.hourly_quota.into());
                map.insert(
                    "reasons".into(),
                    Value::Array(firm.reasons.iter().map(|r| r.clone().into()).collect()),
                );
                Value::Object(map)
            })
            .collect();
        let mut map = Map::new();
        map.insert("version".into(), self.version.into());
        map.insert("issued_at".into(), self.issued_at.into());
        map.insert("expires_at".into(), self.expires_at.into());
        map.insert("firms".into(), Value::Array(firms));
        map.insert(
            "blacklisted_numbers".into(),
            entries_json(&self.blacklisted_numbers),
        );
        let mut out = String::new();
        write_canonical(&mut out, &Value::Object(map));
        out
    }
}

fn entries_json(entries: &[NumberEntry]) -> Value {
    Value::Array(entries.iter().map(|n| n.to_string().into()).collect())
}

/// Writes `value` with object members sorted by name (explicitly: not relying on
/// `serde_json::Map`'s ordering, which a feature of another crate could change).
fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (name, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(name.as_str()).to_string());
                out.push(':');
                write_canonical(out, value);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        // Strings, numbers, booleans and null have one compact form in serde_json.
        other => out.push_str(&other.to_string()),
    }
}

fn validate_firm(position: usize, raw: RawFirm) -> Result<Firm, DocumentError> {
    let id_problem = if raw.id.is_empty() {
        Some(TextProblem::Empty)
    } else if raw.id.chars().count() > MAX_ID_CHARS {
        Some(TextProblem::TooLong(MAX_ID_CHARS))
    } else if !raw
        .id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Some(TextProblem::Character)
    } else {
        None
    };
    if let Some(problem) = id_problem {
        return Err(DocumentError::FirmId {
            index: position,
            id: raw.id,
            problem,
        });
    }
    let id = raw.id;
    if let Some(problem) = text_problem(&raw.name, MAX_NAME_CHARS) {
        return Err(DocumentError::FirmName {
            firm: id,
            name: raw.name,
            problem,
        });
    }
    let Some(status) = FirmStatus::parse(&raw.status) else {
        return Err(DocumentError::FirmStatus {
            firm: id,
            status: raw.status,
        });
    };
    let Ok(hourly_quota) = u64::try_from(raw.hourly_quota) else {
        return Err(DocumentError::FirmQuota {
            firm: id,
            quota: raw.hourly_quota,
        });
    };
    let mut seen = HashSet::with_capacity(raw.reasons.len());
    for reason in &raw.reasons {
        if let Some(problem) = text_problem(reason, MAX_REASON_CHARS) {
            return Err(DocumentError::Reason {
                firm: id,
                reason: reason.clone(),
                problem,
            });
        }
        if !seen.insert(reason.as_str()) {
            return Err(DocumentError::DuplicateReason {
                firm: id,
                reason: reason.clone(),
            });
        }
    }
    let owner = Owner::Firm(id.clone());
    let numbers = raw
        .numbers
        .iter()
        .map(|n| parse_entry(n, &owner))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Firm {
        id,
        name: raw.name,
        status,
        numbers,
        hourly_quota,
        reasons: raw.reasons,
    })
}

/// A name or reason: not blank, at most `max` characters, no control characters.
fn text_problem(text: &str, max: usize) -> Option<TextProblem> {
    if text.trim().is_empty() {
        Some(TextProblem::Empty)
    } else if text.chars().count() > max {
        Some(TextProblem::TooLong(max))
    } else if text.chars().any(char::is_control) {
        Some(TextProblem::Character)
    } else {
        None
    }
}

fn parse_entry(text: &str, owner: &Owner) -> Result<NumberEntry, DocumentError> {
    NumberEntry::parse(text).map_err(|problem| DocumentError::Number {
        owner: owner.clone(),
        number: text.chars().take(64).collect(),
        problem,
    })
}

/// The TOML parser's message on one line, with the line number of its span.
fn toml_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    match error.span() {
        Some(span) => {
            let line = text
                .get(..span.start)
                .map_or(0, |before| before.matches('\n').count())
                + 1;
            format!("{message} (line {line})")
        }
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example list (`tests/data/example.toml`, also used by the e2e tests).
    pub(crate) const TOML: &str = include_str!("../tests/data/example.toml");

    const JSON: &str = r#"{"version": 7, "issued_at": 1764000000, "expires_at": 1766592000,
      "firms": [
        {"id": "91310000MA1FL1234X", "name": "Example Insurance Co.", "status": "white-listed",
         "numbers": ["8613800138000", "862158880000-862158889999"], "hourly_quota": 1000,
         "reasons": ["Policy renewal", "Appointment reminder"]},
        {"reasons": [], "hourly_quota": 0, "numbers": ["8613900139000"],
         "status": "blacklisted", "name": "Nuisance Sales Ltd.", "id": "91440300MA5G9ABC1Y"}],
      "blacklisted_numbers": ["8617000000001", "8617100000000-8617100009999"]}"#;

    fn parse_toml(text: &str) -> Result<ListDocument, DocumentError> {
        ListDocument::parse(text.as_bytes(), Format::Toml)
    }

    fn good() -> ListDocument {
        parse_toml(TOML).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The example with `from` replaced by `to` (which must occur).
    fn edited(from: &str, to: &str) -> Result<ListDocument, DocumentError> {
        assert!(TOML.contains(from), "{from}");
        parse_toml(&TOML.replacen(from, to, 1))
    }

    #[test]
    fn toml_and_json_give_the_same_document_and_payload() {
        let toml = good();
        let json =
            ListDocument::parse(JSON.as_bytes(), Format::Json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(toml, json);
        assert_eq!(toml.canonical_json(), json.canonical_json());
        let canonical = toml.canonical_json();
        assert!(canonical.starts_with(r#"{"blacklisted_numbers":["8617000000001","8617100000000-8617100009999"],"expires_at":1766592000,"firms":[{"hourly_quota":1000,"id":"91310000MA1FL1234X","name":"Example Insurance Co.","numbers":["8613800138000","862158880000-862158889999"],"reasons":["Policy renewal","Appointment reminder"],"status":"white-listed"}"#), "{canonical}");
        assert!(canonical.ends_with(r#""issued_at":1764000000,"version":7}"#));
        // The canonical form reads back as the same document.
        let again = ListDocument::parse(canonical.as_bytes(), Format::Json)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, toml);
        assert_eq!(toml.firm_number_count(), 1 + 10_000 + 1);
        assert_eq!(toml.blacklisted_number_count(), 1 + 10_000);
        assert_eq!(
            toml.firm("91440300MA5G9ABC1Y").map(|f| f.status),
            Some(FirmStatus::Blacklisted)
        );
        assert!(toml
            .firms
            .first()
            .is_some_and(|f| f.may_state("Policy renewal") && !f.may_state("policy renewal")));
    }

    #[test]
    fn format_by_extension_then_content() {
        assert_eq!(Format::of_file(Path::new("a.JSON"), b"x = 1"), Format::Json);
        assert_eq!(Format::of_file(Path::new("a.toml"), b"{"), Format::Toml);
        assert_eq!(
            Format::of_file(Path::new("list"), b"  \n{\"a\":1}"),
            Format::Json
        );
        assert_eq!(
            Format::of_file(Path::new("list.txt"), b"version = 1"),
            Format::Toml
        );
        let doc = ListDocument::parse_file(Path::new("list"), JSON.as_bytes());
        assert!(doc.is_ok());
    }

    #[test]
    fn syntax_errors_name_the_problem() {
        let e = edited("version = 7", "version = 7\ncolour = \"red\"").err();
        assert!(
            matches!(&e, Some(DocumentError::Syntax { format: "TOML", detail }) if detail.contains("colour") && detail.contains("line 3")),
            "{e:?}"
        );
        let e = ListDocument::parse(br#"{"version":1,"version":2}"#, Format::Json).err();
        assert!(
            matches!(&e, Some(DocumentError::Syntax { format: "JSON", detail }) if detail.contains("duplicate")),
            "{e:?}"
        );
        let e = edited("version = 7\n", "").err();
        assert!(
            matches!(&e, Some(DocumentError::Syntax { detail, .. }) if detail.contains("version")),
            "{e:?}"
        );
        let e = ListDocument::parse(b"\xff", Format::Toml).err();
        assert!(
            matches!(&e, Some(DocumentError::Syntax { detail, .. }) if detail.contains("UTF-8")),
            "{e:?}"
        );
        let e = edited("expires_at = 1766592000", "expires_at = -1").err();
        assert!(matches!(e, Some(DocumentError::Syntax { .. })), "{e:?}");
    }

    #[test]
    fn every_content_rule_has_its_error() {
        let firm = "91310000MA1FL1234X".to_owned();
        assert_eq!(
            edited("expires_at = 1766592000", "expires_at = 1764000000").err(),
            Some(DocumentError::Times {
                issued_at: 1764000000,
                expires_at: 1764000000
            })
        );
        assert_eq!(
            edited("id = \"91310000MA1FL1234X\"", "id = \"\"").err(),
            Some(DocumentError::FirmId {
                index: 1,
                id: String::new(),
                problem: TextProblem::Empty
            })
        );
        assert!(matches!(
            edited("id = \"91440300MA5G9ABC1Y\"", "id = \"bad id\"").err(),
            Some(DocumentError::FirmId {
                index: 2,
                problem: TextProblem::Character,
                ..
            })
        ));
        assert!(matches!(
            edited(
                "id = \"91440300MA5G9ABC1Y\"",
                &format!("id = \"{}\"", "A".repeat(65))
            )
            .err(),
            Some(DocumentError::FirmId {
                problem: TextProblem::TooLong(64),
                ..
            })
        ));
        assert_eq!(
            edited("id = \"91440300MA5G9ABC1Y\"", "id = \"91310000MA1FL1234X\"").err(),
            Some(DocumentError::DuplicateFirm(firm.clone()))
        );
        assert_eq!(
            edited("name = \"Example Insurance Co.\"", "name = \" \"").err(),
            Some(DocumentError::FirmName {
                firm: firm.clone(),
                name: " ".into(),
                problem: TextProblem::Empty
            })
        );
        assert!(matches!(
            edited(
                "name = \"Example Insurance Co.\"",
                &format!("name = \"{}\"", "é".repeat(65))
            )
            .err(),
            Some(DocumentError::FirmName {
                problem: TextProblem::TooLong(64),
                ..
            })
        ));
        // 64 characters of two bytes each are fine: the limit counts characters.
        assert!(edited(
            "name = \"Example Insurance Co.\"",
            &format!("name = \"{}\"", "é".repeat(64))
        )
        .is_ok());
        assert!(matches!(
            edited(
                "name = \"Example Insurance Co.\"",
                "name = \"Bad\\u0007Bell\""
            )
            .err(),
            Some(DocumentError::FirmName {
                problem: TextProblem::Character,
                ..
            })
        ));
        assert_eq!(
            edited("status = \"white-listed\"", "status = \"whitelisted\"").err(),
            Some(DocumentError::FirmStatus {
                firm: firm.clone(),
                status: "whitelisted".into()
            })
        );
        assert_eq!(
            edited("hourly_quota = 1000", "hourly_quota = -1").err(),
            Some(DocumentError::FirmQuota {
                firm: firm.clone(),
                quota: -1
            })
        );
        assert!(edited("hourly_quota = 1000", "hourly_quota = 0").is_ok());
        assert!(matches!(
            edited("\"Appointment reminder\"", "\"\"").err(),
            Some(DocumentError::Reason {
                problem: TextProblem::Empty,
                ..
            })
        ));
        assert!(matches!(
            edited(
                "\"Appointment reminder\"",
                &format!("\"{}\"", "r".repeat(65))
            )
            .err(),
            Some(DocumentError::Reason {
                problem: TextProblem::TooLong(64),
                ..
            })
        ));
        assert_eq!(
            edited("\"Appointment reminder\"", "\"Policy renewal\"").err(),
            Some(DocumentError::DuplicateReason {
                firm: firm.clone(),
                reason: "Policy renewal".into()
            })
        );
    }

    #[test]
    fn numbers_and_ranges_are_checked() {
        let firm = Owner::Firm("91310000MA1FL1234X".into());
        for (bad, problem) in [
            ("+8613800138000", NumberProblem::NotDigits),
            ("", NumberProblem::NotDigits),
            ("1234567890123456", NumberProblem::NotDigits),
            ("86 138", NumberProblem::NotDigits),
            ("０１", NumberProblem::NotDigits),
            ("013800138000", NumberProblem::LeadingZero),
            ("861-86", NumberProblem::RangeLengths),
            ("862-861", NumberProblem::RangeOrder),
            ("861-", NumberProblem::NotDigits),
            ("861-862-863", NumberProblem::NotDigits),
        ] {
            assert_eq!(
                edited("\"8613800138000\"", &format!("\"{bad}\"")).err(),
                Some(DocumentError::Number {
                    owner: firm.clone(),
                    number: bad.into(),
                    problem
                }),
                "{bad}"
            );
        }
        assert_eq!(
            edited("\"8617000000001\"", "\"x\"").err(),
            Some(DocumentError::Number {
                owner: Owner::Blacklist,
                number: "x".into(),
                problem: NumberProblem::NotDigits
            })
        );
        // A one-number range and a 15-digit number are fine; a 1-digit number too.
        assert!(edited(
            "\"8613800138000\"",
            "\"8613800138000-8613800138000\", \"123456789012345\", \"7\""
        )
        .is_ok());
        let entry =
            NumberEntry::parse("862158880000-862158889999").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (entry.digits(), entry.count(), entry.is_range()),
            (12, 10_000, true)
        );
        assert!(entry.contains(12, 862158880000) && entry.contains(12, 862158889999));
        assert!(!entry.contains(12, 862158890000) && !entry.contains(13, 862158880000));
    }

    #[test]
    fn overlaps_are_refused_naming_both() {
        let a = Owner::Firm("91310000MA1FL1234X".into());
        let b = Owner::Firm("91440300MA5G9ABC1Y".into());
        // Between two firms: the second firm's number inside the first firm's range.
        assert_eq!(
            edited("\"8613900139000\"", "\"862158885000\"").err(),
            Some(DocumentError::Overlap {
                first_owner: a.clone(),
                first: "862158880000-862158889999".into(),
                second_owner: b.clone(),
                second: "862158885000".into()
            })
        );
        // Touching the end of a range overlaps; one past does not.
        assert!(edited("\"8613900139000\"", "\"862158889999\"").is_err());
        assert!(edited("\"8613900139000\"", "\"862158890000\"").is_ok());
        assert!(edited("\"8613900139000\"", "\"862158879999\"").is_ok());
        // The same digits at another length are other numbers.
        assert!(edited("\"8613900139000\"", "\"8621588800000-8621588899999\"").is_ok());
        // A firm's number blacklisted on its own: inconsistent.
        assert_eq!(
            edited("\"8617000000001\"", "\"8613800138000\"").err(),
            Some(DocumentError::Overlap {
                first_owner: a.clone(),
                first: "8613800138000".into(),
                second_owner: Owner::Blacklist,
                second: "8613800138000".into()
            })
        );
        // Inside one firm, and inside the blacklist.
        assert!(edited("\"8613800138000\"", "\"8613800138000\", \"8613800138000\"").is_err());
        assert!(matches!(
            edited("\"8617000000001\"", "\"8617100000005\"").err(),
            Some(DocumentError::Overlap {
                first_owner: Owner::Blacklist,
                second_owner: Owner::Blacklist,
                ..
            })
        ));
        // A range holding another firm's single number.
        assert!(edited("\"8613900139000\"", "\"8613800100000-8613800199999\"").is_err());
    }
}
