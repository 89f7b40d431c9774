//! Writing private keys safely: PKCS#8 PEM, mode 0600 from the moment the file exists, and no
//! overwriting an existing key unless the caller says so.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use p256::SecretKey;
use passport::SigningKey;

use crate::error::CaError;

/// Writes `secret` as PKCS#8 PEM to `path` with mode 0600.
///
/// With `overwrite` false an existing file is an error ([`CaError::KeyExists`]); with it true
/// the key is written to a temporary file in the same folder and renamed over the old one.
pub fn write_private_key(path: &Path, secret: &SecretKey, overwrite: bool) -> Result<(), CaError> {
    let key = SigningKey::from_secret(secret.clone())?;
    let pem = key.to_pkcs8_pem()?;
    if !overwrite && path.exists() {
        return Err(CaError::KeyExists(path.to_owned()));
    }
    let target = if overwrite {
        path.with_extension("key-tmp")
    } else {
        path.to_owned()
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists && !overwrite {
                CaError::KeyExists(path.to_owned())
            } else {
                CaError::io(&target, &e)
            }
        })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| CaError::io(&target, &e))?;
    if overwrite {
        std::fs::rename(&target, path).map_err(|e| CaError::io(path, &e))?;
    }
    Ok(())
}

/// Generates a P-256 private key from `rng` and writes it to `path` as
/// [`write_private_key`] does (0600, an existing file kept unless `overwrite`).
pub fn generate_private_key(
    path: &Path,
    overwrite: bool,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<(), CaError> {
    write_private_key(path, &SecretKey::random(rng), overwrite)
}

/// Reads a private key (PKCS#8 or SEC1 PEM).
pub fn read_private_key(path: &Path) -> Result<SigningKey, CaError> {
    let pem = std::fs::read(path).map_err(|e| CaError::io(path, &e))?;
    Ok(SigningKey::from_pem(&pem)?)
}

/// Writes a public file (certificate, CSR, CRL, token) atomically.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), CaError> {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, bytes).map_err(|e| CaError::io(&tmp, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| CaError::io(path, &e))
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
