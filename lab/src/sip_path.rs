//! The SIP path in the lab: what an SBC's dips do, over the SIP listeners of the originating
//! carrier's signer and of the verifier, checked as the table's "SIP path" rows:
//!
//! - a call from a registered number signed over UDP: a `302` carrying `Identity`;
//! - that call verified over TCP: a `302` whose `P-Asserted-Identity` says
//!   `verstat=TN-Validation-Passed`;
//! - the same Identity presented over UDP with another caller ID: `TN-Validation-Failed`;
//! - a call from a blacklisted number at the verifier: `608 Rejected`, as the lab's verifier
//!   blocks blacklisted callers on its SIP listener (`[sip.block]`, see `docs/sip.md`).
//!
//! The client here is the smallest SBC: one INVITE at a time, the answer parsed by the `sip`
//! crate's response parser, an ACK for each final answer.

use std::net::SocketAddr;
use std::time::Duration;

use sip::message::{self, Limits, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::error::LabError;
use crate::monitoring::Check;

/// How long the lab waits for an answer to a dip.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A transport the lab's SBC uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Over {
    fn via(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
        }
    }
}

/// One INVITE as an SBC sends it for a dip: the caller in `P-Asserted-Identity` and `From`,
/// the callee in the Request-URI and `To`, the Identity headers when verifying.
#[derive(Clone, Debug)]
pub struct Dip<'a> {
    /// The calling number, E.164 digits.
    pub caller: &'a str,
    /// The called number, E.164 digits.
    pub callee: &'a str,
    /// `Identity` header values.
    pub identity: Option<&'a str>,
}

