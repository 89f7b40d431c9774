//! `shaken verifier serve` as a process: configuration, SIGHUP reload of trust anchors,
//! SIGTERM shutdown.

use std::process::{Command, Stdio};

use passport::{Attestation, Claims, Dest, Party, SigningKey, TokenSigner};

use crate::http::post_json;
use crate::support::{shaken, start_repository, stderr, stderr_lines, tempdir, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_reloads_anchors_on_sighup_and_stops_on_sigterm() {
    let dir = tempdir();
    let d = dir.path();
    let pki = certs_test::pki_dir();
    std::fs::create_dir_all(d.join("publish/untrusted")).unwrap();
    std::fs::copy(
        pki.join("untrusted/chain.pem"),
        d.join("publish/untrusted/chain.pem"),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("anchors")).unwrap();
    std::fs::copy(pki.join("ca/root.pem"), d.join("anchors/sti-ca.pem")).unwrap();

    let (mut repo, repo_url) = start_repository(&d.join("publish"));

    std::fs::write(
        d.join("verifier.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\ntrust_anchors = \"anchors\"\n[fetch]\nallow_private_addresses = true\nallowed_ports = []\nextra_tls_roots = \"{}\"\n[cache]\nnegative_ttl = 0\nmin_ttl = 0\n",
            pki.join("tls/root.pem").display()
        ),
    )
    .unwrap();
    let config = d.join("verifier.toml");
    let out = shaken([
        "verifier",
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--validate",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut verifier = Command::new(env!("CARGO_BIN_EXE_shaken"))
        .args(["verifier", "serve", "--config", config.to_str().unwrap()])
        .env("SHAKEN_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut verifier);
    let listening = wait_for(&lines, "verifier listening").expect("verifier started");
    let addr: std::net::SocketAddr = listening
        .split_whitespace()
        .find_map(|w| w.strip_prefix("address="))
        .unwrap()
        .parse()
        .unwrap();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let x5u = format!("{repo_url}/untrusted/chain.pem");
    let signer = TokenSigner::new(
        SigningKey::from_pem(&std::fs::read(pki.join("untrusted/key.pem")).unwrap()).unwrap(),
        x5u,
    );
    let claims = Claims::shaken(
        now,
        Party::Tn("12155551212".into()),
        Dest::tns(vec!["12125551213".into()]).unwrap(),
        Attestation::A,
        "de305d54-75b4-431b-adb2-eb6b9e546014".parse().unwrap(),
    );
    let identity = signer.identity_header(&claims).unwrap();
    let body = format!(
        r#"{{"verificationRequest":{{"from":{{"tn":"12155551212"}},"to":{{"tn":["12125551213"]}},"time":{now},"identity":"{identity}"}}}}"#
    );
    let verdict = post_json(addr, "/stir/v1/verification", &body, &[])
        .await
        .json();
    assert_eq!(
        verdict["verificationResponse"]["reasoncode"], 437,
        "{verdict}"
    );

    // Trust the other root too, and reload.
    std::fs::copy(pki.join("untrusted/root.pem"), d.join("anchors/rogue.pem")).unwrap();
    Command::new("kill")
        .args(["-HUP", &verifier.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_for(&lines, "trust anchors and CRLs reloaded").is_some());
    let verdict = post_json(addr, "/stir/v1/verification", &body, &[])
        .await
        .json();
    assert_eq!(
        verdict["verificationResponse"]["verstat"], "TN-Validation-Passed",
        "{verdict}"
    );

    Command::new("kill")
        .args(["-TERM", &verifier.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_for(&lines, "verifier stopped").is_some());
    assert!(verifier.wait().unwrap().success());
    repo.kill().unwrap();
    repo.wait().unwrap();
}
