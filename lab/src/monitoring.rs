//! The monitoring scenario (issue 17 §5), run once per lab run after the call cases: the lab's
//! verifier pushes its events to the lab's monitor, and two behaviours the monitor must catch
//! are played through the real signers and verifier:
//!
//! - a **harassing caller**: a registered subscriber of the originating carrier that no call
//!   case uses ([`Numbers::harassing`]) dials [`HARASSING_CALLS`] distinct subscribers within
//!   seconds, each call signed `A` by its carrier's signer and verified with `ingress: "local"`;
//!   the monitor must raise `high-frequency` on that number (more than 10 calls in 60 s);
//! - an **international gateway pushing domestic caller IDs**: [`GATEWAY_CALLS`] calls with
//!   home-country calling numbers ([`Numbers::gateway_domestic`]) signed `C` with the gateway
//!   carrier's key and verified with `ingress: "international"`; the monitor must raise
//!   `out-of-area` on the gateway's SPC (more than 20 such calls in 5 min). The lab's own
//!   gateway signer refuses such calls (`POL4104`, the call case "domestic ID via gateway"), so
//!   the lab signs them itself with the gateway's key: it plays a gateway that ignores that
//!   rule, which is exactly what the monitor is there to catch.
//!
//! Then the lab waits (at most [`ALERT_WAIT`]) until the verifier's push (on Kafka, the topic)
//! has reached the monitor and both alerts are there, and plays the analyst's **traceback**: from the harassing alert,
//! `GET /v1/traceback?origid=` one of its samples, which must reach the originating signer's
//! trace record naming the registration reference (customer `h1`, never identity data). The
//! whole hop (the flagged alert looked up, then traced to the customer) is timed.
//!
//! Each of the three is a [`Check`] with its expected and got values; the alerts the monitor
//! raised besides (the call cases repeat numbers when `--calls` is large) are listed in
//! [`Monitoring::other_alerts`], not failures.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use passport::{Attestation, Claims, Dest, Party, SigningKey, TokenSigner};
use serde_json::{json, Value};

use crate::cases::field;
use crate::client::Client;
use crate::error::{read, LabError};
use crate::numbers::Numbers;
use crate::pki::Carrier;

/// Calls the harassing caller places, one to each of as many subscribers (the
/// `high-frequency` minute threshold is 10).
pub const HARASSING_CALLS: usize = 15;
/// Calls the gateway signs with home-country caller IDs (the `out-of-area` threshold is 20).
pub const GATEWAY_CALLS: usize = 25;
/// The longest the lab waits for the expected alerts to appear at the monitor.
pub const ALERT_WAIT: Duration = Duration::from_secs(10);
/// How often the monitor's alerts are read while waiting.
const POLL: Duration = Duration::from_millis(100);
/// The registration reference of the harassing caller in the originating carrier's registry
/// ([`Numbers::registry_csv`]).
pub const HARASSING_CUSTOMER: &str = "h1";

/// The services and numbers the scenario uses.
#[derive(Clone, Copy, Debug)]
pub struct Scenario<'a> {
    /// The originating carrier's signer.
    pub one: SocketAddr,
    /// The international gateway carrier, whose key signs the domestic caller IDs.
    pub gateway: &'a Carrier,
    /// The terminating verifier (pushing its events to the monitor).
    pub verifier: SocketAddr,
    /// The monitor (on Kafka, the first instance: it shows the cluster's alerts).
    pub monitor: SocketAddr,
    /// The other monitor instances of its consumer group (none without Kafka): a traceback
    /// is asked of the instance holding the caller's events.
    pub others: &'a [SocketAddr],
    /// Calls the gateway signs with home-country caller IDs: [`GATEWAY_CALLS`] for one
    /// monitor; on Kafka, [`GATEWAY_CALLS`] times the topic's partitions, since each
    /// partition has a detector engine of its own (`monitor::shards`) and the calls are
    /// spread over the partitions by caller while the alert's subject is the SPC.
    pub gateway_calls: usize,
    /// The originating carrier's SPC.
    pub originating_spc: &'a str,
    /// The country's numbers.
    pub numbers: &'a Numbers,
}

/// One thing the lab expects of the monitor, and what it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The check's name (the table's first column).
    pub name: &'static str,
    /// Calls placed for it (lookups for the traceback).
    pub calls: usize,
    /// What the lab expects, in words.
    pub expected: String,
    /// What it got, in words (the alert's text, the customer reached, or what was missing).
    pub got: String,
    /// Whether the got matches the expected.
    pub matched: bool,
}