impl Dip<'_> {
    /// The INVITE's text, from `local` over `over`, with `branch` naming its transaction.
    fn invite(&self, over: Over, local: SocketAddr, branch: &str) -> String {
        let mut text = format!(
            "INVITE sip:+{callee}@lab.invalid;user=phone SIP/2.0\r\n\
             Via: SIP/2.0/{via} {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:+{caller}@lab.invalid;user=phone>;tag=lab-{branch}\r\n\
             To: <sip:+{callee}@lab.invalid;user=phone>\r\n\
             P-Asserted-Identity: <sip:+{caller}@lab.invalid;user=phone>\r\n\
             Call-ID: {branch}@lab.invalid\r\n\
             CSeq: 1 INVITE\r\n",
            callee = self.callee,
            caller = self.caller,
            via = over.via(),
        );
        if let Some(identity) = self.identity {
            text.push_str(&format!("Identity: {identity}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        text
    }
}

/// The ACK of a non-2xx final answer (RFC 3261 §17.1.1.3): same branch, the answer's To.
fn ack(invite: &str, answer: &Response) -> String {
    let mut out = String::new();
    for line in invite.lines() {
        if let Some(rest) = line.strip_prefix("INVITE ") {
            out.push_str(&format!("ACK {rest}\r\n"));
        } else if line.starts_with("To:") {
            out.push_str(&format!("To: {}\r\n", answer.header("To").unwrap_or("")));
        } else if line.starts_with("CSeq:") {
            out.push_str("CSeq: 1 ACK\r\n");
        } else if line.starts_with("Via:")
            || line.starts_with("From:")
            || line.starts_with("Call-ID:")
            || line.starts_with("Max-Forwards:")
        {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

fn failed(address: SocketAddr, detail: impl std::fmt::Display) -> LabError {
    LabError::Connect {
        address,
        detail: detail.to_string(),
    }
}

/// Sends `dip` to `target` over `over` and returns the final answer (after ACKing it).
pub async fn send(target: SocketAddr, over: Over, dip: &Dip<'_>) -> Result<Response, LabError> {
    let branch = format!("z9hG4bK-{}", uuid::Uuid::new_v4().simple());
    match over {
        Over::Udp => {
            let socket = UdpSocket::bind("127.0.0.1:0")
                .await
                .map_err(|e| failed(target, e))?;
            let local = socket.local_addr().map_err(|e| failed(target, e))?;
            let invite = dip.invite(over, local, &branch);
            socket
                .send_to(invite.as_bytes(), target)
                .await
                .map_err(|e| failed(target, e))?;
            let mut buffer = vec![0u8; 65_536];
            let answer = loop {
                let (n, _) = tokio::time::timeout(ANSWER_TIMEOUT, socket.recv_from(&mut buffer))
                    .await
                    .map_err(|_| failed(target, "no SIP answer within 5 s"))?
                    .map_err(|e| failed(target, e))?;
                let answer =
                    message::parse_response(buffer.get(..n).unwrap_or(&[]), &Limits::default())
                        .map_err(|e| failed(target, format!("bad SIP answer: {e}")))?;
                if answer.code >= 200 {
                    break answer;
                }
            };
            socket
                .send_to(ack(&invite, &answer).as_bytes(), target)
                .await
                .map_err(|e| failed(target, e))?;
            Ok(answer)
        }
        Over::Tcp => {
            let mut stream = TcpStream::connect(target)
                .await
                .map_err(|e| failed(target, e))?;
            let local = stream.local_addr().map_err(|e| failed(target, e))?;
            let invite = dip.invite(over, local, &branch);
            stream
                .write_all(invite.as_bytes())
                .await
                .map_err(|e| failed(target, e))?;
            let mut buffer = Vec::new();
            let answer = loop {
                let framed = message::frame_length(&buffer, &Limits::default())
                    .map_err(|e| failed(target, format!("bad SIP answer: {e}")))?;
                if let Some(length) = framed {
                    let whole: Vec<u8> = buffer.drain(..length).collect();
                    if message::is_keepalive(&whole) {
                        continue;
                    }
                    let answer = message::parse_response(&whole, &Limits::default())
                        .map_err(|e| failed(target, format!("bad SIP answer: {e}")))?;
                    if answer.code >= 200 {
                        break answer;
                    }
                    continue;
                }
                let mut chunk = [0u8; 4096];
                let n = tokio::time::timeout(ANSWER_TIMEOUT, stream.read(&mut chunk))
                    .await
                    .map_err(|_| failed(target, "no SIP answer within 5 s"))?
                    .map_err(|e| failed(target, e))?;
                if n == 0 {
                    return Err(failed(target, "the connection closed before an answer"));
                }
                buffer.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
            };
            stream
                .write_all(ack(&invite, &answer).as_bytes())
                .await
                .map_err(|e| failed(target, e))?;
            Ok(answer)
        }
    }
}

/// The verstat in an answer's `P-Asserted-Identity`, if any.
pub fn verstat(answer: &Response) -> Option<&str> {
    let pai = answer.header("P-Asserted-Identity")?;
    let at = pai.find("verstat=")?;
    let rest = pai.get(at + "verstat=".len()..)?;
    let end = rest.find([';', '@', '>', '?', ',']).unwrap_or(rest.len());
    rest.get(..end)
}

/// An answer in words, for the table: `302 Identity`, `302 TN-Validation-Passed`,
/// `608 Rejected`...
fn in_words(answer: &Response) -> String {
    if let Some(verstat) = verstat(answer) {
        format!("{} {verstat}", answer.code)
    } else if answer.code == 302 && answer.header("Identity").is_some() {
        "302 with Identity".to_owned()
    } else {
        format!("{} {}", answer.code, answer.reason)
    }
}

/// Where the SIP path runs.
#[derive(Clone, Copy, Debug)]
pub struct Scenario<'a> {
    /// The originating carrier's signer's SIP listener.
    pub signer: SocketAddr,
    /// The verifier's SIP listener.
    pub verifier: SocketAddr,
    /// A registered calling number.
    pub registered: &'a str,
    /// Another number (not the token's).
    pub other: &'a str,
    /// A blacklisted number.
    pub blacklisted: &'a str,
    /// The called number.
    pub callee: &'a str,
}

/// Runs the SIP path; each check as the monitoring's (`calls` = dips sent).
pub async fn run(scenario: &Scenario<'_>) -> Result<Vec<Check>, LabError> {
    let mut checks = Vec::new();
    let signed = send(
        scenario.signer,
        Over::Udp,
        &Dip {
            caller: scenario.registered,
            callee: scenario.callee,
            identity: None,
        },
    )
    .await?;
    let identity = signed.header("Identity").map(str::to_owned);
    checks.push(check(
        "SIP sign (UDP)",
        "302 with Identity",
        in_words(&signed),
    ));
    let Some(identity) = identity else {
        return Ok(checks);
    };
    for (name, over, caller, expected) in [
        (
            "SIP verify (TCP)",
            Over::Tcp,
            scenario.registered,
            "302 TN-Validation-Passed",
        ),
        (
            "SIP verify, spoofed",
            Over::Udp,
            scenario.other,
            "302 TN-Validation-Failed",
        ),
        (
            "SIP verify, blacklisted",
            Over::Udp,
            scenario.blacklisted,
            "608 Rejected",
        ),
    ] {
        let answer = send(
            scenario.verifier,
            over,
            &Dip {
                caller,
                callee: scenario.callee,
                identity: Some(&identity),
            },
        )
        .await?;
        checks.push(check(name, expected, in_words(&answer)));
    }
    Ok(checks)
}

fn check(name: &'static str, expected: &str, got: String) -> Check {
    Check {
        name,
        calls: 1,
        matched: got == expected,
        expected: expected.to_owned(),
        got,
    }
}
