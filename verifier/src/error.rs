//! The verifier's errors, grouped by the step that failed: the token (438/403), the request's
//! time (403), obtaining the certificate (436) and trusting it (437). The mapping to the wire
//! is one function, [`crate::verdict::judge`].

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
    Fetch(FetchError),
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
