//! The governance checks of `GOVERNANCE.md` §3 and §5 on the terminating side: what the
//! regulator's list and the opt-outs say of a call, added to its SHAKEN verdict without ever
//! changing it (RFC 9795: an RCD failure never fails the SHAKEN result).
//!
//! | what | flag | shown |
//! |---|---|---|
//! | the calling number is blacklisted, or a blacklisted firm's | `blacklisted` | |
//! | the calling number is a listed firm's and a called subscriber opted out of that firm | `opted-out` | |
//! | a passed call with an `rcd` whose `nam` is the vetted name of the calling number's white-listed firm | `marketing` | `rcd.nam`, `crn` when it is one of the firm's reasons, the unsubscribe link |
//! | ... with a `crn` the firm may not state | `marketing`, `rcd-mismatch` | `rcd.nam` only |
//! | a passed call with any other `rcd` (not a firm's number, not white-listed, another name) | `rcd-mismatch` | nothing |
//! | an `rcd` on a call whose SHAKEN verification did not pass | | nothing: its signer is not vouched for |
//!
//! The flags are decided by the calling number whatever the verdict (a call of a blacklisted
//! firm is flagged even when its signature fails). With no list loaded yet, nothing is added:
//! an `rcd` cannot be vouched for, so it is not shown either.

use lists::{FirmStatus, Listing};

use crate::verdict::Flag;

/// The RCD a verified PASSporT carried: its `rcd.nam` and `crn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CarriedRcd<'a> {
    /// `rcd.nam`.
    pub nam: &'a str,
    /// `crn`.
    pub crn: Option<&'a str>,
}

/// A marketing call as the subscriber will see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    /// The firm's id.
    pub firm: String,
    /// The vetted name.
    pub nam: String,
    /// The call reason, when the firm may state it.
    pub crn: Option<String>,
}

/// What the list and the opt-outs add to a verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assessment {
    /// Flags to add (the `marketing` flag comes with [`Assessment::shown`]).
    pub flags: Vec<Flag>,
    /// The marketing call's name and reason, when it is one.
    pub shown: Option<Shown>,
}

/// Assesses a call. `listing` is the list's answer for the calling number (`None`: no list
/// loaded); `rcd` is what a PASSporT of the call carried, `passed` whether the SHAKEN
/// verification passed; `to` the called numbers; `opted_out` whether a subscriber opted out
/// of a firm (by id).
pub fn assess(
    listing: Option<Listing<'_>>,
    rcd: Option<CarriedRcd<'_>>,
    passed: bool,
    to: &[&str],
    opted_out: impl Fn(&str, &str) -> bool,
) -> Assessment {
    let mut assessment = Assessment::default();
    let Some(listing) = listing else {
        return assessment;
    };
    let firm = listing.firm;
    if listing.blacklisted_number || firm.is_some_and(|f| f.status == FirmStatus::Blacklisted) {
        assessment.flags.push(Flag::Blacklisted);
    }
    if let Some(firm) = firm {
        if to.iter().any(|subscriber| opted_out(subscriber, &firm.id)) {
            assessment.flags.push(Flag::OptedOut);
        }
    }
    let Some(rcd) = rcd.filter(|_| passed) else {
        return assessment;
    };
    match listing.white_listed_firm() {
        Some(firm) if firm.name == rcd.nam => {
            let crn = match rcd.crn {
                Some(crn) if firm.may_state(crn) => Some(crn.to_owned()),
                Some(_) => {
                    assessment.flags.push(Flag::RcdMismatch);
                    None
                }
                None => None,
            };
            assessment.shown = Some(Shown {
                firm: firm.id.clone(),
                nam: firm.name.clone(),
                crn,
            });
        }
        _ => assessment.flags.push(Flag::RcdMismatch),
    }
    assessment
}

#[cfg(test)]
mod tests {
    use super::*;
    use lists::Firm;

