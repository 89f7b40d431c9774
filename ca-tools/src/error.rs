//! The crate's one error type. Each refusal of `ca issue` has its own variant, so a CA
//! operator (and a test) can tell exactly which check failed.

use std::path::PathBuf;

use pki::time::Timestamp;

/// Everything that can go wrong in the CA tools.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    // --- Files ---
    /// A file could not be read or written.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        detail: String,
    },
    /// A key file exists and overwriting was not asked for.
    #[error("{0} exists; refusing to overwrite a private key (pass --force to replace it)")]
    KeyExists(PathBuf),
    /// A CA state file exists and replacing it was not asked for.
    #[error(
        "{0} exists; refusing to replace a CA's record of what it issued \
         (pass --force to start a new CA there)"
    )]
    StateExists(PathBuf),
    /// The CA directory's state file is unusable.
    #[error("CA state {path}: {detail}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A key, certificate or PEM problem reported by the `passport` crate.
    #[error(transparent)]
    Passport(#[from] passport::Error),
    /// A certificate chain that cannot be read.
    #[error("certificate: {0}")]
    Certificate(#[from] passport::cert::CertificateError),
    /// A certificate, CRL or trust anchor refused by the PKI core.
    #[error(transparent)]
    Pki(#[from] pki::Error),
    /// A key file holds no usable P-256 key.
    #[error("no usable P-256 key: {0}")]
    NoKey(String),
    /// An ASN.1 structure could not be encoded or decoded.
    #[error("ASN.1: {0}")]
    Asn1(String),
    /// An argument is out of range (SPC, validity, URL, ...).
    #[error("{0}")]
    InvalidArgument(String),

    // --- SPC token checks (ca issue) ---
    /// The token is not a well-formed SPC token.
    #[error("SPC token is malformed: {0}")]
    TokenMalformed(String),
    /// The token's signature does not verify with the trusted PA certificate.
    #[error("SPC token signature does not verify with the PA certificate")]
    TokenSignature,
    /// The token has expired.
    #[error("SPC token expired at {} (now {})", Timestamp::from(*exp), Timestamp::from(*now))]
    TokenExpired {
        /// The token's `exp`.
        exp: u64,
        /// The reference time.
        now: u64,
    },
    /// The token was already used for an issuance (its `jti` is in the CA's state) and reuse
    /// was not allowed.
    #[error(
        "SPC token jti {jti} was already used at {} for serial {serial} \
         (a token is used once; get a new one, or pass --allow-token-reuse)",
        Timestamp::from(*used_at)
    )]
    TokenReused {
        /// The token's `jti`.
        jti: String,
        /// When it was first used.
        used_at: u64,
        /// The serial issued then.
        serial: String,
    },
    /// The token authorizes a CA certificate, which this CA does not issue.
    #[error("SPC token has atc.ca true: delegate CA certificates are not issued")]
    TokenForCa,
    /// The token's TNAuthList differs from the CSR's.
    #[error("SPC token TNAuthList ({token}) differs from the CSR's ({csr})")]
    TnAuthListMismatch {
        /// What the token authorizes.
        token: String,
        /// What the CSR asks for.
        csr: String,
    },
    /// The token's fingerprint is not the CSR key's.
    #[error("SPC token fingerprint {token} is not the CSR key's {csr}")]
    FingerprintMismatch {
        /// The token's fingerprint.
        token: String,
        /// The fingerprint of the CSR's public key.
        csr: String,
    },

    // --- CSR checks ---
    /// The CSR does not parse or lacks something a SHAKEN CSR needs.
    #[error("CSR is malformed: {0}")]
    CsrMalformed(String),
    /// The CSR's self-signature does not verify.
    #[error("CSR signature does not verify with the CSR's own public key")]
    CsrSignature,

    // --- Revocation ---
    /// No certificate with this serial was issued by this CA.
    #[error("serial {0} was not issued by this CA")]
    UnknownSerial(String),
    /// The certificate is already revoked.
    #[error("serial {0} is already revoked")]
    AlreadyRevoked(String),
}

impl CaError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, error: &std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            detail: error.to_string(),
        }
    }
}

impl From<der::Error> for CaError {
    fn from(error: der::Error) -> Self {
        Self::Asn1(error.to_string())
    }
}
