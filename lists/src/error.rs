//! The errors of this crate, grouped by cause: what is wrong with a document's content
//! ([`DocumentError`]), with its signature or compact form ([`JwsError`]), why a consumer
//! refused an offered list ([`ListError`]), and why a list could not be read ([`SourceError`]).
//! Messages are lowercase and name the offending firm, member and value.

use std::fmt;

/// Where a number or range of the document is listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// In the `numbers` of the firm with this id.
    Firm(String),
    /// In `blacklisted_numbers`.
    Blacklist,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Firm(id) => write!(f, "firm {id:?}"),
            Self::Blacklist => f.write_str("blacklisted_numbers"),
        }
    }
}

/// What is wrong with one number or range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberProblem {
    /// Empty, longer than 15 digits, or a character other than a digit.
    NotDigits,
    /// E.164 numbers never start with 0 (no country code does).
    LeadingZero,
    /// The two ends of a range have different lengths.
    RangeLengths,
    /// The first end of a range is greater than the last.
    RangeOrder,
}

impl fmt::Display for NumberProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotDigits => "an E.164 number is 1 to 15 digits, without '+'",
            Self::LeadingZero => "an E.164 number does not start with 0",
            Self::RangeLengths => "the two ends of a range must have the same number of digits",
            Self::RangeOrder => "the first end of a range must not be greater than the last",
        })
    }
}

/// What is wrong with a text member (a firm's id, name, or a reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextProblem {
    /// Empty.
    Empty,
    /// Longer than the limit (characters).
    TooLong(usize),
    /// Holds a control character (or, for an id, a character outside `A-Z a-z 0-9 - _ .`).
    Character,
}

impl fmt::Display for TextProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("is empty"),
            Self::TooLong(max) => write!(f, "is longer than {max} characters"),
            Self::Character => f.write_str("holds a character that is not allowed"),
        }
    }
}

/// What is wrong with a list document: its syntax, or the first inconsistency found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// The file name's extension is neither `.toml` nor `.json` (nor `.jws` where a signed
    /// list is accepted).
    #[error("unknown list format for {0:?}: expected a .toml or .json file")]
    UnknownFormat(String),
    /// Not valid JSON / TOML, an unknown or missing member, or a value of the wrong type
    /// (the parser's words).
    #[error("not a valid {format} list document: {detail}")]
    Syntax {
        /// `JSON` or `TOML`.
        format: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// `issued_at` is not before `expires_at`.
    #[error("issued_at ({issued_at}) must be before expires_at ({expires_at})")]
    Times {
        /// The document's `issued_at`.
        issued_at: u64,
        /// The document's `expires_at`.
        expires_at: u64,
    },
    /// A firm's id is empty, too long, or holds a character outside `A-Z a-z 0-9 - _ .`.
    #[error("firm #{index}: id {id:?} {problem}")]
    FirmId {
        /// The firm's position in `firms`, from 1.
        index: usize,
        /// The id as written.
        id: String,
        /// What is wrong.
        problem: TextProblem,
    },
    /// Two firms have the same id.
    #[error("firm {0:?} is listed twice")]
    DuplicateFirm(String),
    /// A firm's name is empty, longer than 64 characters, or holds a control character.
    #[error("firm {firm:?}: name {name:?} {problem}")]
    FirmName {
        /// The firm's id.
        firm: String,
        /// The name as written.
        name: String,
        /// What is wrong.
        problem: TextProblem,
    },
    /// A status other than `white-listed`, `suspended`, `blacklisted`.
    #[error("firm {firm:?}: status {status:?} is not one of white-listed, suspended, blacklisted")]
    FirmStatus {
        /// The firm's id.
        firm: String,
        /// The status as written.
        status: String,
    },
    /// A negative hourly quota.
    #[error("firm {firm:?}: hourly_quota {quota} is negative (0 means no calls)")]
    FirmQuota {
        /// The firm's id.
        firm: String,
        /// The quota as written.
        quota: i64,
    },
    /// A reason is empty, longer than 64 characters, or holds a control character.
    #[error("firm {firm:?}: reason {reason:?} {problem}")]
    Reason {
        /// The firm's id.
        firm: String,
        /// The reason as written.
        reason: String,
        /// What is wrong.
        problem: TextProblem,
    },
    /// A reason is listed twice for one firm.
    #[error("firm {firm:?}: reason {reason:?} is listed twice")]
    DuplicateReason {
        /// The firm's id.
        firm: String,
        /// The reason.
        reason: String,
    },
    /// A number or range that is not well formed.
    #[error("{owner}: number {number:?}: {problem}")]
    Number {
        /// Where it is listed.
        owner: Owner,
        /// The number or range as written.
        number: String,
        /// What is wrong.
        problem: NumberProblem,
    },
    /// Two entries share at least one number: between two firms, inside one firm, between a
    /// firm and the blacklist (inconsistent: is the number a firm's or blacklisted?), or
    /// inside the blacklist. Every number is listed at most once in a document.
    #[error("{first_owner} lists {first:?} and {second_owner} lists {second:?}: they overlap (a number may be listed once only)")]
    Overlap {
        /// Where the first entry is listed.
        first_owner: Owner,
        /// The first entry as written.
        first: String,
        /// Where the second entry is listed.
        second_owner: Owner,
        /// The second entry as written.
        second: String,
    },
}

