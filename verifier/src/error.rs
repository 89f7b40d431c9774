//! The verifier's errors, each mapped to exactly one SIP response code (RFC 8224 §6.2.2).

use passport::SipReason;

/// Why a certificate could not be obtained (436 Bad Identity Info).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL does not parse.
    #[error("x5u {0:?} is not a valid URL")]
    BadUrl(String),
    /// Plain HTTP (or another scheme) where HTTPS is required.
    #[error("x5u scheme {0:?} is not allowed (HTTPS only)")]
    Scheme(String),
    /// The port is not in the allowed set.
    #[error("x5u port {0} is not allowed")]
    Port(u16),
    /// The host is not in the allow-list.
    #[error("x5u host {0:?} is not in the allow-list")]
    Host(String),
    /// The host resolves to a loopback, private or otherwise internal address.
    #[error("x5u host resolves to {0}, a loopback/private address that is not allowed")]
    Address(std::net::IpAddr),
    /// Name resolution failed.
    #[error("cannot resolve x5u host {0:?}")]
    Resolve(String),
    /// The TCP connection failed.
    #[error("cannot connect to the certificate repository: {0}")]
    Connect(String),
    /// The TLS handshake failed.
    #[error("TLS with the certificate repository failed: {0}")]
    Tls(String),
    /// Connect or total timeout.
    #[error("the certificate repository did not answer within {0} ms")]
    Timeout(u128),
    /// A redirect (not followed).
    #[error("the certificate repository redirected (HTTP {0}); redirects are not followed")]
    Redirect(u16),
    /// Another non-200 status.
    #[error("the certificate repository answered HTTP {0}")]
    Status(u16),
    /// The body exceeded the cap.
    #[error("the certificate response is larger than {0} bytes")]
    TooLarge(usize),
    /// The HTTP exchange failed.
    #[error("HTTP with the certificate repository failed: {0}")]
    Http(String),
    /// The resource is not a usable certificate chain: no PEM certificates, a certificate that
    /// does not parse, too many certificates, or a CA certificate first (wrong order).
    #[error("the x5u resource is not a usable certificate chain: {0}")]
    Unusable(String),
    /// A recent fetch of this URL failed and is not retried yet (negative cache).
    #[error("a recent fetch of this x5u failed: {0}")]
    RecentlyFailed(String),
}

/// Why a fetched credential is not accepted (437 Unsupported Credential).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The PEM bundle is unusable.
    #[error("certificate bundle: {0}")]
    Bundle(String),
    /// More certificates than allowed.
    #[error("certificate bundle holds more than {0} certificates")]
    TooManyCertificates(usize),
    /// A certificate does not parse.
    #[error("certificate {index} does not parse: {detail}")]
    Parse {
        /// Position in the chain.
        index: usize,
        /// Parser message.
        detail: String,
    },
    /// No path to a trust anchor.
    #[error("no chain to a trusted STI-CA root: {0}")]
    Untrusted(String),
    /// A signature in the chain does not verify.
    #[error("certificate {0} is not signed by its issuer")]
    BadSignature(usize),
    /// Outside its validity.
    #[error("certificate {index} is not valid at {now}: {detail}")]
    Validity {
        /// Position in the chain.
        index: usize,
        /// The reference time.
        now: u64,
        /// Expired or not yet valid.
        detail: String,
    },
    /// A profile rule is broken (basic constraints, key usage, policy, TNAuthList, key type).
    #[error("certificate {index}: {detail}")]
    Profile {
        /// Position in the chain.
        index: usize,
        /// What is wrong.
        detail: String,
    },
    /// Revoked.
    #[error("certificate {index} (serial {serial}) is revoked")]
    Revoked {
        /// Position in the chain.
        index: usize,
        /// Its serial, hex.
        serial: String,
    },
    /// Revocation status required but unavailable.
    #[error("revocation status of certificate {index} is unavailable: {detail}")]
    RevocationUnavailable {
        /// Position in the chain.
        index: usize,
        /// Why.
        detail: String,
    },
}

/// Any verification failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The Identity header or PASSporT (438, or 403 for a stale `iat`).
    #[error(transparent)]
    Passport(#[from] passport::Error),
    /// The certificate could not be obtained (436).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The certificate is not acceptable (437).
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The request's `time` is too far from the verifier's clock (403 Stale Date).
    #[error("request time {time} is {} s from the verifier's clock {now}, more than the {allowed} s allowed", time.abs_diff(*now))]
    RequestTime {
        /// The request's `time`.
        time: u64,
        /// The verifier's clock.
        now: u64,
        /// `request_time_skew_seconds`.
        allowed: u64,
    },
}

impl VerifyError {
    /// The one SIP code this failure maps to.
    pub fn sip_reason(&self) -> SipReason {
        match self {
            Self::Passport(e) => e.sip_reason().unwrap_or(SipReason::InvalidIdentityHeader),
            Self::Fetch(_) => SipReason::BadIdentityInfo,
            Self::Credential(_) => SipReason::UnsupportedCredential,
            Self::RequestTime { .. } => SipReason::StaleDate,
        }
    }
}