/// What the monitoring scenario found.
#[derive(Clone, Debug)]
pub struct Monitoring {
    /// The harassing caller, the gateway and the traceback, in that order.
    pub checks: Vec<Check>,
    /// The other alerts the monitor holds (as `GET /v1/alerts` gives them): listed, not
    /// failures.
    pub other_alerts: Vec<Value>,
    /// The whole hop from the flagged alert to the registered customer, milliseconds, when
    /// the traceback reached it.
    pub hop_ms: Option<f64>,
    /// How long the signer's trace endpoint took, as the monitor measured it (milliseconds).
    pub signer_ms: Option<u64>,
    /// Time from the first call to the expected alerts being visible at the monitor.
    pub alerts_after: Duration,
    /// Event time at which the scenario began: its alerts crossed at or after it.
    pub since: u64,
}

impl Monitoring {
    /// Whether every check matched.
    pub fn all_matched(&self) -> bool {
        self.checks.iter().all(|c| c.matched)
    }
}

/// Signs a call `A` at the originating `signer` (from `orig` to `dest` at `now`) and verifies
/// it at the verifier with `ingress`; returns the verification's `verstat` (`None` when the
/// signer refused).
async fn call(
    signer: &mut Client,
    verifier: &mut Client,
    orig: &str,
    dest: &str,
    now: u64,
    ingress: &str,
) -> Result<Option<String>, LabError> {
    let origid = uuid::Uuid::new_v4().to_string();
    let body = json!({"signingRequest": {"attest": "A", "orig": {"tn": orig},
        "dest": {"tn": [dest]}, "iat": now, "origid": origid}});
    let (status, reply) = signer.post("/stir/v1/signing", body.to_string()).await?;
    let identity = match field(&reply, &["signingResponse", "identity"]).as_str() {
        Some(identity) if status == 200 => identity,
        _ => return Ok(None),
    };
    verify(verifier, orig, dest, now, identity, ingress).await
}

/// Verifies a call from `orig` to `dest` at `now` carrying `identity`, entered at `ingress`;
/// returns the verdict's `verstat`.
async fn verify(
    verifier: &mut Client,
    orig: &str,
    dest: &str,
    now: u64,
    identity: &str,
    ingress: &str,
) -> Result<Option<String>, LabError> {
    let body = json!({"verificationRequest": {"from": {"tn": orig}, "to": {"tn": [dest]},
        "time": now, "identity": identity, "ingress": ingress}});
    let (_, reply) = verifier
        .post("/stir/v1/verification", body.to_string())
        .await?;
    Ok(field(&reply, &["verificationResponse", "verstat"])
        .as_str()
        .map(str::to_owned))
}

/// `GET path` at the monitor, as JSON.
async fn get_json(monitor: SocketAddr, path: &str) -> Result<Value, LabError> {
    let (status, text) = Client::connect(monitor).await?.get(path).await?;
    if status != 200 {
        return Err(LabError::BadResponse(format!(
            "monitor {path} answered {status}: {}",
            text.chars().take(200).collect::<String>()
        )));
    }
    serde_json::from_str(&text)
        .map_err(|e| LabError::BadResponse(format!("monitor {path}: not JSON: {e}")))
}

/// Whether `alert` is of `detector` on the subject `kind` (`caller`, `spc`) `value`.
fn is_alert(alert: &Value, detector: &str, kind: &str, value: &str) -> bool {
    field(alert, &["detector"]).as_str() == Some(detector)
        && field(alert, &["subject", kind]).as_str() == Some(value)
}

/// The alert the scenario expects of `detector` on `kind` `value`, crossed at or after
/// `since` (event time: an alert raised by the call cases before the scenario and extended by
/// it counts, one closed before it does not).
pub(crate) fn find<'a>(
    alerts: &'a [Value],
    detector: &str,
    kind: &str,
    value: &str,
    since: u64,
) -> Option<&'a Value> {
    alerts.iter().find(|a| {
        is_alert(a, detector, kind, value)
            && field(a, &["last"])
                .as_u64()
                .or(field(a, &["time"]).as_u64())
                .is_some_and(|last| last >= since)
    })
}

