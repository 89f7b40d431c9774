//! `shaken monitor serve --data DIR --db postgres://...` as a process, against a PostgreSQL
//! cluster the test starts: events and alerts are stored in PostgreSQL (nothing of the store
//! in the data folder, which keeps the journal), answers are the same after a restart and the
//! windows are rebuilt from PostgreSQL, and SIGTERM stops it cleanly; with PostgreSQL stopped, pushed events are still
//! acknowledged (the journal is local, alert changes wait in a local outbox), queries answer
//! 503, and once it is back the indexer catches up and the alert raised meanwhile is shown;
//! two instances on one database each serve both ones' events and alerts. The URL's password
//! never reaches the log.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::http::{raw, Reply};
use crate::monitor::{call, t0};
use crate::support::{listening_address, stderr_lines, tempdir};

const X: &str = "8613800000001";

/// `n` calls by `from`, one a second from `t0 + first` (`t0` read once per test, so that a
/// minute turning during the test changes nothing).
fn calls_at(t0: u64, from: &str, first: u64, n: u64) -> String {
    (first..first + n)
        .map(|i| call(t0 + i, from, i, &format!("{from}-{i}")) + "\n")
        .collect()
}
const Y: &str = "8613800000002";

struct Monitor {
    child: Child,
    lines: Receiver<String>,
    address: std::net::SocketAddr,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Monitor {
    fn start(data: &Path, db: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shaken"))
            .args(["monitor", "serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(["--db", db])
            .env("SHAKEN_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = stderr_lines(&mut child);
        let address = listening_address(&mut child, &lines, "monitor listening", "the monitor");
        Self {
            child,
            lines,
            address,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        raw(
            self.address,
            format!("GET {path} HTTP/1.1\r\nHost: monitor\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
    }

    async fn post_events(&self, body: &str) -> serde_json::Value {
        let request = format!(
            "POST /v1/events HTTP/1.1\r\nHost: monitor\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let reply = raw(self.address, request.as_bytes()).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()
    }

    async fn alerts(&self, subject: &str) -> Vec<serde_json::Value> {
        let reply = self
            .get(&format!(
                "/v1/alerts?subject={subject}&detector=high-frequency"
            ))
            .await;
        assert_eq!(reply.status, 200);
        reply.json()["alerts"].as_array().unwrap().clone()
    }

    /// SIGTERM: a clean stop, its connections to PostgreSQL closed without a panic.
    fn terminate(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(
            crate::support::wait_for(&self.lines, "monitor stopped").is_some(),
            "no clean stop"
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }

    /// Kills the process and returns the lines it logged after `monitor listening`.
    fn kill_9(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let mut log = String::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            log.push_str(&line);
            log.push('\n');
        }
        log
    }
}

fn cluster() -> pg_test::PgCluster {
    pg_test::PgCluster::start()
        .unwrap_or_else(|e| panic!("the PostgreSQL tests need a cluster: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_on_postgresql_answers_alike_across_a_restart() {
    let t0 = t0();
    let cluster = cluster();
    let dir = tempdir();
    let data = dir.path().join("data");

    let validate = Command::new(env!("CARGO_BIN_EXE_shaken"))
        .args([
            "monitor",
            "serve",
            "--validate",
            "--listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&data)
        .args(["--db", &cluster.url()])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&validate.stdout);
    assert!(validate.status.success(), "{shown}");
    assert!(
        shown.contains(&format!(
            "store: PostgreSQL postgres://shaken@127.0.0.1:{}/",
            cluster.port()
        )),
        "{shown}"
    );
    assert!(!shown.contains(cluster.password()), "{shown}");
    let refused = Command::new(env!("CARGO_BIN_EXE_shaken"))
        .args([
            "monitor",
            "serve",
            "--validate",
            "--listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&data)
        .args(["--db", "monitor.db"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("postgres://"));

    let monitor = Monitor::start(&data, &cluster.url());
    // Y: eleven calls in one minute fire high-frequency; X: eight, under the threshold.
    let answer = monitor
        .post_events(&format!(
            "{}{}",
            calls_at(t0, Y, 0, 11),
            calls_at(t0, X, 0, 8)
        ))
        .await;
    assert_eq!(answer["accepted"], 19, "{answer}");
    let fired = monitor.alerts(Y).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(monitor.alerts(X).await.is_empty());
    let caller = monitor.get(&format!("/v1/callers/{X}")).await.json();
    assert_eq!(caller["recent"].as_array().unwrap().len(), 8, "{caller}");
    let log = monitor.kill_9();
    assert!(
        !log.contains(cluster.password()),
        "the password was logged:\n{log}"
    );
    assert!(
        !data.join("monitor.db").exists() && !data.join("alerts.db").exists(),
        "the store is in PostgreSQL, not in the data folder"
    );
    assert!(data.join("instance-id").exists());

    let monitor = Monitor::start(&data, &cluster.url());
    assert_eq!(
        monitor.alerts(Y).await,
        fired,
        "the same alert after a restart"
    );
    let again = monitor.get(&format!("/v1/callers/{X}")).await.json();
    assert_eq!(again["recent"], caller["recent"], "the same events");
    let trace = monitor
        .get(&format!("/v1/traceback?origid={X}-3"))
        .await
        .json();
    assert_eq!(trace["events"].as_array().unwrap().len(), 1, "{trace}");
    // Three more calls by X: with the eight before the restart (replayed from PostgreSQL),
    // eleven in a minute.
    monitor.post_events(&calls_at(t0, X, 8, 3)).await;
    let x_alerts = monitor.alerts(X).await;
    assert_eq!(x_alerts.len(), 1, "windows were rebuilt: {x_alerts:?}");
    assert_eq!(x_alerts[0]["time"], t0 + 10);
    assert_ne!(x_alerts[0]["id"], fired[0]["id"]);
    monitor.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_pushed_while_postgresql_is_down_reach_it_once_it_is_back() {
    let t0 = t0();
    let mut cluster = cluster();
    let dir = tempdir();
    let data = dir.path().join("data");
    let monitor = Monitor::start(&data, &cluster.url());
    monitor.post_events(&calls_at(t0, X, 0, 3)).await;
    let caller = monitor.get(&format!("/v1/callers/{X}")).await.json();
    assert_eq!(caller["recent"].as_array().unwrap().len(), 3, "{caller}");

    cluster.stop().unwrap();
    // Ingest answers: the journal is local. Five more calls by X, under the threshold, and
    // eleven by Y, which raise an alert: it waits in the local outbox.
    let answer = monitor.post_events(&calls_at(t0, X, 3, 5)).await;
    assert_eq!(answer["accepted"], 5, "{answer}");
    let answer = monitor.post_events(&calls_at(t0, Y, 0, 11)).await;
    assert_eq!(answer["accepted"], 11, "{answer}");
    let during = monitor.get(&format!("/v1/callers/{X}")).await;
    assert_eq!(
        during.status,
        503,
        "{}",
        String::from_utf8_lossy(&during.body)
    );
    assert!(during.json()["error"]
        .as_str()
        .unwrap()
        .contains("unavailable"));
    let metrics = String::from_utf8(monitor.get("/metrics").await.body).unwrap();
    assert!(metrics.contains("monitor_index_lag_events 16"), "{metrics}");
    let alerts = monitor.get("/v1/alerts").await;
    assert_eq!(
        alerts.status,
        503,
        "{}",
        String::from_utf8_lossy(&alerts.body)
    );

    cluster.start_again().unwrap();
    let started = Instant::now();
    loop {
        let reply = monitor.get(&format!("/v1/callers/{X}")).await;
        if reply.status == 200 && reply.json()["recent"].as_array().unwrap().len() == 8 {
            assert_eq!(reply.json()["unindexed"], 0);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the indexer did not catch up: {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fired = monitor.alerts(Y).await;
    assert_eq!(
        fired.len(),
        1,
        "the alert raised during the outage: {fired:?}"
    );
    let log = monitor.kill_9();
    assert!(
        !log.contains(cluster.password()),
        "the password was logged:\n{log}"
    );

    // Started while PostgreSQL is away: a clear error naming the database, no password.
    cluster.stop().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_shaken"))
        .args(["monitor", "serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .args(["--db", &cluster.url()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "monitor database postgres://shaken@127.0.0.1:{}/",
            cluster.port()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(cluster.password()), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_each_show_both_ones_events_and_alerts() {
    let t0 = t0();
    let cluster = cluster();
    let dir = tempdir();
    let a = Monitor::start(&dir.path().join("a"), &cluster.url());
    let b = Monitor::start(&dir.path().join("b"), &cluster.url());
    // Y's calls go to A, X's to B: each raises its own alert (both books start at 1).
    a.post_events(&calls_at(t0, Y, 0, 11)).await;
    b.post_events(&calls_at(t0, X, 0, 11)).await;
    for monitor in [&a, &b] {
        let reply = monitor.get("/v1/alerts").await;
        assert_eq!(reply.status, 200);
        let alerts = reply.json()["alerts"].as_array().unwrap().clone();
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert_ne!(alerts[0]["id"], alerts[1]["id"], "{alerts:?}");
        // Each one's events are found through the other once the other's indexer has
        // stored them (a query waits for its own instance's indexer only).
        for tn in [X, Y] {
            let started = Instant::now();
            loop {
                let view = monitor.get(&format!("/v1/callers/{tn}")).await.json();
                if view["recent"].as_array().unwrap().len() == 11 {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(10), "{view}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // The detectors' windows stay each instance's own: X's calls count at B only.
    let counted = |view: &serde_json::Value| -> u64 {
        view["windows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["detector"] == "high-frequency")
            .map(|w| w["count"].as_u64().unwrap())
            .max()
            .unwrap_or(0)
    };
    let at_a = a.get(&format!("/v1/callers/{X}")).await.json();
    let at_b = b.get(&format!("/v1/callers/{X}")).await.json();
    assert_eq!(counted(&at_a), 0, "{at_a}");
    assert_eq!(counted(&at_b), 11, "{at_b}");
    a.kill_9();
    b.kill_9();
}

/// `shaken monitor load` into SQLite and into PostgreSQL on this machine, the same mix (a
/// measurement, not a check: `cargo test --test e2e load_into_sqlite_and_postgresql --
/// --ignored --nocapture`; figures in docs/performance-log.md).
#[test]
#[ignore = "a measurement; prints both runs' JSON"]
fn load_into_sqlite_and_postgresql() {
    let cluster = cluster();
    let dir = tempdir();
    for (name, db) in [("sqlite", None), ("postgres", Some(cluster.url()))] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shaken"));
        command
            .args(["monitor", "load", "--callers", "100000", "--data"])
            .arg(dir.path().join(name));
        if let Some(db) = &db {
            command.args(["--db", db]);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert!(report["accepted"].as_u64().unwrap() > 200_000, "{report}");
        println!("{name}: {report}");
    }
}
