//! A service's HTTPS: a server certificate, and optionally mutual TLS with client certificates
//! from a configured CA (each client then identified by its certificate's SHA-256, see
//! [`crate::clients::ClientSection`]).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use serde::Deserialize;

/// `[tls]` in a service's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Server certificate chain (PEM).
    pub cert_file: std::path::PathBuf,
    /// Server key (PEM).
    pub key_file: std::path::PathBuf,
    /// When set, clients must present a certificate issued by one of these roots.
    pub client_ca_file: Option<std::path::PathBuf>,
}

/// Why a TLS configuration is unusable; the message names the `[tls]` key of a file that
/// cannot be read (`tls.key_file: cannot read /etc/shaken/tls.key: No such file or directory`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// Reads the file of the `[tls]` key `key`.
fn read(key: &str, path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("{key}: cannot read {}: {e}", path.display())))
}

/// The acceptor for `[tls]`: the server chain and key from their files, and client
/// certificates required when `client_ca_file` is set. ALPN offers HTTP/1.1 only.
pub fn acceptor(section: &TlsSection) -> Result<TlsAcceptor, TlsError> {
    let chain = read("tls.cert_file", &section.cert_file)?;
    let key = read("tls.key_file", &section.key_file)?;
    let client_roots = match &section.client_ca_file {
        Some(path) => Some((path.as_path(), read("tls.client_ca_file", path)?)),
        None => None,
    };
    build(
        &chain,
        &key,
        client_roots
            .as_ref()
            .map(|(path, pem)| (*path, pem.as_slice())),
    )
}

/// An acceptor for a server chain and key given as PEM (the key PKCS#8 or SEC1), asking no
/// client certificate: what a service publishing to anyone (the certificate repository) needs.
/// ALPN offers HTTP/1.1 only.
pub fn acceptor_from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, TlsError> {
    build(chain_pem, key_pem, None)
}

/// The acceptor; `client_roots` is the client CA file's name and content.
fn build(
    chain_pem: &[u8],
    key_pem: &[u8],
    client_roots: Option<(&std::path::Path, &[u8])>,
) -> Result<TlsAcceptor, TlsError> {
    let chain: Vec<CertificateDer<'static>> = passport::cert::chain_from_pem(chain_pem)
        .map_err(|e| TlsError(format!("TLS certificate chain: {e}")))?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key =
        passport::SigningKey::from_pem(key_pem).map_err(|e| TlsError(format!("TLS key: {e}")))?;
    let pkcs8 = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(key.secret())
        .map_err(|e| TlsError(format!("TLS key: {e}")))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS: {e}")))?;
    let builder = match client_roots {
        None => builder.with_no_client_auth(),
        Some((ca_file, pem)) => {
            let mut roots = rustls::RootCertStore::empty();
            for der in passport::cert::chain_from_pem(pem)
                .map_err(|e| TlsError(format!("client CA {}: {e}", ca_file.display())))?
            {
                roots
                    .add(CertificateDer::from(der))
                    .map_err(|e| TlsError(format!("client CA {}: {e}", ca_file.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| TlsError(format!("TLS client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(format!("TLS certificate or key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_file_is_named_by_its_key() {
        let missing = std::env::temp_dir().join("shaken-no-such-dir/none.pem");
        let section = |cert: &std::path::Path, key: &std::path::Path| TlsSection {
            cert_file: cert.to_owned(),
            key_file: key.to_owned(),
            client_ca_file: None,
        };
        let error = acceptor(&section(&missing, &missing)).err().unwrap();
        assert!(
            error.to_string().starts_with(&format!(
                "tls.cert_file: cannot read {}: ",
                missing.display()
            )),
            "{error}"
        );
        let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let error = acceptor(&section(&here, &missing)).err().unwrap();
        assert!(error.to_string().starts_with("tls.key_file: "), "{error}");
    }
}
