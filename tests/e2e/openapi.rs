//! `docs/openapi.json` checked against the running services (started by `shaken lab --serve`):
//! the documented paths are the served ones, the request examples are valid, and what the
//! services return (successes and errors) matches the documented schemas.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::http::{post_json, raw};
use crate::support::tempdir;

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let target = reference
                .trim_start_matches("#/")
                .split('/')
                .fold(doc, |v, key| &v[key]);
            resolve(doc, target)
        }
        None => schema,
    }
}

/// A small JSON Schema check: type, required, properties, items, enum, minItems, maxItems,
/// minimum, oneOf.
fn check(doc: &Value, schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let ok = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !ok {
            return Err(format!("{path}: {value} is not {kind}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            return Err(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|option| check(doc, option, value, path).is_ok())
            .count();
        if matching != 1 {
            return Err(format!(
                "{path}: {value} matches {matching} of the oneOf schemas"
            ));
        }
    }
    if let Some(maximum) = schema.get("maxItems").and_then(Value::as_u64) {
        if value.as_array().is_some_and(|a| a.len() as u64 > maximum) {
            return Err(format!("{path}: more than {maximum} items"));
        }
    }
    if let Some(minimum) = schema.get("minimum").and_then(Value::as_i64) {
        if value.as_i64().is_some_and(|v| v < minimum) {
            return Err(format!("{path}: {value} is below {minimum}"));
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if value.get(name).is_none() {
                return Err(format!("{path}: missing {name}"));
            }
        }
    }
    if let (Some(properties), Some(object)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (name, member) in object {
            match properties.get(name) {
                Some(sub) => check(doc, sub, member, &format!("{path}.{name}"))?,
                None => return Err(format!("{path}: undocumented member {name}")),
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if (array.len() as u64) < min {
                return Err(format!("{path}: fewer than {min} items"));
            }
        }
        for (i, item) in array.iter().enumerate() {
            check(doc, items, item, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

fn response_schema<'a>(doc: &'a Value, path: &str, status: u16) -> &'a Value {
    let response = resolve(
        doc,
        &doc["paths"][path]["post"]["responses"][status.to_string()],
    );
    assert!(
        !response.is_null(),
        "{path} does not document status {status}"
    );
    &response["content"]["application/json"]["schema"]
}

/// `docs/openapi.json`.
fn document() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .unwrap(),
    )
    .unwrap()
}

/// Checks a response body of `path` with `status` against the documented schema (for the tests
/// of the services that build answers the lab does not give, such as marketing calls).
pub(crate) fn check_response(path: &str, status: u16, value: &Value) {
    let doc = document();
    if let Err(error) = check(&doc, response_schema(&doc, path, status), value, path) {
        panic!("{error}: {value}");
    }
}

/// Checks a request body of `path` against the documented schema.
pub(crate) fn check_request(path: &str, value: &Value) {
    let doc = document();
    let schema =
        &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"];
    if let Err(error) = check(&doc, schema, value, path) {
        panic!("{error}: {value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_match_the_document() {
    let doc = document();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        [
            "/healthz",
            "/metrics",
            "/stir/v1/signing",
            "/stir/v1/verification",
            "/trace/v1/calls"
        ]
    );

    let dir = tempdir();
    let mut lab = Command::new(env!("CARGO_BIN_EXE_shaken"))
        .args([
            "lab",
            "--serve",
            "--calls",
            "13",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lab.stdout.take().unwrap();
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("the lab is running"));
    assert!(ready, "the lab did not start");
    let info: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("lab.json")).unwrap()).unwrap();
    let signer: SocketAddr = info["carriers"][0]["signer"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let verifier: SocketAddr = info["verifier"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();

    // The request examples are valid requests.
    for (path, body_schema) in [
        ("/stir/v1/signing", "SigningRequestBody"),
        ("/stir/v1/verification", "VerificationRequestBody"),
    ] {
        let example =
            &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"];
        check(
            &doc,
            &doc["components"]["schemas"][body_schema],
            example,
            "example",
        )
        .unwrap();
    }

    // Signing: the example, with a current iat, and an error.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut example = doc["paths"]["/stir/v1/signing"]["post"]["requestBody"]["content"]
        ["application/json"]["example"]
        .clone();
    example["signingRequest"]["iat"] = json!(now);
    let reply = post_json(signer, "/stir/v1/signing", &example.to_string(), &[]).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    check(
        &doc,
        response_schema(&doc, "/stir/v1/signing", 200),
        &reply.json(),
        "signing",
    )
    .unwrap();
    let identity = reply.json()["signingResponse"]["identity"]
        .as_str()
        .unwrap()
        .to_owned();
    for (service, path) in [
        (signer, "/stir/v1/signing"),
        (verifier, "/stir/v1/verification"),
    ] {
        for body in ["{}", "{", r#"{"signingRequest":{"attest":"Z"}}"#] {
            let reply = post_json(service, path, body, &[]).await;
            check(
                &doc,
                response_schema(&doc, path, reply.status),
                &reply.json(),
                path,
            )
            .unwrap();
        }
        let reply = raw(
            service,
            format!(
                "PUT {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert_eq!(reply.status, 405);
        assert_eq!(reply.header("allow"), Some("POST"));
        check(&doc, response_schema(&doc, path, 405), &reply.json(), path).unwrap();
        let documented = &resolve(&doc, &doc["paths"][path]["post"]["responses"]["405"])["headers"]
            ["Allow"]["schema"]["enum"];
        assert_eq!(documented, &json!(["POST"]));
        let health = raw(
            service,
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        check(
            &doc,
            &doc["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]
                ["schema"],
            &health.json(),
            "healthz",
        )
        .unwrap();
    }
    // Refused at signing (a policy exception).
    let mut refused = example.clone();
    refused["signingRequest"]["orig"]["tn"] = json!(info["numbers"]["unregistered"][0]);
    let reply = post_json(signer, "/stir/v1/signing", &refused.to_string(), &[]).await;
    assert_eq!(reply.status, 403);
    check(
        &doc,
        response_schema(&doc, "/stir/v1/signing", 403),
        &reply.json(),
        "refusal",
    )
    .unwrap();

    // Verification: passed, failed (spoofed caller), unsigned.
    for (from, identity) in [
        ("12155550101", Some(identity.as_str())),
        ("12155550102", Some(identity.as_str())),
        ("12155550101", None),
    ] {
        let mut request = json!({"verificationRequest": {"from": {"tn": from}, "to": {"tn": ["12125551213"]}, "time": now}});
        if let Some(identity) = identity {
            request["verificationRequest"]["identity"] = json!(identity);
        }
        let reply = post_json(verifier, "/stir/v1/verification", &request.to_string(), &[]).await;
        assert_eq!(reply.status, 200);
        let verdict = &reply.json()["verificationResponse"];
        let failed = verdict["verstat"] == "TN-Validation-Failed";
        assert_eq!(verdict["reasondesc"].is_string(), failed, "{verdict}");
        check(
            &doc,
            response_schema(&doc, "/stir/v1/verification", 200),
            &reply.json(),
            "verification",
        )
        .unwrap();
    }

    Command::new("kill")
        .args(["-INT", &lab.id().to_string()])
        .status()
        .unwrap();
    assert!(lab.wait().unwrap().success());
}
