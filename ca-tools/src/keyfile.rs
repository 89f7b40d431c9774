//! Private keys and public files on disk: keys as PKCS#8 PEM with mode 0600 from the moment the
//! file exists, never overwriting an existing key unless the caller says so; every file written
//! whole or not at all ([`crate::output`]).

use std::path::Path;

use p256::elliptic_curve::zeroize::Zeroizing;
use p256::SecretKey;
use passport::SigningKey;

use crate::error::CaError;
use crate::output::Output;

/// A private key as PKCS#8 PEM, wiped from memory when dropped.
pub fn private_key_pem(secret: &SecretKey) -> Result<Zeroizing<String>, CaError> {
    Ok(SigningKey::from_secret(secret.clone())?.to_pkcs8_pem()?)
}

/// Writes `secret` as PKCS#8 PEM to `path` with mode 0600, creating missing folders.
///
/// With `overwrite` false an existing file is an error ([`CaError::KeyExists`]); with it true
/// the key replaces the old file atomically.
pub fn write_private_key(path: &Path, secret: &SecretKey, overwrite: bool) -> Result<(), CaError> {
    let mut output = Output::new();
    output.private(path, private_key_pem(secret)?.as_bytes(), overwrite)?;
    output.commit()
}

/// Generates a P-256 private key from `rng` and writes it to `path` as
/// [`write_private_key`] does (0600, an existing file kept unless `overwrite`). Returns its
/// public key.
pub fn generate_private_key(
    path: &Path,
    overwrite: bool,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<p256::PublicKey, CaError> {
    let secret = SecretKey::random(rng);
    write_private_key(path, &secret, overwrite)?;
    Ok(secret.public_key())
}

/// Reads a private key (PKCS#8 or SEC1 PEM).
pub fn read_private_key(path: &Path) -> Result<SigningKey, CaError> {
    let pem = std::fs::read(path).map_err(|e| CaError::io(path, &e))?;
    Ok(SigningKey::from_pem(&pem)?)
}

/// Writes a public file (certificate, CSR, CRL, token) atomically, creating missing folders.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), CaError> {
    let mut output = Output::new();
    output.public(path, bytes)?;
    output.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_0600_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let secret = SecretKey::random(&mut rand_core::OsRng);
        write_private_key(&path, &secret, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        let other = SecretKey::random(&mut rand_core::OsRng);
        assert!(matches!(
            write_private_key(&path, &other, false),
            Err(CaError::KeyExists(_))
        ));
        write_private_key(&path, &other, true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let reread = read_private_key(&path).unwrap();
        assert_eq!(reread.secret().to_bytes(), other.to_bytes());
    }
}