    fn firm(id: &str, status: FirmStatus) -> Firm {
        Firm {
            id: id.into(),
            name: "Example Insurance".into(),
            status,
            numbers: vec![],
            hourly_quota: 1000,
            reasons: vec!["Policy renewal".into()],
        }
    }

    fn listed(firm: Option<&Firm>, blacklisted_number: bool) -> Option<Listing<'_>> {
        Some(Listing {
            firm,
            blacklisted_number,
        })
    }

    const TO: [&str; 1] = ["12125551213"];

    fn rcd<'a>(nam: &'a str, crn: Option<&'a str>) -> Option<CarriedRcd<'a>> {
        Some(CarriedRcd { nam, crn })
    }

    #[test]
    fn every_rule() {
        let white = firm("F1", FirmStatus::WhiteListed);
        let black = firm("F2", FirmStatus::Blacklisted);
        let nobody = |_: &str, _: &str| false;
        let flags = |a: Assessment| a.flags;

        // No list: nothing added, the rcd not shown.
        assert_eq!(
            assess(None, rcd("Example Insurance", None), true, &TO, nobody),
            Assessment::default()
        );
        // A white-listed firm's valid rcd: shown, with an allowed reason.
        let shown = assess(
            listed(Some(&white), false),
            rcd("Example Insurance", Some("Policy renewal")),
            true,
            &TO,
            nobody,
        );
        assert_eq!(
            shown,
            Assessment {
                flags: vec![],
                shown: Some(Shown {
                    firm: "F1".into(),
                    nam: "Example Insurance".into(),
                    crn: Some("Policy renewal".into()),
                }),
            }
        );
        // A reason it may not state: the name shown, the reason not, rcd-mismatch.
        let odd_reason = assess(
            listed(Some(&white), false),
            rcd("Example Insurance", Some("Prize draw")),
            true,
            &TO,
            nobody,
        );
        assert_eq!(odd_reason.flags, [Flag::RcdMismatch]);
        assert_eq!(odd_reason.shown.map(|s| s.crn), Some(None));
        // Another name, or not a firm's number: not shown, rcd-mismatch.
        for listing in [listed(Some(&white), false), listed(None, false)] {
            let other = assess(listing, rcd("Example Bank", None), true, &TO, nobody);
            assert_eq!(other.flags, [Flag::RcdMismatch]);
            assert_eq!(other.shown, None);
        }
        // An rcd on a call that did not pass: ignored.
        assert_eq!(
            assess(
                listed(Some(&white), false),
                rcd("Example Insurance", None),
                false,
                &TO,
                nobody
            ),
            Assessment::default()
        );
        // Blacklisted: the firm or the number, whatever the verdict; a blacklisted firm's rcd
        // is not shown.
        assert_eq!(
            flags(assess(
                listed(Some(&black), false),
                None,
                false,
                &TO,
                nobody
            )),
            [Flag::Blacklisted]
        );
        assert_eq!(
            flags(assess(listed(None, true), None, true, &TO, nobody)),
            [Flag::Blacklisted]
        );
        assert_eq!(
            flags(assess(
                listed(Some(&black), false),
                rcd("Example Insurance", None),
                true,
                &TO,
                nobody
            )),
            [Flag::Blacklisted, Flag::RcdMismatch]
        );
        // Opted out: a call from the firm's number to a subscriber who opted out of it, with or
        // without rcd (a signer that ignores the list does not brand it).
        let opted = |sub: &str, firm: &str| sub == "12125551213" && firm == "F1";
        assert_eq!(
            flags(assess(listed(Some(&white), false), None, true, &TO, opted)),
            [Flag::OptedOut]
        );
        let other_firm = |sub: &str, firm: &str| sub == "12125551213" && firm == "F9";
        assert!(flags(assess(
            listed(Some(&white), false),
            None,
            true,
            &TO,
            other_firm
        ))
        .is_empty());
    }
}
