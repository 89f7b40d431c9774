//! A throwaway PostgreSQL cluster for the tests: [`PgCluster::start`] finds the server's
//! programs, creates a cluster in a temporary folder, starts it on a free loopback port (its
//! unix socket inside that folder, or in a short one under `/tmp` when that folder's path is
//! too long for a socket; never the system's), creates a database, and hands out a
//! `postgres://` URL with a password. [`PgCluster::stop`] and [`PgCluster::start_again`] stop
//! and restart the same cluster (outage tests); dropping it stops the server (whenever its
//! `postmaster.pid` exists) and removes the folders. Folders with spaces work.
//!
//! The programs are looked for in `SHAKEN_PG_BIN` (a folder), then on `PATH` (`pg_ctl`, its
//! symbolic link followed to the folder holding `initdb`), then in Debian's
//! `/usr/lib/postgresql/VERSION/bin` (the newest). When none is found, [`PgCluster::start`]
//! fails saying so: the tests fail rather than skip (`.ci/run` installs Debian's
//! `postgresql`).
//!
//! `initdb` refuses to run as root. When the tests run as root, the server's programs run as
//! the `postgres` user (which Debian's package creates), or `nobody` where there is none,
//! through `setpriv`; the temporary folder is given to that user.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The superuser the cluster is created with, and the user of the URLs.
pub const USER: &str = "shaken";
/// The database [`PgCluster::start`] creates.
pub const DATABASE: &str = "shaken_test";

/// Why a cluster could not be made or driven.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgTestError {
    /// No PostgreSQL server programs on this machine.
    #[error(
        "PostgreSQL server programs (initdb, pg_ctl) not found in SHAKEN_PG_BIN, on PATH or in \
         /usr/lib/postgresql/*/bin: install Debian's postgresql (.ci/run does) or set SHAKEN_PG_BIN"
    )]
    NotInstalled,
    /// A program could not be started.
    #[error("cannot run {program}: {detail}")]
    Spawn {
        /// The program.
        program: String,
        /// What the operating system said.
        detail: String,
    },
    /// A program ran and failed.
    #[error("{program} failed ({status}): {output}")]
    Failed {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
        /// Its standard output and error, and the server's log when it is the server.
        output: String,
    },
    /// The temporary folder could not be made or given to the server's user.
    #[error("temporary folder: {0}")]
    Folder(String),
}

/// A running (or stopped) throwaway cluster. See the module documentation.
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    /// The unix socket's folder when `dir` is too long for a socket path (else `None`: `dir`).
    short_socket_dir: Option<tempfile::TempDir>,
    bin: PathBuf,
    /// The (uid, gid) the server's programs run as, when the tests run as root.
    run_as: Option<(u32, u32)>,
    port: u16,
    password: String,
    running: bool,
}

impl PgCluster {
    /// Creates a cluster in the temporary folder (`TMPDIR`), starts it and creates the
    /// database [`DATABASE`].
    pub fn start() -> Result<Self, PgTestError> {
        Self::start_in(&std::env::temp_dir())
    }

