//! Every call case with its expected outcome, and the driver that places calls through the
//! signers' and the verifier's REST APIs and records what each call got.
//!
//! An [`Outcome`] is what the originating side did (`signed A` through a carrier's signer,
//! `lab-signed A` by the lab itself with a carrier's key, `refused POL4101` by a signer, or
//! `not signed`) and the verification API's verdict, spelled as the API returns it: the
//! `verstat`, the SIP `reasoncode` and `reasontext` on failure, and every flag. A call matches
//! its case when its whole outcome equals the expected one. Call `i` is of case
//! `i % CASES.len()`, so every case gets its share of the calls.
//!
//! The marketing cases (issue 16) use the firms of [`crate::marketing`]. A case that changes
//! state stays true however often it runs: the unsubscribe case calls a fresh subscriber each
//! time ([`Numbers::fresh`]), and the quota case places calls of the small-quota firm until it
//! is refused (at most its quota and one more), so after the first run the first is refused.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use hdrhistogram::Histogram;
use passport::{Attestation, Claims, Dest, Party, SigningKey, SipReason, TokenSigner};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::error::{read, LabError};
use crate::marketing::{SMALL_QUOTA, UNLISTED_REASON, WHITE_LISTED};
use crate::numbers::Numbers;
use crate::pki::Carrier;
use crate::report::{CaseResult, Results};

/// What happened to one call: how it was signed and the verifier's verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Outcome {
    /// `signed A`, `lab-signed A`, `refused POL4101` or `not signed`.
    pub signing: String,
    /// The verdict's `verstat`; `None` when the signer refused (the call is not verified).
    pub verstat: Option<String>,
    /// The verdict's SIP `reasoncode`, on failure.
    pub reasoncode: Option<u64>,
    /// The verdict's `reasontext`, on failure.
    pub reasontext: Option<String>,
    /// The verdict's `flags`, in the order the API lists them (the most telling first).
    pub flags: Vec<String>,
    /// The name the verdict shows the subscriber (`rcd.nam`), for a marketing call.
    pub rcd: Option<String>,
}

impl Outcome {
    /// The SIP reason as the table writes it (`438 Invalid Identity Header`).
    pub fn sip(&self) -> Option<String> {
        self.reasoncode.map(|code| match &self.reasontext {
            Some(text) => format!("{code} {text}"),
            None => code.to_string(),
        })
    }

    /// The outcome as JSON members: `signing`, and `verstat`, `reasoncode`, `reasontext`,
    /// `flags`, `rcd` (`{"nam"}`) as the verification API returned them (absent members
    /// omitted).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut members = Map::new();
        members.insert("signing".into(), json!(self.signing));
        if let Some(verstat) = &self.verstat {
            members.insert("verstat".into(), json!(verstat));
            members.insert("flags".into(), json!(self.flags));
        }
        if let Some(code) = self.reasoncode {
            members.insert("reasoncode".into(), json!(code));
        }
        if let Some(text) = &self.reasontext {
            members.insert("reasontext".into(), json!(text));
        }
        if let Some(nam) = &self.rcd {
            members.insert("rcd".into(), json!({ "nam": nam }));
        }
        members
    }
}

/// `signed B; TN-Validation-Passed; flags unregistered`,
/// `signed A; TN-Validation-Failed; SIP 438 Invalid Identity Header; flags spoofed, unregistered`,
/// `refused POL4101`.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.signing)?;
        if let Some(verstat) = &self.verstat {
            write!(f, "; {verstat}")?;
        }
        if let Some(sip) = self.sip() {
            write!(f, "; SIP {sip}")?;
        }
        if !self.flags.is_empty() {
            write!(f, "; flags {}", self.flags.join(", "))?;
        }
        if let Some(nam) = &self.rcd {
            write!(f, "; rcd.nam {nam:?}")?;
        }
        Ok(())
    }
}

/// A call case and its expected outcome.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// The case's name (at most 23 characters: the table's first column).
    pub name: &'static str,
    /// The expected [`Outcome::signing`].
    pub signing: &'static str,
    /// The expected verstat (`None`: the signer refuses, nothing is verified).
    pub verstat: Option<&'static str>,
    /// The expected SIP reason.
    pub sip: Option<SipReason>,
    /// The expected flags, in the API's order.
    pub flags: &'static [&'static str],
    /// The expected name shown (`rcd.nam`).
    pub rcd: Option<&'static str>,
}

