//! `shaken passport sign | verify | decode` as a user runs them, with keys and certificates
//! made by OpenSSL.

use std::path::Path;

use crate::support::{openssl, shaken, stderr, stdout, stdout_json, tempdir};

const X5U: &str = "https://cr.example.net/sp.pem";
const IAT: &str = "1700000000";

/// OpenSSL-made keys in both encodings and a certificate for each.
fn openssl_pki(dir: &Path) {
    // SEC1, preceded by an EC PARAMETERS block, as `openssl ecparam -genkey` writes it.
    openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "sec1.pem",
        ],
        dir,
    );
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "pkcs8.pem",
        ],
        dir,
    );
    for (key, cert) in [
        ("sec1.pem", "sec1-cert.pem"),
        ("pkcs8.pem", "pkcs8-cert.pem"),
    ] {
        openssl(
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                key,
                "-subj",
                "/C=US/O=Test/CN=SHAKEN 1234",
                "-days",
                "30",
                "-out",
                cert,
            ],
            dir,
        );
    }
}

fn sign(dir: &Path, key: &str, extra: &[&str]) -> String {
    let key = dir.join(key);
    let mut args = vec![
        "passport",
        "sign",
        "--key",
        key.to_str().unwrap(),
        "--x5u",
        X5U,
        "--orig",
        "+1 (215) 555-1212",
        "--dest",
        "1-212-555-1213",
        "--attest",
        "A",
        "--iat",
        IAT,
    ];
    args.extend_from_slice(extra);
    let output = shaken(&args);
    assert!(output.status.success(), "sign failed: {}", stderr(&output));
    stdout(&output).trim().to_owned()
}

