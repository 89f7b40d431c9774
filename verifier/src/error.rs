//! The verifier's errors, grouped by the step that failed: the token (438/403), the request's
//! time (403), obtaining the certificate (436) and trusting it (437). The mapping to the wire
//! is one function, [`crate::verdict::judge`].

/// Why a certificate could not be obtained (436 Bad Identity Info).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The x5u could not be fetched: refused by the fetch policy, or the exchange failed.
    #[error("fetching the x5u failed: {0}")]
    Transport(#[from] rest::fetch::FetchError),
    /// The resource is not a certificate chain: not PEM, no certificate, another kind of
    /// block, or more certificates than allowed.
    #[error("the x5u resource is not a usable certificate chain: {0}")]
    Unusable(pki::Error),
}

/// Why a fetched credential is not accepted (437 Unsupported Credential).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The chain fails path validation or the STI certificate profile.
    #[error(transparent)]
    Chain(#[from] pki::Error),
    /// A certificate of the chain is on its issuer's CRL.
    #[error("certificate {index} (serial {serial}) is revoked")]
    Revoked {
        /// Position in the chain.
        index: usize,
        /// Its serial, hex.
        serial: String,
    },
    /// Revocation status is required (`require_revocation`) but unavailable.
    #[error("revocation status of certificate {index} is unavailable: {reason}")]
    RevocationUnavailable {
        /// Position in the chain.
        index: usize,
        /// Why.
        reason: Unavailable,
    },
}

/// Why no usable CRL was found for a certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// No local CRL of its issuer, and no CRL distribution point.
    #[error("no CRL distribution point and no local CRL")]
    NoCrl,
    /// The CRL could not be fetched.
    #[error("fetching the CRL failed: {0}")]
    Fetch(rest::fetch::FetchError),
    /// The fetched CRL does not parse.
    #[error("the CRL at {url} is unusable: {error}")]
    Unusable {
        /// Where it came from.
        url: String,
        /// Why.
        error: pki::Error,
    },
    /// The fetched CRL is not signed by the certificate's issuer.
    #[error("the CRL at {0} is not signed by the certificate's issuer")]
    WrongIssuer(String),
    /// The fetched CRL is past its nextUpdate.
    #[error("the CRL at {0} is past its nextUpdate")]
    PastNextUpdate(String),
}

/// Any verification failure. [`crate::verdict::judge`] maps each to its SIP code and flag.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The Identity header or PASSporT is not valid (438, or 403 for a stale `iat`).
    #[error(transparent)]
    Token(#[from] passport::TokenError),
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
    /// The certificate could not be obtained (436).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The certificate is not acceptable (437).
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

impl From<rest::fetch::FetchError> for VerifyError {
    fn from(error: rest::fetch::FetchError) -> Self {
        Self::Fetch(FetchError::Transport(error))
    }
}
