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
