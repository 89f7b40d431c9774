//! The verdict on one call, and the one place that decides how a failure goes on the wire.
//!
//! [`judge`] maps every [`VerifyError`] to its SIP reason code (RFC 8224 §6.2.2) and the flag
//! it raises; [`Verdict`] adds the verstat (3GPP TS 24.229) and the flags every verdict carries.
//! The same [`Verdict`] is serialized into the REST response and into the event feed (absent
//! members are omitted in both), and its [`VerdictClass`] and [`Flag`]s index the metrics.
//! A failed verdict also says what exactly failed, in a short ASCII `reasondesc` (the error's
//! message, as `shaken passport verify` gives it).
//!
//! Flags: `spoofed`, `untrusted`, `revoked`, `stale`, `unsigned`, `gateway` (attestation C) and
//! `unregistered` (anything not attested A by a valid token: the caller ID is not vouched for as
//! the caller's own registered number).

use passport::{Attestation, Fault, SipReason};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::error::{CredentialError, VerifyError};

/// The three verstat values (3GPP TS 24.229).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verstat {
    /// `TN-Validation-Passed`.
    Passed,
    /// `TN-Validation-Failed`.
    Failed,
    /// `No-TN-Validation`.
    NoValidation,
}

impl Verstat {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "TN-Validation-Passed",
            Self::Failed => "TN-Validation-Failed",
            Self::NoValidation => "No-TN-Validation",
        }
    }
}

/// A flag on a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// The signature does not verify, or the numbers do not match the token (438).
    Spoofed,
    /// The certificate is not trusted (437).
    Untrusted,
    /// The certificate is revoked (437).
    Revoked,
    /// `iat` is too old, or the request's time too far from the verifier's clock (403).
    Stale,
    /// No Identity header.
    Unsigned,
    /// The calling number is blacklisted, or belongs to a blacklisted firm (the regulator's
    /// list).
    Blacklisted,
    /// A call from a white-listed firm's number to a subscriber who opted out of that firm:
    /// the originating carrier failed to stop it.
    OptedOut,
    /// The call carries an `rcd` that is not the vetted name of the calling number's
    /// white-listed firm: it is not shown (the SHAKEN verdict is kept).
    RcdMismatch,
    /// Attestation C.
    Gateway,
    /// Not attested A by a valid token.
    Unregistered,
    /// A valid `rcd` from a white-listed firm's number: a marketing call, its vetted name shown.
    Marketing,
}

impl Flag {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spoofed => "spoofed",
            Self::Untrusted => "untrusted",
            Self::Revoked => "revoked",
            Self::Stale => "stale",
            Self::Unsigned => "unsigned",
            Self::Blacklisted => "blacklisted",
            Self::OptedOut => "opted-out",
            Self::RcdMismatch => "rcd-mismatch",
            Self::Gateway => "gateway",
            Self::Unregistered => "unregistered",
            Self::Marketing => "marketing",
        }
    }
}

impl rest::metrics::CounterKey for Flag {
    const ALL: &'static [Self] = &[
        Self::Spoofed,
        Self::Untrusted,
        Self::Revoked,
        Self::Stale,
        Self::Unsigned,
        Self::Blacklisted,
        Self::OptedOut,
        Self::RcdMismatch,
        Self::Gateway,
        Self::Unregistered,
        Self::Marketing,
    ];

    fn index(self) -> usize {
        match self {
            Self::Spoofed => 0,
            Self::Untrusted => 1,
            Self::Revoked => 2,
            Self::Stale => 3,
            Self::Unsigned => 4,
            Self::Blacklisted => 5,
            Self::OptedOut => 6,
            Self::RcdMismatch => 7,
            Self::Gateway => 8,
            Self::Unregistered => 9,
            Self::Marketing => 10,
        }
    }

    fn labels(self) -> &'static str {
        match self {
            Self::Spoofed => r#"flag="spoofed""#,
            Self::Untrusted => r#"flag="untrusted""#,
            Self::Revoked => r#"flag="revoked""#,
            Self::Stale => r#"flag="stale""#,
            Self::Unsigned => r#"flag="unsigned""#,
            Self::Blacklisted => r#"flag="blacklisted""#,
            Self::OptedOut => r#"flag="opted-out""#,
            Self::RcdMismatch => r#"flag="rcd-mismatch""#,
            Self::Gateway => r#"flag="gateway""#,
            Self::Unregistered => r#"flag="unregistered""#,
            Self::Marketing => r#"flag="marketing""#,
        }
    }
}

