//! Every call case with its expected verdict, and the driver that places calls through the
//! signers' and the verifier's REST APIs and describes what each call got.
//!
//! A call is described in a few words (`signed A; TN-Validation-Passed`, `438 spoofed`,
//! `refused POL4101`); it matches its case when the description equals the expected one. Call
//! `i` is of case `i % CASES.len()`, so every case gets its share of the calls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use hdrhistogram::Histogram;
use passport::{Attestation, Claims, Dest, Party, SigningKey, TokenSigner};
use serde_json::Value;

use crate::client::Client;
use crate::error::{read, LabError};
use crate::pki::Carrier;
use crate::report::{CaseResult, Results};

/// Registered, verified subscribers of the originating carrier.
pub const REGISTERED: &[&str] = &["12155550101", "12155550102", "12155550103", "12155550104"];
/// A registered subscriber whose identity is not verified.
pub const UNVERIFIED: &[&str] = &["12155550201"];
/// A suspended subscriber.
pub const SUSPENDED: &[&str] = &["12155550301"];
/// A number the registry does not hold.
pub const UNREGISTERED: &[&str] = &["12155559999"];
/// Emergency numbers.
pub const EMERGENCY: &[&str] = &["911"];
/// The number every call is placed to (except emergency calls).
pub const CALLED: &str = "12125551213";

/// Every call case (name, expected description).
pub const CASES: [(&str, &str); 13] = [
    ("A: registered, verified", "signed A; TN-Validation-Passed"),
    (
        "B: another customer's number",
        "signed B; Passed, unregistered",
    ),
    ("C: international gateway", "signed C; Passed, gateway"),
    ("spoofed caller ID", "438 spoofed"),
    ("tampered signature", "438 spoofed"),
    ("replayed (signed 120 s ago)", "403 stale"),
    ("revoked certificate", "437 revoked"),
    ("untrusted root", "437 untrusted"),
    ("unreachable x5u", "436"),
    ("unregistered caller", "refused POL4101"),
    ("suspended caller", "refused POL4102"),
    ("emergency, unregistered", "signed C; Passed"),
    ("unsigned call", "No-TN-Validation"),
];

/// The lab's services and carriers that the cases use.
#[derive(Clone, Copy, Debug)]
pub struct Targets<'a> {
    /// The originating carrier's signer.
    pub one: SocketAddr,
    /// The gateway carrier's signer.
    pub gateway: SocketAddr,
    /// The terminating verifier.
    pub verifier: SocketAddr,
    /// The carrier whose certificate is revoked.
    pub revoked: &'a Carrier,
    /// The carrier certified by the rogue CA.
    pub rogue: &'a Carrier,
    /// The originating carrier.
    pub originating: &'a Carrier,
}

/// The value at `path` (missing members are `null`).
fn field<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    static NULL: Value = Value::Null;
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .unwrap_or(&NULL)
}

