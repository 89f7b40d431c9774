//! What the offline tools show of a token (`shaken passport verify | decode`): the Identity
//! header value of a pasted line ([`header_value`]), the verdict of an offline verification in
//! the words of the verification API ([`offline_verdict`]), and a token decoded without
//! verification ([`decoded`]).

use serde_json::{json, Map, Value};

use crate::claims::Party;
use crate::error::{Part, TokenError};
use crate::header::PPT_SHAKEN;
use crate::identity::IdentityHeader;
use crate::keys::VerifyingKey;
use crate::tn::Tn;
use crate::token::Passport;
use crate::verify::{self, VerifyOptions};

/// The Identity header value in `text`: surrounding whitespace removed, and an `Identity:`
/// header name (any case) before it, as copied from a SIP trace.
pub fn header_value(text: &str) -> &str {
    let text = text.trim();
    text.get(..9)
        .filter(|prefix| prefix.eq_ignore_ascii_case("identity:"))
        .and_then(|_| text.get(9..))
        .unwrap_or(text)
        .trim()
}

/// The members describing a token, as it carries them: `attest` (if any), `orig`, `dest`
/// (`tn` and `uri`, each if not empty), `iat`, `origid` (if any), `ppt` when it is not
/// `shaken`, and the Rich Call Data `rcd` (as carried) and `crn` when present.
pub fn describe(passport: &Passport) -> Map<String, Value> {
    let claims = passport.claims();
    let mut out = Map::new();
    if let Some(attest) = claims.attest {
        out.insert("attest".into(), json!(attest.as_str()));
    }
    out.insert("orig".into(), party_json(&claims.orig));
    let mut dest = Map::new();
    if !claims.dest.tn().is_empty() {
        dest.insert("tn".into(), json!(claims.dest.tn()));
    }
    if !claims.dest.uri().is_empty() {
        dest.insert("uri".into(), json!(claims.dest.uri()));
    }
    out.insert("dest".into(), Value::Object(dest));
    out.insert("iat".into(), json!(claims.iat));
    if let Some(origid) = &claims.origid {
        out.insert("origid".into(), json!(origid.as_str()));
    }
    if let Some(ppt) = passport
        .header()
        .ppt
        .as_deref()
        .filter(|p| *p != PPT_SHAKEN)
    {
        out.insert("ppt".into(), json!(ppt));
    }
    if let Some(rcd) = &claims.rcd {
        let mut text = String::new();
        rcd.write_json(&mut text);
        // Canonical JSON written by this crate always parses back.
        if let Ok(value) = serde_json::from_str::<Value>(&text) {
            out.insert("rcd".into(), value);
        }
    }
    if let Some(crn) = claims.call_reason() {
        out.insert("crn".into(), json!(crn));
    }
    out
}

fn party_json(party: &Party) -> Value {
    match party {
        Party::Tn(tn) => json!({ "tn": tn }),
        Party::Uri(uri) => json!({ "uri": uri }),
    }
}

/// Verifies the Identity header `value` with `key` ([`verify::verify_passport`]: a `shaken`
/// or a Rich Call Data PASSporT) and says so as
/// a JSON object: the token's members ([`describe`], when it parses) and `verstat`; on failure
/// also `reasoncode`, `reasontext` (the one SIP code of the error) and `reasondesc` (the
/// error). Returns it with whether verification passed.
pub fn offline_verdict(
    value: &str,
    key: &VerifyingKey,
    options: &VerifyOptions,
    from: Option<&Tn>,
    to: &[Tn],
) -> (Value, bool) {
    let mut out = Map::new();
    let outcome = IdentityHeader::parse(value).and_then(|identity| {
        out = describe(identity.passport());
        verify::verify_passport(&identity, key, options, from, to)
    });
    let passed = match outcome {
        Ok(()) => {
            out.insert("verstat".into(), json!("TN-Validation-Passed"));
            true
        }
        Err(error) => {
            // Everything a received token can get wrong has exactly one SIP code.
            let reason = error.sip_reason();
            out.insert("verstat".into(), json!("TN-Validation-Failed"));
            out.insert("reasoncode".into(), json!(reason.code()));
            out.insert("reasontext".into(), json!(reason.phrase()));
            out.insert("reasondesc".into(), json!(error.to_string()));
            false
        }
    };
    (Value::Object(out), passed)
}

/// A token as JSON, unverified: its `header` and `claims` as carried, and its `signature` in
/// base64url.
pub fn decoded(passport: &Passport) -> Result<Value, TokenError> {
    let as_value = |text: String, part: Part| -> Result<Value, TokenError> {
        serde_json::from_str(&text).map_err(|e| TokenError::Json {
            part,
            detail: e.to_string(),
        })
    };
    Ok(json!({
        "header": as_value(passport.header().to_json(), Part::Header)?,
        "claims": as_value(passport.claims().to_json(), Part::Payload)?,
        "signature": crate::base64url::encode(passport.signature()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{Attestation, Claims, Dest};
    use crate::keys::SigningKey;
    use crate::token::TokenSigner;

    #[test]
    fn an_identity_prefix_is_stripped() {
        assert_eq!(header_value("  Identity: abc;info=<x>\r\n"), "abc;info=<x>");
        assert_eq!(header_value("IDENTITY:abc"), "abc");
        assert_eq!(header_value(" abc "), "abc");
        assert_eq!(header_value("Identity"), "Identity");
    }

    fn identity(key: SigningKey) -> String {
        let claims = Claims::shaken(
            1_700_000_000,
            Party::Tn("12155551212".into()),
            Dest::tns(vec!["12125551213".into()]).unwrap(),
            Attestation::A,
            "de305d54-75b4-431b-adb2-eb6b9e546014".parse().unwrap(),
        );
        TokenSigner::new(key, "https://cr.example/c.pem")
            .identity_header(&claims)
            .unwrap()
    }

    #[test]
    fn verdicts_and_decoded_tokens() {
        let key = SigningKey::generate().unwrap();
        let verifying = key.verifying_key().unwrap();
        let value = identity(key);
        let options = |now| VerifyOptions {
            now,
            max_age: 60,
            max_future: 10,
        };
        let (verdict, passed) =
            offline_verdict(&value, &verifying, &options(1_700_000_010), None, &[]);
        assert!(passed);
        assert_eq!(verdict["verstat"], "TN-Validation-Passed");
        assert_eq!(verdict["attest"], "A");
        assert_eq!(verdict["orig"]["tn"], "12155551212");
        assert_eq!(verdict["dest"]["tn"][0], "12125551213");

        let (verdict, passed) =
            offline_verdict(&value, &verifying, &options(1_700_001_000), None, &[]);
        assert!(!passed);
        assert_eq!(verdict["reasoncode"], 403);
        assert_eq!(verdict["iat"], 1_700_000_000);

        let (verdict, passed) = offline_verdict("abc", &verifying, &options(0), None, &[]);
        assert!(!passed);
        assert_eq!(verdict["reasoncode"], 438);
        assert!(verdict.get("orig").is_none());

        let token = value.split(';').next().unwrap();
        let decoded = decoded(&Passport::decode(token).unwrap()).unwrap();
        assert_eq!(decoded["header"]["x5u"], "https://cr.example/c.pem");
        assert_eq!(
            decoded["claims"]["origid"],
            "de305d54-75b4-431b-adb2-eb6b9e546014"
        );
        assert_eq!(decoded["signature"].as_str().map(str::len), Some(86));
    }
}