/// The one mapping from a failure to the wire: its SIP reason and the flag it raises.
pub fn judge(error: &VerifyError) -> (SipReason, Option<Flag>) {
    match error {
        VerifyError::Token(token) => {
            let flag = match token.fault() {
                Fault::Stale => Some(Flag::Stale),
                Fault::Spoofed => Some(Flag::Spoofed),
                Fault::Malformed => None,
            };
            (token.sip_reason(), flag)
        }
        VerifyError::RequestTime { .. } => (SipReason::StaleDate, Some(Flag::Stale)),
        VerifyError::Fetch(_) => (SipReason::BadIdentityInfo, None),
        VerifyError::Credential(CredentialError::Revoked { .. }) => {
            (SipReason::UnsupportedCredential, Some(Flag::Revoked))
        }
        VerifyError::Credential(_) => (SipReason::UnsupportedCredential, Some(Flag::Untrusted)),
    }
}

/// The answer for one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The verstat.
    pub verstat: Verstat,
    /// The SIP code and phrase, when failed.
    pub reason: Option<SipReason>,
    /// What exactly failed, when failed: the error's message in ASCII, at most
    /// [`MAX_REASONDESC`] bytes (`reasondesc` on the wire).
    pub detail: Option<String>,
    /// The token's attestation, when it decoded.
    pub attest: Option<Attestation>,
    /// The token's origid, when it decoded.
    pub origid: Option<String>,
    /// The signer's SPC, when its certificate validated.
    pub spc: Option<String>,
    /// The token's x5u, when it decoded.
    pub x5u: Option<String>,
    /// Flags, sorted.
    pub flags: Vec<Flag>,
    /// The call's verified Rich Call Data (RFC 9795), only on a passed verdict. Not serialized:
    /// what is shown of it depends on the regulator's list.
    pub rcd: Option<Rcd>,
    /// What a marketing call shows the subscriber, when it is one ([`Verdict::add_marketing`]).
    pub marketing: Option<MarketingNote>,
}

/// Where a call's Rich Call Data came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RcdSource {
    /// The `rcd` and `crn` claims of the `shaken` PASSporT (ATIS-1000094).
    InShaken,
    /// A separate `ppt=rcd` PASSporT (RFC 9795) that verified on its own.
    RcdPassport,
}

/// Verified Rich Call Data: the display name and the call reason, as the token carried them
/// (valid by [`passport::rcd`]'s rules), and where they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rcd {
    /// The display name (`rcd.nam`).
    pub nam: String,
    /// The call reason (`crn`), if any.
    pub crn: Option<String>,
    /// Which PASSporT carried them.
    pub source: RcdSource,
}

impl Rcd {
    /// The Rich Call Data of verified claims, if they carry any.
    pub fn from_claims(claims: &passport::Claims, source: RcdSource) -> Option<Self> {
        Some(Self {
            nam: claims.rcd_name()?.to_owned(),
            crn: claims.call_reason().map(str::to_owned),
            source,
        })
    }
}

/// What the verdict of a marketing call carries beyond SHAKEN: the vetted name, the call
/// reason, the firm, and the subscriber's one-click unsubscribe link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketingNote {
    /// `rcd.nam`: the vetted name (equal to the regulator's list).
    pub nam: String,
    /// `crn`, when the call states a reason.
    pub crn: Option<String>,
    /// The firm's id on the regulator's list (in the event feed, for traceback).
    pub firm: String,
    /// The unsubscribe link (`unsubscribe` in the response; not in the event feed: it lets
    /// whoever holds it opt the subscriber out, so it goes to the subscriber only).
    pub unsubscribe: Option<String>,
}

/// Where a verdict is written: the members differ only in what a marketing call adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The verification response: `rcd`, `crn`, `unsubscribe`.
    Response,
    /// The event feed: `rcd`, `crn`, `firm`.
    Event,
}

/// The longest `reasondesc`, in bytes; a longer message is cut and ends with `...`.
pub const MAX_REASONDESC: usize = 256;

/// `message` as a `reasondesc`: ASCII (other characters escaped as `\u{..}`, since a token's
/// claims or an x5u can carry anything) and at most [`MAX_REASONDESC`] bytes.
pub fn reasondesc(message: &str) -> String {
    let text = rest::error::ascii(message);
    if text.len() <= MAX_REASONDESC {
        return text.into_owned();
    }
    // ASCII: every byte is a character boundary.
    let mut cut: String = text.chars().take(MAX_REASONDESC - 3).collect();
    cut.push_str("...");
    cut
}