    /// [`PgCluster::start`] with the cluster's folder made in `parent`. A folder whose path is
    /// too long for a unix socket gets its socket in a short folder under `/tmp`.
    pub fn start_in(parent: &Path) -> Result<Self, PgTestError> {
        let bin = find_bin().ok_or(PgTestError::NotInstalled)?;
        let run_as = if is_root() {
            Some(server_user()?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("shaken-pg-")
            .tempdir_in(parent)
            .map_err(|e| PgTestError::Folder(e.to_string()))?;
        let password = format!("pw-{}", random_suffix(dir.path()));
        let short_socket_dir = if needs_short_socket_dir(dir.path()) {
            Some(
                tempfile::Builder::new()
                    .prefix("spg")
                    .tempdir_in("/tmp")
                    .map_err(|e| PgTestError::Folder(e.to_string()))?,
            )
        } else {
            None
        };
        let mut cluster = Self {
            dir,
            short_socket_dir,
            bin,
            run_as,
            port: 0,
            password,
            running: false,
        };
        cluster.give_to_server_user(cluster.dir.path())?;
        if let Some(socket_dir) = &cluster.short_socket_dir {
            cluster.give_to_server_user(socket_dir.path())?;
        }
        let pwfile = cluster.dir.path().join("pwfile");
        std::fs::write(&pwfile, &cluster.password)
            .map_err(|e| PgTestError::Folder(e.to_string()))?;
        cluster.give_to_server_user(&pwfile)?;
        let data = cluster.data_dir();
        cluster.run_server_program(
            "initdb",
            &[
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-U"),
                OsStr::new(USER),
                OsStr::new("--pwfile"),
                pwfile.as_os_str(),
                OsStr::new("--auth-local=trust"),
                OsStr::new("--auth-host=scram-sha-256"),
                OsStr::new("-E"),
                OsStr::new("UTF8"),
                OsStr::new("--locale=C"),
                OsStr::new("--no-sync"),
            ],
        )?;
        let _ = std::fs::remove_file(&pwfile);
        // A port found free may be taken before the server binds it: try a few.
        let mut last = None;
        for _ in 0..5 {
            cluster.port = free_port()?;
            match cluster.start_again() {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(error) = last {
            return Err(error);
        }
        cluster.create_database(DATABASE)?;
        Ok(cluster)
    }

    /// The URL of [`DATABASE`]: `postgres://shaken:PASSWORD@127.0.0.1:PORT/shaken_test`.
    pub fn url(&self) -> String {
        self.database_url(DATABASE)
    }

    /// The URL of the database `name` on this cluster.
    pub fn database_url(&self, name: &str) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{name}",
            self.password, self.port
        )
    }

    /// The password in the URLs (tests check that it is never printed).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The loopback port the server listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Creates another database on the cluster and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, PgTestError> {
        let socket_dir = self.socket_dir().to_owned();
        let port = self.port.to_string();
        self.run_server_program(
            "createdb",
            &[
                OsStr::new("-h"),
                socket_dir.as_os_str(),
                OsStr::new("-p"),
                OsStr::new(&port),
                OsStr::new("-U"),
                OsStr::new(USER),
                OsStr::new(name),
            ],
        )?;
        Ok(self.database_url(name))
    }

    /// Stops the server (fast shutdown: clients are disconnected, data kept).
    pub fn stop(&mut self) -> Result<(), PgTestError> {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"])?;
        self.running = false;
        Ok(())
    }

    /// Starts the stopped server again, on the same port, and waits until it accepts
    /// connections.
    pub fn start_again(&mut self) -> Result<(), PgTestError> {
        // pg_ctl hands these to the server through a shell: the folder is quoted.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            shell_quote(&self.socket_dir().to_string_lossy())
        );
        let log = self.dir.path().join("server.log");
        let log = log.to_string_lossy().into_owned();
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log, "-o", &options])
            .map_err(|e| match e {
                PgTestError::Failed {
                    program,
                    status,
                    output,
                } => PgTestError::Failed {
                    program,
                    status,
                    output: format!("{output}\nserver log:\n{}", self.log()),
                },
                other => other,
            })?;
        self.running = true;
        Ok(())
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The folder of the server's unix socket.
    fn socket_dir(&self) -> &Path {
        self.short_socket_dir
            .as_ref()
            .map_or(self.dir.path(), |d| d.path())
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), PgTestError> {
        let data = self.data_dir();
        let mut all: Vec<&OsStr> = vec![OsStr::new("-D"), data.as_os_str()];
        all.extend(args.iter().map(OsStr::new));
        self.run_server_program("pg_ctl", &all)
    }

    /// Runs one of the server's programs, as the server's user when running as root.
    fn run_server_program(&self, program: &str, args: &[&OsStr]) -> Result<(), PgTestError> {
        let path = self.bin.join(program);
        let mut command = match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(&path);
                c
            }
            None => Command::new(&path),
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null());
        let output = command.output().map_err(|e| PgTestError::Spawn {
            program: program.to_owned(),
            detail: e.to_string(),
        })?;
        check(program, &output)
    }

    fn give_to_server_user(&self, path: &Path) -> Result<(), PgTestError> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| PgTestError::Folder(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }
}

/// Stops the server whenever its `postmaster.pid` exists (also when a start or stop failed
/// half-way and `running` is wrong), then the folders are removed.
impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running || self.data_dir().join("postmaster.pid").exists() {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "30"]);
        }
    }
}

/// The longest unix socket folder used: a socket path (folder, `/.s.PGSQL.PORT`) must fit in
/// 107 bytes.
const MAX_SOCKET_DIR: usize = 80;

