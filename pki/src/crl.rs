//! Reading certificate revocation lists (X.509 v2, RFC 5280 §5): the one strict CRL parser of
//! the project, for the CRLs a verifier fetches or is given and for the CA tools' own.
//!
//! Refused: anything but exactly one DER `CertificateList` (or one PEM `X509 CRL` block), a
//! signature algorithm that differs inside and outside the TBS, and any critical CRL or entry
//! extension this parser does not know (RFC 5280 §5.2: a CRL with an unknown critical
//! extension must not be used). The signature is checked separately ([`Crl::signed_by`]) with
//! the key of the certificate's issuer.

use der::{Decode, Encode};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{DerSignature, VerifyingKey as EcdsaKey};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::{CrlNumber, CrlReason};

use crate::error::Error;
use crate::oid::{self, ObjectIdentifier};

/// One listed certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial number bytes, as encoded.
    pub serial: Vec<u8>,
    /// Revocation time, seconds since the epoch.
    pub revoked_at: u64,
    /// The reasonCode entry extension, if present.
    pub reason: Option<CrlReason>,
}

/// A parsed CRL. Its signature is not trusted until [`Crl::signed_by`] says so.
#[derive(Clone, Debug)]
pub struct Crl {
    issuer: Vec<u8>,
    /// thisUpdate, seconds since the epoch.
    pub this_update: u64,
    /// nextUpdate, seconds since the epoch, if present.
    pub next_update: Option<u64>,
    /// The CRL number, if present and at most 64 bits.
    pub number: Option<u64>,
    /// The listed certificates.
    pub revoked: Vec<RevokedEntry>,
    tbs: Vec<u8>,
    algorithm: ObjectIdentifier,
    signature: Vec<u8>,
}

fn parse_error(error: der::Error) -> Error {
    Error::CrlParse(error.to_string())
}

impl Crl {
    /// Parses a DER CRL, or a PEM file holding one `X509 CRL` block.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.starts_with(b"-----") {
            let blocks = passport::pem::parse(bytes, 1).map_err(|_| Error::NoCrl)?;
            let der = blocks
                .into_iter()
                .find(|b| b.label == "X509 CRL")
                .map(|b| b.der)
                .ok_or(Error::NoCrl)?;
            return Self::parse_der(&der);
        }
        Self::parse_der(bytes)
    }

    /// Parses a DER CRL; nothing may follow it.
    pub fn parse_der(der_bytes: &[u8]) -> Result<Self, Error> {
        let list = CertificateList::from_der(der_bytes).map_err(parse_error)?;
        let tbs = list.tbs_cert_list;
        if tbs.signature != list.signature_algorithm {
            return Err(Error::CrlAlgorithmMismatch);
        }
        let mut number = None;
        for extension in tbs.crl_extensions.iter().flatten() {
            if extension.extn_id == oid::CRL_NUMBER {
                let value =
                    CrlNumber::from_der(extension.extn_value.as_bytes()).map_err(parse_error)?;
                let bytes = value.0.as_bytes();
                if bytes.len() <= 8 {
                    number = Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)));
                }
            } else if extension.critical {
                return Err(Error::CrlCriticalExtension(extension.extn_id));
            }
        }
        let mut revoked = Vec::new();
        for entry in tbs.revoked_certificates.iter().flatten() {
            let mut reason = None;
            for extension in entry.crl_entry_extensions.iter().flatten() {
                if extension.extn_id == oid::CRL_REASON {
                    reason = Some(
                        CrlReason::from_der(extension.extn_value.as_bytes())
                            .map_err(parse_error)?,
                    );
                } else if extension.critical {
                    return Err(Error::CrlEntryCriticalExtension(extension.extn_id));
                }
            }
            revoked.push(RevokedEntry {
                serial: entry.serial_number.as_bytes().to_vec(),
                revoked_at: entry.revocation_date.to_unix_duration().as_secs(),
                reason,
            });
        }
        Ok(Self {
            issuer: tbs.issuer.to_der().map_err(parse_error)?,
            this_update: tbs.this_update.to_unix_duration().as_secs(),
            next_update: tbs.next_update.map(|t| t.to_unix_duration().as_secs()),
            number,
            revoked,
            tbs: tbs.to_der().map_err(parse_error)?,
            algorithm: list.signature_algorithm.oid,
            signature: list.signature.raw_bytes().to_vec(),
        })
    }

    /// The issuer's name, DER (compare with a certificate's raw issuer).
    pub fn issuer(&self) -> &[u8] {
        &self.issuer
    }

    /// Checks the signature with the issuer's P-256 key (ecdsa-with-SHA256 only).
    pub fn verify(&self, key: &EcdsaKey) -> Result<(), Error> {
        if self.algorithm != oid::ECDSA_WITH_SHA256 {
            return Err(Error::CrlAlgorithm(self.algorithm));
        }
        let signature =
            DerSignature::from_bytes(&self.signature).map_err(|_| Error::CrlSignature)?;
        key.verify(&self.tbs, &signature)
            .map_err(|_| Error::CrlSignature)
    }

    /// Whether `key` signed it (ecdsa-with-SHA256 only).
    pub fn signed_by(&self, key: &EcdsaKey) -> bool {
        self.verify(key).is_ok()
    }

    /// Whether a serial (as encoded in the certificate) is listed.
    pub fn lists(&self, serial: &[u8]) -> bool {
        self.revoked.iter().any(|entry| entry.serial == serial)
    }

    /// Whether it may be used at `now`: before its nextUpdate (RFC 5280 §6.3.3: past it, the
    /// status it gives is undetermined).
    pub fn current_at(&self, now: u64) -> bool {
        self.next_update.is_none_or(|next| now < next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(relative: &str) -> Vec<u8> {
        std::fs::read(certs_test::path(relative)).unwrap_or_default()
    }

    fn intermediate_key() -> EcdsaKey {
        let der = passport::cert::chain_from_pem(&read("ca/intermediate.pem"))
            .unwrap_or_default()
            .swap_remove(0);
        let (_, cert) = <x509_parser::prelude::X509Certificate<'_> as x509_parser::prelude::FromDer<'_, _>>::from_der(&der)
            .unwrap_or_else(|_| unreachable!());
        p256::pkcs8::DecodePublicKey::from_public_key_der(cert.public_key().raw)
            .unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn the_test_pki_crl_lists_the_revoked_certificate_and_verifies() {
        let crl = Crl::parse(&read("ca/intermediate.crl")).unwrap_or_else(|e| panic!("{e}"));
        let revoked =
            passport::cert::chain_from_pem(&read("revoked/chain.pem")).unwrap_or_default();
        let (_, cert) = <x509_parser::prelude::X509Certificate<'_> as x509_parser::prelude::FromDer<'_, _>>::from_der(&revoked[0])
            .unwrap_or_else(|_| unreachable!());
        assert!(crl.lists(cert.raw_serial()));
        assert_eq!(crl.issuer(), cert.issuer().as_raw());
        assert_eq!(crl.revoked[0].reason, Some(CrlReason::KeyCompromise));
        assert!(crl.signed_by(&intermediate_key()));
        assert!(crl.current_at(1_800_000_000) && !crl.current_at(4_200_000_000));
        let der = read("ca/intermediate.crl");
        let mut tampered = der.clone();
        let last = tampered.len() - 40;
        tampered[last] ^= 1;
        assert!(Crl::parse(&tampered).map_or(true, |c| !c.signed_by(&intermediate_key())));
        assert!(Crl::parse(&der[..der.len() - 1]).is_err());
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(Crl::parse(&trailing).is_err());
    }
}
