//! `shaken registry import|show|suspend|resume` on PostgreSQL answer exactly as on SQLite: the
//! same output for the same CSV, the same records and audit rows, identity documents only as
//! HMACs, and the URL's password never printed. The cluster is made by `pg-test`.

use std::process::Output;

use pg_test::PgCluster;
use signer::registry::{RegistryDb, RegistryLocation};

use crate::support::{shaken, stderr, stdout, tempdir};

const CSV: &str = "number,customer,name,verified,id_document,status\n\
    (215) 555-1212,c1,\"One, Inc.\",yes,110101199003077777,active\n\
    +1 215 555 1213,c1,,yes,,suspended\n\
    2155551214,c2,Unverified Two,no,,active\n\
    2155560000..2155569999,c3,Range Three,yes,220101199003078888,\n\
    2155551212,c1,\"One, Inc.\",yes,,active\n";
const BAD_CSV: &str = "number,customer,verified\n2155551299,c1,yes\n21555x1213,c1,maybe\n";
const REPLACE_CSV: &str = "number,customer\n2125550000,c9\n";
const SECRET: &str = "0123456789abcdef-carrier";

fn cluster() -> PgCluster {
    PgCluster::start().unwrap_or_else(|e| panic!("the PostgreSQL tests need a cluster: {e}"))
}

/// The exit code, standard output and error of one command, the database's own name
/// replaced by `DB` (an SQLite path and a URL differ, nothing else may).
fn run(args: &[&str], db: &str, shown_db: &str) -> (Option<i32>, String, String) {
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "DB" { db } else { a })
        .collect();
    let output: Output = shaken(&args);
    let clean = |text: String| text.replace(shown_db, "DB");
    (
        output.status.code(),
        clean(stdout(&output)),
        clean(stderr(&output)),
    )
}

