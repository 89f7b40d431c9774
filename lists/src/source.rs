//! Where a consumer reads the list: a file or an http(s) URL, read once at start and again
//! when it changes.
//!
//! URLs are fetched with [`rest::fetch::Fetcher`] under the same policy as x5u (HTTPS only
//! outside the lab, no internal addresses unless allowed, no redirects, timeouts) but with a
//! body cap and timeout fit for lists ([`ListsConfig::fetch_policy`]: 64 MiB and 30 s by
//! default). Files are read with the same cap. A failed read or a refused list is logged and
//! counted ([`ListStore::note_load_failure`], [`ListStore::offer`]), never fatal: the last
//! good list stays.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rest::fetch::{FetchPolicy, Fetcher, Url};
use serde::Deserialize;

use crate::error::SourceError;
use crate::store::ListStore;

/// The default cap on a list's size.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// The default time to fetch a list.
pub const DEFAULT_FETCH_TIMEOUT_SECONDS: u64 = 30;
/// The default interval between reloads.
pub const DEFAULT_RELOAD_INTERVAL_SECONDS: u64 = 60;
/// The `Accept` header of a list fetch.
pub const ACCEPT: &str = "application/shaken-list+jwt, application/jose, */*";

/// The `[lists]` section a consumer's configuration embeds.
///
/// ```toml
/// [lists]
/// source = "https://regulator.example/lists/current.jws"   # or a file path
/// regulator_cert = "regulator.pem"
/// reload_interval_seconds = 60      # default 60
/// max_bytes = 67108864              # default 64 MiB
/// fetch_timeout_seconds = 30        # default 30
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListsConfig {
    /// A file path or an http(s) URL.
    pub source: String,
    /// The regulator's certificate (PEM).
    pub regulator_cert: PathBuf,
    /// Seconds between reloads (a file is read again only when its size or time changed).
    #[serde(default = "default_interval")]
    pub reload_interval_seconds: u64,
    /// The largest list accepted, in bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Seconds allowed for a whole fetch.
    #[serde(default = "default_timeout")]
    pub fetch_timeout_seconds: u64,
}

fn default_interval() -> u64 {
    DEFAULT_RELOAD_INTERVAL_SECONDS
}

fn default_max_bytes() -> usize {
    DEFAULT_MAX_BYTES
}

fn default_timeout() -> u64 {
    DEFAULT_FETCH_TIMEOUT_SECONDS
}

impl ListsConfig {
    /// The configured source.
    pub fn source(&self) -> Result<ListSource, SourceError> {
        ListSource::parse(&self.source)
    }

    /// The x5u fetch policy (`base`) with this section's body cap and timeout.
    pub fn fetch_policy(&self, base: &FetchPolicy) -> FetchPolicy {
        FetchPolicy {
            max_body: self.max_bytes,
            total_timeout: Duration::from_secs(self.fetch_timeout_seconds.max(1)),
            ..base.clone()
        }
    }

    /// Makes relative paths (`regulator_cert`, a file `source`) relative to `base`, the
    /// consumer's configuration file's folder; a URL stays as it is.
    pub fn resolve_paths(&mut self, base: &Path) {
        if self.regulator_cert.is_relative() {
            self.regulator_cert = base.join(&self.regulator_cert);
        }
        let is_url = self.source.starts_with("https://") || self.source.starts_with("http://");
        if !is_url && Path::new(&self.source).is_relative() {
            self.source = base.join(&self.source).display().to_string();
        }
    }

    /// The reload interval (at least one second).
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.reload_interval_seconds.max(1))
    }
}

/// Where the list is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListSource {
    /// A local file.
    File(PathBuf),
    /// An http(s) URL (http only where the fetch policy allows it).
    Url(String),
}

