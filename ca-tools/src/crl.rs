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

use pki::oid::{CRL_NUMBER, CRL_REASON};

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
        let parsed = pki::Crl::parse(&der).unwrap();
        assert_eq!(parsed.number, Some(7));
        assert_eq!(parsed.this_update, 1_800_000_000);
        assert_eq!(parsed.next_update, Some(1_800_086_400));
        assert!(parsed.lists(&[0x12, 0x34]) && parsed.lists(&[0x56]) && !parsed.lists(&[0x78]));
        assert_eq!(parsed.revoked[0].reason, Some(CrlReason::KeyCompromise));
        assert_eq!(parsed.revoked[1].reason, None);
        let verifying = |k: &p256::SecretKey| p256::ecdsa::VerifyingKey::from(k.public_key());
        parsed.verify(&verifying(&key)).unwrap();
        let other = p256::SecretKey::random(&mut rand_core::OsRng);
        assert!(parsed.verify(&verifying(&other)).is_err());
        let mut tampered = der.clone();
        let at = tampered.windows(2).position(|w| w == [0x12, 0x34]).unwrap();
        tampered[at] = 0x13;
        assert!(pki::Crl::parse(&tampered)
            .unwrap()
            .verify(&verifying(&key))
            .is_err());
        assert!(pki::Crl::parse(&der[..der.len() - 1]).is_err());
    }
}
