//! The governance rules of `GOVERNANCE.md` §3 on the originating side: who may place marketing
//! calls, what their calls say, and who is stopped. A pure function of the request's branding,
//! what the regulator's list says of the calling number, and the opt-outs; the hourly quota is
//! taken by the caller once every other rule has passed ([`crate::quota`]).
//!
//! | case | decision |
//! |---|---|
//! | emergency call | not asked: emergency calls never meet any list |
//! | no list loaded yet | sign plainly, the request's `rcd`/`crn` dropped (a list that cannot be read never fails a call) |
//! | the number is blacklisted itself | refuse (`POL4113`) |
//! | the number is a blacklisted firm's | refuse (`POL4111`) |
//! | the number is a suspended firm's | refuse (`POL4112`) |
//! | not a firm's number, the request carries `rcd` | refuse (`POL4117`): nobody else can brand calls |
//! | not a firm's number, the request carries `crn` | refuse (`POL4116`) |
//! | not a firm's number otherwise | sign plainly |
//! | a white-listed firm's number, the request's `rcd.nam` is not the vetted name | refuse (`POL4117`) |
//! | ... the request's `crn` is not one of the firm's reasons | refuse (`POL4116`) |
//! | ... a called subscriber opted out of the firm | refuse (`POL4114`) |
//! | ... otherwise | a marketing call: `rcd.nam` = the vetted name, `crn` as asked; then the quota (`POL4115`) |

use lists::{FirmStatus, Listing};
use passport::Tn;

/// What the signing request asks to show: its own `rcd.nam` and `crn`, if any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Branding<'a> {
    /// The request's `rcd.nam`.
    pub rcd_nam: Option<&'a str>,
    /// The request's `crn`.
    pub crn: Option<&'a str>,
}

/// Why a call is refused by the marketing rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MarketingRefusal {
    /// The number belongs to a blacklisted firm (`POL4111`).
    FirmBlacklisted,
    /// The number belongs to a suspended firm (`POL4112`).
    FirmSuspended,
    /// The number is blacklisted itself (`POL4113`).
    NumberBlacklisted,
    /// A called subscriber opted out of the firm (`POL4114`).
    OptedOut,
    /// The firm is over its hourly quota (`POL4115`).
    OverQuota,
    /// The call reason is not one the firm may state, or the caller is no listed firm
    /// (`POL4116`).
    ReasonNotAllowed,
    /// The request's `rcd` is not the vetted name of a white-listed firm whose number this is
    /// (`POL4117`).
    RcdNotAllowed,
}

/// A marketing call as it will be signed: the claims it gets and the firm for the trace log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marketing {
    /// The firm's id (recorded in the trace log).
    pub firm_id: String,
    /// `rcd.nam`: the vetted name, whatever the request said.
    pub nam: String,
    /// `crn`, when the request stated an allowed reason.
    pub crn: Option<String>,
    /// The firm's hourly quota, for the caller to take a slot of.
    pub hourly_quota: u64,
}

