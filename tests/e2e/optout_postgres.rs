//! `shaken optout serve --db postgres://...` as processes: two instances on one PostgreSQL
//! database (made by `pg-test`), a subscriber opting out through either one's HTTP interface,
//! each instance's feed listing every change once and in order, a restart keeping the
//! opt-outs, and the URL's password never printed.

use crate::http::raw;
use crate::optout_browser::OptOutProcess;
use crate::support::{shaken, stderr, stdout, tempdir};

const FIRM: &str = "91310000MA1FL1234X";

/// Presses the button of `link` (served at `service`): the form's default action, opt-out.
async fn press(service: &OptOutProcess, link: &str) -> crate::http::Reply {
    let path = link
        .strip_prefix(&format!("http://{}", service.address))
        .unwrap();
    let form = "action=opt-out";
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    raw(service.address, request.as_bytes()).await
}

/// The subscribers and `opted_out` of a feed, in its order, with its `seq`s.
fn summary(feed: &serde_json::Value) -> Vec<(u64, String, bool)> {
    feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["seq"].as_u64().unwrap(),
                c["subscriber"].as_str().unwrap().to_owned(),
                c["opted_out"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_optout_services_on_one_postgresql_database_share_opt_outs_and_feed() {
    let cluster = tokio::task::spawn_blocking(pg_test::PgCluster::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the PostgreSQL tests need a cluster: {e}"));
    let url = cluster.url();
    let (dir_a, dir_b) = (tempdir(), tempdir());

    // --validate names the database without its password.
    let a = OptOutProcess::start_with(dir_a.path(), &["--db", &url]);
    let validate = shaken([
        "optout",
        "serve",
        "--config",
        dir_a.path().join("optout.toml").to_str().unwrap(),
        "--db",
        &url,
        "--validate",
    ]);
    assert!(validate.status.success(), "{}", stderr(&validate));
    let shown = format!("postgres://shaken@127.0.0.1:{}/shaken_test", cluster.port());
    assert!(
        stdout(&validate).contains(&format!("database {shown}")),
        "{}",
        stdout(&validate)
    );
    assert!(!stdout(&validate).contains(cluster.password()));
    let b = OptOutProcess::start_with(dir_b.path(), &["--db", &url]);
    // The configurations name an SQLite file: --db replaced it.
    assert!(!dir_a.path().join("optout.db").exists());

    let first = press(&a, &a.link("8613800138000", FIRM, "Sunrise")).await;
    assert_eq!(first.status, 200);
    let second = press(&b, &b.link("8613900139000", FIRM, "Sunrise")).await;
    assert_eq!(second.status, 200);
    // Pressed again at the other instance: already done, no new change.
    let again = press(&a, &a.link("8613900139000", FIRM, "Sunrise")).await;
    assert!(
        String::from_utf8_lossy(&again.body).contains("Already done"),
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    let expected = vec![
        (1, "8613800138000".to_owned(), true),
        (2, "8613900139000".to_owned(), true),
    ];
    assert_eq!(summary(&a.feed().await), expected);
    assert_eq!(summary(&b.feed().await), expected);

    // A restart keeps them.
    drop(a);
    let a = OptOutProcess::start_with(dir_a.path(), &["--db", &url]);
    assert_eq!(summary(&a.feed().await), expected);
    drop((a, b));

    // PostgreSQL gone: the service does not start, and says why without the password.
    let password = cluster.password().to_owned();
    drop(cluster);
    let refused = shaken([
        "optout",
        "serve",
        "--config",
        dir_a.path().join("optout.toml").to_str().unwrap(),
        "--db",
        &url,
    ]);
    assert!(!refused.status.success());
    let text = stderr(&refused);
    assert!(
        text.contains(&format!("opt-out database {shown}")),
        "{text}"
    );
    assert!(!text.contains(&password), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_db_flag_overrides_the_configurations_sqlite_file_too() {
    let dir = tempdir();
    let other = dir.path().join("elsewhere.db");
    let service = OptOutProcess::start_with(dir.path(), &["--db", other.to_str().unwrap()]);
    let validate = shaken([
        "optout",
        "serve",
        "--config",
        dir.path().join("optout.toml").to_str().unwrap(),
        "--db",
        other.to_str().unwrap(),
        "--validate",
    ]);
    assert!(
        stdout(&validate).contains(&format!("database {}", other.display())),
        "{}",
        stdout(&validate)
    );
    let pressed = press(&service, &service.link("8613800138000", FIRM, "Sunrise")).await;
    assert_eq!(pressed.status, 200);
    assert_eq!(
        summary(&service.feed().await),
        vec![(1, "8613800138000".to_owned(), true)]
    );
    assert!(other.exists());
    assert!(!dir.path().join("optout.db").exists());
}
