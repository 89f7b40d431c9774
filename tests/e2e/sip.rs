//! The SIP listeners of the lab's signer and verifier, driven by SIPp (the Debian package
//! `sip-tester`, installed by `.ci/run`): the scenarios in `tests/e2e/sipp/` play an SBC's
//! dips, SIPp's exit code says whether every answer was the expected one, and its log gives
//! the answers' headers for the checks SIPp cannot make (the Identity verified by our verifier
//! and by PyJWT, the verstat's value, the refusal's code). Also: a retransmitted INVITE over
//! UDP answered byte for byte the same, from memory.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{oracle, stderr, stdout, stdout_json, tempdir, ServedLab};

/// A transport SIPp speaks: `-t u1` (one UDP socket) or `-t t1` (one TCP connection).
#[derive(Clone, Copy, Debug)]
enum Over {
    Udp,
    Tcp,
}

impl Over {
    fn flag(self) -> &'static str {
        match self {
            Self::Udp => "u1",
            Self::Tcp => "t1",
        }
    }
}

/// What a SIPp run left: its exit status and its `<log>` lines.
struct Run {
    success: bool,
    log: String,
    output: String,
}

impl Run {
    /// The value of the first log line `name=VALUE` (SIPp's log lines start with a time
    /// stamp; the messages the scenarios log are `name=value`).
    fn logged(&self, name: &str) -> Option<String> {
        let needle = format!("{name}=");
        let at = self.log.find(&needle)?;
        let rest = &self.log[at + needle.len()..];
        Some(rest.lines().next().unwrap_or("").trim().to_owned())
    }

    /// The whole response the scenario logged with `response=[last_message]`.
    fn response(&self) -> &str {
        self.log
            .find("response=")
            .map(|at| &self.log[at + "response=".len()..])
            .unwrap_or("")
    }
}

/// A local port free for both UDP and TCP, for SIPp (two tests at once must not both take
/// SIPp's default 5060). Another process may still take it before SIPp binds it: [`sipp`]
/// tries again with another port then.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/sipp")
        .join(format!("{name}.xml"))
}

/// Runs scenario `name` once against `target` over `over`, with `-key` values `keys`.
fn sipp(name: &str, target: SocketAddr, over: Over, keys: &[(&str, &str)]) -> Run {
    let dir = tempdir();
    let log = dir.path().join("sipp.log");
    let mut command = Command::new("sipp");
    command
        .arg("-sf")
        .arg(scenario(name))
        .args(["-m", "1", "-t", over.flag(), "-i", "127.0.0.1"])
        .args(["-timeout", "20s", "-timeout_error", "-nostdin", "-nd"])
        .arg("-trace_logs")
        .arg("-log_file")
        .arg(&log)
        .current_dir(dir.path());
    for (key, value) in keys {
        command.args(["-key", key, value]);
    }
    command.arg(target.to_string());
    let mut attempts = 0;
    loop {
        let mut attempt = Command::new("sipp");
        attempt
            .args(command.get_args())
            .args(["-p", &free_port().to_string()])
            .current_dir(dir.path());
        let out = attempt.output().expect("sipp runs");
        let output = format!("{}\n{}", stdout(&out), stderr(&out));
        attempts += 1;
        // The port was taken between free_port and SIPp's bind: once more with another.
        if output.contains("Unable to bind main socket") && attempts < 5 {
            continue;
        }
        return Run {
            success: out.status.success(),
            log: std::fs::read_to_string(&log).unwrap_or_default(),
            output,
        };
    }
}

/// `"127.0.0.1:PORT"` members of `lab.json`.
fn address(value: &serde_json::Value) -> SocketAddr {
    value
        .as_str()
        .expect("a SIP address in lab.json")
        .parse()
        .unwrap()
}

fn number(lab: &ServedLab, kind: &str) -> String {
    format!("+{}", lab.info["numbers"][kind][0].as_str().unwrap())
}

/// Signs a call from `caller` over SIP and returns the Identity header SIPp logged.
fn sign_over_sip(lab: &ServedLab, over: Over, caller: &str) -> String {
    let signer = address(&lab.info["carriers"][0]["sip"]);
    let callee = number(lab, "called");
    let run = sipp(
        "sign",
        signer,
        over,
        &[("caller", caller), ("callee", &callee)],
    );
    assert!(
        run.success,
        "SIPp sign over {over:?}:\n{}\n{}",
        run.output, run.log
    );
    run.logged("identity").expect("the Identity was logged")
}

