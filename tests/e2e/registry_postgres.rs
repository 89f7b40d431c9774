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
    // Shown without the password: `postgres://shaken@127.0.0.1:PORT/shaken_test`.
    let shown_url = url.replace(&format!(":{}@", cluster.password()), "@");
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
        text.contains("has schema version 99, newer than this program's 2"),
        "{text}"
    );
    assert!(text.contains("postgres://shaken@127.0.0.1:"), "{text}");
    assert!(!text.contains(cluster.password()), "{text}");
    drop(client);
    // The password may stay off the command line: in PGPASSWORD, or (in a configuration
    // file) as a parameter; neither is ever printed.
    let bare = url.replace(&format!(":{}@", cluster.password()), "@");
    let show = |db: &str, env: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shaken"));
        command.args(["registry", "show", "--db", db, "12155551212"]);
        command.env_remove("PGPASSWORD");
        if let Some(password) = env {
            command.env("PGPASSWORD", password);
        }
        command.output().unwrap()
    };
    for (db, env) in [
        (bare.clone(), Some(cluster.password())),
        (format!("{bare}?password={}", cluster.password()), None),
    ] {
        let text = stderr(&show(&db, env));
        assert!(text.contains("has schema version 99"), "{text}");
        assert!(!text.contains(cluster.password()), "{text}");
    }
    let text = stderr(&show(&bare, None));
    assert!(
        text.contains("password missing"),
        "no password, refused: {text}"
    );
    assert!(!text.contains("schema version 99"), "{text}");
    cluster.stop().unwrap();
    let output = shaken(["registry", "suspend", "--db", &url, "12155551212"]);
    let text = stderr(&output);
    assert_ne!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("postgres://shaken@127.0.0.1:"), "{text}");
    assert!(!text.contains(cluster.password()), "{text}");
}

