//! `shaken lab --kafka BROKERS --postgres URL` (issue 19 §4): the lab on a Kafka-API broker
//! (Tansu, `kafka-test`) and a PostgreSQL cluster (`pg-test`) the test starts. The lab's own
//! table (every call case, the monitor's checks, the SIP path and the scale-out checks) must
//! pass; `lab.json` gains the new members; and what the lab says it did is looked at apart:
//! the registry is in PostgreSQL, the verifier's events are on the topic keyed by caller,
//! both monitors stored a share of them, and the alerts topic holds the scenario's alert.

use std::time::Duration;

use signer::registry::{NumberStatus, RegistryDb, RegistryLocation};

use crate::support::{shaken, stderr, stdout, tempdir};

#[test]
fn the_lab_runs_on_kafka_and_postgresql() {
    let broker = kafka_test::Broker::start().unwrap();
    let cluster = pg_test::PgCluster::start()
        .unwrap_or_else(|e| panic!("the PostgreSQL tests need a cluster: {e}"));
    let dir = tempdir();
    let lab_dir = dir.path().join("lab");
    let json = dir.path().join("results.json");
    // The topics do not exist yet: the lab creates them.
    let out = shaken([
        "lab",
        "--calls",
        "48",
        "--dir",
        lab_dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--kafka",
        &broker.bootstrap(),
        "--postgres",
        &cluster.url(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for line in [
        "every call got its expected verdict",
        "the monitor raised every expected alert (3 of 3 checks)",
        "every SIP dip got its expected answer",
        "every scale-out check passed (4 of 4)",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    assert!(
        text.contains("  on PostgreSQL: carrier 1001's registry in postgres://shaken@127.0.0.1:"),
        "{text}"
    );
    // The table, its scale-out section included, at most 100 columns.
    let header = text.lines().position(|l| l.starts_with("case ")).unwrap();
    for line in text.lines().skip(header) {
        assert!(line.chars().count() <= 100, "{line}");
    }
    let section = text
        .lines()
        .skip_while(|l| !l.starts_with("scale-out check "))
        .collect::<Vec<_>>();
    for name in [
        "signed by each signer",
        "suspended on PostgreSQL",
        "events through Kafka",
        "alerts on every monitor",
    ] {
        let row = section.iter().find(|l| l.starts_with(name)).unwrap();
        assert!(row.contains(" pass "), "{row}");
    }
    // The password is in no output and no file the lab describes itself in.
    let password = cluster.password();
    let description = std::fs::read_to_string(lab_dir.join("lab.json")).unwrap();
    let env = std::fs::read_to_string(lab_dir.join("lab.env")).unwrap();
    for shown in [&text, &stderr(&out), &description, &env] {
        assert!(!shown.contains(password), "the password is shown:\n{shown}");
    }

    // lab.json's new members; the old ones keep their meaning (the first instances).
    let lab: serde_json::Value = serde_json::from_str(&description).unwrap();
    assert_eq!(lab["kafka"], broker.bootstrap());
    assert_eq!(lab["kafka_topic"], "shaken.call-events");
    assert_eq!(
        lab["postgres"],
        format!("postgres://shaken@127.0.0.1:{}/shaken_test", cluster.port())
    );
    let signers = lab["carriers"][0]["signers"].as_array().unwrap();
    assert_eq!(signers.len(), 2);
    assert_eq!(signers[0], lab["carriers"][0]["signer"]);
    assert_ne!(signers[0], signers[1]);
    let monitors = lab["monitors"].as_array().unwrap();
    assert_eq!(monitors.len(), 2);
    assert_eq!(monitors[0], lab["monitor"]);
    assert_ne!(monitors[0], monitors[1]);
    assert!(lab["carriers"][1].get("signers").is_none());
    // lab.env gives them too.
    for (variable, value) in [
        ("SHAKEN_KAFKA", &lab["kafka"]),
        ("SHAKEN_KAFKA_TOPIC", &lab["kafka_topic"]),
        ("SHAKEN_POSTGRES", &lab["postgres"]),
        ("SHAKEN_REGISTRY_DB", &lab["postgres"]),
        ("SHAKEN_SECOND_SIGNER_URL", &signers[1]),
        ("SHAKEN_SECOND_MONITOR_URL", &monitors[1]),
    ] {
        let line = format!("export {variable}='{}'\n", value.as_str().unwrap());
        assert!(env.contains(&line), "{line}{env}");
    }

    // The table's scale-out rows, each passed, as the JSON results give them.
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(results["ok"], true);
    let checks: Vec<(&str, &str)> = results["scale_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap(), c["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        checks,
        [
            ("signed by each signer", "pass"),
            ("suspended on PostgreSQL", "pass"),
            ("events through Kafka", "pass"),
            ("alerts on every monitor", "pass"),
        ]
    );
    let signed = &results["scale_out"][0]["got"];
    assert_eq!(
        signed,
        "signer 1: TN-Validation-Passed; signer 2: TN-Validation-Passed"
    );

    // Apart from the lab: the registry is in PostgreSQL, the harassing caller active again
    // after the suspension check, the suspended number of the call cases suspended.
    let mut registry = RegistryDb::open(&RegistryLocation::parse(&cluster.url())).unwrap();
    let harassing = lab["numbers"]["harassing"][0].as_str().unwrap();
    assert_eq!(
        registry.lookup(harassing).unwrap().unwrap().status,
        NumberStatus::Active
    );
    let suspended = lab["numbers"]["suspended"][0].as_str().unwrap();
    assert_eq!(
        registry.lookup(suspended).unwrap().unwrap().status,
        NumberStatus::Suspended
    );
    let audit = registry.audit_log(10).unwrap();
    assert!(
        audit.iter().filter(|a| a.actor == "lab").count() >= 3,
        "{audit:?}"
    );

    // The verifier's events are on the topic, each keyed by its calling number, spread over
    // the 4 partitions the lab created; the harassing caller's all in one partition.
    let events = std::fs::read_to_string(lab["events"].as_str().unwrap()).unwrap();
    let lines = events.lines().count();
    let records = kafka_test::read(
        &broker.bootstrap(),
        "shaken.call-events",
        4,
        lines,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(records.len(), lines);
    let mut partitions = std::collections::BTreeSet::new();
    let mut harassing_partitions = std::collections::BTreeSet::new();
    for record in &records {
        let line: serde_json::Value = serde_json::from_str(&record.value).unwrap();
        assert_eq!(
            record.key.as_deref(),
            line["from"].as_str(),
            "{}",
            record.value
        );
        partitions.insert(record.partition);
        if record.key.as_deref() == Some(harassing) {
            harassing_partitions.insert(record.partition);
        }
    }
    assert!(partitions.len() > 1, "{partitions:?}");
    assert_eq!(harassing_partitions.len(), 1);

    // The alerts topic holds the harassing caller's high-frequency alert.
    let alerts = kafka_test::read(
        &broker.bootstrap(),
        "shaken.alerts",
        4,
        usize::MAX,
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.key.as_deref() == Some(&format!("caller:{harassing}"))
                && a.value.contains("\"detector\":\"high-frequency\"")),
        "{alerts:?}"
    );

    // Each monitor instance has a store of its own.
    for data in ["monitor", "monitor-2"] {
        assert!(lab_dir.join(data).is_dir(), "{data}");
    }
}

#[test]
fn kafka_and_postgres_go_together() {
    for (flag, value, missing) in [
        ("--kafka", "127.0.0.1:9092", "--postgres"),
        ("--postgres", "postgres://u@127.0.0.1/db", "--kafka"),
    ] {
        let out = shaken(["lab", "--calls", "1", flag, value]);
        assert_eq!(out.status.code(), Some(2));
        let error = stderr(&out);
        assert!(error.contains(missing), "{error}");
    }
    let out = shaken([
        "lab",
        "--kafka",
        "127.0.0.1:9092",
        "--postgres",
        "registry.sqlite",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a postgres:// or postgresql:// URL"));
}

/// The base URL `http://ADDRESS` as an address.
fn address(url: &serde_json::Value) -> std::net::SocketAddr {
    url.as_str()
        .unwrap()
        .strip_prefix("http://")
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// `GET path` at `address`, as JSON.
async fn get(address: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n");
    let reply = crate::http::raw(address, request.as_bytes()).await;
    let json = serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null);
    (reply.status, json)
}

/// Signs a call from `orig` at `signer`: the Identity header, or the refusal's message id.
async fn sign(signer: std::net::SocketAddr, orig: &str, dest: &str) -> Result<String, String> {
    let body = serde_json::json!({"signingRequest": {"attest": "A", "orig": {"tn": orig},
        "dest": {"tn": [dest]}, "iat": unix_now(),
        "origid": "123e4567-e89b-12d3-a456-426614174000"}});
    let reply = crate::http::post_json(signer, "/stir/v1/signing", &body.to_string(), &[]).await;
    let json = reply.json();
    match json["signingResponse"]["identity"].as_str() {
        Some(identity) if reply.status == 200 => Ok(identity.to_owned()),
        _ => Err(json["requestError"]["policyException"]["messageId"]
            .as_str()
            .unwrap_or("none")
            .to_owned()),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The alerts `GET /v1/alerts` at `monitor` gives, as (detector, subject, time).
async fn alert_keys(monitor: std::net::SocketAddr) -> std::collections::BTreeSet<String> {
    let (status, json) = get(monitor, "/v1/alerts").await;
    assert_eq!(status, 200);
    json["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{} {} {}", a["detector"], a["subject"], a["time"]))
        .collect()
}

/// The served lab on Kafka and PostgreSQL, looked at from outside while it runs: both signers
/// of carrier 1001 sign (and verify), a suspension made with `shaken registry suspend --db`
/// reaches both, and both monitors answer with the same cluster's alerts, the harassing
/// caller's among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_lab_on_kafka_and_postgresql_answers_at_every_instance() {
    use std::io::BufRead;
    let broker = kafka_test::Broker::start().unwrap();
    let cluster = pg_test::PgCluster::start()
        .unwrap_or_else(|e| panic!("the PostgreSQL tests need a cluster: {e}"));
    let dir = tempdir();
    let mut lab = std::process::Command::new(env!("CARGO_BIN_EXE_shaken"))
        .args(["lab", "--serve", "--calls", "24", "--dir"])
        .arg(dir.path())
        .args(["--kafka", &broker.bootstrap(), "--postgres", &cluster.url()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lab.stdout.take().unwrap();
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
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(line) if line.contains("the lab is running") => break,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = lab.kill();
                panic!("the lab did not start: {seen:?}");
            }
        }
    }
    assert!(
        seen.iter()
            .any(|l| l == "every scale-out check passed (4 of 4)"),
        "{seen:?}"
    );
    let lab_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("lab.json")).unwrap()).unwrap();
    let registered = lab_json["numbers"]["registered"][0].as_str().unwrap();
    let called = lab_json["numbers"]["called"][0].as_str().unwrap();
    let harassing = lab_json["numbers"]["harassing"][0].as_str().unwrap();
    let verifier = address(&lab_json["verifier"]);
    let signers: Vec<_> = lab_json["carriers"][0]["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(address)
        .collect();
    let monitors: Vec<_> = lab_json["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .map(address)
        .collect();

    // Each signer signs, and its call verifies.
    for signer in &signers {
        let identity = sign(*signer, registered, called).await.unwrap();
        let body = serde_json::json!({"verificationRequest": {"from": {"tn": registered},
            "to": {"tn": [called]}, "time": unix_now(), "identity": identity}});
        let reply =
            crate::http::post_json(verifier, "/stir/v1/verification", &body.to_string(), &[]).await;
        assert_eq!(
            reply.json()["verificationResponse"]["verstat"],
            "TN-Validation-Passed"
        );
    }

    // A suspension made on PostgreSQL with the registry's own tool reaches both signers.
    let url = cluster.url();
    let out = shaken(["registry", "suspend", "--db", &url, registered]);
    assert!(out.status.success(), "{}", stderr(&out));
    for signer in &signers {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match sign(*signer, registered, called).await {
                Err(id) if id == "POL4102" => break,
                other => assert!(
                    std::time::Instant::now() < deadline,
                    "{signer} still answers {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let out = shaken(["registry", "resume", "--db", &url, registered]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Both monitors answer with the same alerts: the cluster's, the harassing caller's
    // high-frequency among them, whichever instance raised it.
    for monitor in &monitors {
        assert_eq!(get(*monitor, "/healthz").await.0, 200);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (first, second) = loop {
        let first = alert_keys(monitors[0]).await;
        let second = alert_keys(monitors[1]).await;
        if first == second || std::time::Instant::now() > deadline {
            break (first, second);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(first, second);
    let caller = format!("\"high-frequency\" {{\"caller\":\"{harassing}\"}}");
    assert!(first.iter().any(|k| k.starts_with(&caller)), "{first:?}");

    std::process::Command::new("kill")
        .args(["-INT", &lab.id().to_string()])
        .status()
        .unwrap();
    let rest: Vec<String> = rx.iter().collect();
    assert!(lab.wait().unwrap().success(), "{rest:?}");
    assert_eq!(
        rest.last().map(String::as_str),
        Some("lab stopped"),
        "{rest:?}"
    );
}