fn verify(dir: &Path, identity: &str, cert: &str, extra: &[&str]) -> std::process::Output {
    let cert = dir.join(cert);
    let mut args = vec![
        "passport",
        "verify",
        "--identity",
        identity,
        "--cert",
        cert.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    shaken(&args)
}

#[test]
fn round_trip_with_pkcs8_and_sec1_keys() {
    let dir = tempdir();
    openssl_pki(dir.path());
    for (key, cert) in [
        ("sec1.pem", "sec1-cert.pem"),
        ("pkcs8.pem", "pkcs8-cert.pem"),
    ] {
        let identity = sign(
            dir.path(),
            key,
            &["--origid", "de305d54-75b4-431b-adb2-eb6b9e546014"],
        );
        assert!(identity.ends_with(";info=<https://cr.example.net/sp.pem>;alg=ES256;ppt=shaken"));
        let output = verify(
            dir.path(),
            &identity,
            cert,
            &[
                "--from",
                "12155551212",
                "--to",
                "+1 212 555 1213",
                "--now",
                "1700000030",
            ],
        );
        assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
        let verdict = stdout_json(&output);
        assert_eq!(verdict["verstat"], "TN-Validation-Passed");
        assert_eq!(verdict["attest"], "A");
        assert_eq!(verdict["orig"]["tn"], "12155551212");
        assert_eq!(verdict["dest"]["tn"][0], "12125551213");
        assert_eq!(verdict["iat"], 1700000000);
        assert_eq!(verdict["origid"], "de305d54-75b4-431b-adb2-eb6b9e546014");
        assert!(verdict.get("reasoncode").is_none());
    }
}

#[test]
fn failures_carry_the_sip_code_and_exit_1() {
    let dir = tempdir();
    openssl_pki(dir.path());
    let identity = sign(dir.path(), "pkcs8.pem", &[]);
    let (token, params) = identity.split_once(';').unwrap();
    let mut tampered_sig = token.to_owned();
    let last = tampered_sig.pop().unwrap();
    tampered_sig.push(if last == 'A' { 'Q' } else { 'A' });
    let tampered = format!("{tampered_sig};{params}");

    let cases: &[(&str, &str, &[&str], u64, &str)] = &[
        (
            &identity,
            "pkcs8-cert.pem",
            &["--now", "1700000061"],
            403,
            "Stale Date",
        ),
        (
            &identity,
            "pkcs8-cert.pem",
            &["--now", "1700000000", "--from", "12155550000"],
            438,
            "Invalid Identity Header",
        ),
        (
            &identity,
            "pkcs8-cert.pem",
            &["--now", "1700000000", "--to", "12125550000"],
            438,
            "Invalid Identity Header",
        ),
        (
            &identity,
            "sec1-cert.pem",
            &["--now", "1700000000"],
            438,
            "Invalid Identity Header",
        ),
        (
            &tampered,
            "pkcs8-cert.pem",
            &["--now", "1700000000"],
            438,
            "Invalid Identity Header",
        ),
        (
            "garbage;info=<https://x/y>",
            "pkcs8-cert.pem",
            &["--now", "1700000000"],
            438,
            "Invalid Identity Header",
        ),
    ];
    for (identity, cert, extra, code, text) in cases {
        let output = verify(dir.path(), identity, cert, extra);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{extra:?}: {}",
            stdout(&output)
        );
        let verdict = stdout_json(&output);
        assert_eq!(verdict["verstat"], "TN-Validation-Failed");
        assert_eq!(verdict["reasoncode"], *code, "{extra:?}");
        assert_eq!(verdict["reasontext"], *text);
        assert!(verdict["reasondesc"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
    }
    // A token that decodes still reports what it carries, even when it fails.
    let output = verify(
        dir.path(),
        &identity,
        "pkcs8-cert.pem",
        &["--now", "1700000061"],
    );
    assert_eq!(stdout_json(&output)["attest"], "A");
}

#[test]
fn unusable_input_exits_2_and_names_the_problem() {
    let dir = tempdir();
    openssl_pki(dir.path());
    std::fs::write(dir.path().join("garbage.pem"), "not a certificate").unwrap();
    let identity = sign(dir.path(), "pkcs8.pem", &[]);

    let output = verify(dir.path(), &identity, "missing.pem", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("missing.pem"),
        "{}",
        stderr(&output)
    );

    let output = verify(dir.path(), &identity, "garbage.pem", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--cert"), "{}", stderr(&output));

    let output = verify(dir.path(), &identity, "pkcs8-cert.pem", &["--to", "12a"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--to"), "{}", stderr(&output));

    // A certificate given as the signing key.
    let cert = dir.path().join("pkcs8-cert.pem");
    let output = shaken([
        "passport",
        "sign",
        "--key",
        cert.to_str().unwrap(),
        "--x5u",
        X5U,
        "--orig",
        "12155551212",
        "--dest",
        "12125551213",
        "--attest",
        "A",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--key"), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no PRIVATE KEY"),
        "{}",
        stderr(&output)
    );

    let output = shaken([
        "passport", "sign", "--key", "k", "--x5u", X5U, "--orig", "1", "--dest", "2", "--attest",
        "D",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--attest"), "{}", stderr(&output));

    let output = shaken([
        "passport", "sign", "--key", "k", "--x5u", X5U, "--orig", "1", "--dest", "2", "--attest",
        "A", "--origid", "nope",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("origid"), "{}", stderr(&output));
}

#[test]
fn identity_file_and_decode() {
    let dir = tempdir();
    openssl_pki(dir.path());
    let identity = sign(
        dir.path(),
        "sec1.pem",
        &["--origid", "DE305D54-75B4-431B-ADB2-EB6B9E546014"],
    );
    let file = dir.path().join("identity.txt");
    std::fs::write(&file, format!("Identity: {identity}\r\n")).unwrap();
    let cert = dir.path().join("sec1-cert.pem");
    let output = shaken([
        "passport",
        "verify",
        "--identity-file",
        file.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--now",
        IAT,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    let output = shaken([
        "passport",
        "decode",
        "--identity-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0));
    let decoded = stdout_json(&output);
    assert_eq!(decoded["header"]["x5u"], X5U);
    assert_eq!(decoded["header"]["ppt"], "shaken");
    assert_eq!(
        decoded["claims"]["origid"],
        "DE305D54-75B4-431B-ADB2-EB6B9E546014"
    );
    assert_eq!(decoded["claims"]["iat"], 1700000000);
    assert_eq!(decoded["signature"].as_str().map(str::len), Some(86));

    let output = shaken(["passport", "decode", "--identity", "abc.def"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("3"), "{}", stderr(&output));
}

/// Placeholders chosen by hand: upper-case words that say what a value is. Anything else in
/// upper case is the field name clap derives when `value_name` is missing (`<CONCURRENCY>`).
const PLACEHOLDERS: &[&str] = &[
    "COMMAND",
    "N",
    "SECONDS",
    "HOURS",
    "DAYS",
    "FRACTION",
    "FILE",
    "DIR",
    "ADDR",
    "URL",
    "SPC",
    "TN",
    "UUID",
    "ORG",
    "CC",
    "PLAN",
    "HEX",
    "REASON",
    "FINGERPRINT",
    "VALUE",
    "NAME",
    "PPT",
    "BROKERS",
];

/// The subcommands listed under `Commands:` in a help text, `help` aside.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every `<...>` placeholder holding no other placeholder.
fn placeholders(help: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = help;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        match (after.find('>'), after.find('<')) {
            (Some(end), inner) if inner.is_none_or(|inner| inner > end) => {
                found.push(&after[..end]);
                rest = &after[end + 1..];
            }
            _ => rest = after,
        }
    }
    found
}

/// Every command's `--help`, found by walking the `Commands:` lists from the top.
fn every_help() -> Vec<(String, String, String)> {
    let mut pending = vec![Vec::<String>::new()];
    let mut helps = Vec::new();
    while let Some(path) = pending.pop() {
        let output = shaken(path.iter().map(String::as_str).chain(["--help"]));
        assert!(output.status.success(), "{path:?}: {}", stderr(&output));
        let long = stdout(&output);
        let output = shaken(path.iter().map(String::as_str).chain(["-h"]));
        let short = stdout(&output);
        for name in subcommands(&long) {
            let mut next = path.clone();
            next.push(name);
            pending.push(next);
        }
        helps.push((path.join(" "), long, short));
    }
    helps
}

/// Alternatives show as groups in the usage line, every placeholder is a chosen word, and each
/// short help line (`-h`: the first paragraph of each description) stays within 100 columns.
#[test]
fn help_shows_alternatives_and_meaningful_placeholders() {
    let helps = every_help();
    assert!(helps.len() > 30, "{}", helps.len());
    let help_of = |command: &str| {
        helps
            .iter()
            .find(|(path, _, _)| path == command)
            .map(|(_, long, _)| long.clone())
            .unwrap_or_else(|| panic!("no help for {command}"))
    };
    for (command, usage) in [
        (
            "pa spc-token",
            "<--fingerprint <FINGERPRINT>|--account-key <KEY.pem>>",
        ),
        ("ca revoke", "<--serial <HEX>|--cert <CERT.pem>>"),
        ("trace lookup", "<--origid <UUID>|--tn <TN>>"),
        (
            "passport verify",
            "<--identity <VALUE>|--identity-file <FILE>>",
        ),
    ] {
        let help = help_of(command);
        let line = help.lines().find(|l| l.starts_with("Usage:")).unwrap();
        assert!(line.contains(usage), "{command}: {line}");
    }
    assert!(help_of("load verify").contains("/stir/v1/verification"));
    assert!(help_of("load sign").contains("/stir/v1/signing"));

    let mut derived = Vec::new();
    let mut long_lines = Vec::new();
    for (command, long, short) in &helps {
        for placeholder in placeholders(long) {
            let upper = placeholder
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if upper && !PLACEHOLDERS.contains(&placeholder) {
                derived.push(format!("shaken {command}: <{placeholder}>"));
            }
        }
        // Usage lines are as long as their required arguments; a default is clap's addition.
        for line in short.lines().filter(|line| !line.starts_with("Usage:")) {
            let described = line.split(" [default: ").next().unwrap_or(line);
            if described.chars().count() > 100 {
                long_lines.push(format!("shaken {command} -h: {line}"));
            }
        }
    }
    assert!(
        derived.is_empty(),
        "derived placeholders:\n{}",
        derived.join("\n")
    );
    assert!(
        long_lines.is_empty(),
        "long lines:\n{}",
        long_lines.join("\n")
    );
}