#[test]
fn sipp_signs_over_udp_and_tcp_and_the_identity_verifies_here_and_in_pyjwt() {
    let dir = tempdir();
    let lab = ServedLab::start(&dir.path().join("lab"), 1);
    let caller = number(&lab, "registered");
    for over in [Over::Udp, Over::Tcp] {
        let identity = sign_over_sip(&lab, over, &caller);
        // The token names the lab's carrier 1001 certificate and verifies in PyJWT with it.
        let x5u = lab.info["carriers"][0]["x5u"].as_str().unwrap();
        assert!(
            identity.ends_with(&format!(";info=<{x5u}>;alg=ES256;ppt=shaken")),
            "{identity}"
        );
        let token = identity.split(';').next().unwrap();
        let chain = lab.info["carriers"][0]["chain"].as_str().unwrap();
        let checked = oracle(&["verify", token, chain]);
        assert!(
            checked.status.success(),
            "PyJWT rejected the SIP token: {}",
            stderr(&checked)
        );
        let claims = &stdout_json(&checked)["claims"];
        // The calling number is P-Asserted-Identity's, not the From's; the called number the
        // Request-URI's; attestation A for a registered number.
        assert_eq!(claims["orig"]["tn"], caller.trim_start_matches('+'));
        assert_eq!(
            claims["dest"]["tn"][0],
            number(&lab, "called").trim_start_matches('+')
        );
        assert_eq!(claims["attest"], "A");

        // Our verifier, over SIP: the same caller passes; another caller with the same
        // Identity is spoofed.
        let verifier = address(&lab.info["verifier_sip"]);
        let callee = number(&lab, "called");
        let passed = sipp(
            "verify",
            verifier,
            over,
            &[
                ("caller", &caller),
                ("callee", &callee),
                ("identity", &identity),
            ],
        );
        assert!(passed.success, "{}\n{}", passed.output, passed.log);
        assert_eq!(
            passed.logged("verstat").as_deref(),
            Some("verstat=TN-Validation-Passed"),
            "{}",
            passed.log
        );
        let other = number(&lab, "unregistered");
        let spoofed = sipp(
            "verify",
            verifier,
            over,
            &[
                ("caller", &other),
                ("callee", &callee),
                ("identity", &identity),
            ],
        );
        assert!(spoofed.success, "{}\n{}", spoofed.output, spoofed.log);
        assert_eq!(
            spoofed.logged("verstat").as_deref(),
            Some("verstat=TN-Validation-Failed"),
            "{}",
            spoofed.log
        );
        // The header the SBC copies is P-Asserted-Identity with the caller it sent.
        assert!(
            spoofed.response().contains(&format!(
                "P-Asserted-Identity: <sip:{other};verstat=TN-Validation-Failed@"
            )),
            "{}",
            spoofed.response()
        );
    }
}