#[test]
fn the_registry_commands_answer_alike_on_sqlite_and_postgresql() {
    let cluster = cluster();
    let dir = tempdir();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (csv, bad, replace) = (
        file("numbers.csv", CSV),
        file("bad.csv", BAD_CSV),
        file("replace.csv", REPLACE_CSV),
    );
    let secret = file("secret", SECRET);
    let sqlite = dir.path().join("registry.sqlite");
    let sqlite = sqlite.to_str().unwrap();
    let url = cluster.url();
    let shown_url = url.replace(cluster.password(), "***");
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "registry",
            "import",
            "--db",
            "DB",
            "--country",
            "NANP",
            "--secret-file",
            &secret,
            &csv,
        ],
        vec!["registry", "show", "--db", "DB", "+1 215 555 1212"],
        vec!["registry", "show", "--db", "DB", "12155551213"],
        vec!["registry", "show", "--db", "DB", "12155551214"],
        vec!["registry", "show", "--db", "DB", "12155565555"],
        vec!["registry", "show", "--db", "DB", "12155570000"],
        vec!["registry", "suspend", "--db", "DB", "12155551212"],
        vec!["registry", "show", "--db", "DB", "12155551212"],
        vec!["registry", "suspend", "--db", "DB", "12155565555"],
        vec!["registry", "show", "--db", "DB", "12155560001"],
        vec!["registry", "resume", "--db", "DB", "12155565555"],
        vec!["registry", "resume", "--db", "DB", "12155551212"],
        vec!["registry", "suspend", "--db", "DB", "19995550000"],
        vec!["registry", "import", "--db", "DB", &bad],
        vec!["registry", "show", "--db", "DB", "12155551299"],
        vec!["registry", "show", "--db", "DB", "12155551212"],
    ];
    let mut answers = Vec::new();
    for command in &commands {
        let on_sqlite = run(command, sqlite, sqlite);
        let on_postgres = run(command, &url, &shown_url);
        assert_eq!(on_sqlite, on_postgres, "{command:?}");
        assert!(
            !on_postgres.1.contains(cluster.password())
                && !on_postgres.2.contains(cluster.password()),
            "{command:?} printed the password: {on_postgres:?}"
        );
        answers.push(on_postgres);
    }
    // The answers are the registry's, not two identical failures.
    let shown = &answers[7];
    assert_eq!(shown.0, Some(0));
    let json: serde_json::Value = serde_json::from_str(&shown.1).unwrap();
    assert_eq!(
        (
            json["customer"].as_str(),
            json["status"].as_str(),
            json["name"].as_str()
        ),
        (Some("c1"), Some("suspended"), Some("One, Inc."))
    );
    assert_eq!(answers[12].0, Some(2), "not registered: {:?}", answers[12]);
    assert_eq!(answers[13].0, Some(1), "bad lines: {:?}", answers[13]);
    assert!(answers[13].2.contains("line 3:"), "{:?}", answers[13]);
    assert_eq!(answers[14].0, Some(1), "nothing of the bad file applied");

    // The same records and the same audit rows (their times aside).
    let mut on_sqlite = RegistryDb::open(&RegistryLocation::parse(sqlite)).unwrap();
    let mut on_postgres = RegistryDb::open(&RegistryLocation::parse(&url)).unwrap();
    for tn in [
        "12155551212",
        "12155551213",
        "12155551214",
        "12155561234",
        "12125550000",
    ] {
        assert_eq!(
            on_sqlite.lookup(tn).unwrap(),
            on_postgres.lookup(tn).unwrap(),
            "{tn}"
        );
    }
    assert_eq!(on_sqlite.counts().unwrap(), (3, 1));
    assert_eq!(on_postgres.counts().unwrap(), (3, 1));
    let audit = |db: &mut RegistryDb| {
        db.audit_log(100)
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.actor.replace(sqlite, "DB").replace(&url, "DB"),
                    r.action,
                    r.subject,
                    r.detail,
                )
            })
            .collect::<Vec<_>>()
    };
    let audited = audit(&mut on_postgres);
    assert_eq!(audited, audit(&mut on_sqlite));
    assert_eq!(audited.len(), 5, "{audited:?}");
    assert_eq!(audited[4].1, "import:merge");
    assert_eq!(audited[4].3, "4 numbers, 1 ranges, 3 customers");

    // Identity documents only as HMACs: the same HMACs, the documents nowhere.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let dump: String = client
        .query_one(
            "SELECT concat_ws(' ', (SELECT string_agg(c::text, ' ') FROM customers c),
                    (SELECT string_agg(a::text, ' ') FROM audit a))",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!dump.contains("110101199003077777") && !dump.contains("220101199003078888"));
    let expected = signer::registry::store::identity_hmac(SECRET.as_bytes(), "110101199003077777");
    assert!(dump.contains(&expected), "{dump}");

    // Replace on both, then the same answers again.
    let command = vec!["registry", "import", "--db", "DB", "--replace", &replace];
    assert_eq!(
        run(&command, sqlite, sqlite),
        run(&command, &url, &shown_url)
    );
    assert_eq!(on_postgres.counts().unwrap(), (1, 0));
    assert_eq!(on_postgres.lookup("12155551212").unwrap(), None);
    assert_eq!(
        on_sqlite.lookup("12125550000").unwrap(),
        on_postgres.lookup("12125550000").unwrap()
    );
}

#[test]
fn a_newer_schema_or_an_unreachable_server_is_a_clear_error_without_the_password() {
    let mut cluster = cluster();
    let url = cluster.url();
    drop(RegistryDb::open(&RegistryLocation::parse(&url)).unwrap());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute("INSERT INTO schema_version VALUES (99)")
        .unwrap();
    let output = shaken(["registry", "show", "--db", &url, "12155551212"]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("has schema version 99, newer than this program's 1"),
        "{text}"
    );
    assert!(text.contains("postgres://shaken:***@127.0.0.1:"), "{text}");
    assert!(!text.contains(cluster.password()), "{text}");
    drop(client);
    cluster.stop().unwrap();
    let output = shaken(["registry", "suspend", "--db", &url, "12155551212"]);
    let text = stderr(&output);
    assert_ne!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("postgres://shaken:***@127.0.0.1:"), "{text}");
    assert!(!text.contains(cluster.password()), "{text}");
}
