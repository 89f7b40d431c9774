//! The trusted STI-CA roots a verifier builds paths to.

use std::path::Path;

use p256::ecdsa::VerifyingKey as EcdsaKey;
use p256::pkcs8::DecodePublicKey;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::Error;

/// The most certificates read from one trust anchor file or folder.
pub const MAX_ANCHORS: usize = 1024;

/// One trusted root: its name, key and end of validity.
#[derive(Clone, Debug)]
pub(crate) struct Anchor {
    pub(crate) subject: Vec<u8>,
    pub(crate) key: EcdsaKey,
    pub(crate) not_after: i64,
}

/// The trusted STI-CA roots.
#[derive(Clone, Debug, Default)]
pub struct TrustAnchors {
    pub(crate) anchors: Vec<Anchor>,
}

impl TrustAnchors {
    /// From a PEM bundle of root certificates (only `CERTIFICATE` blocks, at most
    /// [`MAX_ANCHORS`]); every one must parse and carry a P-256 key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let ders =
            passport::cert::certificates_from_pem(pem, MAX_ANCHORS).map_err(Error::Bundle)?;
        let mut anchors = Vec::with_capacity(ders.len());
        for (index, der) in ders.iter().enumerate() {
            let cert = match X509Certificate::from_der(der) {
                Ok(([], cert)) => cert,
                Ok(_) => {
                    return Err(Error::Parse {
                        index,
                        detail: "trailing bytes".into(),
                    })
                }
                Err(e) => {
                    return Err(Error::Parse {
                        index,
                        detail: e.to_string(),
                    })
                }
            };
            let key = EcdsaKey::from_public_key_der(cert.public_key().raw)
                .map_err(|_| Error::AnchorKey(cert.subject().to_string()))?;
            anchors.push(Anchor {
                subject: cert.subject().as_raw().to_vec(),
                key,
                not_after: cert.validity().not_after.timestamp(),
            });
        }
        if anchors.is_empty() {
            return Err(Error::NoAnchors);
        }
        Ok(Self { anchors })
    }

    /// From a PEM file, or every `.pem`/`.crt` file of a folder (in name order).
    pub fn from_path(path: &Path) -> Result<Self, Error> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| Error::Read {
                path: path.to_owned(),
                kind: e.kind(),
            })
        };
        let mut pem = Vec::new();
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| Error::Read {
                    path: path.to_owned(),
                    kind: e.kind(),
                })?
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            for file in entries
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "pem" || e == "crt"))
            {
                pem.extend(read(file)?);
                pem.push(b'\n');
            }
        } else {
            pem = read(path)?;
        }
        Self::from_pem(&pem)
    }

    /// How many anchors.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_load_from_a_file_and_refuse_what_is_not_a_root_certificate() {
        let root = std::fs::read(certs_test::path("ca/root.pem")).unwrap_or_default();
        assert_eq!(TrustAnchors::from_pem(&root).map(|a| a.len()), Ok(1));
        let key = std::fs::read(certs_test::path("ca/root.key")).unwrap_or_default();
        assert!(matches!(
            TrustAnchors::from_pem(&key),
            Err(Error::Bundle(
                passport::cert::CertificateError::UnexpectedBlock(_)
            ))
        ));
        assert!(matches!(
            TrustAnchors::from_path(Path::new("/nonexistent/roots.pem")),
            Err(Error::Read {
                kind: std::io::ErrorKind::NotFound,
                ..
            })
        ));
    }
}