/// A signer in this process whose `registry_db` is the cluster's URL, serving on
/// 127.0.0.1:0; stopped (and its synchronization with it) when dropped.
struct PgSigner {
    addr: std::net::SocketAddr,
    state: Option<std::sync::Arc<signer::service::SignerState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl PgSigner {
    /// Starts a signer in `dir` (its copy and trace log there) with `extra` configuration.
    async fn start(dir: &std::path::Path, url: &str, extra: &str) -> Self {
        let config = dir.join("signer.toml");
        std::fs::write(
            &config,
            format!(
                "x5u = \"{}\"\nkey_file = \"key.pem\"\nregistry_db = \"{url}\"\n\
                 trace_db = \"trace.sqlite\"\n{extra}",
                crate::signer::X5U
            ),
        )
        .unwrap();
        let config = signer::config::SignerConfig::load(&config).unwrap();
        let state = tokio::task::spawn_blocking(move || {
            signer::service::SignerState::from_config(&config, crate::signer::test_signer())
        })
        .await
        .unwrap()
        .unwrap();
        let state = std::sync::Arc::new(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(signer::service::serve(
            listener,
            std::sync::Arc::clone(&state),
            None,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            state: Some(state),
            stop: Some(stop),
        }
    }

    /// Stops serving and waits until the state (its trace log, its copy's thread) is dropped.
    async fn shut_down(mut self) {
        drop(self.stop.take());
        let state = self.state.take().unwrap();
        while std::sync::Arc::strong_count(&state) > 1 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Asks for `attest` on a call from `orig` to `dest`: the status and the message id (or
    /// `signed`).
    async fn sign(&self, attest: &str, orig: &str, dest: &str) -> (u16, String) {
        sign_at(self.addr, attest, orig, dest).await
    }

    /// The value of the metric line starting with `name ` in `/metrics`.
    fn metric(&self, name: &str) -> f64 {
        let text = self.state.as_ref().unwrap().render_metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse()
            .unwrap()
    }
}

/// [`PgSigner::sign`] of the signer serving at `addr`.
async fn sign_at(
    addr: std::net::SocketAddr,
    attest: &str,
    orig: &str,
    dest: &str,
) -> (u16, String) {
    let body = crate::signer::request(attest, orig, dest, "");
    let reply = crate::http::post_json(addr, signer::service::SIGNING_PATH, &body, &[]).await;
    let json = reply.json();
    let id = if reply.status == 200 {
        assert!(json["signingResponse"]["identity"].is_string(), "{json}");
        "signed".to_owned()
    } else {
        json["requestError"]["policyException"]["messageId"]
            .as_str()
            .or(json["requestError"]["serviceException"]["messageId"].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    (reply.status, id)
}

const SIGNER_CSV: &str = "number,customer,name,verified,status\n\
    12155551212,c1,Verified One,yes,active\n\
    12155551213,c1,Verified One,yes,active\n\
    12155560000..12155569999,c3,Range Three,yes,active\n";

/// A cluster holding `SIGNER_CSV`, imported with the command line.
fn cluster_with_numbers(dir: &std::path::Path) -> PgCluster {
    let cluster = cluster();
    let csv = dir.join("numbers.csv");
    std::fs::write(&csv, SIGNER_CSV).unwrap();
    let output = shaken([
        "registry",
        "import",
        "--db",
        &cluster.url(),
        csv.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    cluster
}

fn signer_dir(parent: &std::path::Path, name: &str) -> std::path::PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(certs_test::path("sp/1001/key.pem"), dir.join("key.pem")).unwrap();
    dir
}

/// Polls `check` every 50 ms until it holds or `bound` has passed; whether it held.
async fn within(bound: std::time::Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + bound;
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// How long a test waits for a change to reach a signer. The lab's configured bound is 2 s;
/// a test on a loaded machine is given more, so that it asserts that the change arrives, not
/// how fast.
const GENEROUS: std::time::Duration = std::time::Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_on_postgresql_reaches_two_signers_within_the_bound() {
    let dir = tempdir();
    let cluster = cluster_with_numbers(dir.path());
    let url = cluster.url();
    // The first signer learns changes only from NOTIFY (its catch-up is a minute away); the
    // second also catches up every 500 ms, which must find a change made without NOTIFY.
    let one = PgSigner::start(
        &signer_dir(dir.path(), "one"),
        &url,
        "registry_sync_interval_ms = 60000\n",
    )
    .await;
    let two = PgSigner::start(
        &signer_dir(dir.path(), "two"),
        &url,
        "registry_sync_interval_ms = 500\n",
    )
    .await;
    for signer in [&one, &two] {
        assert_eq!(
            signer.sign("A", "12155551212", "12125551213").await,
            (200, "signed".into())
        );
        assert_eq!(
            signer.sign("A", "12155561234", "12125551213").await,
            (200, "signed".into())
        );
        assert_eq!(
            signer.sign("A", "12155551299", "12125551213").await,
            (403, "POL4101".into())
        );
        assert!(signer.metric("shaken_signer_registry_copy_age_seconds") >= 0.0);
    }

    let output = shaken(["registry", "suspend", "--db", &url, "12155551212"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let refused = (403, "POL4102".to_owned());
    assert!(
        within(GENEROUS, async || {
            one.sign("A", "12155551212", "12125551213").await == refused
                && two.sign("A", "12155551212", "12125551213").await == refused
        })
        .await,
        "both signers refuse the suspended number within {GENEROUS:?}"
    );
    // Other numbers are unaffected; emergency calls from the suspended number are signed.
    assert_eq!(one.sign("A", "12155551213", "12125551213").await.0, 200);
    assert_eq!(
        two.sign("A", "12155551212", "911").await,
        (200, "signed".into())
    );

    // A range suspended: every number of it, on both.
    let output = shaken(["registry", "suspend", "--db", &url, "12155560042"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        within(GENEROUS, async || {
            one.sign("A", "12155567777", "12125551213").await == refused
                && two.sign("A", "12155567777", "12125551213").await == refused
        })
        .await
    );

    // A change written without NOTIFY reaches the catching-up signer, not the other.
    let resume = url.clone();
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&resume, postgres::NoTls).unwrap();
        client
            .batch_execute(
                "BEGIN;
                 UPDATE registry_state SET change_seq = change_seq + 1;
                 UPDATE numbers SET status = 'active',
                     change_seq = (SELECT change_seq FROM registry_state) WHERE tn = '12155551212';
                 COMMIT;",
            )
            .unwrap();
    })
    .await
    .unwrap();
    assert!(
        within(GENEROUS, async || {
            two.sign("A", "12155551212", "12125551213").await.0 == 200
        })
        .await,
        "the periodic catch-up finds a change PostgreSQL did not announce"
    );
    assert_eq!(one.sign("A", "12155551212", "12125551213").await, refused);
    assert_eq!(
        one.metric("shaken_signer_registry_copy_watermark") + 1.0,
        two.metric("shaken_signer_registry_copy_watermark")
    );

    // Stopped signers close their connections, even the one waiting a minute for its next
    // catch-up: its thread stops while it waits.
    one.shut_down().await;
    two.shut_down().await;
    let others = url.clone();
    let connections = async move || {
        let url = others.clone();
        tokio::task::spawn_blocking(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    &[],
                )
                .unwrap();
            row.get::<_, i64>(0)
        })
        .await
        .unwrap()
    };
    assert!(
        within(GENEROUS, async || connections().await == 0).await,
        "the signers' connections are closed: {} left",
        connections().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_during_signing_fails_no_call_of_a_registered_number() {
    let dir = tempdir();
    let mut cluster = cluster_with_numbers(dir.path());
    let url = cluster.url();
    // No cache: every answer comes from the copy, which the thread writes while reconnecting.
    let signer = PgSigner::start(
        &signer_dir(dir.path(), "one"),
        &url,
        "cache_capacity = 0
registry_sync_interval_ms = 200
registry_max_age_seconds = 3600
         registry_stale = \"refuse\"\n",
    )
    .await;
    assert_eq!(signer.sign("A", "12155551212", "12125551213").await.0, 200);
    // Calls in flight the whole time: before, across the stop, during the outage, across the
    // start and after, until told to stop.
    let (done, mut finish) = tokio::sync::oneshot::channel::<()>();
    let addr = signer.addr;
    // 0: PostgreSQL up, 1: stopped, 2: started again; each answer is tagged with the phase
    // its call began in.
    let phase = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
    let phase_seen = std::sync::Arc::clone(&phase);
    let calls = tokio::spawn(async move {
        let mut answers: Vec<(u8, &str, (u16, String))> = Vec::new();
        let mut i = 0usize;
        while finish.try_recv().is_err() {
            let orig = ["12155551212", "12155551213", "12155565555"][i % 3];
            let at = phase_seen.load(std::sync::atomic::Ordering::SeqCst);
            answers.push((at, orig, sign_at(addr, "A", orig, "12125551213").await));
            i += 1;
        }
        answers
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| cluster.stop()).unwrap();
    phase.store(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(
        signer.sign("A", "12155551299", "12125551213").await,
        (403, "POL4101".into())
    );
    assert!(signer.metric("shaken_signer_registry_sync_failures_total") >= 1.0);
    tokio::task::block_in_place(|| cluster.start_again()).unwrap();
    phase.store(2, std::sync::atomic::Ordering::SeqCst);
    // Reconnected: a suspension made after the restart reaches the signer.
    let output = shaken(["registry", "suspend", "--db", &url, "12155551213"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        within(GENEROUS, async || {
            signer.sign("A", "12155551213", "12125551213").await == (403, "POL4102".to_owned())
        })
        .await,
        "the signer reconnected after the restart"
    );
    done.send(()).unwrap();
    let answers = calls.await.unwrap();
    // Every call for a registered number was signed, except the one suspended on purpose
    // once it is refused for that.
    let failed: Vec<_> = answers
        .iter()
        .filter(|(_, orig, answer)| {
            *answer != (200, "signed".to_owned())
                && !(*orig == "12155551213" && *answer == (403, "POL4102".to_owned()))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        answers.len()
    );
    for at in 0..3 {
        assert!(
            answers.iter().any(|(phase, _, _)| *phase == at),
            "calls in flight in phase {at}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_copy_is_refused_with_pol5031_or_kept_as_configured() {
    let dir = tempdir();
    let mut cluster = cluster_with_numbers(dir.path());
    let url = cluster.url();
    // The shortest bound the configuration accepts with 200 ms catch-ups (2 x 200 ms + the 5 s
    // connection timeout), so that the copy turns stale soon after PostgreSQL stops.
    let stale = "registry_sync_interval_ms = 200\nregistry_max_age_seconds = 6\n";
    let refusing = PgSigner::start(
        &signer_dir(dir.path(), "refuse"),
        &url,
        &format!("{stale}registry_stale = \"refuse\"\n"),
    )
    .await;
    let keep_dir = signer_dir(dir.path(), "keep");
    let keeping = PgSigner::start(&keep_dir, &url, stale).await;
    assert_eq!(
        refusing.sign("A", "12155551212", "12125551213").await.0,
        200
    );
    assert_eq!(refusing.metric("shaken_signer_registry_copy_stale"), 0.0);
    tokio::task::block_in_place(|| cluster.stop()).unwrap();
    assert!(
        within(std::time::Duration::from_secs(20), async || {
            refusing.metric("shaken_signer_registry_copy_stale") == 1.0
        })
        .await
    );
    assert!(refusing.metric("shaken_signer_registry_copy_age_seconds") > 6.0);
    assert_eq!(
        refusing.sign("A", "12155551212", "12125551213").await,
        (503, "POL5031".into())
    );
    assert_eq!(
        refusing.sign("A", "12155551212", "911").await,
        (200, "signed".into())
    );
    // The other signer synchronized last a little later: stale a little later.
    assert!(
        within(std::time::Duration::from_secs(20), async || {
            keeping.metric("shaken_signer_registry_copy_stale") == 1.0
        })
        .await
    );
    assert_eq!(keeping.sign("A", "12155551212", "12125551213").await.0, 200);

    // A signer restarted while PostgreSQL is away starts from its copy.
    keeping.shut_down().await;
    let restarted = PgSigner::start(&keep_dir, &url, stale).await;
    assert_eq!(
        restarted.sign("A", "12155551212", "12125551213").await.0,
        200
    );
    assert_eq!(
        restarted.sign("A", "12155551299", "12125551213").await,
        (403, "POL4101".into())
    );
    // One never synchronized has nothing to sign from: the outage rule.
    let fresh = PgSigner::start(&signer_dir(dir.path(), "fresh"), &url, stale).await;
    assert_eq!(
        fresh.sign("A", "12155551212", "12125551213").await,
        (503, "POL5031".into())
    );
    assert_eq!(
        fresh.metric("shaken_signer_registry_copy_age_seconds"),
        -1.0
    );
    assert_eq!(
        fresh.sign("C", "12155551212", "911").await,
        (200, "signed".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacing_import_reloads_the_signers_copy() {
    let dir = tempdir();
    let cluster = cluster_with_numbers(dir.path());
    let url = cluster.url();
    let signer = PgSigner::start(
        &signer_dir(dir.path(), "one"),
        &url,
        "registry_sync_interval_ms = 60000\n",
    )
    .await;
    assert_eq!(
        signer.metric("shaken_signer_registry_full_loads_total"),
        1.0
    );
    assert_eq!(signer.sign("A", "12155551212", "12125551213").await.0, 200);
    let csv = dir.path().join("replace.csv");
    std::fs::write(&csv, "number,customer,verified\n12125550000,c9,yes\n").unwrap();
    let output = shaken([
        "registry",
        "import",
        "--db",
        &url,
        "--replace",
        csv.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let unregistered = (403, "POL4101".to_owned());
    assert!(
        within(GENEROUS, async || {
            signer.sign("A", "12155551212", "12125551213").await == unregistered
        })
        .await,
        "numbers the replacing file does not list are gone from the copy"
    );
    assert_eq!(
        signer.sign("A", "12155561234", "12125551213").await,
        unregistered
    );
    assert_eq!(signer.sign("A", "12125550000", "12125551213").await.0, 200);
    assert_eq!(
        signer.metric("shaken_signer_registry_full_loads_total"),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_database_is_reloaded_whole_by_a_running_signer() {
    let dir = tempdir();
    let cluster = cluster_with_numbers(dir.path());
    let url = cluster.url();
    let signer = PgSigner::start(
        &signer_dir(dir.path(), "one"),
        &url,
        "registry_sync_interval_ms = 200\n",
    )
    .await;
    assert_eq!(
        signer.sign("A", "12155551212", "12125551213").await,
        (200, "signed".into())
    );
    let loads = signer.metric("shaken_signer_registry_full_loads_total");
    // The database is dropped and made again with the same import but the number suspended:
    // its watermark and generation are the same as the old one's, only its registry_id
    // differs.
    let admin = cluster.database_url("postgres");
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", pg_test::DATABASE))
            .unwrap();
    })
    .await
    .unwrap();
    cluster.create_database(pg_test::DATABASE).unwrap();
    let csv = dir.path().join("suspended.csv");
    std::fs::write(
        &csv,
        SIGNER_CSV.replace(
            "12155551212,c1,Verified One,yes,active",
            "12155551212,c1,Verified One,yes,suspended",
        ),
    )
    .unwrap();
    let output = shaken(["registry", "import", "--db", &url, csv.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        within(GENEROUS, async || {
            signer.sign("A", "12155551212", "12125551213").await == (403, "POL4102".into())
        })
        .await,
        "the signer reloads the recreated database and sees the suspension"
    );
    assert!(signer.metric("shaken_signer_registry_full_loads_total") > loads);
    assert_eq!(signer.sign("A", "12155551213", "12125551213").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_never_migrates_the_shared_database() {
    let dir = tempdir();
    let cluster = cluster();
    let url = cluster.url();
    let schema_exists = {
        let url = url.clone();
        async move || {
            let url = url.clone();
            tokio::task::spawn_blocking(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                client
                    .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
                    .unwrap()
                    .get::<_, bool>(0)
            })
            .await
            .unwrap()
        }
    };
    // An empty database: the signer creates nothing, counts the failure, and has no copy to
    // sign from (the outage rule).
    let signer = PgSigner::start(
        &signer_dir(dir.path(), "one"),
        &url,
        "registry_sync_interval_ms = 200\n",
    )
    .await;
    assert!(signer.metric("shaken_signer_registry_sync_failures_total") >= 1.0);
    assert!(!schema_exists().await, "the signer ran no DDL");
    assert_eq!(
        signer.sign("A", "12155551212", "12125551213").await,
        (503, "POL5031".into())
    );
    // The command line migrates and imports; the signer then synchronizes.
    let csv = dir.path().join("numbers.csv");
    std::fs::write(&csv, SIGNER_CSV).unwrap();
    let output = shaken(["registry", "import", "--db", &url, csv.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        within(GENEROUS, async || {
            signer.sign("A", "12155551212", "12125551213").await == (200, "signed".into())
        })
        .await
    );
    // A schema newer than the signer knows: it keeps signing from its copy, counting failures.
    let newer = url.clone();
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&newer, postgres::NoTls).unwrap();
        client
            .batch_execute("INSERT INTO schema_version VALUES (99)")
            .unwrap();
        // Drops the signer's connection so that it reconnects and checks the schema again.
        client
            .batch_execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .unwrap();
    })
    .await
    .unwrap();
    let failures = signer.metric("shaken_signer_registry_sync_failures_total");
    assert!(
        within(GENEROUS, async || {
            signer.metric("shaken_signer_registry_sync_failures_total") >= failures + 2.0
        })
        .await
    );
    assert_eq!(signer.sign("A", "12155551213", "12125551213").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_import_reaches_the_signers_cached_answers() {
    let dir = tempdir();
    let cluster = cluster_with_numbers(dir.path());
    let url = cluster.url();
    // NOTIFY only (the catch-up is a minute away), the default cache in front of the copy.
    let signer = PgSigner::start(
        &signer_dir(dir.path(), "one"),
        &url,
        "registry_sync_interval_ms = 60000\n",
    )
    .await;
    let import = |name: &str, csv: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, csv).unwrap();
        let output = shaken(["registry", "import", "--db", &url, path.to_str().unwrap()]);
        assert!(output.status.success(), "{}", stderr(&output));
    };
    // Answers cached: signed for c1's number, "not registered" for an unknown one.
    for _ in 0..2 {
        assert_eq!(
            signer.sign("A", "12155551212", "12125551213").await,
            (200, "signed".into())
        );
        assert_eq!(
            signer.sign("A", "12155551777", "12125551213").await,
            (403, "POL4101".into())
        );
    }
    // A newly added number replaces the cached "not registered".
    import(
        "new.csv",
        "number,customer,name,verified\n12155551777,c4,Four,yes\n",
    );
    assert!(
        within(GENEROUS, async || {
            signer.sign("A", "12155551777", "12125551213").await == (200, "signed".into())
        })
        .await,
        "the new number is signed"
    );
    // A merge that changes only the customer's verification (12155551212 is not in it)
    // changes the answer for every one of its numbers.
    import(
        "unverify.csv",
        "number,customer,name,verified\n12155551213,c1,Verified One,no\n",
    );
    assert!(
        within(GENEROUS, async || {
            signer.sign("A", "12155551212", "12125551213").await == (403, "POL4103".into())
        })
        .await,
        "the customer's numbers are refused once it is unverified"
    );
}
