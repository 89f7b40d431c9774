//! What the lab tells people and scripts about itself: `DIR/lab.json` (every address, file and
//! sample number) and `DIR/lab.env` (the same endpoints and the most useful values as shell
//! variables, for `. DIR/lab.env`). Both are written atomically (a temporary file renamed into
//! place) once every service answers, so a script may wait for `lab.json` to exist and then
//! use the endpoints at once.
//!
//! `lab.env` is made from `lab.json`'s values, so the two always agree: each member `NAME` of
//! `endpoints` becomes `SHAKEN_NAME_URL` (upper case), and the sample values are listed in
//! [`ENV_VALUES`] (those whose member is absent, as the scale-out's without `--kafka`, are
//! left out).

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use crate::error::LabError;

/// The sample values of `lab.env` besides the endpoints: each variable and the `lab.json`
/// member it copies (a path of members and array indexes).
pub const ENV_VALUES: [(&str, &[&str]); 30] = [
    ("SHAKEN_DIR", &["dir"]),
    ("SHAKEN_COUNTRY", &["country"]),
    ("SHAKEN_REGISTERED_TN", &["numbers", "registered", "0"]),
    ("SHAKEN_CALLED_TN", &["numbers", "called", "0"]),
    ("SHAKEN_UNREGISTERED_TN", &["numbers", "unregistered", "0"]),
    ("SHAKEN_SUSPENDED_TN", &["numbers", "suspended", "0"]),
    ("SHAKEN_EMERGENCY_TN", &["numbers", "emergency", "0"]),
    ("SHAKEN_TRACE_DB", &["carriers", "0", "trace_db"]),
    ("SHAKEN_REGISTRY_DB", &["registry_db"]),
    ("SHAKEN_KEY", &["carriers", "0", "key"]),
    ("SHAKEN_CHAIN", &["carriers", "0", "chain"]),
    ("SHAKEN_X5U", &["carriers", "0", "x5u"]),
    ("SHAKEN_TRUST_ANCHORS", &["trust_anchors"]),
    ("SHAKEN_REPOSITORY_TLS_ROOT", &["repository_tls_root"]),
    ("SHAKEN_EVENTS", &["events"]),
    ("SHAKEN_LISTS", &["lists"]),
    ("SHAKEN_REGULATOR_CERT", &["regulator_cert"]),
    ("SHAKEN_MARKETING_TN", &["numbers", "marketing", "0"]),
    ("SHAKEN_BLACKLISTED_TN", &["numbers", "blacklisted", "0"]),
    ("SHAKEN_OPTED_OUT_TN", &["numbers", "opted_out", "0"]),
    ("SHAKEN_HARASSING_TN", &["numbers", "harassing", "0"]),
    ("SHAKEN_OPTOUT_FEED_TOKEN_FILE", &["optout_feed_token"]),
    ("SHAKEN_OPTOUT_LINK_KEY", &["optout_link_key"]),
    ("SHAKEN_SIP", &["carriers", "0", "sip"]),
    ("SHAKEN_VERIFIER_SIP", &["verifier_sip"]),
    // On Kafka and PostgreSQL only (`crate::scale_out`).
    ("SHAKEN_KAFKA", &["kafka"]),
    ("SHAKEN_KAFKA_TOPIC", &["kafka_topic"]),
    ("SHAKEN_POSTGRES", &["postgres"]),
    (
        "SHAKEN_SECOND_SIGNER_URL",
        &["carriers", "0", "signers", "1"],
    ),
    ("SHAKEN_SECOND_MONITOR_URL", &["monitors", "1"]),
];

