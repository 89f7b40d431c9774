//! `shaken signer serve` as a process: configuration, crash durability of the trace log,
//! SIGHUP key reload, SIGTERM shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use passport::identity::IdentityHeader;

use crate::http::post_json;
use crate::signer::{request, REGISTRY_CSV, X5U};
use crate::support::{shaken, start_repository, stderr, stderr_lines, tempdir, wait_for};

fn write_config(dir: &Path) {
    std::fs::copy(certs_test::path("sp/1001/key.pem"), dir.join("sp.key")).unwrap();
    std::fs::copy(certs_test::path("sp/1001/chain.pem"), dir.join("chain.pem")).unwrap();
    std::fs::write(dir.join("numbers.csv"), REGISTRY_CSV).unwrap();
    let out = shaken([
        "registry",
        "import",
        "--db",
        dir.join("registry.sqlite").to_str().unwrap(),
        dir.join("numbers.csv").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(
        dir.join("signer.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\nx5u = \"{X5U}\"\nkey_file = \"sp.key\"\ncertificate_file = \"chain.pem\"\n\
             registry_db = \"registry.sqlite\"\ntrace_db = \"trace.sqlite\"\ncountry = \"NANP\"\n"
        ),
    )
    .unwrap();
}

/// Starts the signer; returns the child, its address and the stderr line reader.
fn spawn(dir: &Path) -> (Child, SocketAddr, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shaken"))
        .args([
            "signer",
            "serve",
            "--config",
            dir.join("signer.toml").to_str().unwrap(),
        ])
        .env("SHAKEN_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let receiver = stderr_lines(&mut child);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = receiver.recv_timeout(Duration::from_millis(100)) {
            if let Some(address) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("address="))
            {
                return (child, address.parse().unwrap(), receiver);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the signer did not report its address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_call_survives_a_crash() {
    let dir = tempdir();
    write_config(dir.path());
    let validate = shaken([
        "signer",
        "serve",
        "--config",
        dir.path().join("signer.toml").to_str().unwrap(),
        "--validate",
    ]);
    assert!(validate.status.success(), "{}", stderr(&validate));
    assert!(String::from_utf8_lossy(&validate.stdout).contains("configuration OK"));

    let (mut child, addr, _lines) = spawn(dir.path());
    let mut tasks = Vec::new();
    for i in 0..120 {
        tasks.push(tokio::spawn(async move {
            let attest = if i % 3 == 0 { "B" } else { "A" };
            let reply = post_json(
                addr,
                "/stir/v1/signing",
                &request(attest, "12155551212", "12125551213", ""),
                &[],
            )
            .await;
            if reply.status != 200 {
                return None;
            }
            let identity = reply.json()["signingResponse"]["identity"]
                .as_str()
                .unwrap()
                .to_owned();
            let parsed = IdentityHeader::parse(&identity).unwrap();
            parsed
                .passport()
                .claims()
                .origid
                .as_ref()
                .map(|o| o.to_string())
        }));
    }
    let mut answered = Vec::new();
    for task in tasks {
        answered.extend(task.await.unwrap());
    }
    assert_eq!(answered.len(), 120);
    // A crash: no shutdown, no flush.
    child.kill().unwrap();
    child.wait().unwrap();
    let trace_db = dir.path().join("trace.sqlite");
    for origid in &answered {
        let records = signer::trace::lookup_origid(&trace_db, origid).unwrap();
        assert_eq!(
            records.len(),
            1,
            "origid {origid} answered but not in the trace log"
        );
        assert_eq!(records[0].outcome, "signed");
    }
    let out = shaken([
        "trace",
        "lookup",
        "--db",
        trace_db.to_str().unwrap(),
        "--origid",
        &answered[0],
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&answered[0]));

    // It restarts on the same files and stops cleanly on SIGTERM.
    let (mut child, addr, lines) = spawn(dir.path());
    assert_eq!(
        post_json(
            addr,
            "/stir/v1/signing",
            &request("A", "12155551212", "12125551213", ""),
            &[]
        )
        .await
        .status,
        200
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_for(&lines, "signer stopped").is_some());
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_key_and_refuses_a_mismatch() {
    let dir = tempdir();
    write_config(dir.path());
    let (mut child, addr, lines) = spawn(dir.path());
    let hup = |pid: u32| {
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };

    // A key that does not match the chain: refused, the old key keeps signing.
    std::fs::copy(
        certs_test::path("sp/1002/key.pem"),
        dir.path().join("sp.key"),
    )
    .unwrap();
    hup(child.id());
    assert!(wait_for(&lines, "key reload failed").is_some());
    let key_1001 = passport::cert::verifying_key_from_pem_chain(
        &std::fs::read(certs_test::path("sp/1001/chain.pem")).unwrap(),
    )
    .unwrap();
    let signed_by = |reply: crate::http::Reply| {
        let identity = reply.json()["signingResponse"]["identity"]
            .as_str()
            .unwrap()
            .to_owned();
        IdentityHeader::parse(&identity)
            .unwrap()
            .passport()
            .verify_signature(&key_1001)
            .is_ok()
    };
    assert!(signed_by(
        post_json(
            addr,
            "/stir/v1/signing",
            &request("A", "12155551212", "12125551213", ""),
            &[]
        )
        .await
    ));

    // Key and chain rotated together: accepted.
    std::fs::copy(
        certs_test::path("sp/1002/chain.pem"),
        dir.path().join("chain.pem"),
    )
    .unwrap();
    hup(child.id());
    assert!(wait_for(&lines, "signing key reloaded").is_some());
    assert!(!signed_by(
        post_json(
            addr,
            "/stir/v1/signing",
            &request("A", "12155551212", "12125551213", ""),
            &[]
        )
        .await
    ));

    // A rotation to a new x5u: the configuration file is re-read for the x5u and the files.
    let x5u_1003 = "https://cr.example.net/sp/1003-2/chain.pem";
    std::fs::copy(
        certs_test::path("sp/1003/key.pem"),
        dir.path().join("sp-1003.key"),
    )
    .unwrap();
    std::fs::copy(
        certs_test::path("sp/1003/chain.pem"),
        dir.path().join("chain-1003.pem"),
    )
    .unwrap();
    let config = std::fs::read_to_string(dir.path().join("signer.toml")).unwrap();
    std::fs::write(dir.path().join("signer.toml"), "not = [toml").unwrap();
    hup(child.id());
    assert!(wait_for(&lines, "configuration unreadable").is_some());
    let rotated = config
        .replace(X5U, x5u_1003)
        .replace("\"sp.key\"", "\"sp-1003.key\"")
        .replace("\"chain.pem\"", "\"chain-1003.pem\"");
    std::fs::write(dir.path().join("signer.toml"), rotated).unwrap();
    hup(child.id());
    assert!(wait_for(&lines, "signing key reloaded").is_some());
    let reply = post_json(
        addr,
        "/stir/v1/signing",
        &request("A", "12155551212", "12125551213", ""),
        &[],
    )
    .await;
    let identity = reply.json()["signingResponse"]["identity"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        identity.contains(&format!(";info=<{x5u_1003}>;")),
        "{identity}"
    );
    let key_1003 = passport::cert::verifying_key_from_pem_chain(
        &std::fs::read(certs_test::path("sp/1003/chain.pem")).unwrap(),
    )
    .unwrap();
    let header = IdentityHeader::parse(&identity).unwrap();
    assert!(header.passport().verify_signature(&key_1003).is_ok());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_mismatched_key_and_certificate_refuse_to_start() {
    let dir = tempdir();
    write_config(dir.path());
    std::fs::copy(
        certs_test::path("sp/1003/key.pem"),
        dir.path().join("sp.key"),
    )
    .unwrap();
    let out = shaken([
        "signer",
        "serve",
        "--config",
        dir.path().join("signer.toml").to_str().unwrap(),
        "--validate",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("does not match the certificate"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.path().join("signer.toml"),
        "x5u = \"https://a/b\"\ncolour = 1\n",
    )
    .unwrap();
    let out = shaken([
        "signer",
        "serve",
        "--config",
        dir.path().join("signer.toml").to_str().unwrap(),
        "--validate",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("colour"), "{}", stderr(&out));
}

#[test]
fn validate_names_the_key_of_a_missing_file() {
    let dir = tempdir();
    write_config(dir.path());
    let config = dir.path().join("signer.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    let validate = || {
        shaken([
            "signer",
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--validate",
        ])
    };
    for (key, line, replacement) in [
        (
            "key_file",
            "key_file = \"sp.key\"",
            "key_file = \"missing.pem\"",
        ),
        (
            "certificate_file",
            "certificate_file = \"chain.pem\"",
            "certificate_file = \"missing.pem\"",
        ),
        (
            "tls.key_file",
            "country = \"NANP\"\n",
            "country = \"NANP\"\n[tls]\ncert_file = \"chain.pem\"\nkey_file = \"missing.pem\"\n",
        ),
    ] {
        assert!(original.contains(line), "{original}");
        std::fs::write(&config, original.replace(line, replacement)).unwrap();
        let out = validate();
        assert_eq!(out.status.code(), Some(2), "{key}");
        let expected = format!(
            "{key}: cannot read {}: No such file or directory",
            dir.path().join("missing.pem").display()
        );
        assert!(
            stderr(&out).contains(&expected),
            "{expected}\n{}",
            stderr(&out)
        );
    }
    // A file that is there but holds no key.
    std::fs::write(dir.path().join("garbage.pem"), "not a key\n").unwrap();
    std::fs::write(
        &config,
        original.replace("key_file = \"sp.key\"", "key_file = \"garbage.pem\""),
    )
    .unwrap();
    let out = validate();
    assert_eq!(out.status.code(), Some(2));
    let expected = format!("key_file: {}: ", dir.path().join("garbage.pem").display());
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
}

#[test]
fn the_key_is_checked_against_the_chain_published_at_the_x5u() {
    let dir = tempdir();
    let d = dir.path();
    let pki = certs_test::pki_dir();
    std::fs::create_dir_all(d.join("publish/sp/1001")).unwrap();
    std::fs::copy(
        pki.join("sp/1001/chain.pem"),
        d.join("publish/sp/1001/chain.pem"),
    )
    .unwrap();
    let (mut repo, base) = start_repository(&d.join("publish"));
    let write = |key: &str| {
        std::fs::copy(pki.join(key), d.join("sp.key")).unwrap();
        std::fs::write(
            d.join("signer.toml"),
            format!(
                "x5u = \"{base}/sp/1001/chain.pem\"\nkey_file = \"sp.key\"\nx5u_tls_roots = \"{}\"\nregistry_db = \"r.sqlite\"\ntrace_db = \"t.sqlite\"\n",
                pki.join("tls/root.pem").display()
            ),
        )
        .unwrap();
        shaken([
            "signer",
            "serve",
            "--config",
            d.join("signer.toml").to_str().unwrap(),
            "--validate",
        ])
    };
    let out = write("sp/1001/key.pem");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SHAKEN 1001"));
    let out = write("sp/1002/key.pem");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("does not match the certificate"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("/sp/1001/chain.pem"),
        "the published chain was used: {}",
        stderr(&out)
    );
    repo.kill().unwrap();
    repo.wait().unwrap();
}

/// Runs `shaken load sign --json` against `url` with calling numbers from `numbers`, and
/// returns its result.
fn load_sign(url: &str, numbers: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "load",
        "sign",
        "--url",
        url,
        "--numbers",
        numbers.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = shaken(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    crate::support::stdout_json(&out)
}

/// `shaken load sign` against a real signer: the open loop sends the scheduled number of
/// requests, counts signed and refused calls, and reports consistent latency figures.
#[test]
fn the_load_generator_keeps_its_schedule_and_counts_outcomes() {
    let dir = tempdir();
    write_config(dir.path());
    let numbers = dir.path().join("numbers.txt");
    let registered: String = (0..100).map(|i| format!("121555600{i:02}\n")).collect();
    std::fs::write(&numbers, registered).unwrap();
    let (mut child, addr, _lines) = spawn(dir.path());
    let url = format!("http://{addr}/stir/v1/signing");
    let open = load_sign(
        &url,
        &numbers,
        &[
            "--unregistered-share",
            "0.25",
            "--rate",
            "400",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--concurrency",
            "8",
        ],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(open["mode"], "open");
    let requests = open["requests"].as_u64().unwrap();
    // Requests due in the 2 measured seconds at 400/s (one either way for the edges).
    assert!((799..=801).contains(&requests), "{open}");
    let (signed, refused) = (
        open["signed"].as_u64().unwrap(),
        open["refused"].as_u64().unwrap(),
    );
    assert_eq!(signed + refused, requests, "{open}");
    assert_eq!(open["failed"], 0);
    // A quarter of the calls come from unregistered numbers and are refused.
    let share = refused as f64 / requests as f64;
    assert!((0.18..0.32).contains(&share), "refused share {share}");
    for figures in [
        &open["latency_ms"],
        &open["wire_latency_ms"],
        &open["sent_late_ms"],
        &open["exchange_latency_ms"],
    ] {
        let get = |q: &str| figures[q].as_f64().unwrap();
        assert!(get("p50") > 0.0, "{figures}");
        assert!(get("p50") <= get("p90") && get("p90") <= get("p99") && get("p99") <= get("max"));
    }
    // The answer reaches the socket before the generator has read it.
    assert!(open["wire_latency_ms"]["p99"].as_f64() <= open["latency_ms"]["p99"].as_f64());
    // The generator's lateness in sending and the exchange after it split the wire latency:
    // each is at most it (request by request, so at every quantile).
    for part in ["sent_late_ms", "exchange_latency_ms"] {
        for q in ["p50", "p99", "max"] {
            assert!(
                open[part][q].as_f64() <= open["wire_latency_ms"][q].as_f64(),
                "{part} {q}: {open}"
            );
        }
    }
}

/// A service that answers every request (HTTP/1.1, keep-alive) after `delay`, on one thread
/// per connection; returns its address. It lives until the test process ends.
fn slow_service(delay: std::time::Duration) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut pending = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One whole request: the head, then Content-Length bytes of body.
                    let complete = |p: &[u8]| {
                        let end = p.windows(4).position(|w| w == b"\r\n\r\n")?;
                        let head = String::from_utf8_lossy(&p[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        (p.len() >= end + 4 + length).then_some(end + 4 + length)
                    };
                    while let Some(used) = complete(&pending) {
                        pending.drain(..used);
                        std::thread::sleep(delay);
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
                        if stream.write_all(answer).is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// When the service falls behind the open loop's schedule, the requests already due at the end
/// of the run are still sent and counted: none is dropped, so the slowest end of a run is in
/// its figures.
#[test]
fn the_load_generator_sends_every_due_request_when_the_service_falls_behind() {
    let dir = tempdir();
    let numbers = dir.path().join("numbers.txt");
    std::fs::write(&numbers, "12155560000\n").unwrap();
    // 20 ms an answer on one connection: 50 a second at most, against 100 due a second.
    let addr = slow_service(std::time::Duration::from_millis(20));
    let url = format!("http://{addr}/stir/v1/signing");
    let run = load_sign(
        &url,
        &numbers,
        &[
            "--rate",
            "100",
            "--duration",
            "0.3",
            "--warmup",
            "0",
            "--concurrency",
            "1",
        ],
    );
    // Requests 0-29 are due in the 0.3 s (one every 10 ms); about half of them are still
    // waiting for the connection when the 0.3 s are over.
    assert_eq!(run["requests"], 30, "{run}");
    assert_eq!(run["signed"], 30, "{run}");
    // The last of them waited about 0.3 s for its turn: that is in the figures.
    assert!(run["latency_ms"]["max"].as_f64().unwrap() >= 200.0, "{run}");
    // Throughput is what the service achieved (about 50/s over about 0.6 s), not the 100/s
    // asked.
    assert!(run["seconds"].as_f64().unwrap() >= 0.5, "{run}");
    assert!(
        run["throughput_per_second"].as_f64().unwrap() <= 60.0,
        "{run}"
    );
}

/// A signer with `[lists]` and `[optout]`: `--validate` names the key of a file it cannot use,
/// and the running process enforces the list (the opt-out feed is down meanwhile: calls it
/// does not concern are signed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_process_enforces_the_regulators_list() {
    use crate::signer::marketing::{
        signed_list, BLACKLISTED_NUMBER, BLACK_NUMBER, SUBSCRIBER, WHITE_NAME, WHITE_NUMBER,
    };
    let dir = tempdir();
    write_config(dir.path());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(
        dir.path().join("list.jws"),
        signed_list(1, now, "white-listed"),
    )
    .unwrap();
    std::fs::copy(
        certs_test::path("pa/pa.pem"),
        dir.path().join("regulator.pem"),
    )
    .unwrap();
    std::fs::write(dir.path().join("feed.token"), "feed-secret-1\n").unwrap();
    let config = dir.path().join("signer.toml");
    let plain = std::fs::read_to_string(&config).unwrap();
    // Nothing listens on port 9 of loopback: the feed is down for the whole test.
    let sections = "\n[lists]\nsource = \"list.jws\"\nregulator_cert = \"regulator.pem\"\n\
                    reload_interval_seconds = 1\n\n[optout]\n\
                    feed_url = \"http://127.0.0.1:9/v1/optouts\"\n\
                    feed_token_file = \"feed.token\"\npoll_interval_ms = 200\n\
                    allow_insecure_loopback = true\n";
    let full = format!("{plain}{sections}");
    let validate = || {
        shaken([
            "signer",
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--validate",
        ])
    };
    for (key, from, to) in [
        (
            "lists.regulator_cert",
            "regulator_cert = \"regulator.pem\"",
            "regulator_cert = \"missing.pem\"",
        ),
        (
            "optout.feed_token_file",
            "feed_token_file = \"feed.token\"",
            "feed_token_file = \"missing.token\"",
        ),
    ] {
        std::fs::write(&config, full.replace(from, to)).unwrap();
        let out = validate();
        assert_eq!(out.status.code(), Some(2), "{key}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{key}: {}", stderr(&out));
        assert!(stderr(&out).contains("missing."), "{key}: {}", stderr(&out));
    }
    std::fs::write(&config, &full).unwrap();
    let out = validate();
    assert!(out.status.success(), "{}", stderr(&out));

    let (mut child, addr, _lines) = spawn(dir.path());
    for (orig, id) in [(BLACKLISTED_NUMBER, "POL4113"), (BLACK_NUMBER, "POL4111")] {
        let reply = post_json(
            addr,
            "/stir/v1/signing",
            &request("A", orig, SUBSCRIBER, ""),
            &[],
        )
        .await;
        assert_eq!(reply.status, 403, "{orig}");
        assert_eq!(
            reply.json()["requestError"]["policyException"]["messageId"],
            id
        );
    }
    let reply = post_json(
        addr,
        "/stir/v1/signing",
        &request("A", WHITE_NUMBER, SUBSCRIBER, ""),
        &[],
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let identity = reply.json()["signingResponse"]["identity"]
        .as_str()
        .unwrap()
        .to_owned();
    let parsed = IdentityHeader::parse(&identity).unwrap();
    assert_eq!(parsed.passport().claims().rcd_name(), Some(WHITE_NAME));
    let emergency = post_json(
        addr,
        "/stir/v1/signing",
        &request("A", BLACKLISTED_NUMBER, "911", ""),
        &[],
    )
    .await;
    assert_eq!(emergency.status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
}