impl Case {
    /// The outcome a call of this case should get.
    pub fn expected(&self) -> Outcome {
        Outcome {
            signing: self.signing.to_owned(),
            verstat: self.verstat.map(str::to_owned),
            reasoncode: self.sip.map(|r| u64::from(r.code())),
            reasontext: self.sip.map(|r| r.phrase().to_owned()),
            flags: self.flags.iter().map(|f| (*f).to_owned()).collect(),
            rcd: self.rcd.map(str::to_owned),
        }
    }
}

const PASSED: Option<&str> = Some("TN-Validation-Passed");
const FAILED: Option<&str> = Some("TN-Validation-Failed");

const fn verified(
    name: &'static str,
    signing: &'static str,
    verstat: Option<&'static str>,
    sip: Option<SipReason>,
    flags: &'static [&'static str],
) -> Case {
    Case {
        name,
        signing,
        verstat,
        sip,
        flags,
        rcd: None,
    }
}

/// A marketing call: passed, shown with the vetted name `rcd`.
const fn marketing(
    name: &'static str,
    signing: &'static str,
    flags: &'static [&'static str],
    rcd: &'static str,
) -> Case {
    Case {
        name,
        signing,
        verstat: PASSED,
        sip: None,
        flags,
        rcd: Some(rcd),
    }
}

const fn refused(name: &'static str, signing: &'static str) -> Case {
    Case {
        name,
        signing,
        verstat: None,
        sip: None,
        flags: &[],
        rcd: None,
    }
}

/// Every call case, in the order of the table. The same cases run under every `--country`,
/// with that country's numbers ([`Numbers`]).
pub const CASES: [Case; 24] = [
    verified("A: registered, verified", "signed A", PASSED, None, &[]),
    verified(
        "B: other customer's TN",
        "signed B",
        PASSED,
        None,
        &["unregistered"],
    ),
    verified(
        "C: foreign via gateway",
        "signed C",
        PASSED,
        None,
        &["gateway", "unregistered"],
    ),
    verified(
        "spoofed caller ID",
        "signed A",
        FAILED,
        Some(SipReason::InvalidIdentityHeader),
        &["spoofed", "unregistered"],
    ),
    verified(
        "tampered signature",
        "signed A",
        FAILED,
        Some(SipReason::InvalidIdentityHeader),
        &["spoofed", "unregistered"],
    ),
    verified(
        "replayed (120 s old)",
        "lab-signed A",
        FAILED,
        Some(SipReason::StaleDate),
        &["stale", "unregistered"],
    ),
    verified(
        "revoked certificate",
        "lab-signed A",
        FAILED,
        Some(SipReason::UnsupportedCredential),
        &["revoked", "unregistered"],
    ),
    verified(
        "untrusted root",
        "lab-signed A",
        FAILED,
        Some(SipReason::UnsupportedCredential),
        &["untrusted", "unregistered"],
    ),
    verified(
        "unreachable x5u",
        "lab-signed A",
        FAILED,
        Some(SipReason::BadIdentityInfo),
        &["unregistered"],
    ),
    refused("unregistered caller", "refused POL4101"),
    refused("suspended caller", "refused POL4102"),
    verified(
        "emergency, unregistered",
        "signed C",
        PASSED,
        None,
        &["gateway", "unregistered"],
    ),
    verified(
        "unsigned call",
        "not signed",
        Some("No-TN-Validation"),
        None,
        &["unsigned", "unregistered"],
    ),
    refused("domestic ID via gateway", "refused POL4104"),
    marketing(
        "marketing call",
        "signed A",
        &["marketing"],
        WHITE_LISTED.name,
    ),
    refused("branding by non-firm", "refused POL4117"),
    refused("reason not allowed", "refused POL4116"),
    refused("unsubscribed via link", "refused POL4114"),
    verified(
        "opted out, lab-signed",
        "lab-signed A",
        PASSED,
        None,
        &["opted-out"],
    ),
    refused("blacklisted firm", "refused POL4111"),
    verified(
        "blacklisted, lab-signed",
        "lab-signed A",
        PASSED,
        None,
        &["blacklisted"],
    ),
    refused("firm over its quota", "refused POL4115"),
    verified(
        "emergency, blacklisted",
        "signed A",
        PASSED,
        None,
        &["blacklisted"],
    ),
    refused("blacklisted number", "refused POL4113"),
];