/// `value` single-quoted for a POSIX shell: every character literal, a `'` written `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The member of `value` at `path` (array indexes as digits), as text.
fn member(value: &Value, path: &[&str]) -> Option<String> {
    let found = path
        .iter()
        .try_fold(value, |v, key| match key.parse::<usize>() {
            Ok(index) => v.get(index),
            Err(_) => v.get(*key),
        })?;
    match found {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The text of `lab.env` for the lab described by `description` (`lab.json`'s value).
pub fn lab_env(description: &Value) -> String {
    let mut out = String::from(
        "# shaken lab: its endpoints and sample values (the same as lab.json's).\n\
         # Load them into a POSIX shell with: . ./lab.env\n",
    );
    if let Some(endpoints) = description.get("endpoints").and_then(Value::as_object) {
        for (name, url) in endpoints {
            if let Some(url) = url.as_str() {
                out.push_str(&format!(
                    "export SHAKEN_{}_URL={}\n",
                    name.to_ascii_uppercase(),
                    shell_quote(url)
                ));
            }
        }
    }
    for (variable, path) in ENV_VALUES {
        if let Some(value) = member(description, path) {
            out.push_str(&format!("export {variable}={}\n", shell_quote(&value)));
        }
    }
    out
}

/// Writes `bytes` to `path` atomically: into a temporary file in the same folder, then
/// renamed over `path`, so a reader sees no file or the whole file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LabError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".lab-")
        .tempfile_in(folder)
        .map_err(|e| LabError::io(folder, &e))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| LabError::io(file.path(), &e))?;
    file.persist(path)
        .map_err(|e| LabError::io(path, &e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_single_quoted_for_the_shell() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's $HOME"), r"'it'\''s $HOME'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn the_env_file_copies_the_endpoints_and_samples() {
        let description = json!({
            "dir": "/tmp/lab's",
            "endpoints": {"signing": "http://127.0.0.1:1/stir/v1/signing",
                          "signer_metrics": "http://127.0.0.1:1/metrics"},
            "numbers": {"registered": ["12155550101", "12155550102"]},
            "carriers": [{"trace_db": "/t/trace.sqlite"}],
        });
        let env = lab_env(&description);
        assert!(env.contains("export SHAKEN_SIGNING_URL='http://127.0.0.1:1/stir/v1/signing'\n"));
        assert!(env.contains("export SHAKEN_SIGNER_METRICS_URL='http://127.0.0.1:1/metrics'\n"));
        assert!(env.contains("export SHAKEN_REGISTERED_TN='12155550101'\n"));
        assert!(env.contains("export SHAKEN_TRACE_DB='/t/trace.sqlite'\n"));
        assert!(env.contains(r"export SHAKEN_DIR='/tmp/lab'\''s'"));
        // Members missing from lab.json are left out.
        assert!(!env.contains("SHAKEN_CALLED_TN"));
    }

    #[test]
    fn the_scale_outs_values_are_there_only_on_kafka_and_postgresql() {
        let mut description = json!({"carriers": [{"signer": "http://127.0.0.1:1"}],
                                     "monitor": "http://127.0.0.1:3"});
        let env = lab_env(&description);
        for variable in ["SHAKEN_KAFKA", "SHAKEN_POSTGRES", "SHAKEN_SECOND_"] {
            assert!(!env.contains(variable), "{env}");
        }
        description["kafka"] = json!("127.0.0.1:9092");
        description["kafka_topic"] = json!("shaken.call-events");
        description["postgres"] = json!("postgres://shaken@127.0.0.1:5432/lab");
        description["carriers"][0]["signers"] = json!(["http://127.0.0.1:1", "http://127.0.0.1:2"]);
        description["monitors"] = json!(["http://127.0.0.1:3", "http://127.0.0.1:4"]);
        let env = lab_env(&description);
        for line in [
            "export SHAKEN_KAFKA='127.0.0.1:9092'\n",
            "export SHAKEN_KAFKA_TOPIC='shaken.call-events'\n",
            "export SHAKEN_POSTGRES='postgres://shaken@127.0.0.1:5432/lab'\n",
            "export SHAKEN_SECOND_SIGNER_URL='http://127.0.0.1:2'\n",
            "export SHAKEN_SECOND_MONITOR_URL='http://127.0.0.1:4'\n",
        ] {
            assert!(env.contains(line), "{line}{env}");
        }
    }

    #[test]
    fn atomic_writes_replace_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
