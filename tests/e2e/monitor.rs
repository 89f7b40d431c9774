//! `shaken monitor serve` as a process: every acknowledged event and alert survives
//! `kill -9`, the windows are rebuilt on restart (events before and after it cross a threshold
//! together), an alert open before the crash is extended rather than duplicated; the API's
//! refusals (415, 413, 400, 404, 405 with `Allow`), the allow list persisted, stats, metrics
//! and SIGTERM; and `kill -9` in the middle of a stream of posts loses no acknowledged event.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

use crate::http::{raw, Reply};
use crate::support::{listening_address, stderr_lines, tempdir, wait_for};

/// The first event's time: ten minutes ago (well inside the retention, which the monitor
/// applies against its clock as soon as it starts).
pub(crate) fn t0() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (now - 600) / 60 * 60
}
const X: &str = "8613800000001";
const Y: &str = "8613800000002";

pub(crate) struct Monitor {
    child: Child,
    lines: Receiver<String>,
    pub(crate) address: SocketAddr,
}

impl Drop for Monitor {
    /// A test that fails midway must not leave the process behind (it would hold the test's
    /// output pipe open).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Monitor {
    pub(crate) fn start(data: &Path, config: Option<&Path>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shaken"));
        command
            .args(["monitor", "serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command
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

    async fn request(&self, method: &str, path: &str, body: &str, content_type: &str) -> Reply {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: monitor\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        raw(self.address, request.as_bytes()).await
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        let reply = raw(
            self.address,
            format!("GET {path} HTTP/1.1\r\nHost: monitor\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        reply
    }

    pub(crate) async fn post_events(&self, body: &str) -> serde_json::Value {
        let reply = self
            .request("POST", "/v1/events", body, "application/x-ndjson")
            .await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub(crate) fn terminate(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(wait_for(&self.lines, "monitor stopped").is_some());
        assert!(self.child.wait().unwrap().success());
    }
}

pub(crate) fn call(time: u64, from: &str, to: u64, origid: &str) -> String {
    format!(
        r#"{{"time":{time},"from":"{from}","to":["86139{to:08}"],"verstat":"TN-Validation-Passed","reasoncode":null,"attest":"A","spc":"709J","origid":"{origid}","x5u":"https://cr.example/709J.pem","flags":[],"ingress":"local"}}"#
    )
}

/// `n` calls by `from`, one a second from `t0() + first`.
pub(crate) fn calls(from: &str, first: u64, n: u64) -> String {
    let t0 = t0();
    (first..first + n)
        .map(|i| call(t0 + i, from, i, &format!("{from}-{i}")) + "\n")
        .collect()
}

async fn alerts(monitor: &Monitor, subject: &str) -> Vec<serde_json::Value> {
    let reply = monitor
        .get(&format!(
            "/v1/alerts?subject={subject}&detector=high-frequency"
        ))
        .await;
    assert_eq!(reply.status, 200);
    reply.json()["alerts"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_and_alerts_survive_kill_9_and_windows_are_rebuilt() {
    let t0 = t0();
    let dir = tempdir();
    let data = dir.path().join("data");

    let monitor = Monitor::start(&data, None);
    // Y: eleven calls in one minute fire high-frequency; X: eight, under the threshold; a bad
    // line between them is refused by number and drops nothing.
    let body = format!(
        "{}{{\"time\":\"soon\"}}\n{}",
        calls(Y, 0, 11),
        calls(X, 0, 8)
    );
    let answer = monitor.post_events(&body).await;
    assert_eq!(answer["accepted"], 19, "{answer}");
    assert_eq!(answer["rejected"][0]["line"], 12, "{answer}");
    assert!(answer["rejected"][0]["error"]
        .as_str()
        .unwrap()
        .contains("time"));
    let fired = alerts(&monitor, Y).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["subject"], serde_json::json!({ "caller": Y }));
    assert_eq!(fired[0]["detector"], "high-frequency");
    assert!(fired[0]["text"].as_str().unwrap().contains(Y));
    assert!(alerts(&monitor, X).await.is_empty());
    // Killed right after the answers: nothing acknowledged may be lost.
    monitor.kill_9();
    assert!(data.join("monitor.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the data folder is private");
    }

    let monitor = Monitor::start(&data, None);
    let kept = alerts(&monitor, Y).await;
    assert_eq!(kept, fired, "the alert survived kill -9 as it was");
    let caller = monitor.get(&format!("/v1/callers/{X}")).await.json();
    assert_eq!(caller["recent"].as_array().unwrap().len(), 8, "{caller}");
    assert_eq!(
        caller["unindexed"], 0,
        "every acknowledged event indexed: {caller}"
    );
    let trace = monitor
        .get(&format!("/v1/traceback?origid={X}-3"))
        .await
        .json();
    assert_eq!(trace["events"].as_array().unwrap().len(), 1, "{trace}");
    assert_eq!(trace["spc"], "709J");
    assert!(trace["signer_error"]
        .as_str()
        .unwrap()
        .contains("[trace.709J]"));

    // Three more calls by X: with the eight before the crash, eleven in a minute.
    let answer = monitor.post_events(&calls(X, 8, 3)).await;
    assert_eq!(answer["accepted"], 3);
    let x_alerts = alerts(&monitor, X).await;
    assert_eq!(x_alerts.len(), 1, "windows were rebuilt: {x_alerts:?}");
    assert_eq!(x_alerts[0]["time"], t0 + 10);
    // One more by Y extends its open alert; no second one.
    monitor.post_events(&calls(Y, 11, 1)).await;
    let y_alerts = alerts(&monitor, Y).await;
    assert_eq!(y_alerts.len(), 1, "{y_alerts:?}");
    assert_eq!(y_alerts[0]["id"], fired[0]["id"]);
    let stats = monitor.get("/v1/stats?minutes=2").await.json();
    assert_eq!(stats["time"], t0 + 11);
    assert_eq!(stats["alerts_open"], 2, "{stats}");
    let passed: u64 = stats["per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["passed"].as_u64().unwrap())
        .sum();
    assert_eq!(passed, 23, "{stats}");
    monitor.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_specific_answers_and_the_allow_list_persists() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let config = dir.path().join("monitor.toml");
    std::fs::write(
        &config,
        "max_body_bytes = 8388608\nretention_days = 30\nhome_country = \"86\"\n",
    )
    .unwrap();
    let monitor = Monitor::start(&data, Some(&config));

    let reply = monitor
        .request("POST", "/v1/events", &calls(X, 0, 1), "text/plain")
        .await;
    assert_eq!(reply.status, 415);
    assert!(reply.json()["error"].as_str().unwrap().contains("x-ndjson"));
    let reply = raw(
        monitor.address,
        b"POST /v1/events HTTP/1.1\r\nHost: m\r\nContent-Type: application/x-ndjson\r\nContent-Length: 9000000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 413);
    let reply = monitor.get("/v1/events").await;
    assert_eq!((reply.status, reply.header("allow")), (405, Some("POST")));
    let reply = monitor
        .request("POST", "/v1/alerts", "", "application/json")
        .await;
    assert_eq!((reply.status, reply.header("allow")), (405, Some("GET")));
    let reply = monitor
        .request("POST", "/v1/allow/861", "", "application/json")
        .await;
    assert_eq!(
        (reply.status, reply.header("allow")),
        (405, Some("PUT, DELETE"))
    );
    assert_eq!(monitor.get("/v2/nothing").await.status, 404);
    for (path, says) in [
        ("/v1/alerts?since=yesterday", "since"),
        ("/v1/alerts?detector=loud", "unknown detector"),
        ("/v1/alerts?limit=0", "limit"),
        ("/v1/alerts?colour=red", "unknown query parameter"),
        ("/v1/callers/86-138", "E.164"),
        ("/v1/spcs/70%2F9", "SPC"),
        ("/v1/traceback", "origid"),
        ("/v1/stats?minutes=0", "minutes"),
    ] {
        let reply = monitor.get(path).await;
        assert_eq!(reply.status, 400, "{path}");
        let message = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains(says), "{path}: {message}");
    }
    let empty = monitor.post_events("\n\n").await;
    assert_eq!(empty, serde_json::json!({"accepted": 0, "rejected": []}));

    let reply = monitor
        .request("PUT", &format!("/v1/allow/+{X}"), "", "application/json")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["changed"], true);
    let reply = monitor
        .request("PUT", &format!("/v1/allow/{Y}"), "", "application/json")
        .await;
    assert_eq!(reply.status, 200);
    let reply = monitor
        .request("DELETE", &format!("/v1/allow/{Y}"), "", "application/json")
        .await;
    assert_eq!(reply.json()["changed"], true);
    // X is allow-listed: eleven calls in a minute raise no high-frequency alert.
    monitor.post_events(&calls(X, 0, 11)).await;
    assert!(alerts(&monitor, X).await.is_empty());

    let metrics = String::from_utf8(monitor.get("/metrics").await.body).unwrap();
    assert!(
        metrics.contains("monitor_events_total{kind=\"verification\"} 11"),
        "{metrics}"
    );
    assert!(metrics.contains("monitor_too_large_total 1"), "{metrics}");
    assert!(metrics.contains("monitor_active_callers 1"), "{metrics}");
    assert_eq!(monitor.get("/healthz").await.status, 200);
    monitor.terminate();

    let monitor = Monitor::start(&data, Some(&config));
    let allow = monitor.get("/v1/allow").await.json();
    assert_eq!(allow, serde_json::json!({ "allow": [X] }));
    let spc = monitor.get("/v1/spcs/709J").await.json();
    assert_eq!(spc["recent"].as_array().unwrap().len(), 11, "{spc}");
    monitor.terminate();
}

/// Posts `body`; `Some(accepted)` when a whole answer came back, `None` when the connection
/// failed or broke before it (the monitor was killed): such a body was not acknowledged.
async fn try_post(address: SocketAddr, body: &str) -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: monitor\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    let answer = String::from_utf8(answer).ok()?;
    let (head, json) = answer.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(json).ok()?["accepted"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_stream_of_posts_loses_no_acknowledged_event() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let monitor = Monitor::start(&data, None);
    let address = monitor.address;
    let t0 = t0();
    // Body `n`: 100 calls of its own calling number, so what was kept can be counted per body.
    let caller = |n: u64| format!("86137{n:08}");
    let poster = tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        for n in 0..100_000_u64 {
            let from = caller(n);
            let body: String = (0..100)
                .map(|i| call(t0 + i, &from, n * 100 + i, &format!("{from}-{i}")) + "\n")
                .collect();
            match try_post(address, &body).await {
                Some(accepted) => {
                    assert_eq!(accepted, 100);
                    acknowledged.push(n);
                }
                None => break,
            }
        }
        acknowledged
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    monitor.kill_9();
    let acknowledged = poster.await.unwrap();
    assert!(
        acknowledged.len() >= 3,
        "bodies acknowledged before the kill: {}",
        acknowledged.len()
    );

    let monitor = Monitor::start(&data, None);
    for n in &acknowledged {
        let view = monitor
            .get(&format!("/v1/callers/{}", caller(*n)))
            .await
            .json();
        assert_eq!(
            view["recent"].as_array().map(Vec::len),
            Some(100),
            "body {n} of {} acknowledged: {view}",
            acknowledged.len()
        );
        assert_eq!(view["unindexed"], 0);
    }
    println!(
        "{} bodies of 100 events acknowledged before kill -9, every event kept",
        acknowledged.len()
    );
    monitor.terminate();
}
