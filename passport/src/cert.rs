//! Reading the signer's certificate: a PEM chain, and the P-256 key of its first certificate.
//!
//! Chain validation (trust anchors, policy, revocation) is the verifier's job; this module only
//! gets from bytes to a key, checking that the certificate parses completely.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::Error;
use crate::keys::VerifyingKey;
use crate::pem::{self, PemError};

/// The most certificates accepted in one PEM chain.
pub const MAX_CHAIN_CERTIFICATES: usize = 8;

/// Why a certificate chain or certificate could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The PEM text does not read (includes more than [`MAX_CHAIN_CERTIFICATES`] blocks).
    #[error(transparent)]
    Pem(#[from] PemError),
    /// The PEM text holds no block at all.
    #[error("no CERTIFICATE block in the PEM")]
    NoCertificate,
    /// A block other than `CERTIFICATE`.
    #[error("unexpected {0} block in a certificate chain")]
    UnexpectedBlock(String),
    /// Bytes follow the certificate's DER.
    #[error("trailing bytes after the certificate")]
    TrailingBytes,
    /// The DER does not parse as an X.509 certificate (the parser's words).
    #[error("does not parse: {0}")]
    Parse(String),
    /// The subject key is not an ES256 (P-256) key.
    #[error("subject key is unusable for ES256")]
    Key,
}

/// The DER certificates of a PEM chain, in file order (end-entity first in SHAKEN): the one
/// PEM chain splitter of the project, used for chains served at an x5u, configured chains and
/// trust anchor files alike.
///
/// At most [`MAX_CHAIN_CERTIFICATES`] blocks are read. Blocks other than `CERTIFICATE` are
/// refused: a chain served from an x5u URL holds nothing else, and a private key found there
/// is a publishing mistake worth stopping on.
pub fn chain_from_pem(pem_text: &[u8]) -> Result<Vec<Vec<u8>>, CertificateError> {
    certificates_from_pem(pem_text, MAX_CHAIN_CERTIFICATES)
}

/// As [`chain_from_pem`], with another cap on the number of blocks (a folder of trust anchors
/// may hold more than a chain).
pub fn certificates_from_pem(
    pem_text: &[u8],
    max: usize,
) -> Result<Vec<Vec<u8>>, CertificateError> {
    let blocks = pem::parse(pem_text, max)?;
    if blocks.is_empty() {
        return Err(CertificateError::NoCertificate);
    }
    blocks
        .into_iter()
        .map(|block| {
            if block.label == "CERTIFICATE" {
                Ok(block.der)
            } else {
                Err(CertificateError::UnexpectedBlock(block.label))
            }
        })
        .collect()
}

/// Parses one DER certificate completely (no trailing bytes).
pub fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, CertificateError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CertificateError::TrailingBytes),
        Err(e) => Err(CertificateError::Parse(e.to_string())),
    }
}

/// The P-256 public key of a DER certificate.
pub fn verifying_key_of(der: &[u8]) -> Result<VerifyingKey, Error> {
    let cert = parse_certificate(der)?;
    VerifyingKey::from_spki_der(cert.public_key().raw)
        .map_err(|_| Error::Certificate(CertificateError::Key))
}

/// The P-256 public key of the first certificate of a PEM chain.
pub fn verifying_key_from_pem_chain(pem_text: &[u8]) -> Result<VerifyingKey, Error> {
    let chain = chain_from_pem(pem_text)?;
    let first = chain.first().ok_or(CertificateError::NoCertificate)?;
    verifying_key_of(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTION_709J: &str = include_str!("../tests/data/production-shaken-709J.pem");

    #[test]
    fn production_certificate_yields_its_key() {
        let key = verifying_key_from_pem_chain(PRODUCTION_709J.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        // The point printed by `openssl x509 -pubkey` for this certificate starts 04 BA E0 EF.
        assert_eq!(
            key.sec1_bytes().get(..4),
            Some(&[0x04, 0xba, 0xe0, 0xef][..])
        );
    }

    #[test]
    fn refusals() {
        assert!(chain_from_pem(b"nothing here").is_err());
        let key = "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n";
        assert!(
            matches!(chain_from_pem(key.as_bytes()), Err(CertificateError::UnexpectedBlock(label)) if label.contains("PRIVATE KEY"))
        );
        let truncated = "-----BEGIN CERTIFICATE-----\nMIIDADCCAqagAwIBAgIQU9c1dztZF+wkcab3vvy13DAKBggqhkjOPQQDAjBnMQsw\n-----END CERTIFICATE-----\n";
        assert!(verifying_key_from_pem_chain(truncated.as_bytes()).is_err());
    }
}
