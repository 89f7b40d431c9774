//! The policy administrator (STI-PA): its token-signing key and certificate.

use std::path::Path;

use crate::certificate::{self, oid};
use crate::error::CaError;
use crate::keyfile;
use crate::profile::{self, Common};

/// Validity of the PA certificate, in days (10 years).
pub const PA_DAYS: u64 = 10 * 365;

/// Creates `dir/pa.key` (0600) and the self-signed `dir/pa.pem`.
pub fn init(
    dir: &Path,
    organization: &str,
    now: u64,
    force: bool,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<(), CaError> {
    std::fs::create_dir_all(dir).map_err(|e| CaError::io(dir, &e))?;
    let secret = p256::SecretKey::random(&mut *rng);
    let spec = profile::policy_administrator(Common {
        serial: certificate::random_serial(rng)?,
        subject: certificate::name(&[
            (oid::COUNTRY, "US"),
            (oid::ORGANIZATION, organization),
            (
                oid::COMMON_NAME,
                &format!("{organization} STI-PA Token Signer"),
            ),
        ])?,
        subject_public_key: certificate::spki(&secret.public_key())?,
        not_before: now,
        not_after: now + PA_DAYS * crate::ca::DAY,
    })?;
    let der = certificate::sign_certificate(spec, &secret)?;
    keyfile::write_private_key(&dir.join("pa.key"), &secret, force)?;
    keyfile::write_public(
        &dir.join("pa.pem"),
        certificate::certificate_pem(&der).as_bytes(),
    )
}