/// An alert's text, or its detector and count when it has none.
fn alert_text(alert: &Value) -> String {
    match field(alert, &["text"]).as_str() {
        Some(text) => text.to_owned(),
        None => format!("{alert}"),
    }
}

/// Runs the scenario (see the module's documentation); `clock` gives the time each call is
/// stamped with (the services judge time by it).
pub async fn run(scenario: &Scenario<'_>, clock: &dyn Fn() -> u64) -> Result<Monitoring, LabError> {
    let numbers = scenario.numbers;
    let started = Instant::now();
    let since = clock();
    let mut verifier = Client::connect(scenario.verifier).await?;

    let harasser = numbers.harassing();
    let mut signer = Client::connect(scenario.one).await?;
    let mut passed = 0;
    for i in 0..HARASSING_CALLS {
        let dest = numbers.harassed(i);
        let verstat = call(
            &mut signer,
            &mut verifier,
            harasser,
            &dest,
            clock(),
            "local",
        )
        .await?;
        passed += usize::from(verstat.as_deref() == Some("TN-Validation-Passed"));
    }

    let gateway = TokenSigner::new(
        SigningKey::from_pem(&read(&scenario.gateway.key)?)?,
        scenario.gateway.x5u.clone(),
    );
    let mut gateway_passed = 0;
    for i in 0..scenario.gateway_calls {
        let from = numbers.gateway_domestic(i);
        let now = clock();
        let claims = Claims::shaken(
            now,
            Party::Tn(from.clone()),
            Dest::tns(vec![numbers.called.to_owned()])
                .ok_or(passport::TokenError::MissingClaim("dest"))?,
            Attestation::C,
            uuid::Uuid::new_v4().to_string().parse()?,
        );
        let identity = gateway.identity_header(&claims)?;
        let verstat = verify(
            &mut verifier,
            &from,
            numbers.called,
            now,
            &identity,
            "international",
        )
        .await?;
        gateway_passed += usize::from(verstat.as_deref() == Some("TN-Validation-Passed"));
    }

    // The verifier pushes in batches: wait until both alerts are at the monitor.
    let deadline = Instant::now() + ALERT_WAIT;
    let alerts = loop {
        let answer = get_json(scenario.monitor, "/v1/alerts").await?;
        let alerts = field(&answer, &["alerts"])
            .as_array()
            .cloned()
            .unwrap_or_default();
        let both = find(&alerts, "high-frequency", "caller", harasser, since).is_some()
            && find(&alerts, "out-of-area", "spc", scenario.gateway.spc, since).is_some();
        if both || Instant::now() >= deadline {
            break alerts;
        }
        tokio::time::sleep(POLL).await;
    };
    let alerts_after = started.elapsed();

    let harassing = find(&alerts, "high-frequency", "caller", harasser, since);
    let out_of_area = find(&alerts, "out-of-area", "spc", scenario.gateway.spc, since);
    let missing = |calls: usize, what: &str| {
        format!("no alert after {calls} calls ({what}) within {ALERT_WAIT:?}")
    };
    let mut checks = vec![
        Check {
            name: "harassing caller",
            calls: HARASSING_CALLS,
            expected: format!("high-frequency on caller {harasser}"),
            got: harassing.map_or_else(
                || missing(HARASSING_CALLS, &format!("{passed} passed verification")),
                alert_text,
            ),
            matched: harassing.is_some(),
        },
        Check {
            name: "gateway domestic IDs",
            calls: scenario.gateway_calls,
            expected: format!("out-of-area on SPC {}", scenario.gateway.spc),
            got: out_of_area.map_or_else(
                || {
                    missing(
                        scenario.gateway_calls,
                        &format!("{gateway_passed} passed verification"),
                    )
                },
                alert_text,
            ),
            matched: out_of_area.is_some(),
        },
    ];

    let (traceback, hop_ms, signer_ms) = match harassing {
        Some(alert) => trace(scenario, alert).await?,
        None => (Err("no harassing alert to trace".to_owned()), None, None),
    };
    let expected = format!(
        "customer {HARASSING_CUSTOMER} at SPC {}",
        scenario.originating_spc
    );
    checks.push(Check {
        name: "traceback",
        calls: 2,
        matched: traceback.as_deref() == Ok(expected.as_str()),
        got: match (traceback, hop_ms) {
            (Ok(found), Some(ms)) => format!("{found} in {ms:.1} ms (alert to customer)"),
            (Ok(found), None) => found,
            (Err(why), _) => why,
        },
        expected,
    });

    let other_alerts = alerts
        .iter()
        .filter(|a| Some(*a) != harassing && Some(*a) != out_of_area)
        .cloned()
        .collect();
    Ok(Monitoring {
        checks,
        other_alerts,
        hop_ms,
        signer_ms,
        alerts_after,
        since,
    })
}

