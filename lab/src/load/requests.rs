//! The requests a load sends: signing requests from a mix of registered and unregistered
//! calling numbers ([`signing`]), or verification requests carrying tokens signed before the
//! run ([`verification`]).

use std::path::Path;
use std::sync::Arc;

use passport::{Attestation, Claims, Dest, Party, SigningKey, TokenSigner};

use crate::error::LabError;

/// The called number of every request.
const CALLED: &str = "12125551213";

/// Makes request `index`'s JSON body, sent at `now` (seconds since the epoch).
pub type MakeBody = Arc<dyn Fn(u64, u64) -> String + Send + Sync>;

/// The numbers of a file with one number a line (blank lines skipped).
pub fn numbers_from_file(path: &Path) -> Result<Vec<String>, LabError> {
    Ok(std::fs::read_to_string(path)
        .map_err(|e| LabError::io(path, &e))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Signing requests (attestation A, `iat` the time each is sent): the calling number is one of
/// `numbers`, or about `unregistered_share` of the time an unregistered `1999…` number, spread
/// by the request's index; each has its own UUID origid.
pub fn signing(numbers: Vec<String>, unregistered_share: f64) -> MakeBody {
    Arc::new(move |index, now| signing_body(&numbers, unregistered_share, index, now))
}

fn signing_body(numbers: &[String], unregistered_share: f64, seed: u64, iat: u64) -> String {
    // A cheap deterministic mix (xorshift) is enough to spread the numbers.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    let registered = numbers.get((x as usize / 7) % numbers.len().max(1));
    let orig = match registered {
        Some(tn) if (x % 10_000) as f64 / 10_000.0 >= unregistered_share => tn.clone(),
        _ => format!("1999{:07}", x % 10_000_000),
    };
    format!(
        r#"{{"signingRequest":{{"attest":"A","dest":{{"tn":["{CALLED}"]}},"iat":{iat},"orig":{{"tn":"{orig}"}},"origid":"{}"}}}}"#,
        uuid::Uuid::from_u128(
            (u128::from(x) << 64 | u128::from(seed)) & !(0xF000_u128 << 64) | (0x4000_u128 << 64)
        )
    )
}

/// How often the tokens of a verification load are signed again, in seconds: well inside the
/// verifier's 60 s windows for `iat` and for the request's `time`.
pub const RESIGN_SECONDS: u64 = 30;

/// Tokens signed as of one time.
struct Signed {
    iat: u64,
    calls: Arc<Vec<(String, String)>>,
}

fn sign_calls(
    signer: &TokenSigner,
    tokens: usize,
    iat: u64,
) -> Result<Vec<(String, String)>, LabError> {
    let mut calls = Vec::with_capacity(tokens.max(1));
    for i in 0..tokens.max(1) {
        let orig = format!("1215{i:07}");
        let claims = Claims::shaken(
            iat,
            Party::Tn(orig.clone()),
            Dest::tns(vec![CALLED.into()]).ok_or(passport::TokenError::MissingClaim("dest"))?,
            Attestation::A,
            uuid::Uuid::new_v4().to_string().parse()?,
        );
        calls.push((orig, signer.identity_header(&claims)?));
    }
    Ok(calls)
}

/// Verification requests, cycling through `tokens` (at least one) distinct calls from
/// `1215…` numbers signed with `key` for `x5u`, signed before the run as of `now` and again
/// every [`RESIGN_SECONDS`] (by whichever request finds them due, while the others go on with
/// the previous ones); each request's `time` is when it is sent. So a run of any length stays
/// inside the verifier's freshness and request-time windows.
pub fn verification(
    key: SigningKey,
    x5u: &str,
    tokens: usize,
    now: u64,
) -> Result<MakeBody, LabError> {
    let signer = TokenSigner::new(key, x5u);
    let signed = std::sync::RwLock::new(Signed {
        iat: now,
        calls: Arc::new(sign_calls(&signer, tokens, now)?),
    });
    Ok(Arc::new(move |index, sent_at| {
        let (iat, mut calls) = match signed.read() {
            Ok(current) => (current.iat, Arc::clone(&current.calls)),
            Err(_) => return String::new(),
        };
        if sent_at >= iat.saturating_add(RESIGN_SECONDS) {
            if let Ok(mut current) = signed.try_write() {
                if current.iat == iat {
                    if let Ok(fresh) = sign_calls(&signer, tokens, sent_at) {
                        calls = Arc::new(fresh);
                        *current = Signed {
                            iat: sent_at,
                            calls: Arc::clone(&calls),
                        };
                    }
                }
            }
        }
        let Some((orig, identity)) = calls.get((index as usize) % calls.len()) else {
            return String::new();
        };
        format!(
            r#"{{"verificationRequest":{{"from":{{"tn":"{orig}"}},"to":{{"tn":["{CALLED}"]}},"time":{sent_at},"identity":"{identity}"}}}}"#
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn signing_requests_mix_registered_and_unregistered_numbers() {
        let numbers: Vec<String> = (0..100).map(|i| format!("121555600{i:02}")).collect();
        let make = signing(numbers.clone(), 0.25);
        let mut unregistered = 0;
        let mut origids = std::collections::HashSet::new();
        for index in 0..4000 {
            let body: Value = serde_json::from_str(&make(index, 1_700_000_000)).unwrap();
            let request = &body["signingRequest"];
            assert_eq!(request["iat"], 1_700_000_000);
            let orig = request["orig"]["tn"].as_str().unwrap();
            if !numbers.iter().any(|n| n == orig) {
                assert!(orig.starts_with("1999") && orig.len() == 11, "{orig}");
                unregistered += 1;
            }
            let origid = request["origid"].as_str().unwrap();
            assert_eq!(uuid::Uuid::parse_str(origid).unwrap().get_version_num(), 4);
            origids.insert(origid.to_owned());
        }
        let share = f64::from(unregistered) / 4000.0;
        assert!((0.2..0.3).contains(&share), "{share}");
        assert_eq!(origids.len(), 4000);
        // Without numbers, every call is unregistered.
        let body: Value = serde_json::from_str(&signing(vec![], 0.0)(1, 0)).unwrap();
        assert!(body["signingRequest"]["orig"]["tn"]
            .as_str()
            .unwrap()
            .starts_with("1999"));
    }

    #[test]
    fn verification_requests_cycle_through_signed_tokens() {
        let key = SigningKey::generate().unwrap();
        let t0 = 1_700_000_000;
        let make = verification(key, "https://cr.example/c.pem", 3, t0).unwrap();
        let bodies: Vec<Value> = (0..4)
            .map(|i| serde_json::from_str(&make(i, t0 + 1)).unwrap())
            .collect();
        assert_eq!(bodies[0], bodies[3]);
        assert_ne!(bodies[0], bodies[1]);
        let request = &bodies[1]["verificationRequest"];
        assert_eq!(request["from"]["tn"], "12150000001");
        assert_eq!(request["time"], t0 + 1, "the time it is sent");
        let iat = |body: &Value| {
            let identity = body["verificationRequest"]["identity"].as_str().unwrap();
            passport::IdentityHeader::parse(identity)
                .unwrap()
                .passport()
                .claims()
                .iat
        };
        assert_eq!(iat(&bodies[1]), t0);
        // A long run: the tokens are signed again every 30 s, so iat and time stay close.
        let later: Value = serde_json::from_str(&make(1, t0 + 95)).unwrap();
        assert_eq!(later["verificationRequest"]["time"], t0 + 95);
        assert_eq!(iat(&later), t0 + 95);
        let after: Value = serde_json::from_str(&make(1, t0 + 100)).unwrap();
        assert_eq!(iat(&after), t0 + 95, "not before another 30 s");
    }
}