impl ListSource {
    /// `http://…` or `https://…` is a URL (it must parse); another `scheme://` is refused;
    /// anything else non-empty is a file path.
    pub fn parse(text: &str) -> Result<Self, SourceError> {
        let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Url::parse(text).map_err(|_| SourceError::BadSource(text.to_owned()))?;
            Ok(Self::Url(text.to_owned()))
        } else if text.trim().is_empty() || text.contains("://") {
            Err(SourceError::BadSource(text.to_owned()))
        } else {
            Ok(Self::File(PathBuf::from(text)))
        }
    }

    /// Reads the list's bytes once: the file (capped at the fetcher's body cap), or the URL
    /// through `fetcher`.
    pub async fn load_once(&self, fetcher: &Fetcher) -> Result<Vec<u8>, SourceError> {
        match self {
            Self::File(path) => {
                let path = path.clone();
                let max = fetcher.policy().max_body;
                tokio::task::spawn_blocking(move || load_file_now(&path, max))
                    .await
                    .map_err(|e| SourceError::Read {
                        path: String::new(),
                        detail: e.to_string(),
                    })?
            }
            Self::Url(url) => fetcher
                .fetch_with(url, ACCEPT, None)
                .await
                .map(|fetched| fetched.body)
                .map_err(|error| SourceError::Fetch {
                    url: url.clone(),
                    error,
                }),
        }
    }
}

impl std::fmt::Display for ListSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Url(url) => f.write_str(url),
        }
    }
}

/// Reads a list file now (blocking), refusing one larger than `max_bytes`: for startup.
pub fn load_file_now(path: &Path, max_bytes: usize) -> Result<Vec<u8>, SourceError> {
    let read_error = |e: std::io::Error| SourceError::Read {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let too_large = || SourceError::TooLarge {
        path: path.display().to_string(),
        max: max_bytes,
    };
    let limit = u64::try_from(max_bytes).unwrap_or(u64::MAX);
    if file.metadata().map_err(read_error)?.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > max_bytes {
        return Err(too_large());
    }
    Ok(bytes)
}

/// What identifies a version of a file without reading it.
fn file_stamp(path: &Path) -> Option<(Option<SystemTime>, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok(), metadata.len()))
}