/// What the traceback found, the hop's milliseconds and the signer's.
type Traced = (Result<String, String>, Option<f64>, Option<u64>);

/// The analyst's hop from the flagged caller to the registered customer: the caller's alerts
/// looked up at the monitor, one sample traced back through the monitor to the signing
/// carrier's trace record. `Ok("customer ID at SPC SPC")` when a record names the customer.
async fn trace(scenario: &Scenario<'_>, alert: &Value) -> Result<Traced, LabError> {
    let caller = field(alert, &["subject", "caller"]).as_str().unwrap_or("");
    let started = Instant::now();
    let flagged = get_json(
        scenario.monitor,
        &format!("/v1/alerts?detector=high-frequency&subject={caller}"),
    )
    .await?;
    let sample = field(&flagged, &["alerts"])
        .as_array()
        .and_then(|a| a.first())
        .and_then(|a| field(a, &["samples"]).as_array()?.first()?.as_str())
        .map(str::to_owned);
    let Some(origid) = sample else {
        return Ok((Err("the alert has no sample origid".into()), None, None));
    };
    // The monitor acknowledges an event before it is indexed; a traceback asked at once may
    // not find the call yet on a busy machine (`found` false, `unindexed` above 0): ask again,
    // for at most ALERT_WAIT.
    let path = format!(
        "/v1/traceback?origid={}",
        monitor::traceback::encode_query_value(&origid)
    );
    // On Kafka, only the instance that consumed the caller's partition holds the call: each
    // is asked in turn.
    let deadline = Instant::now() + ALERT_WAIT;
    let monitors: Vec<SocketAddr> = std::iter::once(scenario.monitor)
        .chain(scenario.others.iter().copied())
        .collect();
    let answer = 'asking: loop {
        let mut last = Value::Null;
        for monitor in &monitors {
            let answer = get_json(*monitor, &path).await?;
            if field(&answer, &["found"]).as_bool() != Some(false) {
                break 'asking answer;
            }
            last = answer;
        }
        if Instant::now() >= deadline {
            break last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let hop = started.elapsed().as_secs_f64() * 1000.0;
    let signer_ms = field(&answer, &["signer_ms"]).as_u64();
    if let Some(error) = field(&answer, &["signer_error"]).as_str() {
        return Ok((Err(format!("signer: {error}")), None, signer_ms));
    }
    let spc = field(&answer, &["spc"]).as_str().unwrap_or("none");
    let customer = field(&answer, &["signer", "records"])
        .as_array()
        .and_then(|records| {
            records
                .iter()
                .find_map(|r| field(r, &["customer"]).as_str())
        });
    Ok(match customer {
        Some(customer) => (
            Ok(format!("customer {customer} at SPC {spc}")),
            Some(hop),
            signer_ms,
        ),
        None => (
            Err(format!("SPC {spc}: the signer's record names no customer")),
            None,
            signer_ms,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expected_alert_must_be_crossed_during_the_scenario() {
        let alerts = vec![
            json!({"detector": "high-frequency", "subject": {"caller": "12155550801"},
                   "time": 100, "last": 105, "text": "old"}),
            json!({"detector": "out-of-area", "subject": {"spc": "2001"},
                   "time": 90, "last": 130, "text": "extended"}),
            json!({"detector": "high-frequency", "subject": {"spc": "12155550801"},
                   "time": 200, "last": 200}),
        ];
        // Closed before the scenario began: not the scenario's.
        assert!(find(&alerts, "high-frequency", "caller", "12155550801", 120).is_none());
        assert!(find(&alerts, "high-frequency", "caller", "12155550801", 100).is_some());
        // Raised by the call cases, extended by the scenario: counts.
        let extended = find(&alerts, "out-of-area", "spc", "2001", 120).unwrap();
        assert_eq!(alert_text(extended), "extended");
        // The subject's kind matters.
        assert!(find(&alerts, "high-frequency", "caller", "2001", 0).is_none());
        assert!(find(&alerts, "fan-out", "caller", "12155550801", 0).is_none());
    }
}
