//! Building and signing X.509 structures: names, times, extensions, certificates.
//!
//! Everything is assembled field by field so that a certificate holds exactly the extensions
//! its profile lists and nothing else (ATIS-1000080 §6.4.1 forbids others). Signatures are
//! ECDSA P-256 with SHA-256 and deterministic nonces (RFC 6979), so the same key, fields and
//! serial give the same bytes: that is what makes the test PKI reproducible.

use der::asn1::{BitString, Ia5String, OctetString, PrintableStringRef, Utf8StringRef};
use der::{Any, Decode, Encode};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey as EcdsaSigningKey};
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::der::asn1::{GeneralizedTime, ObjectIdentifier, SetOfVec, UtcTime};
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies, CrlDistributionPoints,
    ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

use crate::error::CaError;

/// OIDs this crate writes (the project's one list, in `pki`).
pub use pki::oid;

/// A distinguished name from (attribute, value) pairs, in the order given (most general
/// first, as `C=US, O=..., CN=...`). Values are PrintableString where they fit, else UTF8String.
pub fn name(attributes: &[(ObjectIdentifier, &str)]) -> Result<Name, CaError> {
    let mut rdns = Vec::with_capacity(attributes.len());
    for (oid, value) in attributes {
        let any = if let Ok(printable) = PrintableStringRef::new(value) {
            Any::encode_from(&printable)?
        } else {
            Any::encode_from(&Utf8StringRef::new(value)?)?
        };
        let atv = AttributeTypeAndValue {
            oid: *oid,
            value: any,
        };
        rdns.push(RelativeDistinguishedName(SetOfVec::try_from(vec![atv])?));
    }
    Ok(RdnSequence(rdns))
}

/// A certificate time: UTCTime before 2050 and GeneralizedTime from 2050, as RFC 5280 asks.
pub fn time(unix_seconds: u64) -> Result<Time, CaError> {
    let duration = std::time::Duration::from_secs(unix_seconds);
    // 2050-01-01T00:00:00Z
    if unix_seconds < 2_524_608_000 {
        Ok(Time::UtcTime(UtcTime::from_unix_duration(duration)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_unix_duration(
            duration,
        )?))
    }
}

/// A positive serial number of 16 bytes (127 random bits) from `rng`.
pub fn random_serial(rng: &mut impl rand_core::CryptoRngCore) -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        // Keep the encoding at 16 bytes so the serial has its full length.
        bytes[0] = 0x01;
    }
    Ok(SerialNumber::new(&bytes)?)
}

/// The SubjectPublicKeyInfo of a P-256 public key.
pub fn spki(public: &p256::PublicKey) -> Result<SubjectPublicKeyInfoOwned, CaError> {
    let der = public
        .to_public_key_der()
        .map_err(|e| CaError::Asn1(e.to_string()))?;
    Ok(SubjectPublicKeyInfoOwned::from_der(der.as_bytes())?)
}

/// The key identifier of a public key: SHA-256 of the subjectPublicKey bits, truncated to 160
/// bits (RFC 7093 §2, method 1).
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    let digest = Sha256::digest(spki.subject_public_key.raw_bytes());
    digest.get(..20).unwrap_or_default().to_vec()
}

