//! The crate's one error type, and its mapping to the SIP response codes of RFC 8224.

use std::fmt;

/// Which of the three base64url parts of a compact JWS a problem was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The JOSE header (first part).
    Header,
    /// The claims (second part).
    Payload,
    /// The signature (third part).
    Signature,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Header => "header",
            Self::Payload => "payload",
            Self::Signature => "signature",
        })
    }
}

/// What is wrong with an Identity header or PASSporT: what was received (or, when signing,
/// the claims given to sign). Each variant maps to exactly one SIP code through
/// [`TokenError::sip_reason`], so a verifier never has to guess one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    // --- Identity header (RFC 8224 §4) ---
    /// The Identity header value is longer than the limit.
    #[error("identity header is {len} bytes, more than the limit of {max}")]
    IdentityTooLong {
        /// Received length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The Identity header value has no `info` parameter.
    #[error("identity header has no 'info' parameter")]
    MissingInfo,
    /// The `info` parameter is not a URI inside angle brackets.
    #[error("identity header 'info' parameter is not an <absolute URI> in angle brackets: {0:?}")]
    MalformedInfo(String),
    /// The `info` URI differs from the token's `x5u`.
    #[error("identity header info <{info}> differs from the token's x5u {x5u:?}")]
    InfoMismatch {
        /// The `info` URI (without brackets).
        info: String,
        /// The token's `x5u`.
        x5u: String,
    },
    /// A parameter named in the Identity header contradicts the token header.
    #[error("identity header parameter {name}={param:?} contradicts the token header ({token:?})")]
    ParameterMismatch {
        /// `alg` or `ppt`.
        name: &'static str,
        /// The value of the parameter.
        param: String,
        /// The value in the token header, if any.
        token: Option<String>,
    },
    /// A parameter appears twice.
    #[error("identity header parameter {0:?} appears more than once")]
    DuplicateParameter(String),
    /// A parameter is not `name` or `name=value`.
    #[error("identity header parameter is malformed: {0:?}")]
    MalformedParameter(String),

    // --- Compact JWS structure (RFC 7515) ---
    /// The token is not three dot-separated parts.
    #[error("token has {0} dot-separated parts, a full-form PASSporT has 3")]
    SegmentCount(usize),
    /// The token is in compact form (header and payload omitted); SHAKEN requires full form.
    #[error("token is in compact form (empty header and payload); SHAKEN requires the full form")]
    CompactForm,
    /// A part holds a character outside the base64url alphabet.
    #[error("token {part} holds {found:?} at offset {offset}, outside the base64url alphabet")]
    TokenCharacter {
        /// Which part.
        part: Part,
        /// The character found.
        found: char,
        /// Its byte offset inside the part.
        offset: usize,
    },
    /// A part is not valid unpadded base64url.
    #[error("token {0} is not valid unpadded base64url")]
    Base64(Part),
    /// A part is not the JSON object it must be.
    #[error("token {part} is not a valid JSON object: {detail}")]
    Json {
        /// Which part.
        part: Part,
        /// What the JSON parser said.
        detail: String,
    },

    // --- Header parameters and claims (RFC 8225, RFC 8588) ---
    /// A required header parameter is absent.
    #[error("token header has no {0:?} parameter")]
    MissingHeaderParameter(&'static str),
    /// A header parameter has a value this crate does not accept.
    #[error("token header parameter {name:?} is invalid: {reason}")]
    InvalidHeaderParameter {
        /// Parameter name.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A required claim is absent.
    #[error("token has no {0:?} claim")]
    MissingClaim(&'static str),
    /// A claim has an invalid value.
    #[error("token claim {name:?} is invalid: {reason}")]
    InvalidClaim {
        /// Claim name (a JSON pointer-like path such as `dest.tn`).
        name: &'static str,
        /// Why.
        reason: String,
    },

    /// The `rcd` claim (RFC 9795) is invalid: not an object, or its `nam` absent, not a
    /// string, empty, too long or holding a control character.
    #[error("token claim \"rcd\" member {member:?} is invalid: {reason}")]
    InvalidRcd {
        /// `rcd` for the object itself, else the member (`nam`).
        member: &'static str,
        /// Why.
        reason: String,
    },
    /// The `crn` claim (RFC 9795) is not a non-empty string of bounded length without control
    /// characters.
    #[error("token claim \"crn\" is invalid: {reason}")]
    InvalidCrn {
        /// Why.
        reason: String,
    },

    // --- Verification (RFC 8224 §6.2) ---
    /// `iat` is older than the freshness window (403 Stale Date).
    #[error(
        "token iat {iat} is {age} s before the reference time, more than the {max_age} s allowed"
    )]
    Stale {
        /// The token's `iat`.
        iat: u64,
        /// How old it is.
        age: u64,
        /// The freshness window.
        max_age: u64,
    },
    /// `iat` is further in the future than the clock allowance.
    #[error(
        "token iat {iat} is {ahead} s after the reference time, more than the {allowed} s allowed"
    )]
    FromTheFuture {
        /// The token's `iat`.
        iat: u64,
        /// How far ahead.
        ahead: u64,
        /// The allowance for clocks running ahead.
        allowed: u64,
    },
    /// The signature algorithm is not ES256.
    #[error("token alg {0:?} is not supported (only ES256)")]
    UnsupportedAlgorithm(String),
    /// The ES256 signature is not 64 bytes.
    #[error("ES256 signature is {0} bytes, must be 64 (raw R||S)")]
    SignatureLength(usize),
    /// The signature does not verify with the key.
    #[error("signature does not verify with the signer's public key")]
    BadSignature,
    /// The token's `orig` is not the expected calling number.
    #[error("token orig {token:?} does not match the calling number {expected:?}")]
    OrigMismatch {
        /// What the token carries (canonicalized where it is a TN).
        token: String,
        /// The expected calling number (canonical).
        expected: String,
    },
    /// An expected called number is not in the token's `dest`.
    #[error("called number {0:?} is not among the token's dest numbers")]
    DestMismatch(String),
}

