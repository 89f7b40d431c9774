//! Certificate revocation lists (X.509 v2, RFC 5280 §5) signed by a CA.

use std::fmt;
use std::str::FromStr;

use der::asn1::{OctetString, Uint};
use der::Encode;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::{CrlNumber, CrlReason};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Version;

use crate::certificate::{self, ext};
use crate::error::CaError;
use crate::profile::Issuer;

/// `id-ce-cRLReasons`.
const CRL_REASON: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.21");
/// `id-ce-cRLNumber`.
const CRL_NUMBER: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.20");

/// Why a certificate was revoked (RFC 5280 §5.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// No reason given (written without a reasonCode entry extension).
    Unspecified,
    /// The subject's key was compromised.
    KeyCompromise,
    /// The CA's key was compromised.
    CaCompromise,
    /// The subject's affiliation changed.
    AffiliationChanged,
    /// Replaced by another certificate.
    Superseded,
    /// No longer needed.
    CessationOfOperation,
    /// Temporarily on hold.
    CertificateHold,
    /// A privilege was withdrawn.
    PrivilegeWithdrawn,
}

impl Reason {
    fn crl_reason(self) -> CrlReason {
        match self {
            Self::Unspecified => CrlReason::Unspecified,
            Self::KeyCompromise => CrlReason::KeyCompromise,
            Self::CaCompromise => CrlReason::CaCompromise,
            Self::AffiliationChanged => CrlReason::AffiliationChanged,
            Self::Superseded => CrlReason::Superseded,
            Self::CessationOfOperation => CrlReason::CessationOfOperation,
            Self::CertificateHold => CrlReason::CertificateHold,
            Self::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        }
    }

    const ALL: [(&'static str, Reason); 8] = [
        ("unspecified", Self::Unspecified),
        ("keyCompromise", Self::KeyCompromise),
        ("caCompromise", Self::CaCompromise),
        ("affiliationChanged", Self::AffiliationChanged),
        ("superseded", Self::Superseded),
        ("cessationOfOperation", Self::CessationOfOperation),
        ("certificateHold", Self::CertificateHold),
        ("privilegeWithdrawn", Self::PrivilegeWithdrawn),
    ];
}

impl FromStr for Reason {
    type Err = CaError;
    /// Accepts the RFC 5280 names in any case, with or without `-`/`_` (`key-compromise`).
    fn from_str(s: &str) -> Result<Self, CaError> {
        let wanted: String = s.chars().filter(|c| *c != '-' && *c != '_').collect();
        Self::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&wanted))
            .map(|(_, reason)| *reason)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                CaError::InvalidArgument(format!(
                    "unknown revocation reason {s:?} (known: {})",
                    names.join(", ")
                ))
            })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::ALL
            .iter()
            .find(|(_, r)| r == self)
            .map_or("unspecified", |(n, _)| *n);
        f.write_str(name)
    }
}

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// Serial number bytes (big-endian, as in the certificate).
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub revoked_at: u64,
    /// Why.
    pub reason: Reason,
}

/// Builds and signs a CRL; returns DER.
pub fn build(
    issuer: &Issuer,
    issuer_key: &p256::SecretKey,
    crl_number: u64,
    this_update: u64,
    next_update: u64,
    revoked: &[Revoked],
) -> Result<Vec<u8>, CaError> {
    let mut entries = Vec::with_capacity(revoked.len());
    for entry in revoked {
        let extensions = if entry.reason == Reason::Unspecified {
            None
        } else {
            Some(vec![Extension {
                extn_id: CRL_REASON,
                critical: false,
                extn_value: OctetString::new(entry.reason.crl_reason().to_der()?)?,
            }])
        };
        entries.push(RevokedCert {
            serial_number: SerialNumber::new(&entry.serial)?,
            revocation_date: certificate::time(entry.revoked_at)?,
            crl_entry_extensions: extensions,
        });
    }
    let number = CrlNumber(Uint::new(&crl_number.to_be_bytes())?);
    let extensions = vec![
        ext::authority_key_identifier(&issuer.key_id)?,
        Extension {
            extn_id: CRL_NUMBER,
            critical: false,
            extn_value: OctetString::new(number.to_der()?)?,
        },
    ];
    let tbs = TbsCertList {
        version: Version::V2,
        signature: certificate::ecdsa_sha256(),
        issuer: issuer.name.clone(),
        this_update: certificate::time(this_update)?,
        next_update: Some(certificate::time(next_update)?),
        revoked_certificates: if entries.is_empty() {
            None
        } else {
            Some(entries)
        },
        crl_extensions: Some(extensions),
    };
    let signature = certificate::sign_der(issuer_key, &tbs.to_der()?)?;
    let list = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: certificate::ecdsa_sha256(),
        signature,
    };
    Ok(list.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_in_several_spellings() {
        assert_eq!(
            "keyCompromise".parse::<Reason>().unwrap(),
            Reason::KeyCompromise
        );
        assert_eq!(
            "key-compromise".parse::<Reason>().unwrap(),
            Reason::KeyCompromise
        );
        assert_eq!("SUPERSEDED".parse::<Reason>().unwrap(), Reason::Superseded);
        assert!("stolen".parse::<Reason>().is_err());
        assert_eq!(
            Reason::CessationOfOperation.to_string(),
            "cessationOfOperation"
        );
    }
}

/// One entry of a parsed CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial number bytes as encoded.
    pub serial: Vec<u8>,
    /// Revocation time.
    pub revoked_at: u64,
    /// The reasonCode entry extension, if present and known.
    pub reason: Option<Reason>,
}