/// Decides a non-emergency call. `listing` is `None` when no list is loaded; `opted_out`
/// answers whether a called subscriber opted out of a firm (by id). `Ok(None)`: sign plainly.
pub fn decide(
    listing: Option<Listing<'_>>,
    branding: Branding<'_>,
    dest: &[Tn],
    opted_out: impl Fn(&str, &str) -> bool,
) -> Result<Option<Marketing>, MarketingRefusal> {
    let Some(listing) = listing else {
        return Ok(None);
    };
    if listing.blacklisted_number {
        return Err(MarketingRefusal::NumberBlacklisted);
    }
    let Some(firm) = listing.firm else {
        if branding.rcd_nam.is_some() {
            return Err(MarketingRefusal::RcdNotAllowed);
        }
        if branding.crn.is_some() {
            return Err(MarketingRefusal::ReasonNotAllowed);
        }
        return Ok(None);
    };
    match firm.status {
        FirmStatus::Blacklisted => return Err(MarketingRefusal::FirmBlacklisted),
        FirmStatus::Suspended => return Err(MarketingRefusal::FirmSuspended),
        FirmStatus::WhiteListed => {}
    }
    if branding.rcd_nam.is_some_and(|nam| nam != firm.name) {
        return Err(MarketingRefusal::RcdNotAllowed);
    }
    if branding.crn.is_some_and(|crn| !firm.may_state(crn)) {
        return Err(MarketingRefusal::ReasonNotAllowed);
    }
    if dest.iter().any(|d| opted_out(d.as_str(), &firm.id)) {
        return Err(MarketingRefusal::OptedOut);
    }
    Ok(Some(Marketing {
        firm_id: firm.id.clone(),
        nam: firm.name.clone(),
        crn: branding.crn.map(str::to_owned),
        hourly_quota: firm.hourly_quota,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lists::Firm;

    fn tn(s: &str) -> Tn {
        Tn::canonicalize(s, None).unwrap()
    }

    fn firm(status: FirmStatus) -> Firm {
        Firm {
            id: "F1".into(),
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

    #[test]
    fn every_rule() {
        use MarketingRefusal::*;
        let white = firm(FirmStatus::WhiteListed);
        let black = firm(FirmStatus::Blacklisted);
        let suspended = firm(FirmStatus::Suspended);
        let dest = [tn("12125551213")];
        let nobody = |_: &str, _: &str| false;
        let plain = Branding::default();
        let named = |nam| Branding {
            rcd_nam: Some(nam),
            crn: None,
        };
        let reason = |crn| Branding {
            rcd_nam: None,
            crn: Some(crn),
        };
        let decide = |listing, branding, opted: &dyn Fn(&str, &str) -> bool| {
            decide(listing, branding, &dest, opted)
        };

        // No list: plain, whatever the request says.
        assert_eq!(decide(None, named("Anyone"), &nobody), Ok(None));
        // Not listed.
        assert_eq!(decide(listed(None, false), plain, &nobody), Ok(None));
        assert_eq!(
            decide(listed(None, false), named("Anyone"), &nobody),
            Err(RcdNotAllowed)
        );
        assert_eq!(
            decide(listed(None, false), reason("Policy renewal"), &nobody),
            Err(ReasonNotAllowed)
        );
        // A blacklisted number; blacklisted and suspended firms.
        assert_eq!(
            decide(listed(None, true), plain, &nobody),
            Err(NumberBlacklisted)
        );
        assert_eq!(
            decide(listed(Some(&black), false), plain, &nobody),
            Err(FirmBlacklisted)
        );
        assert_eq!(
            decide(
                listed(Some(&suspended), false),
                named("Example Insurance"),
                &nobody
            ),
            Err(FirmSuspended)
        );
        // White-listed: branded with the vetted name.
        let marketing = Marketing {
            firm_id: "F1".into(),
            nam: "Example Insurance".into(),
            crn: None,
            hourly_quota: 1000,
        };
        assert_eq!(
            decide(listed(Some(&white), false), plain, &nobody),
            Ok(Some(marketing.clone()))
        );
        assert_eq!(
            decide(
                listed(Some(&white), false),
                named("Example Insurance"),
                &nobody
            ),
            Ok(Some(marketing.clone()))
        );
        assert_eq!(
            decide(listed(Some(&white), false), named("Example Bank"), &nobody),
            Err(RcdNotAllowed)
        );
        assert_eq!(
            decide(
                listed(Some(&white), false),
                reason("Policy renewal"),
                &nobody
            ),
            Ok(Some(Marketing {
                crn: Some("Policy renewal".into()),
                ..marketing
            }))
        );
        assert_eq!(
            decide(listed(Some(&white), false), reason("Prize draw"), &nobody),
            Err(ReasonNotAllowed)
        );
        // Opted out: of this firm only.
        let opted = |sub: &str, firm: &str| sub == "12125551213" && firm == "F1";
        assert_eq!(
            decide(listed(Some(&white), false), plain, &opted),
            Err(OptedOut)
        );
        let other_firm = |sub: &str, firm: &str| sub == "12125551213" && firm == "F2";
        assert!(decide(listed(Some(&white), false), plain, &other_firm).is_ok());
    }
}
