//! Tansu, a Kafka-API broker, as a child process of a test: in-memory storage, listening and
//! advertising `127.0.0.1:PORT`, started in a folder of its own (it reads a `.env` file in its
//! working folder) with its configuration variables cleared, its output in a log file there.
//! [`Broker::start`] returns once the broker answers a metadata request; dropping the
//! [`Broker`] kills it (`SIGKILL`) and waits for it.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

/// The environment variable naming the `tansu` binary, ahead of the cache folder.
pub const TANSU_ENV: &str = "SHAKEN_TANSU";

/// The environment variable naming the tools' cache folder (default
/// `$HOME/.cache/shaken-tools`); Tansu is at `tansu/bin/tansu` under it.
pub const TOOL_CACHE_ENV: &str = "SHAKEN_TOOL_CACHE";

/// The variables Tansu reads its settings from, cleared so that the caller's environment
/// cannot change the broker a test gets.
const TANSU_VARIABLES: [&str; 8] = [
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "DATA_LAKE",
    "RUST_LOG",
];

/// How long a broker has to answer its first metadata request.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a broker could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// No `tansu` binary where it was looked for.
    #[error(
        "no tansu binary at {searched:?}: run .ci/run, or `cargo install tansu --locked \
         --features dynostore --root \"${{SHAKEN_TOOL_CACHE:-$HOME/.cache/shaken-tools}}/tansu\"`, \
         or set SHAKEN_TANSU"
    )]
    NotInstalled {
        /// The paths tried, in order.
        searched: Vec<PathBuf>,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The broker exited or did not answer in time.
    #[error("tansu on port {port} {what}; its log:\n{log}")]
    NotAnswering {
        /// The port it was to listen on.
        port: u16,
        /// What went wrong.
        what: String,
        /// The broker's output so far.
        log: String,
    },
    /// `tansu topic create` failed, or the topic did not appear with its partitions.
    #[error("topic {name}: {detail}")]
    Topic {
        /// The topic.
        name: String,
        /// What happened.
        detail: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BrokerError {
    let what = what.into();
    move |source| BrokerError::Io { what, source }
}

/// The `tansu` binary: `$SHAKEN_TANSU`, else `tansu/bin/tansu` in the tools' cache folder
/// (`$SHAKEN_TOOL_CACHE`, default `$HOME/.cache/shaken-tools`).
pub fn tansu_binary() -> Result<PathBuf, BrokerError> {
    let mut searched = Vec::new();
    if let Some(path) = std::env::var_os(TANSU_ENV) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        searched.push(path);
    }
    let cache = match std::env::var_os(TOOL_CACHE_ENV) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/shaken-tools")),
    };
    if let Some(cache) = cache {
        let path = cache.join("tansu/bin/tansu");
        if path.is_file() {
            return Ok(path);
        }
        searched.push(path);
    }
    Err(BrokerError::NotInstalled { searched })
}

/// A loopback port free right now (bound, then released).
pub fn free_port() -> Result<u16, BrokerError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("reading a bound port"))?
        .port())
}

/// A Tansu broker with in-memory storage on `127.0.0.1`, killed when dropped.
#[derive(Debug)]
pub struct Broker {
    child: Option<Child>,
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker on a free loopback port and waits until it answers.
    pub fn start() -> Result<Self, BrokerError> {
        Self::start_on(free_port()?)
    }

    /// Starts a broker on `port` (a client may already be configured with it) and waits
    /// until it answers.
    pub fn start_on(port: u16) -> Result<Self, BrokerError> {
        let binary = tansu_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("shaken-tansu")
            .tempdir()
            .map_err(io("creating the broker's folder"))?;
        let log_path = dir.path().join("tansu.log");
        let log =
            File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
        let log_err = log.try_clone().map_err(io("duplicating the log file"))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let mut command = Command::new(&binary);
        command
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for variable in TANSU_VARIABLES {
            command.env_remove(variable);
        }
        let child = command
            .spawn()
            .map_err(io(format!("starting {}", binary.display())))?;
        let mut broker = Self {
            child: Some(child),
            binary,
            port,
            dir,
        };
        broker.wait_until_answering()?;
        Ok(broker)
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the broker has written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    /// Creates `name` with `partitions` partitions and waits until every partition has a
    /// leader in the broker's metadata.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BrokerError> {
        let topic_error = |detail: String| BrokerError::Topic {
            name: name.to_owned(),
            detail,
        };
        let output = Command::new(&self.binary)
            .args(["topic", "create", name])
            .args(["--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(io("running tansu topic create"))?;
        if !output.status.success() {
            return Err(topic_error(format!(
                "tansu topic create: {}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let client = self.client()?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let led = client
                .client()
                .fetch_metadata(Some(name), Duration::from_secs(2))
                .ok()
                .and_then(|metadata| {
                    let topic = metadata.topics().iter().find(|t| t.name() == name)?;
                    let partitions = topic.partitions();
                    partitions
                        .iter()
                        .all(|p| p.leader() >= 0)
                        .then_some(partitions.len())
                });
            if led == usize::try_from(partitions).ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(topic_error(format!(
                    "no metadata with {partitions} led partitions (saw {led:?})"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker (`SIGKILL`) and waits for it; its in-memory data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A producer used for metadata requests.
    fn client(&self) -> Result<BaseProducer, BrokerError> {
        ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("log_level", "0")
            .create()
            .map_err(|e| BrokerError::Io {
                what: "creating a metadata client".into(),
                source: std::io::Error::other(e),
            })
    }

    fn wait_until_answering(&mut self) -> Result<(), BrokerError> {
        let client = self.client()?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(self.not_answering(format!("exited ({status})")));
                }
            }
            let answered = client
                .client()
                .fetch_metadata(None, Duration::from_millis(500))
                .is_ok_and(|m| !m.brokers().is_empty());
            if answered {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.not_answering(format!("did not answer in {START_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn not_answering(&self, what: String) -> BrokerError {
        BrokerError::NotAnswering {
            port: self.port,
            what,
            log: self.log(),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
