//! Helpers: running the binary, OpenSSL, and the Python oracle's virtual environment.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `shaken` with arguments.
pub(crate) fn shaken<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_shaken"))
        .args(args)
        .output()
        .expect("the shaken binary runs")
}

/// Standard output as text.
pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Standard output as one JSON value.
pub(crate) fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(output)))
}

/// Runs `openssl`, failing the test with a clear message if it is missing or fails.
pub(crate) fn openssl(args: &[&str], dir: &Path) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed by this test and did not run: {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A fresh temporary directory, removed when dropped.
pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("shaken-e2e-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temporary directory")
}

/// The Python interpreter of the oracle's virtual environment under `target/`, made on first
/// use from `tests/oracle/requirements.txt`. Never skips: if Python or the package index is
/// unreachable the test fails and says so.
pub(crate) fn oracle_python() -> PathBuf {
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("read oracle requirements");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyoracle");
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.installed");

    std::fs::create_dir_all(env!("CARGO_TARGET_TMPDIR")).expect("target tmp dir");
    let lock = File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyoracle.lock"))
        .expect("oracle lock file");
    lock.lock().expect("lock the oracle environment");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let run = |program: &Path, args: &[&str], what: &str| {
        let output = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "Python oracle unavailable: cannot run {} ({e}); install python3 with venv",
                    program.display()
                )
            });
        assert!(
            output.status.success(),
            "Python oracle unavailable: {what} failed (is the package index reachable?):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(
        Path::new("python3"),
        &["-m", "venv", venv.to_str().unwrap()],
        "python3 -m venv",
    );
    run(
        &python,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            requirements.to_str().unwrap(),
        ],
        "pip install of the pinned oracle packages",
    );
    std::fs::write(&stamp, wanted).expect("write oracle stamp");
    python
}

/// Runs the oracle script with arguments; returns its output.
pub(crate) fn oracle(args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/pyjwt_oracle.py");
    Command::new(oracle_python())
        .arg(script)
        .args(args)
        .output()
        .expect("the oracle runs")
}

/// The lines a child writes to stderr, read by a background thread.
pub(crate) fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let (sender, receiver) = std::sync::mpsc::channel();
    let err = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    receiver
}

/// Waits (as [`wait_for`]) for the log line containing `needle` (a service's `... listening`
/// line) and returns its `address=`; when none comes, kills `child` and panics naming `what`.
pub(crate) fn listening_address(
    child: &mut std::process::Child,
    lines: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    what: &str,
) -> std::net::SocketAddr {
    let listening = wait_for(lines, needle);
    let address = listening
        .as_deref()
        .and_then(|line| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix("address="))
        })
        .and_then(|a| a.parse().ok());
    let Some(address) = address else {
        let _ = child.kill();
        panic!("{what} did not start: {listening:?}");
    };
    address
}

/// The first line containing `needle` within 30 s.
pub(crate) fn wait_for(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> Option<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(std::time::Duration::from_millis(100)) {
            if line.contains(needle) {
                return Some(line);
            }
        }
    }
    None
}

/// `shaken repo serve` over `dir` with the test PKI's TLS certificate; the child and its base
/// URL (`https://127.0.0.1:PORT`).
pub(crate) fn start_repository(dir: &Path) -> (std::process::Child, String) {
    let pki = certs_test::pki_dir();
    let mut repo = Command::new(env!("CARGO_BIN_EXE_shaken"))
        .args([
            "repo",
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--tls-cert", pki.join("tls/server.pem").to_str().unwrap()])
        .args(["--tls-key", pki.join("tls/server.key").to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut repo);
    let serving = wait_for(&lines, "serving").expect("repository started");
    let base = serving
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    (repo, base)
}

/// `shaken lab --serve` as a child process, stopped with SIGINT (Ctrl-C) when dropped.
pub(crate) struct ServedLab {
    child: std::process::Child,
    /// Its `lab.json`.
    pub(crate) info: serde_json::Value,
}

impl ServedLab {
    /// Starts the lab in `dir` with `calls` calls of the cases and waits until it says it is
    /// running (every case placed, `lab.json` written).
    pub(crate) fn start(dir: &std::path::Path, calls: usize) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shaken"))
            .args(["lab", "--serve", "--calls", &calls.to_string(), "--dir"])
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut seen = vec![];
        loop {
            match rx.recv_timeout(std::time::Duration::from_secs(120)) {
                Ok(line) if line.contains("the lab is running") => break,
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("the lab did not start: {seen:?}");
                }
            }
        }
        let info = serde_json::from_slice(&std::fs::read(dir.join("lab.json")).unwrap()).unwrap();
        Self { child, info }
    }

    /// The address of the `endpoints` member `name` (`http://ADDRESS/PATH`).
    pub(crate) fn address(&self, name: &str) -> std::net::SocketAddr {
        let url = self.info["endpoints"][name].as_str().unwrap();
        let rest = url.strip_prefix("http://").unwrap();
        rest.split('/').next().unwrap().parse().unwrap()
    }
}

impl Drop for ServedLab {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
