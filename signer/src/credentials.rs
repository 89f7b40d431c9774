//! The signing key and the certificate it must match.
//!
//! At start and on every reload the key is checked against the certificate published at the
//! x5u (or a configured copy of that chain): a signer whose tokens no verifier could check
//! must not run.

use std::sync::Arc;
use std::time::Duration;

use passport::{SigningKey, TokenSigner};
use x509_parser::prelude::FromDer;

use crate::config::SignerConfig;
use crate::error::SignerError;

/// Largest chain fetched from x5u.
const MAX_CHAIN_BYTES: usize = 64 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A ready signer and what is known of its certificate.
#[derive(Debug)]
pub struct Credentials {
    /// The token signer.
    pub signer: Arc<TokenSigner>,
    /// The certificate's notAfter (seconds since the epoch).
    pub not_after: u64,
    /// The certificate's subject, for logs.
    pub subject: String,
}

/// Loads the key, obtains the chain, and checks that they match.
pub async fn load(config: &SignerConfig) -> Result<Credentials, SignerError> {
    let key_pem = SignerError::read_config_file("key_file", &config.key_file)?;
    let key = SigningKey::from_pem(&key_pem)
        .map_err(|e| SignerError::config_file("key_file", &config.key_file, e))?;
    let (chain, source) = match &config.certificate_file {
        Some(path) => (
            SignerError::read_config_file("certificate_file", path)?,
            path.display().to_string(),
        ),
        None => (fetch_chain(config).await?, config.x5u.clone()),
    };
    // The chain's problems name where it came from: `certificate_file`, or the x5u URL.
    let unusable = |detail: String| match &config.certificate_file {
        Some(path) => SignerError::config_file("certificate_file", path, detail),
        None => SignerError::Config(format!("x5u {source}: {detail}")),
    };
    let certificates =
        passport::cert::chain_from_pem(&chain).map_err(|e| unusable(e.to_string()))?;
    let first = certificates
        .first()
        .ok_or_else(|| SignerError::KeyMismatch(format!("{source}: empty chain")))?;
    let certificate_key =
        passport::cert::verifying_key_of(first).map_err(|e| unusable(e.to_string()))?;
    let public_key = key
        .verifying_key()
        .map_err(|e| SignerError::config_file("key_file", &config.key_file, e))?;
    if certificate_key != public_key {
        return Err(SignerError::KeyMismatch(source));
    }
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(first)
        .map_err(|e| SignerError::Config(format!("{source}: {e}")))?;
    Ok(Credentials {
        not_after: u64::try_from(parsed.validity().not_after.timestamp()).unwrap_or(0),
        subject: parsed.subject().to_string(),
        signer: Arc::new(TokenSigner::new(key, config.x5u.clone())),
    })
}

async fn fetch_chain(config: &SignerConfig) -> Result<Vec<u8>, SignerError> {
    use http_body_util::{BodyExt, Empty, Limited};
    use hyper_util::rt::TokioIo;

    let bad = |m: String| SignerError::Config(format!("fetching x5u {}: {m}", config.x5u));
    let rest = config
        .x5u
        .strip_prefix("https://")
        .ok_or_else(|| bad("only https:// can be fetched; set certificate_file".into()))?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .trim_matches(['[', ']']);
    let address = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_owned()
    } else {
        format!("{authority}:443")
    };
    let roots_path = config
        .x5u_tls_roots
        .as_ref()
        .ok_or_else(|| bad("no x5u_tls_roots configured".into()))?;
    let roots_pem = SignerError::read_config_file("x5u_tls_roots", roots_path)?;
    let mut roots = rustls::RootCertStore::empty();
    for der in passport::cert::chain_from_pem(&roots_pem)
        .map_err(|e| SignerError::config_file("x5u_tls_roots", roots_path, e))?
    {
        roots.add(der.into()).map_err(|e| bad(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| bad(e.to_string()))?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(server_name, tcp)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| bad(e.to_string()))?;
        tokio::spawn(connection);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| bad(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| bad(e.to_string()))?;
        if !response.status().is_success() {
            return Err(bad(format!("HTTP {}", response.status())));
        }
        let body = Limited::new(response.into_body(), MAX_CHAIN_BYTES)
            .collect()
            .await
            .map_err(|e| bad(e.to_string()))?;
        Ok(body.to_bytes().to_vec())
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| bad("timed out".into()))?
}
