//! `shaken lab` itself, with a small number of calls.

use crate::support::{shaken, stderr, stdout, tempdir};

#[test]
fn the_lab_gives_every_call_its_expected_verdict() {
    let dir = tempdir();
    let json = dir.path().join("results.json");
    let out = shaken([
        "lab",
        "--calls",
        "39",
        "--dir",
        dir.path().join("lab").to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("every call got its expected verdict"));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(results["ok"], true);
    let cases = results["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 13);
    for case in cases {
        assert_eq!(case["calls"], 3, "{case}");
        assert_eq!(case["matched"], 3, "{case}");
    }
    assert!(results["signing"]["requests"].as_u64().unwrap() > 0);
    // lab.json: how a person or a script points their own tools at the lab.
    let lab: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("lab/lab.json")).unwrap()).unwrap();
    for member in [
        "repository",
        "verifier",
        "trust_anchors",
        "repository_tls_root",
        "carriers",
        "registry_db",
        "numbers",
    ] {
        assert!(lab.get(member).is_some(), "{member}");
    }
    assert!(lab["repository"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
    assert!(lab["carriers"][0]["x5u"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
    assert!(std::path::Path::new(lab["trust_anchors"].as_str().unwrap()).is_absolute());
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
}
