//! The signer's HTTPS: a server certificate, and optionally mutual TLS with client certificates
//! from a configured CA (each client then identified by its certificate's SHA-256, see
//! [`crate::config::ClientSection`]).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSection;
use crate::error::SignerError;

fn read(path: &std::path::Path) -> Result<Vec<u8>, SignerError> {
    std::fs::read(path).map_err(|e| SignerError::io(path, &e))
}

/// The acceptor for `[tls]`.
pub fn acceptor(section: &TlsSection) -> Result<TlsAcceptor, SignerError> {
    let chain: Vec<CertificateDer<'static>> =
        passport::cert::chain_from_pem(&read(&section.cert_file)?)?
            .into_iter()
            .map(CertificateDer::from)
            .collect();
    let key = passport::SigningKey::from_pem(&read(&section.key_file)?)?;
    let pkcs8 = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(key.secret())
        .map_err(|e| SignerError::Config(format!("TLS key: {e}")))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| SignerError::Config(format!("TLS: {e}")))?;
    let builder = match &section.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            for der in passport::cert::chain_from_pem(&read(ca_file)?)? {
                roots.add(CertificateDer::from(der)).map_err(|e| {
                    SignerError::Config(format!("client CA {}: {e}", ca_file.display()))
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| SignerError::Config(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| SignerError::Config(format!("TLS certificate or key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
