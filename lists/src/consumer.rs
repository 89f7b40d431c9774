//! A consumer's whole setup from its `[lists]` section: read the regulator's certificate, load
//! a list file at once (so a signer or verifier starts with the list it will use), and keep
//! reloading in the background ([`crate::spawn_reloader`]). A list that cannot be read or is
//! refused at start is logged and counted, never fatal: calls go on without it until a good
//! one arrives.

use std::path::PathBuf;
use std::sync::Arc;

use rest::fetch::{FetchPolicy, Fetcher};

use crate::error::{JwsError, SourceError};
use crate::source::{load_file_now, spawn_reloader, ListSource, ListsConfig};
use crate::store::ListStore;
use crate::RegulatorCert;

/// Why a consumer's `[lists]` section cannot be used: a configuration error, named by key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// `lists.source` is neither a file path nor an http(s) URL.
    #[error("lists.source: {0}")]
    Source(#[from] SourceError),
    /// `lists.regulator_cert` cannot be read.
    #[error("lists.regulator_cert: cannot read {path}: {detail}")]
    CertificateFile {
        /// The file.
        path: PathBuf,
        /// The system's words.
        detail: String,
    },
    /// `lists.regulator_cert` is not a P-256 certificate.
    #[error("lists.regulator_cert: {path}: {error}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        error: JwsError,
    },
    /// The fetcher cannot be built (TLS roots).
    #[error("lists: {0}")]
    Fetcher(rest::fetch::FetchError),
}

/// Checks a `[lists]` section without starting anything: the source parses and the
/// certificate reads (what `--validate` does).
pub fn check(config: &ListsConfig) -> Result<(ListSource, RegulatorCert), ConsumerError> {
    let source = config.source()?;
    let pem =
        std::fs::read(&config.regulator_cert).map_err(|e| ConsumerError::CertificateFile {
            path: config.regulator_cert.clone(),
            detail: e.to_string(),
        })?;
    let cert = RegulatorCert::from_pem(&pem).map_err(|error| ConsumerError::Certificate {
        path: config.regulator_cert.clone(),
        error,
    })?;
    Ok((source, cert))
}

/// Builds the store for `config`, loads a list file now (at `clock()`), and starts the reloader
/// on the current tokio runtime. URLs are fetched under `base` (the consumer's x5u policy) with
/// the section's size cap and timeout, trusting `tls_roots` (DER) besides the Mozilla roots.
pub fn start(
    config: &ListsConfig,
    base: &FetchPolicy,
    tls_roots: &[Vec<u8>],
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
) -> Result<Arc<ListStore>, ConsumerError> {
    let (source, cert) = check(config)?;
    let store = Arc::new(ListStore::new(cert));
    if let ListSource::File(path) = &source {
        match load_file_now(path, config.max_bytes) {
            // The store logs and counts a refusal itself.
            Ok(bytes) => {
                let _ = store.offer(&bytes, clock());
            }
            Err(error) => {
                tracing::warn!(source = %source, %error, "cannot read the regulator list at start; calls go on without it");
                store.note_load_failure(&error.to_string());
            }
        }
    }
    let fetcher =
        Fetcher::new(config.fetch_policy(base), tls_roots).map_err(ConsumerError::Fetcher)?;
    spawn_reloader(
        Arc::clone(&store),
        source,
        fetcher,
        config.interval(),
        clock,
    );
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::tests::{signed, CERT};

    #[tokio::test]
    async fn a_file_list_is_held_at_start_and_a_bad_certificate_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("regulator.pem");
        std::fs::write(&cert_path, CERT).unwrap();
        let list_path = dir.path().join("list.jws");
        std::fs::write(&list_path, signed(3, 1_764_000_000, 1_766_592_000)).unwrap();
        let config = ListsConfig {
            source: list_path.display().to_string(),
            regulator_cert: cert_path.clone(),
            reload_interval_seconds: 60,
            max_bytes: 1 << 20,
            fetch_timeout_seconds: 5,
        };
        let now = 1_764_000_100;
        let store = start(&config, &FetchPolicy::default(), &[], Arc::new(move || now)).unwrap();
        assert_eq!(store.current().map(|list| list.version()), Some(3));

        let missing = ListsConfig {
            regulator_cert: dir.path().join("nothing.pem"),
            ..config.clone()
        };
        let error = start(
            &missing,
            &FetchPolicy::default(),
            &[],
            Arc::new(move || now),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("lists.regulator_cert: cannot read"),
            "{error}"
        );
        // A list that is missing at start is not fatal: the store is empty, the failure counted.
        let absent = ListsConfig {
            source: dir.path().join("absent.jws").display().to_string(),
            ..config
        };
        let store = start(&absent, &FetchPolicy::default(), &[], Arc::new(move || now)).unwrap();
        assert!(store.current().is_none());
        assert_eq!(store.status(now).load_failures, 1);
    }
}