/// Starts the task that loads the list now and then every `interval`, offering what it reads
/// to `store` at `clock()`: a file only when its modification time or size changed since the
/// last read, a URL every time (the store answers an identical list cheaply). Failures are
/// logged (warn) and counted; the task never ends on its own.
pub fn spawn_reloader(
    store: Arc<ListStore>,
    source: ListSource,
    fetcher: Fetcher,
    interval: Duration,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_stamp = None;
        loop {
            ticks.tick().await;
            if let ListSource::File(path) = &source {
                let stamp = file_stamp(path);
                if stamp.is_some() && stamp == last_stamp {
                    continue;
                }
                last_stamp = stamp;
            }
            match source.load_once(&fetcher).await {
                Ok(bytes) => {
                    let store = Arc::clone(&store);
                    let now = clock();
                    // Verifying and indexing a large list is CPU work: off the async workers.
                    // The store logs and counts refusals itself.
                    let _ = tokio::task::spawn_blocking(move || store.offer(&bytes, now)).await;
                }
                Err(error) => {
                    tracing::warn!(source = %source, %error, "cannot read the regulator list; keeping the last good list");
                    store.note_load_failure(&error.to_string());
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::tests::{cert, signed};
    use crate::store::Offer;

    #[test]
    fn sources_parse() {
        assert_eq!(
            ListSource::parse("https://regulator.example/list.jws"),
            Ok(ListSource::Url("https://regulator.example/list.jws".into()))
        );
        assert_eq!(
            ListSource::parse("HTTP://127.0.0.1:8080/l"),
            Ok(ListSource::Url("HTTP://127.0.0.1:8080/l".into()))
        );
        assert_eq!(
            ListSource::parse("/etc/shaken/list.jws"),
            Ok(ListSource::File("/etc/shaken/list.jws".into()))
        );
        assert_eq!(
            ListSource::parse("list.jws"),
            Ok(ListSource::File("list.jws".into()))
        );
        for bad in [
            "",
            "  ",
            "ftp://x/list",
            "https://",
            "https://u@h/x",
            "file:///etc/x",
        ] {
            assert_eq!(
                ListSource::parse(bad),
                Err(SourceError::BadSource(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn config_defaults_and_policy() {
        let config: ListsConfig =
            toml::from_str("source = \"list.jws\"\nregulator_cert = \"r.pem\"")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(config.interval(), Duration::from_secs(60));
        let policy = config.fetch_policy(&FetchPolicy::default());
        assert_eq!(policy.max_body, DEFAULT_MAX_BYTES);
        assert_eq!(policy.total_timeout, Duration::from_secs(30));
        assert!(!policy.allow_http);
        assert!(toml::from_str::<ListsConfig>(
            "source = \"x\"\nregulator_cert = \"r\"\nurl = \"y\""
        )
        .is_err());
    }

    #[test]
    fn files_are_capped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("list.jws");
        std::fs::write(&path, b"0123456789").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(load_file_now(&path, 10).map(|b| b.len()), Ok(10));
        assert!(matches!(
            load_file_now(&path, 9),
            Err(SourceError::TooLarge { max: 9, .. })
        ));
        assert!(matches!(
            load_file_now(&dir.path().join("missing"), 9),
            Err(SourceError::Read { .. })
        ));
    }

    fn fetcher(max_body: usize) -> Fetcher {
        let policy = FetchPolicy {
            allow_http: true,
            allow_private_addresses: true,
            allowed_ports: None,
            max_body,
            ..FetchPolicy::default()
        };
        Fetcher::new(policy, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until `done` holds, up to 10 s.
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached");
    }

    #[tokio::test]
    async fn the_reloader_follows_a_file_and_keeps_the_last_good_list() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("list.jws");
        std::fs::write(&path, signed(1, 100, 100_000)).unwrap_or_else(|e| panic!("{e}"));
        let store = Arc::new(ListStore::new(cert()));
        let handle = spawn_reloader(
            Arc::clone(&store),
            ListSource::File(path.clone()),
            fetcher(DEFAULT_MAX_BYTES),
            Duration::from_millis(20),
            Arc::new(|| 1000),
        );
        until(|| store.current().is_some_and(|l| l.version() == 1)).await;
        // A newer list (another size) is picked up.
        std::fs::write(&path, format!("{}\n", signed(2, 100, 100_000)))
            .unwrap_or_else(|e| panic!("{e}"));
        until(|| store.current().is_some_and(|l| l.version() == 2)).await;
        // A broken file is refused; version 2 stays.
        std::fs::write(&path, b"garbage").unwrap_or_else(|e| panic!("{e}"));
        until(|| store.status(1000).refusals == 1).await;
        // A missing file is a load failure; version 2 stays.
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        until(|| store.status(1000).load_failures >= 1).await;
        assert_eq!(store.current().map(|l| l.version()), Some(2));
        handle.abort();
    }

    #[tokio::test]
    async fn urls_are_fetched_under_the_policy() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = signed(3, 100, 100_000);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let served = body.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 2048];
                let _ = stream.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{served}",
                    served.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        let url = format!("http://{address}/list.jws");
        let source = ListSource::parse(&url).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            source.load_once(&fetcher(1 << 20)).await,
            Ok(body.clone().into_bytes())
        );
        // Over the cap.
        assert!(matches!(
            source.load_once(&fetcher(100)).await,
            Err(SourceError::Fetch {
                error: rest::fetch::FetchError::TooLarge(100),
                ..
            })
        ));
        // Plain HTTP where the policy (x5u's default) refuses it.
        let strict = Fetcher::new(FetchPolicy::default(), &[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            source.load_once(&strict).await,
            Err(SourceError::Fetch {
                error: rest::fetch::FetchError::Scheme(_),
                ..
            })
        ));
        let store = Arc::new(ListStore::new(cert()));
        let handle = spawn_reloader(
            Arc::clone(&store),
            source,
            fetcher(1 << 20),
            Duration::from_millis(20),
            Arc::new(|| 1000),
        );
        until(|| store.current().is_some()).await;
        assert_eq!(store.offer(body.as_bytes(), 1000), Ok(Offer::Unchanged));
        handle.abort();
    }
}
