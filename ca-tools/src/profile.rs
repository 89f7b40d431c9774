//! Certificate profiles: which fields and extensions each kind of certificate carries.
//!
//! STI certificates follow ATIS-1000080 v004 §6.4.1: critical basic constraints, critical key
//! usage, SKI, AKI, exactly one policy (the SHAKEN CP v1.3 OID), exactly one CRL distribution
//! point, and, for end entities, a TNAuthList with one SPC; nothing else.

use x509_cert::ext::pkix::KeyUsages;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use crate::certificate::{ext, key_identifier, oid, CertificateSpec};
use crate::error::CaError;

/// What every profile needs.
#[derive(Clone, Debug)]
pub struct Common {
    /// Serial number.
    pub serial: SerialNumber,
    /// Subject name.
    pub subject: Name,
    /// Subject public key.
    pub subject_public_key: SubjectPublicKeyInfoOwned,
    /// Validity start (seconds since the epoch).
    pub not_before: u64,
    /// Validity end (seconds since the epoch).
    pub not_after: u64,
}

/// The issuer's name and key identifier.
#[derive(Clone, Debug)]
pub struct Issuer {
    /// The issuer's subject name.
    pub name: Name,
    /// The issuer's subject key identifier.
    pub key_id: Vec<u8>,
}

fn spec(
    common: Common,
    issuer: Name,
    extensions: Vec<x509_cert::ext::Extension>,
) -> CertificateSpec {
    CertificateSpec {
        serial: common.serial,
        issuer,
        subject: common.subject,
        not_before: common.not_before,
        not_after: common.not_after,
        subject_public_key: common.subject_public_key,
        extensions,
    }
}

/// A self-signed root CA: CA true, keyCertSign and cRLSign, SKI and AKI (its own).
pub fn root_ca(common: Common) -> Result<CertificateSpec, CaError> {
    let id = key_identifier(&common.subject_public_key);
    let extensions = vec![
        ext::basic_constraints(true, None)?,
        ext::key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
        ext::subject_key_identifier(&id)?,
        ext::authority_key_identifier(&id)?,
    ];
    let issuer = common.subject.clone();
    Ok(spec(common, issuer, extensions))
}

/// An issuing (intermediate) CA: CA true with path length 0, the SHAKEN policy, one CRL
/// distribution point (where the root's CRL is published).
pub fn intermediate_ca(
    common: Common,
    issuer: &Issuer,
    crl_url: &str,
) -> Result<CertificateSpec, CaError> {
    let extensions = vec![
        ext::basic_constraints(true, Some(0))?,
        ext::key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
        ext::subject_key_identifier(&key_identifier(&common.subject_public_key))?,
        ext::authority_key_identifier(&issuer.key_id)?,
        ext::certificate_policies(&[oid::SHAKEN_CP_1_3])?,
        ext::crl_distribution_points(&[crl_url])?,
    ];
    Ok(spec(common, issuer.name.clone(), extensions))
}

/// An STI end-entity certificate (ATIS-1000080 §6.4.1).
pub fn sti_end_entity(
    common: Common,
    issuer: &Issuer,
    crl_url: &str,
    tn_auth_list: &passport::TnAuthList,
) -> Result<CertificateSpec, CaError> {
    let extensions = vec![
        ext::basic_constraints(false, None)?,
        ext::key_usage(KeyUsages::DigitalSignature)?,
        ext::subject_key_identifier(&key_identifier(&common.subject_public_key))?,
        ext::authority_key_identifier(&issuer.key_id)?,
        ext::certificate_policies(&[oid::SHAKEN_CP_1_3])?,
        ext::crl_distribution_points(&[crl_url])?,
        ext::tn_auth_list(tn_auth_list)?,
    ];
    Ok(spec(common, issuer.name.clone(), extensions))
}

/// A TLS server certificate for the certificate repository.
pub fn tls_server(
    common: Common,
    issuer: &Issuer,
    dns: &[&str],
    ips: &[std::net::IpAddr],
) -> Result<CertificateSpec, CaError> {
    let extensions = vec![
        ext::basic_constraints(false, None)?,
        ext::key_usage(KeyUsages::DigitalSignature)?,
        ext::server_auth()?,
        ext::subject_alt_names(dns, ips)?,
        ext::subject_key_identifier(&key_identifier(&common.subject_public_key))?,
        ext::authority_key_identifier(&issuer.key_id)?,
    ];
    Ok(spec(common, issuer.name.clone(), extensions))
}

/// A TLS client certificate (for a signer's or verifier's mutual TLS).
pub fn tls_client(common: Common, issuer: &Issuer) -> Result<CertificateSpec, CaError> {
    let extensions = vec![
        ext::basic_constraints(false, None)?,
        ext::key_usage(KeyUsages::DigitalSignature)?,
        ext::client_auth()?,
        ext::subject_key_identifier(&key_identifier(&common.subject_public_key))?,
        ext::authority_key_identifier(&issuer.key_id)?,
    ];
    Ok(spec(common, issuer.name.clone(), extensions))
}

/// The policy administrator's self-signed token-signing certificate.
pub fn policy_administrator(common: Common) -> Result<CertificateSpec, CaError> {
    let id = key_identifier(&common.subject_public_key);
    let extensions = vec![
        ext::basic_constraints(false, None)?,
        ext::key_usage(KeyUsages::DigitalSignature)?,
        ext::subject_key_identifier(&id)?,
        ext::authority_key_identifier(&id)?,
    ];
    let issuer = common.subject.clone();
    Ok(spec(common, issuer, extensions))
}
