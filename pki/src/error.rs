//! The crate's one error enum: why a bundle, certificate, path, trust anchor file or CRL is not
//! acceptable. Each variant carries the offending value; the verifier maps them to SIP 436 (the
//! bundle) or 437 (everything else), the CA tools print them.

use std::path::PathBuf;

use der::asn1::ObjectIdentifier;
use passport::cert::CertificateError;

use crate::profile::Finding;

/// Everything that can go wrong in this crate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- The bundle (PEM text from an x5u or a file) ---
    /// The bundle is not a PEM certificate chain: bad PEM, no certificate, another kind of
    /// block.
    #[error("certificate bundle: {0}")]
    Bundle(CertificateError),
    /// More certificates than path building takes.
    #[error("certificate bundle holds more than {0} certificates")]
    TooManyCertificates(usize),
    /// The first certificate is a CA certificate: the chain is in the wrong order.
    #[error("the first certificate is a CA certificate (wrong chain order)")]
    WrongOrder,

    // --- One certificate ---
    /// A certificate does not parse as DER X.509, or bytes follow it.
    #[error("certificate {index} does not parse: {detail}")]
    Parse {
        /// Position in the bundle.
        index: usize,
        /// The parser's words.
        detail: String,
    },
    /// Not valid yet at the reference time.
    #[error("certificate {index} is not valid before {not_before} (now {now})")]
    NotYetValid {
        /// Position in the bundle.
        index: usize,
        /// notBefore, seconds since the epoch.
        not_before: i64,
        /// The reference time.
        now: u64,
    },
    /// Expired at the reference time.
    #[error("certificate {index} expired at {not_after} (now {now})")]
    Expired {
        /// Position in the bundle.
        index: usize,
        /// notAfter, seconds since the epoch.
        not_after: i64,
        /// The reference time.
        now: u64,
    },
    /// The end entity breaks a rule of the STI certificate profile (ATIS-1000080 §6.4.1).
    #[error(
        "certificate {index} breaks the STI certificate profile: {}",
        describe(findings)
    )]
    Profile {
        /// Position in the bundle.
        index: usize,
        /// The broken rules (errors only), ranked.
        findings: Vec<Finding>,
    },
    /// An issuer in the path is not flagged as a CA.
    #[error("certificate {0}, an issuer in the path, is not a CA certificate")]
    IssuerNotCa(usize),
    /// An issuer in the path may not sign certificates.
    #[error("certificate {0}, an issuer in the path, has no keyCertSign key usage")]
    IssuerKeyUsage(usize),
    /// An issuer in the path has no usable P-256 key.
    #[error("certificate {0}, an issuer in the path, has no P-256 key")]
    IssuerKey(usize),
    /// An issuer in the path carries a critical extension this validator does not know
    /// (RFC 5280 §4.2).
    #[error("certificate {index}, an issuer in the path, has an unknown critical extension {oid}")]
    UnknownCriticalExtension {
        /// Position in the bundle.
        index: usize,
        /// The extension's OID, dotted.
        oid: String,
    },

    // --- The path ---
    /// A certificate's issuer is neither a trust anchor nor in the bundle.
    #[error(
        "certificate {index}: issuer {issuer} is neither a trusted STI-CA root nor in the bundle"
    )]
    UnknownIssuer {
        /// Position in the bundle.
        index: usize,
        /// The issuer's name.
        issuer: String,
    },
    /// A signature in the path does not verify (or is not ECDSA with SHA-256).
    #[error("certificate {0} is not signed by its issuer")]
    BadSignature(usize),
    /// The trust anchor that signed the path has expired.
    #[error("the trust anchor {0} has expired")]
    AnchorExpired(String),
    /// No trust anchor within the path-length budget.
    #[error("no trust anchor within {0} links")]
    PathTooLong(usize),
    /// The signature-check budget ran out before a path was found.
    #[error("path building used up its {0} signature checks")]
    SignatureBudget(usize),

    // --- Trust anchors ---
    /// A trust anchor file or folder cannot be read.
    #[error("cannot read {}: {kind}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        kind: std::io::ErrorKind,
    },
    /// A trust anchor does not carry a P-256 key.
    #[error("trust anchor {0} does not have a P-256 key")]
    AnchorKey(String),
    /// No trust anchor certificate was found.
    #[error("no trust anchor certificates")]
    NoAnchors,

    // --- CRLs ---
    /// A PEM CRL file holds no `X509 CRL` block (or the PEM does not read).
    #[error("no X509 CRL block in the PEM")]
    NoCrl,
    /// The CRL's DER does not parse (or bytes follow it).
    #[error("CRL does not parse: {0}")]
    CrlParse(String),
    /// The signature algorithm inside the TBS differs from the outer one.
    #[error("CRL signature algorithm differs inside and outside the TBS")]
    CrlAlgorithmMismatch,
    /// A critical CRL extension this crate does not know.
    #[error("unknown critical CRL extension {0}")]
    CrlCriticalExtension(ObjectIdentifier),
    /// A critical CRL entry extension this crate does not know.
    #[error("unknown critical CRL entry extension {0}")]
    CrlEntryCriticalExtension(ObjectIdentifier),
    /// The CRL is signed with another algorithm than ECDSA with SHA-256.
    #[error("CRL signature algorithm {0} is not ecdsa-with-SHA256 ({ecdsa})", ecdsa = crate::oid::ECDSA_WITH_SHA256)]
    CrlAlgorithm(ObjectIdentifier),
    /// The CRL's signature does not verify with the issuer's key.
    #[error("CRL signature does not verify with the issuer's key")]
    CrlSignature,
}

fn describe(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