/// A CRL read from DER. The signature is not checked until [`ParsedCrl::verify`].
#[derive(Clone, Debug)]
pub struct ParsedCrl {
    /// The issuer's name.
    pub issuer: x509_cert::name::Name,
    /// thisUpdate.
    pub this_update: u64,
    /// nextUpdate, if present.
    pub next_update: Option<u64>,
    /// The CRL number, if present and at most 64 bits.
    pub number: Option<u64>,
    /// Revoked certificates.
    pub revoked: Vec<RevokedEntry>,
    tbs_der: Vec<u8>,
    algorithm: der::asn1::ObjectIdentifier,
    signature: Vec<u8>,
}

/// Parses a DER CRL (X.509 v2). Nothing may follow it.
pub fn parse(der_bytes: &[u8]) -> Result<ParsedCrl, CaError> {
    use der::Decode;
    let list = CertificateList::from_der(der_bytes)?;
    let tbs = list.tbs_cert_list;
    if tbs.signature != list.signature_algorithm {
        return Err(CaError::Asn1(
            "CRL signature algorithm differs inside and outside the TBS".into(),
        ));
    }
    let mut number = None;
    for extension in tbs.crl_extensions.iter().flatten() {
        if extension.extn_id == CRL_NUMBER {
            let value = CrlNumber::from_der(extension.extn_value.as_bytes())?;
            let bytes = value.0.as_bytes();
            if bytes.len() <= 8 {
                number = Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)));
            }
        } else if extension.critical {
            return Err(CaError::Asn1(format!(
                "unknown critical CRL extension {}",
                extension.extn_id
            )));
        }
    }
    let mut revoked = Vec::new();
    for entry in tbs.revoked_certificates.iter().flatten() {
        let mut reason = None;
        for extension in entry.crl_entry_extensions.iter().flatten() {
            if extension.extn_id == CRL_REASON {
                let code = CrlReason::from_der(extension.extn_value.as_bytes())?;
                reason = Reason::ALL
                    .iter()
                    .map(|(_, r)| *r)
                    .find(|r| r.crl_reason() == code);
            } else if extension.critical {
                return Err(CaError::Asn1(format!(
                    "unknown critical CRL entry extension {}",
                    extension.extn_id
                )));
            }
        }
        revoked.push(RevokedEntry {
            serial: entry.serial_number.as_bytes().to_vec(),
            revoked_at: entry.revocation_date.to_unix_duration().as_secs(),
            reason,
        });
    }
    Ok(ParsedCrl {
        this_update: tbs.this_update.to_unix_duration().as_secs(),
        next_update: tbs.next_update.map(|t| t.to_unix_duration().as_secs()),
        number,
        revoked,
        tbs_der: tbs.to_der()?,
        algorithm: list.signature_algorithm.oid,
        signature: list.signature.raw_bytes().to_vec(),
        issuer: tbs.issuer,
    })
}

impl ParsedCrl {
    /// Checks the signature with the issuer's P-256 key (ecdsa-with-SHA256 only).
    pub fn verify(&self, issuer: &p256::PublicKey) -> Result<(), CaError> {
        use p256::ecdsa::signature::Verifier;
        if self.algorithm != certificate::oid::ECDSA_WITH_SHA256 {
            return Err(CaError::Asn1(format!(
                "CRL signature algorithm {} is not ecdsa-with-SHA256",
                self.algorithm
            )));
        }
        let signature = p256::ecdsa::DerSignature::from_bytes(&self.signature)
            .map_err(|_| CaError::Asn1("CRL signature is not a DER ECDSA signature".into()))?;
        p256::ecdsa::VerifyingKey::from(issuer)
            .verify(&self.tbs_der, &signature)
            .map_err(|_| {
                CaError::Asn1("CRL signature does not verify with the issuer's key".into())
            })
    }

    /// Whether a serial (as encoded in the certificate) is listed.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.revoked.iter().any(|entry| entry.serial == serial)
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn built_crls_parse_back_and_verify() {
        let key = p256::SecretKey::random(&mut rand_core::OsRng);
        let issuer = Issuer {
            name: certificate::name(&[(certificate::oid::COMMON_NAME, "Test CA")]).unwrap(),
            key_id: vec![1; 20],
        };
        let revoked = [
            Revoked {
                serial: vec![0x12, 0x34],
                revoked_at: 1_800_000_000,
                reason: Reason::KeyCompromise,
            },
            Revoked {
                serial: vec![0x56],
                revoked_at: 1_800_000_001,
                reason: Reason::Unspecified,
            },
        ];
        let der = build(&issuer, &key, 7, 1_800_000_000, 1_800_086_400, &revoked).unwrap();
        let parsed = parse(&der).unwrap();
        assert_eq!(parsed.number, Some(7));
        assert_eq!(parsed.this_update, 1_800_000_000);
        assert_eq!(parsed.next_update, Some(1_800_086_400));
        assert!(
            parsed.is_revoked(&[0x12, 0x34])
                && parsed.is_revoked(&[0x56])
                && !parsed.is_revoked(&[0x78])
        );
        assert_eq!(parsed.revoked[0].reason, Some(Reason::KeyCompromise));
        assert_eq!(parsed.revoked[1].reason, None);
        parsed.verify(&key.public_key()).unwrap();
        let other = p256::SecretKey::random(&mut rand_core::OsRng);
        assert!(parsed.verify(&other.public_key()).is_err());
        let mut tampered = der.clone();
        let at = tampered.windows(2).position(|w| w == [0x12, 0x34]).unwrap();
        tampered[at] = 0x13;
        assert!(parse(&tampered).unwrap().verify(&key.public_key()).is_err());
        assert!(parse(&der[..der.len() - 1]).is_err());
    }
}