/// Everything that can go wrong in this crate: a token problem ([`TokenError`]), or local
/// input that is wrong (keys, certificates, PEM, command-line numbers, DER), which is the
/// operator's problem, not the caller's, and maps to no SIP code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An Identity header or PASSporT is not valid.
    #[error(transparent)]
    Token(#[from] TokenError),

    // --- Local input: telephone numbers, keys, certificates, DER ---
    /// A telephone number cannot be canonicalized.
    #[error("telephone number {input:?}: {reason}")]
    TelephoneNumber {
        /// The input as given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A PEM document could not be read.
    #[error("PEM: {0}")]
    Pem(#[from] crate::pem::PemError),
    /// A private key could not be used.
    #[error("private key: {0}")]
    PrivateKey(String),
    /// A public key could not be used.
    #[error("public key: {0}")]
    PublicKey(String),
    /// A certificate or chain could not be used.
    #[error("certificate: {0}")]
    Certificate(#[from] crate::cert::CertificateError),
    /// A DER structure (TNAuthList) is malformed.
    #[error("DER: {0}")]
    Der(&'static str),
}

/// The SIP response codes of RFC 8224 §6.2.2 that a verification can end in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SipReason {
    /// 403 Stale Date.
    StaleDate,
    /// 428 Use Identity Header.
    UseIdentityHeader,
    /// 436 Bad Identity Info.
    BadIdentityInfo,
    /// 437 Unsupported Credential.
    UnsupportedCredential,
    /// 438 Invalid Identity Header.
    InvalidIdentityHeader,
}

impl SipReason {
    /// The numeric SIP status code.
    pub fn code(self) -> u16 {
        match self {
            Self::StaleDate => 403,
            Self::UseIdentityHeader => 428,
            Self::BadIdentityInfo => 436,
            Self::UnsupportedCredential => 437,
            Self::InvalidIdentityHeader => 438,
        }
    }

    /// The RFC 8224 reason phrase.
    pub fn phrase(self) -> &'static str {
        match self {
            Self::StaleDate => "Stale Date",
            Self::UseIdentityHeader => "Use Identity Header",
            Self::BadIdentityInfo => "Bad Identity Info",
            Self::UnsupportedCredential => "Unsupported Credential",
            Self::InvalidIdentityHeader => "Invalid Identity Header",
        }
    }
}

impl fmt::Display for SipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.phrase())
    }
}

/// What a token problem says about the call, beyond its SIP code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The token or header is malformed, or not a SHAKEN PASSporT.
    Malformed,
    /// `iat` is too old.
    Stale,
    /// The token does not belong to this call: the signature does not verify, or the numbers
    /// differ (someone else's caller ID).
    Spoofed,
}

impl TokenError {
    /// What the problem says about the call (every variant listed: a new one must be placed).
    pub fn fault(&self) -> Fault {
        match self {
            Self::Stale { .. } => Fault::Stale,
            Self::BadSignature | Self::OrigMismatch { .. } | Self::DestMismatch(_) => {
                Fault::Spoofed
            }
            Self::IdentityTooLong { .. }
            | Self::MissingInfo
            | Self::MalformedInfo(_)
            | Self::InfoMismatch { .. }
            | Self::ParameterMismatch { .. }
            | Self::DuplicateParameter(_)
            | Self::MalformedParameter(_)
            | Self::SegmentCount(_)
            | Self::CompactForm
            | Self::TokenCharacter { .. }
            | Self::Base64(_)
            | Self::Json { .. }
            | Self::MissingHeaderParameter(_)
            | Self::InvalidHeaderParameter { .. }
            | Self::MissingClaim(_)
            | Self::InvalidClaim { .. }
            | Self::InvalidRcd { .. }
            | Self::InvalidCrn { .. }
            | Self::FromTheFuture { .. }
            | Self::UnsupportedAlgorithm(_)
            | Self::SignatureLength(_) => Fault::Malformed,
        }
    }

    /// The SIP code a verification service answers with.
    ///
    /// Every problem with a received Identity header or PASSporT is 438, except a stale `iat`,
    /// which is 403 (ATIS-1000074 §5.3.2). 436 and 437 concern fetching and trusting the
    /// certificate and are decided by the verifier, not here.
    pub fn sip_reason(&self) -> SipReason {
        match self.fault() {
            Fault::Stale => SipReason::StaleDate,
            Fault::Spoofed | Fault::Malformed => SipReason::InvalidIdentityHeader,
        }
    }
}