/// What a token told before verification ended (whatever the outcome).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// `attest`.
    pub attest: Option<Attestation>,
    /// `origid`.
    pub origid: Option<String>,
    /// The certificate's SPC.
    pub spc: Option<String>,
    /// `x5u`.
    pub x5u: Option<String>,
    /// The `shaken` PASSporT's own Rich Call Data, kept only if it passes.
    pub rcd: Option<Rcd>,
}

impl Verdict {
    /// A call without an Identity header: `No-TN-Validation`, `unsigned`, `unregistered`.
    pub fn unsigned() -> Self {
        Self::from_parts(
            Verstat::NoValidation,
            None,
            None,
            Seen::default(),
            vec![Flag::Unsigned, Flag::Unregistered],
        )
    }

    /// A call whose token verified: `unregistered` unless attested A, `gateway` for C.
    pub fn passed(seen: Seen) -> Self {
        let flags = match seen.attest {
            Some(Attestation::A) => vec![],
            Some(Attestation::B) => vec![Flag::Unregistered],
            _ => vec![Flag::Gateway, Flag::Unregistered],
        };
        Self::from_parts(Verstat::Passed, None, None, seen, flags)
    }

    /// A call whose verification failed with `error`.
    pub fn failed(error: &VerifyError, seen: Seen) -> Self {
        let (reason, flag) = judge(error);
        let mut flags: Vec<Flag> = flag.into_iter().collect();
        if seen.attest == Some(Attestation::C) {
            flags.push(Flag::Gateway);
        }
        flags.push(Flag::Unregistered);
        Self::from_parts(
            Verstat::Failed,
            Some(reason),
            Some(reasondesc(&error.to_string())),
            seen,
            flags,
        )
    }

    fn from_parts(
        verstat: Verstat,
        reason: Option<SipReason>,
        detail: Option<String>,
        seen: Seen,
        mut flags: Vec<Flag>,
    ) -> Self {
        flags.sort();
        flags.dedup();
        Self {
            verstat,
            reason,
            detail,
            attest: seen.attest,
            origid: seen.origid,
            spc: seen.spc,
            x5u: seen.x5u,
            flags,
            marketing: None,
            rcd: if verstat == Verstat::Passed {
                seen.rcd
            } else {
                None
            },
        }
    }

    /// Adds flags (kept sorted, without duplicates).
    pub fn add_flags(&mut self, flags: &[Flag]) {
        self.flags.extend_from_slice(flags);
        self.flags.sort();
        self.flags.dedup();
    }

    /// Marks a marketing call: the `marketing` flag and what it shows.
    pub fn add_marketing(&mut self, note: MarketingNote) {
        self.add_flags(&[Flag::Marketing]);
        self.marketing = Some(note);
    }

    /// Its metric class.
    pub fn class(&self) -> VerdictClass {
        match (self.verstat, self.reason) {
            (Verstat::Passed, _) => VerdictClass::Passed,
            (Verstat::NoValidation, _) => VerdictClass::NoValidation,
            (Verstat::Failed, Some(SipReason::StaleDate)) => VerdictClass::Failed403,
            (Verstat::Failed, Some(SipReason::UseIdentityHeader)) => VerdictClass::Failed428,
            (Verstat::Failed, Some(SipReason::BadIdentityInfo)) => VerdictClass::Failed436,
            (Verstat::Failed, Some(SipReason::UnsupportedCredential)) => VerdictClass::Failed437,
            (Verstat::Failed, Some(SipReason::InvalidIdentityHeader) | None) => {
                VerdictClass::Failed438
            }
        }
    }

    /// Writes its members (`verstat`, `reasoncode`, `reasontext` and `reasondesc` on failure,
    /// `attest`, `origid`, `spc`, `x5u` when known, for a marketing call `rcd` (`{"nam"}`),
    /// `crn` and, by audience, `unsubscribe` or `firm`, `flags` always) into a map being
    /// serialized.
    pub fn serialize_members<M: SerializeMap>(
        &self,
        map: &mut M,
        audience: Audience,
    ) -> Result<(), M::Error> {
        map.serialize_entry("verstat", self.verstat.as_str())?;
        if let Some(reason) = self.reason {
            map.serialize_entry("reasoncode", &reason.code())?;
            map.serialize_entry("reasontext", reason.phrase())?;
        }
        if let Some(detail) = &self.detail {
            map.serialize_entry("reasondesc", detail)?;
        }
        if let Some(attest) = self.attest {
            map.serialize_entry("attest", attest.as_str())?;
        }
        for (name, value) in [
            ("origid", &self.origid),
            ("spc", &self.spc),
            ("x5u", &self.x5u),
        ] {
            if let Some(value) = value {
                map.serialize_entry(name, value)?;
            }
        }
        if let Some(note) = &self.marketing {
            let mut rcd = serde_json::Map::new();
            rcd.insert("nam".into(), note.nam.clone().into());
            map.serialize_entry("rcd", &rcd)?;
            if let Some(crn) = &note.crn {
                map.serialize_entry("crn", crn)?;
            }
            match audience {
                Audience::Response => {
                    if let Some(link) = &note.unsubscribe {
                        map.serialize_entry("unsubscribe", link)?;
                    }
                }
                Audience::Event => map.serialize_entry("firm", &note.firm)?,
            }
        }
        let flags: Vec<&str> = self.flags.iter().map(|f| f.as_str()).collect();
        map.serialize_entry("flags", &flags)
    }
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.serialize_members(&mut map, Audience::Response)?;
        map.end()
    }
}

