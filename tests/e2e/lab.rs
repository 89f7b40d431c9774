//! `shaken lab` itself, with a small number of calls: the NANP and CN labs, the table (the
//! monitor's checks included), `--json`, and `--serve` with `lab.json`, `lab.env` and Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{shaken, stderr, stdout, tempdir};

/// The number of call cases.
const CASES: usize = 24;

#[test]
fn the_lab_gives_every_call_its_expected_verdict() {
    let dir = tempdir();
    let json = dir.path().join("results.json");
    let out = shaken([
        "lab",
        "--calls",
        "72",
        "--dir",
        dir.path().join("lab").to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("every call got its expected verdict"));
    // The first lines say what is built, and where.
    let first: Vec<&str> = text.lines().take(7).collect();
    assert!(
        first[0].starts_with("building a SHAKEN lab with NANP numbers in /"),
        "{text}"
    );
    assert!(first[1].contains("PKI"), "{text}");
    assert!(first[2].contains("registry"), "{text}");
    assert!(
        first[3].contains("regulator's list signed by the PA"),
        "{text}"
    );
    assert!(
        first[4].ends_with("blacklisted: Nightcall Marketing"),
        "{text}"
    );
    assert!(first[5].contains("services"), "{text}");
    assert!(first[5].contains("opt-out service"), "{text}");
    assert!(first[6].contains("lab.json"), "{text}");
    for line in &first[1..] {
        assert!(line.chars().count() <= 100, "{line}");
    }
    // The table: a result column, the API's spellings, at most 100 columns.
    let header = text.lines().find(|l| l.starts_with("case ")).unwrap();
    for column in ["calls", "result", "signing", "verstat", "SIP", "flags"] {
        assert!(header.contains(column), "{header}");
    }
    let table_start = text.lines().position(|l| l == header).unwrap();
    for line in text.lines().skip(table_start) {
        assert!(line.chars().count() <= 100, "{line}");
    }
    let row = |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap();
    assert!(row("A: registered, verified").contains(" pass "));
    assert!(row("A: registered, verified").contains(" TN-Validation-Passed"));
    assert!(row("spoofed caller ID").contains(" TN-Validation-Failed 438 spoofed +1"));
    assert!(row("unregistered caller").contains(" refused POL4101"));
    assert!(
        row("marketing call").contains(" pass   signed A "),
        "{text}"
    );
    assert!(row("marketing call").ends_with(" marketing"), "{text}");
    assert!(row("unsubscribed via link").contains(" pass   refused POL4114"));
    assert!(
        row("opted out, lab-signed").ends_with(" opted-out"),
        "{text}"
    );
    assert!(row("firm over its quota").contains(" pass   refused POL4115"));
    assert!(text.contains("438 Invalid Identity Header"));
    // The monitoring scenario: the alerts the lab expects, raised at the monitor the
    // verifier pushes to, and the traceback to the registered customer.
    assert!(
        row("harassing caller").contains(" 15 pass   high-frequency on caller 12155550801"),
        "{text}"
    );
    assert!(
        row("gateway domestic IDs").contains(" 25 pass   out-of-area on SPC 2001"),
        "{text}"
    );
    assert!(
        row("traceback").contains(" pass   customer h1 at SPC 1001"),
        "{text}"
    );
    assert!(text.contains("got 12155550801 placed 11 calls in 60 s (threshold 10)"));
    assert!(text.contains("the monitor raised every expected alert (3 of 3 checks)"));

    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(results["ok"], true);
    let cases = results["cases"].as_array().unwrap();
    assert_eq!(cases.len(), CASES);
    for case in cases {
        assert_eq!(case["calls"], 3, "{case}");
        assert_eq!(case["matched"], 3, "{case}");
        assert_eq!(case["result"], "pass", "{case}");
        assert_eq!(case["got"][case["expected"].as_str().unwrap()], 3, "{case}");
    }
    assert!(results["signing"]["requests"].as_u64().unwrap() > 0);
    let checks = results["monitor"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3, "{}", results["monitor"]);
    for check in checks {
        assert_eq!(check["result"], "pass", "{check}");
    }
    let hop = results["monitor"]["traceback_ms"].as_f64().unwrap();
    assert!(hop > 0.0 && hop < 1000.0, "{hop}");
    assert!(results["monitor"]["other_alerts"].is_array());
    // lab.json: how a person or a script points their own tools at the lab.
    let lab: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("lab/lab.json")).unwrap()).unwrap();
    assert_eq!(results["lab"], lab);
    for member in [
        "repository",
        "verifier",
        "trust_anchors",
        "repository_tls_root",
        "carriers",
        "registry_db",
        "numbers",
        "endpoints",
        "country",
        "optout",
        "lists",
        "regulator_cert",
        "monitor",
    ] {
        assert!(lab.get(member).is_some(), "{member}");
    }
    assert!(lab["monitor"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    assert_eq!(lab["monitor"], lab["endpoints"]["monitor"]);
    assert_eq!(lab["numbers"]["harassing"][0], "12155550801");
    // The marketing case's expected outcome carries the vetted name.
    let marketing = cases
        .iter()
        .find(|c| c["case"] == "marketing call")
        .unwrap();
    assert!(
        marketing["expected"]
            .as_str()
            .unwrap()
            .contains("rcd.nam \"Sunrise Insurance\""),
        "{marketing}"
    );
    // The signed list verifies with `shaken lists verify` and the regulator certificate.
    let verify = shaken([
        "lists",
        "verify",
        "--cert",
        lab["regulator_cert"].as_str().unwrap(),
        lab["lists"].as_str().unwrap(),
    ]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(!lab["numbers"]["marketing"].as_array().unwrap().is_empty());
    assert!(!lab["numbers"]["blacklisted"].as_array().unwrap().is_empty());
    assert!(lab["repository"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
    assert!(lab["carriers"][0]["x5u"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
    assert!(std::path::Path::new(lab["trust_anchors"].as_str().unwrap()).is_absolute());
    assert!(std::path::Path::new(lab["carriers"][0]["trace_dir"].as_str().unwrap()).is_dir());
    for kind in [
        "registered",
        "unverified",
        "unregistered",
        "suspended",
        "emergency",
    ] {
        assert!(
            !lab["numbers"][kind].as_array().unwrap().is_empty(),
            "{kind}"
        );
    }
    assert_eq!(
        lab["endpoints"]["signing"],
        format!(
            "{}/stir/v1/signing",
            lab["carriers"][0]["signer"].as_str().unwrap()
        )
    );
}

#[test]
fn the_chinese_lab_gives_every_call_its_expected_verdict_and_verbose_shows_every_flag() {
    let dir = tempdir();
    let out = shaken([
        "lab",
        "--country",
        "CN",
        "--verbose",
        "--calls",
        "24",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("building a SHAKEN lab with CN numbers in "),
        "{text}"
    );
    assert!(
        text.contains("every call got its expected verdict"),
        "{text}"
    );
    let row = |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap();
    assert!(row("spoofed caller ID").ends_with(" 438 spoofed,unregistered"));
    assert!(row("domestic ID via gateway").contains(" refused POL4104"));
    assert!(
        row("emergency, blacklisted").ends_with(" blacklisted"),
        "{text}"
    );
    assert!(row("blacklisted number").contains(" refused POL4113"));
    assert!(
        row("harassing caller").contains(" pass   high-frequency on caller 8613812340801"),
        "{text}"
    );
    assert!(
        row("gateway domestic IDs").contains(" pass   out-of-area on SPC 2001"),
        "{text}"
    );
    assert!(text
        .lines()
        .all(|l| l.chars().count() <= 100 || l.contains('/')));
    let lab: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("lab.json")).unwrap()).unwrap();
    assert_eq!(lab["country"], "CN");
    assert!(lab["numbers"]["registered"][0]
        .as_str()
        .unwrap()
        .starts_with("86"));

    let unknown = shaken(["lab", "--country", "FR", "--calls", "1"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("not NANP or CN"),
        "{}",
        stderr(&unknown)
    );
}

/// `--serve`: `lab.json` appears once the services answer, `lab.env` gives the same
/// endpoints, and Ctrl-C prints one line once everything has stopped.
#[test]
fn the_served_lab_describes_itself_and_stops_on_ctrl_c() {
    let dir = tempdir();
    let mut lab = Command::new(env!("CARGO_BIN_EXE_shaken"))
        .args([
            "lab",
            "--serve",
            "--calls",
            "14",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let json = dir.path().join("lab.json");
    let started = Instant::now();
    while !json.exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no lab.json");
        std::thread::sleep(Duration::from_millis(50));
    }
    // As soon as lab.json exists, it is whole, and lab.env with it.
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let sourced = Command::new("sh")
        .arg("-c")
        .arg(". \"$1\" && printf '%s\\n' \"$SHAKEN_VERIFIER_HEALTH_URL\" \"$SHAKEN_SIGNING_URL\" \"$SHAKEN_MONITOR_URL\"")
        .arg("sh")
        .arg(dir.path().join("lab.env"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(sourced.stdout).unwrap(),
        format!(
            "{}\n{}\n{}\n",
            info["endpoints"]["verifier_health"].as_str().unwrap(),
            info["endpoints"]["signing"].as_str().unwrap(),
            info["monitor"].as_str().unwrap()
        )
    );

    let lines: Vec<String> = {
        let stdout = lab.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout).lines().map_while(Result::ok);
        let mut lines = vec![];
        for line in reader.by_ref() {
            let running = line.contains("the lab is running");
            lines.push(line);
            if running {
                break;
            }
        }
        Command::new("kill")
            .args(["-INT", &lab.id().to_string()])
            .status()
            .unwrap();
        lines.extend(reader);
        lines
    };
    assert!(lab.wait().unwrap().success(), "{lines:?}");
    let at = lines
        .iter()
        .position(|l| l.contains("the lab is running"))
        .unwrap();
    assert_eq!(&lines[at + 1..], ["lab stopped"], "{lines:?}");
}

/// Ctrl-C as soon as `lab.json` exists, while calls are still being placed, stops the lab
/// cleanly too: `lab stopped` is the last line, the exit status 130.
#[test]
fn the_served_lab_stops_on_ctrl_c_while_placing_calls() {
    let dir = tempdir();
    let lab = Command::new(env!("CARGO_BIN_EXE_shaken"))
        .args([
            "lab",
            "--serve",
            "--calls",
            "10000000",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !dir.path().join("lab.json").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no lab.json");
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-INT", &lab.id().to_string()])
        .status()
        .unwrap();
    let out = lab.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let text = stdout(&out);
    assert_eq!(text.lines().last(), Some("lab stopped"), "{text}");
    assert!(!text.contains("the lab is running"), "{text}");
}

/// Without `--serve` too, Ctrl-C stops the lab cleanly: `lab stopped`, exit status 130, and
/// its temporary folder (private keys included) is removed.
#[test]
fn the_lab_stops_on_ctrl_c_and_removes_its_temporary_folder() {
    use std::io::{BufRead, BufReader, Read};
    let mut lab = Command::new(env!("CARGO_BIN_EXE_shaken"))
        .args(["lab", "--calls", "10000000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(lab.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let dir = std::path::PathBuf::from(
        first
            .trim_end()
            .rsplit_once(" in ")
            .map(|(_, dir)| dir)
            .unwrap_or_else(|| panic!("{first:?}")),
    );
    let started = Instant::now();
    while !dir.join("lab.json").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no lab.json");
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-INT", &lab.id().to_string()])
        .status()
        .unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(lab.wait().unwrap().code(), Some(130));
    assert_eq!(rest.lines().last(), Some("lab stopped"), "{rest}");
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