/// Whether `dir` is too long to hold the server's unix socket.
fn needs_short_socket_dir(dir: &Path) -> bool {
    dir.as_os_str().len() > MAX_SOCKET_DIR
}

/// `text` as one word for a POSIX shell: in single quotes, a single quote written `'\''`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn check(program: &str, output: &Output) -> Result<(), PgTestError> {
    if output.status.success() {
        return Ok(());
    }
    Err(PgTestError::Failed {
        program: program.to_owned(),
        status: output.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// The folder holding `initdb` and `pg_ctl`: see the module documentation.
fn find_bin() -> Option<PathBuf> {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("SHAKEN_PG_BIN").map(PathBuf::from) {
        return usable(&dir).then_some(dir);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("pg_ctl"))
            .find(|candidate| candidate.is_file())
    });
    if let Some(dir) = on_path
        .and_then(|pg_ctl| pg_ctl.canonicalize().ok())
        .and_then(|pg_ctl| pg_ctl.parent().map(Path::to_owned))
        .filter(|dir| usable(dir))
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| usable(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The (uid, gid) of `postgres`, or of `nobody` where there is no `postgres` user.
fn server_user() -> Result<(u32, u32), PgTestError> {
    let id = |flag: &str, user: &str| -> Option<u32> {
        let output = Command::new("id").arg(flag).arg(user).output().ok()?;
        if !output.status.success() {
            return None;
        }
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    };
    ["postgres", "nobody"]
        .iter()
        .find_map(|user| Some((id("-u", user)?, id("-g", user)?)))
        .ok_or_else(|| {
            PgTestError::Folder(
                "running as root, and neither a postgres nor a nobody user to run the server as"
                    .into(),
            )
        })
}

/// A free loopback TCP port (free now; the caller retries if it is taken before use).
fn free_port() -> Result<u16, PgTestError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| PgTestError::Spawn {
            program: "a loopback socket".into(),
            detail: e.to_string(),
        })
}

/// A few characters that differ between clusters (the temporary folder's random name).
fn random_suffix(dir: &Path) -> String {
    dir.file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn can_connect(cluster: &PgCluster) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", cluster.port())).is_ok()
    }

    #[test]
    fn a_cluster_starts_stops_restarts_and_is_removed() {
        let mut cluster = PgCluster::start().expect("a PostgreSQL cluster");
        let url = cluster.url();
        assert!(url.starts_with("postgres://shaken:pw-"), "{url}");
        assert!(url.ends_with(&format!("@127.0.0.1:{}/shaken_test", cluster.port())));
        assert!(can_connect(&cluster));
        // The database exists: creating it again fails, another one succeeds.
        assert!(cluster.create_database(DATABASE).is_err());
        let other = cluster.create_database("other").unwrap();
        assert!(other.ends_with("/other"));
        cluster.stop().unwrap();
        assert!(!cluster.is_running() && !can_connect(&cluster));
        cluster.start_again().unwrap();
        assert!(can_connect(&cluster));
        let dir = cluster.dir.path().to_owned();
        assert!(dir.join("data/PG_VERSION").is_file());
        drop(cluster);
        assert!(!dir.exists(), "the folder is removed");
    }

    #[test]
    fn folders_are_quoted_for_the_shell_and_socket_paths_kept_short() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("/tmp/it's"), "'/tmp/it'\\''s'");
        assert!(!needs_short_socket_dir(Path::new("/tmp/shaken-pg-abc123")));
        assert!(needs_short_socket_dir(
            &Path::new("/tmp").join("x".repeat(90))
        ));
    }

    #[test]
    fn a_cluster_in_a_long_folder_with_spaces_works_and_is_stopped_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let long = parent.path().join(format!("with space {}", "x".repeat(80)));
        std::fs::create_dir_all(&long).unwrap();
        // The server's user must reach the folder when the tests run as root.
        std::fs::set_permissions(
            parent.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::fs::set_permissions(&long, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let cluster =
            PgCluster::start_in(&long).expect("a PostgreSQL cluster in a long folder with a space");
        assert!(cluster.dir.path().starts_with(&long));
        assert!(cluster.short_socket_dir.is_some());
        assert!(can_connect(&cluster));
        let port = cluster.port();
        let pid_file = cluster.data_dir().join("postmaster.pid");
        assert!(pid_file.is_file());
        // Dropped while believed stopped: the pid file still makes Drop stop the server.
        let mut cluster = cluster;
        cluster.running = false;
        drop(cluster);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