/// Why a compact JWS is not a valid signed list for the configured certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// The regulator's certificate does not read or has no P-256 key.
    #[error("regulator certificate: {0}")]
    Certificate(String),
    /// The signing key does not read.
    #[error("signing key: {0}")]
    Key(String),
    /// The signing key is not the certificate's.
    #[error("the signing key does not match the regulator certificate")]
    KeyMismatch,
    /// Larger than the limit.
    #[error("the signed list is larger than {0} bytes")]
    TooLarge(usize),
    /// Not three base64url segments separated by two dots (an optional final newline aside).
    #[error("not a compact JWS: {0}")]
    Form(&'static str),
    /// A segment is not strict unpadded base64url.
    #[error("the {0} segment is not valid base64url")]
    Base64(&'static str),
    /// The protected header is not the expected JSON object.
    #[error("protected header: {0}")]
    Header(String),
    /// `alg` is not `ES256`.
    #[error("alg {0:?} is not ES256")]
    Algorithm(String),
    /// `typ` is not `shaken-list+jwt`.
    #[error("typ {0:?} is not shaken-list+jwt")]
    Type(String),
    /// `x5t#S256` is not the configured certificate's thumbprint.
    #[error("x5t#S256 {0:?} does not name the configured regulator certificate")]
    Thumbprint(String),
    /// The signature does not verify with the certificate's key.
    #[error("the signature does not verify with the regulator certificate")]
    Signature,
    /// The signature could not be made.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The payload is not a valid list document.
    #[error(transparent)]
    Document(#[from] DocumentError),
}

/// Why a consumer refused an offered list. The last good list stays in place.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The signature, the compact form or the content is wrong.
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// An older version than the one held (no rollback).
    #[error("version {offered} is older than the held version {held} (rollback refused)")]
    Rollback {
        /// The offered version.
        offered: u64,
        /// The held version.
        held: u64,
    },
    /// The held version again, with different content.
    #[error(
        "version {version} is already held with different content (a new list needs a new version)"
    )]
    SameVersionChanged {
        /// The version.
        version: u64,
    },
    /// `expires_at <= now`.
    #[error("version {version} expired at {expires_at} (now {now})")]
    Expired {
        /// The offered version.
        version: u64,
        /// Its `expires_at`.
        expires_at: u64,
        /// The reference time.
        now: u64,
    },
    /// `issued_at` is further in the future than the tolerated clock skew.
    #[error("version {version} is issued at {issued_at}, more than {skew} s after now ({now})")]
    NotYetValid {
        /// The offered version.
        version: u64,
        /// Its `issued_at`.
        issued_at: u64,
        /// The reference time.
        now: u64,
        /// The tolerated skew in seconds.
        skew: u64,
    },
}

/// Why a list could not be read from its source.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The configured source is neither an http(s) URL nor a file path.
    #[error("list source {0:?} is neither a file path nor an http(s) URL")]
    BadSource(String),
    /// The file cannot be read.
    #[error("cannot read {path}: {detail}")]
    Read {
        /// The file.
        path: String,
        /// The system's words.
        detail: String,
    },
    /// The file is larger than the cap.
    #[error("{path} is larger than {max} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// The cap.
        max: usize,
    },
    /// The fetch failed (policy, network, status, size, timeout).
    #[error("fetching {url}: {error}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        error: rest::fetch::FetchError,
    },
}
