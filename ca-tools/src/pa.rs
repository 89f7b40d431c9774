//! The policy administrator (STI-PA): its token-signing key and certificate, and the SPC tokens
//! it signs with them.

use std::path::{Path, PathBuf};

use crate::certificate::{self, oid};
use crate::error::CaError;
use crate::keyfile;
use crate::output::Output;
use crate::profile::{self, Common};
use crate::spc_token;

/// Validity of the PA certificate, in days (10 years).
pub const PA_DAYS: u64 = 10 * 365;

/// The PA's files written by [`init`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaFiles {
    /// The token-signing key, `DIR/pa.key` (0600).
    pub key: PathBuf,
    /// The self-signed certificate, `DIR/pa.pem`.
    pub certificate: PathBuf,
    /// The certificate's notAfter.
    pub not_after: u64,
}

/// Creates `dir/pa.key` (0600) and the self-signed `dir/pa.pem`, creating `dir` if needed;
/// both files or neither. Without `force` an existing key is refused before anything is
/// written.
pub fn init(
    dir: &Path,
    organization: &str,
    now: u64,
    force: bool,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<PaFiles, CaError> {
    let files = PaFiles {
        key: dir.join("pa.key"),
        certificate: dir.join("pa.pem"),
        not_after: now + PA_DAYS * crate::ca::DAY,
    };
    if !force && files.key.exists() {
        return Err(CaError::KeyExists(files.key));
    }
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
        not_after: files.not_after,
    })?;
    let der = certificate::sign_certificate(spec, &secret)?;
    let mut output = Output::new();
    output.private(
        &files.key,
        keyfile::private_key_pem(&secret)?.as_bytes(),
        force,
    )?;
    output.public(
        &files.certificate,
        certificate::certificate_pem(&der).as_bytes(),
    )?;
    output.commit()?;
    Ok(files)
}

/// What an SPC token authorizes ([`sign_spc_token`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpcTokenRequest<'a> {
    /// The service provider code.
    pub spc: &'a str,
    /// The account key's fingerprint, `SHA256 AB:CD:...`.
    pub fingerprint: &'a str,
    /// Lifetime in seconds.
    pub ttl: u64,
    /// The PA certificate's URL, put in the token header's `x5u`.
    pub x5u: Option<String>,
}

/// A signed SPC token ([`sign_spc_token`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedToken {
    /// The token, compact JWS.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp`.
    pub expires: u64,
}

/// Signs an SPC token with the PA key `dir/pa.key` (made by [`init`]), valid from `now` for
/// `request.ttl` seconds, its `jti` a random UUID drawn from `rng`.
pub fn sign_spc_token(
    dir: &Path,
    request: &SpcTokenRequest<'_>,
    now: u64,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<SignedToken, CaError> {
    let key = keyfile::read_private_key(&dir.join("pa.key"))?;
    let mut random = [0u8; 16];
    rng.fill_bytes(&mut random);
    let jti = uuid::Builder::from_random_bytes(random)
        .into_uuid()
        .to_string();
    let token = spc_token::create(
        &key,
        request.spc,
        request.fingerprint,
        now,
        request.ttl,
        jti.clone(),
        request.x5u.clone(),
    )?;
    Ok(SignedToken {
        token,
        jti,
        expires: now.saturating_add(request.ttl),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_signed_with_the_pa_directory_verify_with_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        init(
            dir.path(),
            "Test PA",
            1_700_000_000,
            false,
            &mut rand_core::OsRng,
        )
        .unwrap();
        let fingerprint = certificate::spki_fingerprint(b"account key");
        let request = SpcTokenRequest {
            spc: "1001",
            fingerprint: &fingerprint,
            ttl: 600,
            x5u: None,
        };
        let signed =
            sign_spc_token(dir.path(), &request, 1_700_000_000, &mut rand_core::OsRng).unwrap();
        let token = signed.token;
        let pem = std::fs::read(dir.path().join("pa.pem")).unwrap();
        let key = passport::cert::verifying_key_from_pem_chain(&pem).unwrap();
        let checked = spc_token::verify(&token, &key, 1_700_000_100).unwrap();
        assert_eq!(checked.tn_auth_list.single_spc(), Some("1001"));
        assert_eq!(checked.exp, 1_700_000_600);
        assert!(
            uuid::Uuid::parse_str(&checked.jti).is_ok(),
            "{}",
            checked.jti
        );
        assert_eq!(checked.jti, signed.jti);
        assert_eq!(signed.expires, 1_700_000_600);
        let other =
            sign_spc_token(dir.path(), &request, 1_700_000_000, &mut rand_core::OsRng).unwrap();
        assert_ne!(token, other.token, "each token has its own jti");
        assert!(matches!(
            sign_spc_token(&dir.path().join("none"), &request, 0, &mut rand_core::OsRng),
            Err(CaError::Io { .. })
        ));
    }
}