#[test]
fn sipp_sees_each_policy_refusal_code() {
    let dir = tempdir();
    let lab = ServedLab::start(&dir.path().join("lab"), 1);
    let signer = address(&lab.info["carriers"][0]["sip"]);
    let callee = number(&lab, "called");
    // The signer's refusals: 403 with the POL id in the Reason.
    for (kind, pol) in [
        ("unregistered", "POL4101"),
        ("suspended", "POL4102"),
        // A blacklisted firm's number (POL4111) or a number blacklisted itself (POL4113).
        ("blacklisted", "POL411"),
    ] {
        let caller = number(&lab, kind);
        let run = sipp(
            "sign-refused",
            signer,
            Over::Udp,
            &[("caller", &caller), ("callee", &callee)],
        );
        assert!(run.success, "{kind}: {}\n{}", run.output, run.log);
        let reason = run.logged("reason").unwrap();
        assert!(
            reason.starts_with(&format!("SIP;cause=403;text=\"{pol}")),
            "{kind}: {reason}"
        );
        assert!(
            run.response().starts_with("SIP/2.0 403 "),
            "{}",
            run.response()
        );
    }
    // Emergency calls are always signed.
    let emergency = number(&lab, "emergency");
    let run = sipp(
        "sign",
        signer,
        Over::Udp,
        &[
            ("caller", &number(&lab, "unregistered")),
            ("callee", &emergency),
        ],
    );
    assert!(run.success, "emergency: {}\n{}", run.output, run.log);

    // The verifier's blocks, as the lab configures them: a blacklisted caller gets 608
    // Rejected, a call to a subscriber who opted out of the calling firm 607 Unwanted.
    let verifier = address(&lab.info["verifier_sip"]);
    let identity = sign_over_sip(&lab, Over::Udp, &number(&lab, "registered"));
    let blacklisted = sipp(
        "verify-blocked",
        verifier,
        Over::Udp,
        &[
            ("caller", &number(&lab, "blacklisted")),
            ("callee", &callee),
            ("identity", &identity),
        ],
    );
    assert!(
        blacklisted.success,
        "{}\n{}",
        blacklisted.output, blacklisted.log
    );
    assert!(
        blacklisted.response().starts_with("SIP/2.0 608 Rejected"),
        "{}",
        blacklisted.response()
    );
    assert!(
        blacklisted
            .response()
            .contains("\r\nReason: SIP;cause=608;text=\"blacklisted\""),
        "{}",
        blacklisted.response()
    );

    // A white-listed firm's call to a subscriber who opted out of it (the lab's signer would
    // refuse it, POL4114: signed here with carrier 1001's key, as a careless carrier would).
    let firm = number(&lab, "marketing");
    let opted_out = number(&lab, "opted_out");
    let carrier = &lab.info["carriers"][0];
    let signed = crate::support::shaken([
        "passport",
        "sign",
        "--key",
        carrier["key"].as_str().unwrap(),
        "--x5u",
        carrier["x5u"].as_str().unwrap(),
        "--orig",
        &firm,
        "--dest",
        &opted_out,
        "--attest",
        "A",
    ]);
    assert!(signed.status.success(), "{}", stderr(&signed));
    let identity = stdout(&signed).trim().to_owned();
    let unwanted = sipp(
        "verify-blocked",
        verifier,
        Over::Tcp,
        &[
            ("caller", &firm),
            ("callee", &opted_out),
            ("identity", &identity),
        ],
    );
    assert!(unwanted.success, "{}\n{}", unwanted.output, unwanted.log);
    assert!(
        unwanted.response().starts_with("SIP/2.0 607 Unwanted"),
        "{}",
        unwanted.response()
    );
}

/// An INVITE over UDP from a plain socket, for what SIPp cannot show: the answer to a
/// retransmission is the stored answer, byte for byte, and the call is signed once.
fn invite(caller: &str, callee: &str, local: SocketAddr, branch: &str) -> String {
    format!(
        "INVITE sip:{callee}@127.0.0.1;user=phone SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch={branch}\r\n\
         From: <sip:{caller}@127.0.0.1;user=phone>;tag=1\r\n\
         To: <sip:{callee}@127.0.0.1;user=phone>\r\n\
         Call-ID: {branch}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn a_retransmitted_invite_gets_the_same_answer_byte_for_byte_and_is_signed_once() {
    let dir = tempdir();
    let lab = ServedLab::start(&dir.path().join("lab"), 1);
    let signer = address(&lab.info["carriers"][0]["sip"]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let message = invite(
        &number(&lab, "registered"),
        &number(&lab, "called"),
        local,
        "z9hG4bK-retransmitted-1",
    );
    let before = signed_over_sip(&lab).await;
    let mut answers = vec![];
    for _ in 0..3 {
        socket.send_to(message.as_bytes(), signer).unwrap();
        let mut buffer = [0u8; 65536];
        let (n, _) = socket.recv_from(&mut buffer).unwrap();
        answers.push(buffer[..n].to_vec());
    }
    let first = String::from_utf8(answers[0].clone()).unwrap();
    assert!(first.starts_with("SIP/2.0 302 "), "{first}");
    assert!(first.contains("\r\nIdentity: "), "{first}");
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
    // One signature: the signer's count of calls signed over SIP grew by one.
    assert_eq!(signed_over_sip(&lab).await, before + 1.0);
}

/// The signer's count of calls signed over SIP (`shaken_signer_sip_calls_total`).
async fn signed_over_sip(lab: &ServedLab) -> f64 {
    let reply = crate::http::raw(
        lab.address("signer_metrics"),
        b"GET /metrics HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n",
    )
    .await;
    String::from_utf8(reply.body)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("shaken_signer_sip_calls_total") && l.contains("\"signed\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