/// The index in [`CASES`] of the first marketing case.
const MARKETING: usize = 14;

/// The lab's services, carriers and numbers that the cases use.
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
    /// The country's numbers.
    pub numbers: &'a Numbers,
    /// The originating signer's mirror of the opt-outs: the unsubscribe case waits until it
    /// holds the opt-out before calling again.
    pub signer_optouts: &'a optout::OptOutMirror,
}

/// The value at `path` (missing members are `null`).
pub(crate) fn field<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    static NULL: Value = Value::Null;
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .unwrap_or(&NULL)
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

/// An Identity header for a call from `orig` to `dest`, signed directly with `carrier`'s key
/// (not through a signer) and pointing at `x5u`.
pub fn direct_identity(
    carrier: &Carrier,
    x5u: &str,
    orig: &str,
    dest: &str,
    iat: u64,
) -> Result<String, LabError> {
    let signer = TokenSigner::new(SigningKey::from_pem(&read(&carrier.key)?)?, x5u);
    let claims = Claims::shaken(
        iat,
        Party::Tn(orig.into()),
        Dest::tns(vec![dest.to_owned()]).ok_or(passport::TokenError::MissingClaim("dest"))?,
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

/// Which signer a case's signing request goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Originating,
    Gateway,
}

/// One call of case `case` (the `i`-th of its case) as of `now`: what it got.
async fn one_call(
    case: usize,
    targets: &Targets<'_>,
    session: &mut Session,
    now: u64,
    i: usize,
) -> Result<Outcome, LabError> {
    if case >= MARKETING {
        return marketing_call(case, targets, session, now, i).await;
    }
    let numbers = targets.numbers;
    let registered = numbers.registered(i);
    let unregistered = numbers.unregistered.first().copied().unwrap_or_default();
    let suspended = numbers.suspended.first().map(|s| s.tn).unwrap_or_default();
    let emergency = numbers.emergency(i);
    let called = numbers.called;
    // The calling and called numbers of the call, as the verifier sees them.
    let (from, dest) = match case {
        2 => (numbers.foreign, called),
        3 => (numbers.registered(i + 1), called),
        9 => (unregistered, called),
        10 => (suspended, called),
        11 => (unregistered, emergency),
        13 => (numbers.domestic_via_gateway, called),
        _ => (registered, called),
    };
    let request = match case {
        0 | 3 | 4 => Some((Via::Originating, sign_body("A", registered, dest, now, ""))),
        1 => Some((
            Via::Originating,
            sign_body("A", registered, dest, now, r#","customerId":"pbx-7""#),
        )),
        2 | 13 => Some((Via::Gateway, sign_body("C", from, dest, now, ""))),
        9..=11 => Some((Via::Originating, sign_body("A", from, dest, now, ""))),
        _ => None,
    };
    let (signing, identity) = match request {
        Some((via, body)) => {
            let started = Instant::now();
            let client = match via {
                Via::Originating => &mut session.signer,
                Via::Gateway => &mut session.gateway,
            };
            let (status, reply) = client.post("/stir/v1/signing", body).await?;
            let _ = session.sign.record(micros_since(started));
            session.sign_count += 1;
            if status != 200 {
                let error = field(&reply, &["requestError"]);
                let id = field(error, &["policyException", "messageId"])
                    .as_str()
                    .or(field(error, &["serviceException", "messageId"]).as_str())
                    .unwrap_or("without a message id");
                return Ok(Outcome {
                    signing: format!("refused {id}"),
                    ..Outcome::default()
                });
            }
            let identity = field(&reply, &["signingResponse", "identity"])
                .as_str()
                .map(str::to_owned);
            ("signed", identity)
        }
        None => {
            let direct = |carrier: &Carrier, x5u: &str, iat: u64| {
                direct_identity(carrier, x5u, registered, dest, iat).map(Some)
            };
            let identity = match case {
                // A captured token presented again two minutes later, at the current time
                // (its iat is back-dated: it is signed directly, a signer stamps the present).
                5 => direct(
                    targets.originating,
                    &targets.originating.x5u,
                    now.saturating_sub(120),
                )?,
                6 => direct(targets.revoked, &targets.revoked.x5u, now)?,
                7 => direct(targets.rogue, &targets.rogue.x5u, now)?,
                8 => direct(
                    targets.originating,
                    "https://127.0.0.1:1/sp/1001/chain.pem",
                    now,
                )?,
                _ => None,
            };
            ("lab-signed", identity)
        }
    };
    let signing = identity
        .as_deref()
        .and_then(|i| passport::IdentityHeader::parse(i).ok())
        .and_then(|h| h.passport().claims().attest)
        .map_or_else(|| "not signed".to_owned(), |a| format!("{signing} {a}"));
    let identity = match (case, identity) {
        (4, Some(id)) => Some(tamper(&id)),
        (_, id) => id,
    };
    let started = Instant::now();
    let (_, reply) = session
        .verifier
        .post(
            "/stir/v1/verification",
            verify_body(from, dest, now, identity.as_deref()),
        )
        .await?;
    let _ = session.verify.record(micros_since(started));
    session.verify_count += 1;
    Ok(outcome(signing, field(&reply, &["verificationResponse"])))
}

/// What a signing request got: the Identity header, or the refusal's message id.
type Signed = Result<Option<String>, String>;

impl Session {
    /// Sends a signing request to the originating signer, timed.
    async fn sign(&mut self, body: String) -> Result<Signed, LabError> {
        let started = Instant::now();
        let (status, reply) = self.signer.post("/stir/v1/signing", body).await?;
        let _ = self.sign.record(micros_since(started));
        self.sign_count += 1;
        if status != 200 {
            let error = field(&reply, &["requestError"]);
            let id = field(error, &["policyException", "messageId"])
                .as_str()
                .or(field(error, &["serviceException", "messageId"]).as_str())
                .unwrap_or("without a message id");
            return Ok(Err(id.to_owned()));
        }
        Ok(Ok(field(&reply, &["signingResponse", "identity"])
            .as_str()
            .map(str::to_owned)))
    }

    /// Sends a verification request, timed; returns its `verificationResponse`.
    async fn verify(
        &mut self,
        from: &str,
        dest: &str,
        now: u64,
        identity: Option<&str>,
    ) -> Result<Value, LabError> {
        let started = Instant::now();
        let (_, reply) = self
            .verifier
            .post(
                "/stir/v1/verification",
                verify_body(from, dest, now, identity),
            )
            .await?;
        let _ = self.verify.record(micros_since(started));
        self.verify_count += 1;
        Ok(field(&reply, &["verificationResponse"]).clone())
    }
}

/// `signed A` (the attestation of `identity`) or `not signed`, after `by` (`signed`,
/// `lab-signed`).
fn signing_of(by: &str, identity: Option<&str>) -> String {
    identity
        .and_then(|i| passport::IdentityHeader::parse(i).ok())
        .and_then(|h| h.passport().claims().attest)
        .map_or_else(|| "not signed".to_owned(), |a| format!("{by} {a}"))
}

/// A refusal as an outcome: `refused POL4114`.
fn refusal(id: &str) -> Outcome {
    Outcome {
        signing: format!("refused {id}"),
        ..Outcome::default()
    }
}

/// The longest the unsubscribe case waits for the signer's mirror to learn an opt-out.
const MIRROR_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// One call of a marketing case (`case` at least [`MARKETING`]), the `i`-th of its case.
async fn marketing_call(
    case: usize,
    targets: &Targets<'_>,
    session: &mut Session,
    now: u64,
    i: usize,
) -> Result<Outcome, LabError> {
    let numbers = targets.numbers;
    let called = numbers.called;
    let firm_tn = numbers.marketing(i);
    let (from, dest, request) = match case - MARKETING {
        // A plain ATIS request: the signer adds the firm's rcd.
        0 => (firm_tn, called, sign_body("A", firm_tn, called, now, "")),
        1 => {
            let tn = numbers.registered(i);
            let rcd = format!(r#","rcd":{{"nam":"{}"}}"#, WHITE_LISTED.name);
            (tn, called, sign_body("A", tn, called, now, &rcd))
        }
        2 => {
            let crn = format!(r#","crn":"{UNLISTED_REASON}""#);
            (firm_tn, called, sign_body("A", firm_tn, called, now, &crn))
        }
        3 => return unsubscribe_call(targets, session, now, i).await,
        4 => {
            // A signer that ignores the opt-outs: the lab signs with carrier 1001's key.
            let identity = direct_identity(
                targets.originating,
                &targets.originating.x5u,
                firm_tn,
                numbers.opted_out,
                now,
            )?;
            let v = session
                .verify(firm_tn, numbers.opted_out, now, Some(&identity))
                .await?;
            return Ok(outcome(signing_of("lab-signed", Some(&identity)), &v));
        }
        5 => {
            let tn = numbers.blacklisted(i);
            (tn, called, sign_body("A", tn, called, now, ""))
        }
        6 => {
            // A signer that ignores the list signs the blacklisted firm's call.
            let tn = numbers.blacklisted(i);
            let identity = direct_identity(
                targets.originating,
                &targets.originating.x5u,
                tn,
                called,
                now,
            )?;
            let v = session.verify(tn, called, now, Some(&identity)).await?;
            return Ok(outcome(signing_of("lab-signed", Some(&identity)), &v));
        }
        7 => return over_quota_call(targets, session, now).await,
        8 => {
            let tn = numbers.blacklisted_alone.first().map_or("", |s| s.tn);
            let emergency = numbers.emergency(i);
            (tn, emergency, sign_body("A", tn, emergency, now, ""))
        }
        _ => {
            let tn = numbers.blacklisted_alone.first().map_or("", |s| s.tn);
            (tn, called, sign_body("A", tn, called, now, ""))
        }
    };
    let identity = match session.sign(request).await? {
        Ok(identity) => identity,
        Err(id) => return Ok(refusal(&id)),
    };
    let v = session.verify(from, dest, now, identity.as_deref()).await?;
    Ok(outcome(signing_of("signed", identity.as_deref()), &v))
}

/// The unsubscribe case: a marketing call to a fresh subscriber is verified, the link of the
/// verdict opened and its button's form posted; once the signer's mirror holds the opt-out
/// (at most [`MIRROR_WAIT`]), the firm's next call to that subscriber is what the case got.
async fn unsubscribe_call(
    targets: &Targets<'_>,
    session: &mut Session,
    now: u64,
    i: usize,
) -> Result<Outcome, LabError> {
    let numbers = targets.numbers;
    let firm_tn = numbers.marketing(i);
    let subscriber = numbers.fresh(i);
    let identity = match session
        .sign(sign_body("A", firm_tn, &subscriber, now, ""))
        .await?
    {
        Ok(identity) => identity,
        Err(id) => return Ok(refusal(&id)),
    };
    let v = session
        .verify(firm_tn, &subscriber, now, identity.as_deref())
        .await?;
    let signed = signing_of("signed", identity.as_deref());
    let Some(link) = field(&v, &["unsubscribe"]).as_str() else {
        return Ok(Outcome {
            signing: format!("{signed}, no link"),
            ..outcome(String::new(), &v)
        });
    };
    let (status_page, status_post) = press_the_button(link).await?;
    if (status_page, status_post) != (200, 200) {
        return Ok(refusal(&format!("link {status_page}/{status_post}")));
    }
    let waited = Instant::now();
    while !targets
        .signer_optouts
        .is_opted_out(&subscriber, WHITE_LISTED.id)
        && waited.elapsed() < MIRROR_WAIT
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let again = session
        .sign(sign_body("A", firm_tn, &subscriber, now, ""))
        .await?;
    match again {
        Err(id) => Ok(refusal(&id)),
        Ok(identity) => Ok(Outcome {
            signing: format!(
                "{} after opt-out",
                signing_of("signed", identity.as_deref())
            ),
            ..Outcome::default()
        }),
    }
}

/// Opens an unsubscribe link (`http://HOST:PORT/u/TOKEN`) and posts its form as the button
/// does: the statuses of the page and of the post.
async fn press_the_button(link: &str) -> Result<(u16, u16), LabError> {
    let bad = || {
        LabError::BadResponse(format!(
            "the unsubscribe link {link:?} is not http://HOST:PORT/PATH"
        ))
    };
    let rest = link.strip_prefix("http://").ok_or_else(bad)?;
    let (address, path) = rest.split_at(rest.find('/').ok_or_else(bad)?);
    let address: SocketAddr = address.parse().map_err(|_| bad())?;
    let mut client = Client::connect(address).await?;
    let (page, _) = client.get(path).await?;
    let (post, _) = client.post_form(path, "action=opt-out").await?;
    Ok((page, post))
}

/// The quota case: calls of the small-quota firm until one is refused, at most its quota
/// and one more; what the last one got.
async fn over_quota_call(
    targets: &Targets<'_>,
    session: &mut Session,
    now: u64,
) -> Result<Outcome, LabError> {
    let tn = targets.numbers.small_quota.first().map_or("", |s| s.tn);
    let mut last = Outcome::default();
    for _ in 0..=SMALL_QUOTA.hourly_quota {
        match session
            .sign(sign_body("A", tn, targets.numbers.called, now, ""))
            .await?
        {
            Err(id) => return Ok(refusal(&id)),
            Ok(identity) => {
                last = Outcome {
                    signing: signing_of("signed", identity.as_deref()),
                    ..Outcome::default()
                }
            }
        }
    }
    Ok(last)
}

/// The outcome of a call signed as `signing` whose verification response is `v`.
fn outcome(signing: String, v: &Value) -> Outcome {
    Outcome {
        signing,
        // A response without a verstat is not a verdict: it says so rather than passing.
        verstat: Some(
            field(v, &["verstat"])
                .as_str()
                .unwrap_or("no verstat")
                .to_owned(),
        ),
        reasoncode: field(v, &["reasoncode"]).as_u64(),
        reasontext: field(v, &["reasontext"]).as_str().map(str::to_owned),
        flags: field(v, &["flags"])
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        rcd: field(v, &["rcd", "nam"]).as_str().map(str::to_owned),
    }
}

/// Places `calls` calls (at least one of each case), one at a time, each stamped with
/// `clock()` read when it is placed; returns what each case got and the signing and
/// verification latencies.
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
        let expected = CASES.get(case).map(Case::expected).unwrap_or_default();
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
        monitoring: None,
        sip: None,
        scale_out: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numbers::NANP;

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
    fn missing_members_are_null() {
        let value = json!({"a": {"b": 1}});
        assert_eq!(field(&value, &["a", "b"]), &json!(1));
        assert_eq!(field(&value, &["a", "c"]), &Value::Null);
    }

    #[test]
    fn outcomes_are_spelled_as_the_api_returns_them() {
        let passed =
            json!({"verstat": "TN-Validation-Passed", "flags": ["gateway", "unregistered"]});
        let got = outcome("signed C".into(), &passed);
        assert_eq!(got, CASES[2].expected());
        assert_eq!(
            got.to_string(),
            "signed C; TN-Validation-Passed; flags gateway, unregistered"
        );
        let failed = json!({"verstat": "TN-Validation-Failed", "reasoncode": 437,
            "reasontext": "Unsupported Credential", "flags": ["revoked", "unregistered"]});
        let got = outcome("lab-signed A".into(), &failed);
        assert_eq!(got, CASES[6].expected());
        assert_eq!(got.sip().unwrap(), "437 Unsupported Credential");
        assert_eq!(
            got.to_string(),
            "lab-signed A; TN-Validation-Failed; SIP 437 Unsupported Credential; \
             flags revoked, unregistered"
        );
        assert_eq!(got.to_json()["reasoncode"], 437);
        assert_eq!(CASES[9].expected().to_string(), "refused POL4101");
        assert_eq!(
            Value::Object(CASES[9].expected().to_json()),
            json!({"signing": "refused POL4101"})
        );
        assert_eq!(
            outcome("signed A".into(), &Value::Null).to_string(),
            "signed A; no verstat"
        );
        for case in CASES {
            assert!(case.name.len() <= 23, "{}", case.name);
        }
    }

    #[test]
    fn request_bodies_are_json() {
        let sign: Value =
            serde_json::from_str(&sign_body("A", "12155550101", NANP.called, 7, "")).unwrap();
        assert_eq!(sign["signingRequest"]["iat"], 7);
        assert_eq!(sign["signingRequest"]["dest"]["tn"][0], NANP.called);
        let verify: Value =
            serde_json::from_str(&verify_body("1", NANP.called, 9, Some("tok;info=<x>"))).unwrap();
        assert_eq!(verify["verificationRequest"]["identity"], "tok;info=<x>");
        let unsigned: Value =
            serde_json::from_str(&verify_body("1", NANP.called, 9, None)).unwrap();
        assert!(unsigned["verificationRequest"].get("identity").is_none());
    }
}
