//! A real `shaken verifier serve` process configured with `[events] push` to a real
//! `shaken monitor serve` process: verifications made while the monitor is down are spooled by
//! the verifier and arrive once the monitor starts, in full and with their `ingress` member;
//! verifications made while it runs arrive too, and nothing is lost.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::http::{post_json, raw};
use crate::support::{listening_address, stderr_lines, tempdir, wait_for};

/// The calling number of every call here.
const FROM: &str = "12155550123";

/// A process started by this test, its stderr lines and the address it listens on.
struct Process {
    child: Child,
    lines: Receiver<String>,
    address: SocketAddr,
}

impl Process {
    /// Runs `shaken ARGS` and waits for its log line `listening` (with `address=`).
    fn start(args: &[&str], listening: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shaken"))
            .args(args)
            .env("SHAKEN_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = stderr_lines(&mut child);
        let address = listening_address(&mut child, &lines, listening, &format!("{args:?}"));
        Self {
            child,
            lines,
            address,
        }
    }

    /// SIGTERM, then waits for `stopped` in the log and a clean exit.
    fn terminate(mut self, stopped: &str) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(wait_for(&self.lines, stopped).is_some(), "{stopped}");
        assert!(self.child.wait().unwrap().success());
    }

    async fn get(&self, path: &str) -> crate::http::Reply {
        raw(
            self.address,
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
    }
}

/// A loopback port free right now (bound, then released) for the monitor, whose URL the
/// verifier's configuration must name before the monitor runs.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the metric `name` (a line `name VALUE`) in a Prometheus text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// `n` unsigned calls from [`FROM`] to distinct numbers, entered at `ingress`, verified now.
async fn verify_calls(verifier: SocketAddr, first: u64, n: u64, ingress: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for i in first..first + n {
        let body = format!(
            r#"{{"verificationRequest":{{"from":{{"tn":"{FROM}"}},"to":{{"tn":["1212555{i:04}"]}},"time":{now},"ingress":"{ingress}"}}}}"#
        );
        let reply = post_json(verifier, "/stir/v1/verification", &body, &[]).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(
            reply.json()["verificationResponse"]["verstat"],
            "No-TN-Validation"
        );
    }
}

/// Polls the verifier's `/metrics` until `name` reaches `at_least` (at most 10 s).
async fn wait_metric(verifier: &Process, name: &str, at_least: u64) -> String {
    let started = Instant::now();
    loop {
        let text = String::from_utf8(verifier.get("/metrics").await.body).unwrap();
        if metric(&text, name) >= at_least {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} stayed below {at_least}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the monitor's view of [`FROM`] until it holds `n` calls (at most 10 s); returns them.
async fn wait_calls(monitor: &Process, n: usize) -> Vec<serde_json::Value> {
    let started = Instant::now();
    loop {
        let reply = monitor.get(&format!("/v1/callers/{FROM}")).await;
        assert_eq!(reply.status, 200);
        let recent = reply.json()["recent"].as_array().unwrap().clone();
        if recent.len() >= n {
            return recent;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the monitor holds {} of {n} calls: {recent:?}",
            recent.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("anchors")).unwrap();
    std::fs::copy(
        certs_test::pki_dir().join("ca/root.pem"),
        dir.join("anchors/sti-ca.pem"),
    )
    .unwrap();
    let config = dir.join("verifier.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ntrust_anchors = \"anchors\"\n\n[events]\nfile = \"events.jsonl\"\n\
             push = \"http://127.0.0.1:{port}/v1/events\"\nallow_insecure_loopback = true\n\
             batch_interval_ms = 50\nbackoff_min_ms = 50\nbackoff_max_ms = 200\ntimeout_ms = 500\n\
             spool_dir = \"spool\"\n"
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_verified_while_the_monitor_is_down_arrive_once_it_starts() {
    let dir = tempdir();
    let d = dir.path();
    let port = free_port();
    let config = write_config(d, port);
    let verifier = Process::start(
        &["verifier", "serve", "--config", config.to_str().unwrap()],
        "verifier listening",
    );

    // The monitor is not running: the verifier answers every call and spools its events.
    verify_calls(verifier.address, 0, 6, "international").await;
    let text = wait_metric(&verifier, "shaken_verifier_events_spooled_total", 6).await;
    assert_eq!(metric(&text, "shaken_verifier_events_pushed_total"), 0);
    assert!(metric(&text, "shaken_verifier_events_push_retries_total") >= 1);
    assert!(metric(&text, "shaken_verifier_events_spool_bytes") > 0);

    // The monitor starts on the port the verifier pushes to: the spool drains into it.
    let data = d.join("monitor");
    let listen = format!("127.0.0.1:{port}");
    let monitor = Process::start(
        &[
            "monitor",
            "serve",
            "--listen",
            &listen,
            "--data",
            data.to_str().unwrap(),
        ],
        "monitor listening",
    );
    let calls = wait_calls(&monitor, 6).await;
    assert_eq!(calls.len(), 6, "{calls:?}");
    for call in &calls {
        assert_eq!(call["from"], FROM, "{call}");
        assert_eq!(call["ingress"], "international", "{call}");
        assert_eq!(call["verstat"], "No-TN-Validation", "{call}");
        assert_eq!(call["kind"], "verification", "{call}");
    }

    // While it runs, new calls arrive too, with their own ingress.
    verify_calls(verifier.address, 6, 3, "local").await;
    let calls = wait_calls(&monitor, 9).await;
    assert_eq!(calls.len(), 9);
    let local = calls.iter().filter(|c| c["ingress"] == "local").count();
    assert_eq!(local, 3, "{calls:?}");
    let text = wait_metric(&verifier, "shaken_verifier_events_pushed_total", 9).await;
    assert_eq!(metric(&text, "shaken_verifier_events_pushed_total"), 9);
    assert_eq!(metric(&text, "shaken_verifier_events_lost_total"), 0);
    assert_eq!(metric(&text, "shaken_verifier_events_spool_bytes"), 0);
    let metrics = String::from_utf8(monitor.get("/metrics").await.body).unwrap();
    assert!(
        metrics.contains("monitor_events_total{kind=\"verification\"} 9"),
        "{metrics}"
    );
    // The file got the same nine lines.
    let file = std::fs::read_to_string(d.join("events.jsonl")).unwrap();
    assert_eq!(file.lines().count(), 9, "{file}");

    verifier.terminate("verifier stopped");
    monitor.terminate("monitor stopped");
}