/// SHA-256 of the DER SubjectPublicKeyInfo, as `SHA256 AB:CD:...` (the SPC token's
/// `fingerprint` form, RFC 9447 example).
pub fn spki_fingerprint(spki_der: &[u8]) -> String {
    let hex: Vec<String> = Sha256::digest(spki_der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("SHA256 {}", hex.join(":"))
}

/// The [`spki_fingerprint`] of a P-256 key given as PEM: a private key (PKCS#8 or SEC1), else
/// the first `PUBLIC KEY` block.
pub fn key_fingerprint_from_pem(pem: &[u8]) -> Result<String, CaError> {
    use p256::pkcs8::DecodePublicKey;
    let public = match passport::SigningKey::from_pem(pem) {
        Ok(key) => key.secret().public_key(),
        Err(_) => {
            let blocks = passport::pem::parse(pem, 4).map_err(passport::Error::from)?;
            let block = blocks
                .iter()
                .find(|b| b.label == "PUBLIC KEY")
                .ok_or_else(|| {
                    CaError::NoKey("neither a private key nor a PUBLIC KEY block".into())
                })?;
            p256::PublicKey::from_public_key_der(&block.der)
                .map_err(|e| CaError::NoKey(format!("the PUBLIC KEY block: {e}")))?
        }
    };
    public_key_fingerprint(&public)
}

/// The [`spki_fingerprint`] of a P-256 public key.
pub fn public_key_fingerprint(public: &p256::PublicKey) -> Result<String, CaError> {
    use p256::pkcs8::EncodePublicKey;
    let der = public
        .to_public_key_der()
        .map_err(|e| CaError::Asn1(format!("encoding the public key: {e}")))?;
    Ok(spki_fingerprint(der.as_bytes()))
}

fn extension(
    oid: ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// Extension constructors.
pub mod ext {
    use super::*;
    use const_oid::AssociatedOid;

    /// Basic constraints, critical.
    pub fn basic_constraints(ca: bool, path_len: Option<u8>) -> Result<Extension, CaError> {
        extension(
            BasicConstraints::OID,
            true,
            &BasicConstraints {
                ca,
                path_len_constraint: path_len,
            },
        )
    }

    /// Key usage, critical.
    pub fn key_usage(usages: impl Into<flagset::FlagSet<KeyUsages>>) -> Result<Extension, CaError> {
        extension(KeyUsage::OID, true, &KeyUsage(usages.into()))
    }

    /// Subject key identifier.
    pub fn subject_key_identifier(id: &[u8]) -> Result<Extension, CaError> {
        extension(
            SubjectKeyIdentifier::OID,
            false,
            &SubjectKeyIdentifier(OctetString::new(id)?),
        )
    }

    /// Authority key identifier (key identifier only).
    pub fn authority_key_identifier(id: &[u8]) -> Result<Extension, CaError> {
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(id)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        };
        extension(AuthorityKeyIdentifier::OID, false, &aki)
    }

    /// Certificate policies, non-critical, one PolicyInformation per OID, no qualifiers.
    pub fn certificate_policies(policies: &[ObjectIdentifier]) -> Result<Extension, CaError> {
        let info = policies
            .iter()
            .map(|oid| PolicyInformation {
                policy_identifier: *oid,
                policy_qualifiers: None,
            })
            .collect();
        extension(CertificatePolicies::OID, false, &CertificatePolicies(info))
    }

    /// CRL distribution points, one point per URL (full name URI).
    pub fn crl_distribution_points(urls: &[&str]) -> Result<Extension, CaError> {
        let mut points = Vec::new();
        for url in urls {
            points.push(DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![
                    GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
                ])),
                reasons: None,
                crl_issuer: None,
            });
        }
        extension(
            CrlDistributionPoints::OID,
            false,
            &CrlDistributionPoints(points),
        )
    }

    /// TNAuthList (explicit tags), non-critical.
    pub fn tn_auth_list(list: &passport::TnAuthList) -> Result<Extension, CaError> {
        Ok(Extension {
            extn_id: oid::TN_AUTH_LIST,
            critical: false,
            extn_value: OctetString::new(list.to_der())?,
        })
    }

    /// Subject alternative names for a TLS server: DNS names and IP addresses.
    pub fn subject_alt_names(dns: &[&str], ips: &[std::net::IpAddr]) -> Result<Extension, CaError> {
        let mut names = Vec::new();
        for name in dns {
            names.push(GeneralName::DnsName(Ia5String::new(name)?));
        }
        for ip in ips {
            let bytes = match ip {
                std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            names.push(GeneralName::IpAddress(OctetString::new(bytes)?));
        }
        extension(SubjectAltName::OID, false, &SubjectAltName(names))
    }

    /// Extended key usage: TLS client authentication.
    pub fn client_auth() -> Result<Extension, CaError> {
        extension(
            ExtendedKeyUsage::OID,
            false,
            &ExtendedKeyUsage(vec![oid::CLIENT_AUTH]),
        )
    }

    /// Extended key usage: TLS server authentication.
    pub fn server_auth() -> Result<Extension, CaError> {
        extension(
            ExtendedKeyUsage::OID,
            false,
            &ExtendedKeyUsage(vec![oid::SERVER_AUTH]),
        )
    }
}

/// Everything a certificate holds except its signature.
#[derive(Clone, Debug)]
pub struct CertificateSpec {
    /// Serial number.
    pub serial: SerialNumber,
    /// Issuer name (the subject of the signing certificate).
    pub issuer: Name,
    /// Subject name.
    pub subject: Name,
    /// Validity start, seconds since the epoch.
    pub not_before: u64,
    /// Validity end, seconds since the epoch.
    pub not_after: u64,
    /// The subject's public key.
    pub subject_public_key: SubjectPublicKeyInfoOwned,
    /// Extensions, in the order they are written.
    pub extensions: Vec<Extension>,
}

/// The `ecdsa-with-SHA256` algorithm identifier (no parameters).
pub fn ecdsa_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: oid::ECDSA_WITH_SHA256,
        parameters: None,
    }
}

/// Signs `message` with ECDSA P-256 / SHA-256 (RFC 6979) and returns the DER signature bits.
pub fn sign_der(key: &p256::SecretKey, message: &[u8]) -> Result<BitString, CaError> {
    let signing = EcdsaSigningKey::from(key);
    let signature: DerSignature = signing.sign(message);
    Ok(BitString::from_bytes(signature.as_bytes())?)
}

/// The to-be-signed part of a certificate (v3, ecdsa-with-SHA256).
pub fn tbs_certificate(spec: CertificateSpec) -> Result<TbsCertificate, CaError> {
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: spec.serial,
        signature: ecdsa_sha256(),
        issuer: spec.issuer,
        validity: Validity {
            not_before: time(spec.not_before)?,
            not_after: time(spec.not_after)?,
        },
        subject: spec.subject,
        subject_public_key_info: spec.subject_public_key,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: if spec.extensions.is_empty() {
            None
        } else {
            Some(spec.extensions)
        },
    })
}

/// Signs a TBS certificate with the issuer's key (ECDSA P-256, SHA-256, RFC 6979) and returns
/// the certificate's DER. The outer algorithm identifier repeats the TBS one.
pub fn sign_tbs(tbs: TbsCertificate, issuer_key: &p256::SecretKey) -> Result<Vec<u8>, CaError> {
    let signature = sign_der(issuer_key, &tbs.to_der()?)?;
    let certificate = Certificate {
        signature_algorithm: tbs.signature.clone(),
        tbs_certificate: tbs,
        signature,
    };
    Ok(certificate.to_der()?)
}

/// Signs a certificate with the issuer's key and returns its DER.
pub fn sign_certificate(
    spec: CertificateSpec,
    issuer_key: &p256::SecretKey,
) -> Result<Vec<u8>, CaError> {
    sign_tbs(tbs_certificate(spec)?, issuer_key)
}

/// PEM of one DER certificate.
pub fn certificate_pem(der: &[u8]) -> String {
    pem_block("CERTIFICATE", der)
}

/// PEM of DER bytes under `label`, 64 characters a line.
pub fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