/// The verdict's class for the verdict counter: verstat and reason code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictClass {
    /// `TN-Validation-Passed`.
    Passed,
    /// `No-TN-Validation`.
    NoValidation,
    /// Failed, 403.
    Failed403,
    /// Failed, 428.
    Failed428,
    /// Failed, 436.
    Failed436,
    /// Failed, 437.
    Failed437,
    /// Failed, 438.
    Failed438,
}

impl rest::metrics::CounterKey for VerdictClass {
    const ALL: &'static [Self] = &[
        Self::Passed,
        Self::NoValidation,
        Self::Failed403,
        Self::Failed428,
        Self::Failed436,
        Self::Failed437,
        Self::Failed438,
    ];

    fn index(self) -> usize {
        match self {
            Self::Passed => 0,
            Self::NoValidation => 1,
            Self::Failed403 => 2,
            Self::Failed428 => 3,
            Self::Failed436 => 4,
            Self::Failed437 => 5,
            Self::Failed438 => 6,
        }
    }

    fn labels(self) -> &'static str {
        match self {
            Self::Passed => r#"verstat="TN-Validation-Passed",reasoncode="none""#,
            Self::NoValidation => r#"verstat="No-TN-Validation",reasoncode="none""#,
            Self::Failed403 => r#"verstat="TN-Validation-Failed",reasoncode="403""#,
            Self::Failed428 => r#"verstat="TN-Validation-Failed",reasoncode="428""#,
            Self::Failed436 => r#"verstat="TN-Validation-Failed",reasoncode="436""#,
            Self::Failed437 => r#"verstat="TN-Validation-Failed",reasoncode="437""#,
            Self::Failed438 => r#"verstat="TN-Validation-Failed",reasoncode="438""#,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{FetchError, Unavailable};
    use passport::TokenError;
    use rest::fetch::FetchError as Transport;
    use rest::metrics::CounterKey;

    #[test]
    fn every_failure_has_one_code_and_flag() {
        let cases: [(VerifyError, u16, Option<Flag>); 8] = [
            (TokenError::BadSignature.into(), 438, Some(Flag::Spoofed)),
            (
                TokenError::DestMismatch("1".into()).into(),
                438,
                Some(Flag::Spoofed),
            ),
            (TokenError::CompactForm.into(), 438, None),
            (
                TokenError::Stale {
                    iat: 0,
                    age: 61,
                    max_age: 60,
                }
                .into(),
                403,
                Some(Flag::Stale),
            ),
            (
                VerifyError::RequestTime {
                    time: 0,
                    now: 100,
                    allowed: 60,
                },
                403,
                Some(Flag::Stale),
            ),
            (
                FetchError::Transport(Transport::Status(404)).into(),
                436,
                None,
            ),
            (
                CredentialError::Revoked {
                    index: 0,
                    serial: "01".into(),
                }
                .into(),
                437,
                Some(Flag::Revoked),
            ),
            (
                CredentialError::RevocationUnavailable {
                    index: 0,
                    reason: Unavailable::NoCrl,
                }
                .into(),
                437,
                Some(Flag::Untrusted),
            ),
        ];
        for (error, code, flag) in cases {
            let (reason, found) = judge(&error);
            assert_eq!((reason.code(), found), (code, flag), "{error}");
        }
    }

    #[test]
    fn the_verdict_serializes_without_absent_members() {
        let verdict = Verdict::failed(
            &FetchError::Transport(Transport::Status(404)).into(),
            Seen {
                attest: Some(Attestation::C),
                origid: Some("o".into()),
                spc: None,
                x5u: Some("https://x".into()),
                rcd: Some(Rcd {
                    nam: "Example".into(),
                    crn: None,
                    source: RcdSource::InShaken,
                }),
            },
        );
        // A failed verdict never carries Rich Call Data.
        assert_eq!(verdict.rcd, None);
        assert_eq!(
            serde_json::to_value(&verdict).unwrap_or_default(),
            serde_json::json!({"verstat": "TN-Validation-Failed", "reasoncode": 436,
                "reasontext": "Bad Identity Info",
                "reasondesc": "fetching the x5u failed: the server answered HTTP 404",
                "attest": "C", "origid": "o",
                "x5u": "https://x", "flags": ["gateway", "unregistered"]})
        );
        assert_eq!(verdict.class(), VerdictClass::Failed436);
        assert_eq!(
            serde_json::to_value(Verdict::unsigned()).unwrap_or_default(),
            serde_json::json!({"verstat": "No-TN-Validation", "flags": ["unsigned", "unregistered"]})
        );
    }

    #[test]
    fn only_a_passed_verdict_keeps_rich_call_data_and_it_is_not_serialized() {
        let rcd = Rcd {
            nam: "Example".into(),
            crn: Some("Sales".into()),
            source: RcdSource::InShaken,
        };
        let seen = Seen {
            attest: Some(Attestation::A),
            rcd: Some(rcd.clone()),
            ..Seen::default()
        };
        let passed = Verdict::passed(seen);
        assert_eq!(passed.rcd, Some(rcd));
        let json = serde_json::to_value(&passed).unwrap_or_default();
        assert!(
            json.get("rcd").is_none() && json.get("crn").is_none(),
            "{json}"
        );
    }

    #[test]
    fn a_passed_verdict_has_no_reason_members() {
        let passed = serde_json::to_value(Verdict::passed(Seen {
            attest: Some(Attestation::A),
            ..Seen::default()
        }))
        .unwrap_or_default();
        assert_eq!(
            passed,
            serde_json::json!({"verstat": "TN-Validation-Passed", "attest": "A", "flags": []})
        );
    }

    #[test]
    fn reasondesc_is_short_ascii() {
        let spoofed = Verdict::failed(
            &TokenError::OrigMismatch {
                token: "1215555\u{e9}1212".into(),
                expected: "12155550000".into(),
            }
            .into(),
            Seen::default(),
        );
        let json = serde_json::to_value(&spoofed).unwrap_or_default();
        assert_eq!(
            json["reasondesc"],
            "token orig \"1215555\\u{e9}1212\" does not match the calling number \"12155550000\""
        );
        let long = reasondesc(&"x".repeat(1000));
        assert_eq!(long.len(), MAX_REASONDESC);
        assert!(long.ends_with("..."));
        assert_eq!(reasondesc("short"), "short");
    }

    #[test]
    fn counter_keys_are_in_index_order() {
        for (i, key) in Flag::ALL.iter().enumerate() {
            assert_eq!(key.index(), i);
            assert!(key.labels().contains(key.as_str()));
        }
        for (i, key) in VerdictClass::ALL.iter().enumerate() {
            assert_eq!(key.index(), i);
        }
    }

    #[test]
    fn a_marketing_call_shows_its_name_and_link_to_the_subscriber_and_its_firm_to_the_feed() {
        let mut verdict = Verdict::passed(Seen {
            attest: Some(Attestation::A),
            origid: Some("o".into()),
            spc: Some("1001".into()),
            x5u: None,
            rcd: None,
        });
        verdict.add_marketing(MarketingNote {
            nam: "Example Insurance".into(),
            crn: Some("Policy renewal".into()),
            firm: "F1".into(),
            unsubscribe: Some("http://127.0.0.1:1/u/t".into()),
        });
        verdict.add_flags(&[Flag::OptedOut, Flag::Blacklisted, Flag::OptedOut]);
        assert_eq!(
            serde_json::to_value(&verdict).unwrap_or_default(),
            serde_json::json!({"verstat": "TN-Validation-Passed", "attest": "A", "origid": "o",
                "spc": "1001", "rcd": {"nam": "Example Insurance"}, "crn": "Policy renewal",
                "unsubscribe": "http://127.0.0.1:1/u/t",
                "flags": ["blacklisted", "opted-out", "marketing"]})
        );
        let line: serde_json::Value = serde_json::from_str(&crate::events::event_line(
            5,
            "12155551212",
            &["12125551213".to_owned()],
            Some("international"),
            &verdict,
        ))
        .unwrap_or_default();
        assert_eq!(line["firm"], "F1");
        assert_eq!(line["ingress"], "international");
        assert_eq!(line["rcd"]["nam"], "Example Insurance");
        assert_eq!(line["crn"], "Policy renewal");
        assert!(line.get("unsubscribe").is_none(), "{line}");
    }
}