/// The `i`-th item of a list, cycling.
fn pick(list: &[&'static str], i: usize) -> &'static str {
    list.get(i % list.len().max(1)).copied().unwrap_or_default()
}

fn sign_body(attest: &str, orig: &str, dest: &str, iat: u64, extra: &str) -> String {
    format!(
        r#"{{"signingRequest":{{"attest":"{attest}","dest":{{"tn":["{dest}"]}},"iat":{iat},"orig":{{"tn":"{orig}"}},"origid":"{}"{extra}}}}}"#,
        uuid::Uuid::new_v4()
    )
}

fn verify_body(from: &str, dest: &str, time: u64, identity: Option<&str>) -> String {
    let identity = identity
        .map(|i| format!(r#","identity":"{i}""#))
        .unwrap_or_default();
    format!(
        r#"{{"verificationRequest":{{"from":{{"tn":"{from}"}},"to":{{"tn":["{dest}"]}},"time":{time}{identity}}}}}"#
    )
}

/// An Identity header signed directly with `carrier`'s key (not through a signer), for `x5u`.
fn direct_identity(carrier: &Carrier, x5u: &str, orig: &str, iat: u64) -> Result<String, LabError> {
    let signer = TokenSigner::new(SigningKey::from_pem(&read(&carrier.key)?)?, x5u);
    let claims = Claims::shaken(
        iat,
        Party::Tn(orig.into()),
        Dest::tns(vec![CALLED.to_owned()]).ok_or(passport::TokenError::MissingClaim("dest"))?,
        Attestation::A,
        uuid::Uuid::new_v4().to_string().parse()?,
    );
    Ok(signer.identity_header(&claims)?)
}

/// The token with one base64url character of its signature changed.
fn tamper(identity: &str) -> String {
    let (token, params) = identity.split_once(';').unwrap_or((identity, ""));
    let mut chars: Vec<char> = token.chars().collect();
    let at = chars.len().saturating_sub(10);
    if let Some(c) = chars.get_mut(at) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    format!("{};{params}", chars.into_iter().collect::<String>())
}

/// Microseconds since `started`, at least 1 (for a latency histogram).
fn micros_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The driver's connections and timings.
struct Session {
    signer: Client,
    gateway: Client,
    verifier: Client,
    sign: Histogram<u64>,
    verify: Histogram<u64>,
    sign_count: u64,
    verify_count: u64,
}

/// One call of case `case` (the `i`-th of its case): a short description of what happened.
async fn one_call(
    case: usize,
    targets: &Targets<'_>,
    session: &mut Session,
    now: u64,
    i: usize,
) -> Result<String, LabError> {
    let registered = pick(REGISTERED, i);
    let sign = |client: &'static str, body: String| (client, body);
    let (which, body) = match case {
        0 | 3 | 4 => sign("one", sign_body("A", registered, CALLED, now, "")),
        1 => sign(
            "one",
            sign_body("A", registered, CALLED, now, r#","customerId":"pbx-7""#),
        ),
        2 => sign("gateway", sign_body("C", "442071234567", CALLED, now, "")),
        9 => sign(
            "one",
            sign_body("A", pick(UNREGISTERED, 0), CALLED, now, ""),
        ),
        10 => sign("one", sign_body("A", pick(SUSPENDED, 0), CALLED, now, "")),
        11 => sign(
            "one",
            sign_body("A", pick(UNREGISTERED, 0), pick(EMERGENCY, 0), now, ""),
        ),
        _ => ("none", String::new()),
    };
    let identity = if which == "none" {
        match case {
            // A captured token presented again two minutes later, at the current time (its
            // iat is back-dated: it is signed directly, since a signer stamps the present).
            5 => Some(direct_identity(
                targets.originating,
                &targets.originating.x5u,
                registered,
                now.saturating_sub(120),
            )?),
            6 => Some(direct_identity(
                targets.revoked,
                &targets.revoked.x5u,
                registered,
                now,
            )?),
            7 => Some(direct_identity(
                targets.rogue,
                &targets.rogue.x5u,
                registered,
                now,
            )?),
            8 => Some(direct_identity(
                targets.originating,
                "https://127.0.0.1:1/sp/1001/chain.pem",
                registered,
                now,
            )?),
            _ => None,
        }
    } else {
        let started = Instant::now();
        let (status, reply) = if which == "one" {
            session.signer.post("/stir/v1/signing", body).await?
        } else {
            session.gateway.post("/stir/v1/signing", body).await?
        };
        let _ = session.sign.record(micros_since(started));
        session.sign_count += 1;
        if status != 200 {
            let id = field(&reply, &["requestError", "policyException", "messageId"])
                .as_str()
                .or(field(&reply, &["requestError", "serviceException", "messageId"]).as_str())
                .unwrap_or("?");
            return Ok(format!("refused {id}"));
        }
        field(&reply, &["signingResponse", "identity"])
            .as_str()
            .map(str::to_owned)
    };
    let attest = identity
        .as_deref()
        .and_then(|i| passport::IdentityHeader::parse(i).ok())
        .and_then(|h| h.passport().claims().attest)
        .map(|a| a.to_string());
    let identity = match (case, identity) {
        (4, Some(id)) => Some(tamper(&id)),
        (_, id) => id,
    };
    let (from, time, dest) = match case {
        3 => (pick(REGISTERED, i + 1), now, CALLED),
        2 => ("442071234567", now, CALLED),
        11 => (pick(UNREGISTERED, 0), now, pick(EMERGENCY, 0)),
        _ => (registered, now, CALLED),
    };
    let started = Instant::now();
    let (_, reply) = session
        .verifier
        .post(
            "/stir/v1/verification",
            verify_body(from, dest, time, identity.as_deref()),
        )
        .await?;
    let _ = session.verify.record(micros_since(started));
    session.verify_count += 1;
    Ok(describe(
        case,
        attest,
        field(&reply, &["verificationResponse"]),
    ))
}

/// What a verification response says, in the words of [`CASES`]; `attest` is the level the
/// call was signed with, if it was signed.
fn describe(case: usize, attest: Option<String>, v: &Value) -> String {
    let verstat = field(v, &["verstat"]).as_str().unwrap_or("?");
    let flags: Vec<&str> = field(v, &["flags"])
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match (verstat, field(v, &["reasoncode"]).as_u64()) {
        ("TN-Validation-Passed", _) => {
            let signed = attest.map(|a| format!("signed {a}; ")).unwrap_or_default();
            // The telling flag: gateway over unregistered (a C call is both).
            let telling = ["gateway", "unregistered"]
                .into_iter()
                .find(|f| flags.contains(f));
            match (case, telling) {
                (11, _) => format!("{signed}Passed"),
                (_, None) => format!("{signed}TN-Validation-Passed"),
                (_, Some(flag)) => format!("{signed}Passed, {flag}"),
            }
        }
        ("No-TN-Validation", _) => "No-TN-Validation".into(),
        (_, Some(code)) => {
            let main = ["spoofed", "stale", "revoked", "untrusted"]
                .into_iter()
                .find(|f| flags.contains(f));
            main.map_or_else(|| code.to_string(), |f| format!("{code} {f}"))
        }
        _ => format!("{verstat}?"),
    }
}

/// Places `calls` calls (at least one of each case), one at a time, as of `now`; returns what
/// each case got and the signing and verification latencies.
pub async fn drive(
    targets: &Targets<'_>,
    calls: usize,
    clock: &(dyn Fn() -> u64 + Sync),
) -> Result<Results, LabError> {
    let calls = calls.max(CASES.len());
    let mut session = Session {
        signer: Client::connect(targets.one).await?,
        gateway: Client::connect(targets.gateway).await?,
        verifier: Client::connect(targets.verifier).await?,
        sign: Histogram::<u64>::new(3)?,
        verify: Histogram::<u64>::new(3)?,
        sign_count: 0,
        verify_count: 0,
    };
    let mut cases: Vec<CaseResult> = CASES
        .iter()
        .map(|_| CaseResult {
            calls: 0,
            matched: 0,
            got: BTreeMap::new(),
        })
        .collect();
    let started = Instant::now();
    for i in 0..calls {
        let case = i % CASES.len();
        // The clock is read for each call: the signer and the verifier judge `iat` and `time`
        // against their own clocks, and a long run must not drift out of their windows.
        let got = one_call(case, targets, &mut session, clock(), i / CASES.len()).await?;
        let expected = CASES.get(case).map(|c| c.1).unwrap_or_default();
        if let Some(result) = cases.get_mut(case) {
            result.calls += 1;
            if got == expected {
                result.matched += 1;
            }
            *result.got.entry(got).or_insert(0) += 1;
        }
    }
    Ok(Results {
        cases,
        sign: session.sign,
        verify: session.verify,
        sign_count: session.sign_count,
        verify_count: session.verify_count,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tampering_changes_one_signature_character_only() {
        let identity = "aaa.bbb.CCCCCCCCCCCCAAAAAAAAAA;info=<https://x/c.pem>;alg=ES256";
        let tampered = tamper(identity);
        assert_eq!(tampered.len(), identity.len());
        assert_eq!(
            tampered,
            "aaa.bbb.CCCCCCCCCCCCBAAAAAAAAA;info=<https://x/c.pem>;alg=ES256"
        );
        assert_eq!(tamper("xyzzy"), "Ayzzy;");
    }

    #[test]
    fn picking_cycles_and_missing_members_are_null() {
        assert_eq!(pick(REGISTERED, 5), REGISTERED[1]);
        assert_eq!(pick(&[], 3), "");
        let value = json!({"a": {"b": 1}});
        assert_eq!(field(&value, &["a", "b"]), &json!(1));
        assert_eq!(field(&value, &["a", "c"]), &Value::Null);
    }

    #[test]
    fn verdicts_are_described_in_the_words_of_the_cases() {
        let passed = |flags: Value| json!({"verstat": "TN-Validation-Passed", "flags": flags});
        assert_eq!(
            describe(0, Some("A".into()), &passed(json!([]))),
            "signed A; TN-Validation-Passed"
        );
        assert_eq!(
            describe(
                2,
                Some("C".into()),
                &passed(json!(["unregistered", "gateway"]))
            ),
            "signed C; Passed, gateway"
        );
        assert_eq!(
            describe(11, Some("C".into()), &passed(json!(["unregistered"]))),
            "signed C; Passed"
        );
        let failed =
            json!({"verstat": "TN-Validation-Failed", "reasoncode": 437, "flags": ["revoked"]});
        assert_eq!(describe(6, None, &failed), "437 revoked");
        let unreachable = json!({"verstat": "TN-Validation-Failed", "reasoncode": 436});
        assert_eq!(describe(8, None, &unreachable), "436");
        assert_eq!(
            describe(12, None, &json!({"verstat": "No-TN-Validation"})),
            "No-TN-Validation"
        );
        assert_eq!(describe(0, None, &Value::Null), "??");
    }

    #[test]
    fn request_bodies_are_json() {
        let sign: Value =
            serde_json::from_str(&sign_body("A", "12155550101", CALLED, 7, "")).unwrap();
        assert_eq!(sign["signingRequest"]["iat"], 7);
        assert_eq!(sign["signingRequest"]["dest"]["tn"][0], CALLED);
        let verify: Value =
            serde_json::from_str(&verify_body("1", CALLED, 9, Some("tok;info=<x>"))).unwrap();
        assert_eq!(verify["verificationRequest"]["identity"], "tok;info=<x>");
        let unsigned: Value = serde_json::from_str(&verify_body("1", CALLED, 9, None)).unwrap();
        assert!(unsigned["verificationRequest"].get("identity").is_none());
    }
}
